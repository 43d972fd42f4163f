"""Spot or derivatives: which markets an exchange account trades (``ExchangeAccount.default_type``,
ccxt's ``defaultType`` option) and which markets are perpetual swaps.

A market is a perpetual swap when its row says so (``Market.kind`` linear or inverse,
``Market.is_perpetual``); a symbol alone (no row) is one when it is ccxt's unified swap symbol,
``BASE/QUOTE:SETTLE`` (``BTC/USDT:USDT`` linear, ``BTC/USD:BTC`` inverse).

What a venue offers, for validation and for inferring an account's type when none is given:

* ``replay:<name>`` / ``sim:<name>``: the kinds of its stored markets and, for a replay venue, of
  the shipped recordings it replays (``replay:binance-usdm`` has only ``BTC/USDT:USDT``:
  derivatives only; ``replay:binance-spot`` spot only);
* a ccxt exchange id: ccxt's own ``has["spot"]`` / ``has["swap"]`` (``binanceusdm`` has no spot,
  ``kraken`` no swaps, ``binance`` both).
"""

from __future__ import annotations

from django.core.exceptions import ValidationError

from apps.exchanges.models import MarketType

SPOT, SWAP = str(MarketType.SPOT), str(MarketType.SWAP)  # plain strings: messages show 'spot', not the enum
ACCEPTED = "'spot' (spot markets) or 'swap' (derivatives: perpetual swaps; ccxt defaultType)"


def is_perp_symbol(symbol: str) -> bool:
    return ":" in (symbol or "")


def market_type_of(market) -> str:
    """A market's type: its row's kind, or a live exchange's swap symbol (whose contract the
    hosted live code reads from the exchange, ``apps.derivatives.hosting.live_perp``)."""
    from apps.derivatives.hosting import live_perp

    return SWAP if market.is_perpetual or live_perp(market.venue, market.symbol) else SPOT


def venue_market_types(venue: str) -> set[str]:
    """The market types ``venue`` offers (empty when unknown: a replay/sim venue with no stored
    market, or not a ccxt id)."""
    if venue.startswith(("replay:", "sim:")):
        from apps.exchanges.models import Market

        offered = {SPOT if kind == "spot" else SWAP
                   for kind in Market.objects.filter(venue=venue).values_list("kind", flat=True)}  # fmt: skip
        if venue.startswith("replay:"):  # the shipped recordings it replays, stored as markets or not yet
            from connectors.binance_recording import RECORDINGS

            for name, rec in RECORDINGS.items():
                if venue == f"replay:{name.rsplit('-', 1)[0]}":
                    offered.add(SWAP if rec.contract.is_perpetual else SPOT)
        return offered
    import ccxt

    cls = getattr(ccxt, venue, None) if venue in ccxt.exchanges else None
    if cls is None:
        return set()
    has = cls().has
    return {t for t in (SPOT, SWAP) if has.get(t)}


def venue_default_type(venue: str) -> str:
    """The type of an account created without one: spot when the venue offers spot (or is not
    known), else derivatives."""
    offered = venue_market_types(venue)
    return SWAP if offered and SPOT not in offered else SPOT


def default_type_validate(*, venue: str, default_type: str) -> str:
    """The account type to store (inferred when blank); ``ValidationError`` naming ``default_type``,
    the value and what is accepted on this venue when it is not a type or the venue lacks it."""
    if default_type in (None, ""):
        return venue_default_type(venue)
    if default_type not in MarketType.values:
        raise ValidationError({"default_type": f"{default_type!r} is not an account type; accepted: {ACCEPTED}"})
    offered = venue_market_types(venue)
    if offered and default_type not in offered:
        what = "perpetual swaps" if default_type == SWAP else "spot markets"
        raise ValidationError(
            {
                "default_type": f"{default_type!r} is not accepted on {venue}: it has no {what}; "
                f"accepted: {', '.join(repr(t) for t in sorted(offered))}"
            }
        )
    return default_type


def account_market_error(account, market) -> str | None:
    """Why ``account`` cannot trade ``market``, or None: a derivatives account trades perpetual
    swaps only; a live spot account no perpetual swap (its exchange object, built with
    ``defaultType`` spot, reads the spot wallet, not the swap wallet its margin is in). A paper
    spot account may run a paper perpetual bot: the paper venue holds one set of balances, and
    its settle-currency balance is the bot's wallet either way."""
    wanted = market_type_of(market)
    have = account.default_type or SPOT
    if wanted == have or (wanted == SWAP and account.kind == "paper"):
        return None
    if wanted == SWAP:
        return (
            f"{market.symbol} on {market.venue} is a perpetual swap and live account {account.label!r} is a spot "
            "account; accepted: a derivatives (swap) account for perpetual swaps, or a spot market"
        )
    return (
        f"{market.symbol} on {market.venue} is a spot market and account {account.label!r} is a derivatives "
        "account; accepted: a perpetual swap (BASE/QUOTE:SETTLE) for this account"
    )
