"""Which hosted markets are perpetuals, and a bot's perpetual settings (``risk["perp"]``),
validated as a backtest's (:func:`apps.backtests.validation.validate_perp`); a hosted paper bot's
``wallet`` is its allocation of its paper account's settle-currency balance, shared with the
account's other perpetual bots (:mod:`apps.derivatives.paper_wallets`). The loop side
is :mod:`workers.perp_hosting` (paper) and :mod:`workers.perp_live` (a live exchange account).

A market is a perpetual when its ``exchanges.Market`` row says so (``kind`` linear or inverse,
with its contract size, settle currency and maximum leverage: from ccxt's market metadata, or
seeded for the replay venues), not from its symbol.
"""

from __future__ import annotations

from dataclasses import dataclass

from trading.contracts import ContractSpec
from trading.margin import BracketTable

PERP_KEY = "perp"
# What a live bot's leverage may be when it is created; the market's own maximum (often lower)
# is only known from the exchange, which the bot checks when it starts (workers.perp_live).
LIVE_MAX_LEVERAGE = 200
LIVE_FIELDS = ("leverage", "margin_mode", "position_mode", "limits")


@dataclass(frozen=True)
class PerpMarket:
    """A perpetual market as the hosted code uses it: its contract (from the market row) and the
    maintenance-margin tiers its liquidation price is computed with (``tiers_source`` says
    which)."""

    contract: ContractSpec
    tiers: BracketTable
    tiers_source: str


def tiers_for(venue: str, symbol: str, contract: ContractSpec) -> tuple[BracketTable, str]:
    """The maintenance-margin tiers of a perpetual: the shipped recording's for the market a replay
    venue serves (``replay:binance-usdm`` ``BTC/USDT:USDT`` is ``binance-usdm-btcusdt``); else the
    shipped Binance table of the contract's kind (USD-M BTCUSDT for a linear, COIN-M BTCUSD for an
    inverse one), a stand-in until a venue's own tiers are loaded through ccxt's
    ``fetchLeverageTiers`` (``connectors.ccxt_perp.bracket_table_from_ccxt``)."""
    from connectors.binance_recording import RECORDINGS
    from trading import margin

    for name, rec in RECORDINGS.items():
        if (
            rec.contract.is_perpetual
            and venue == f"replay:{name.rsplit('-', 1)[0]}"
            and symbol == rec.instrument.symbol
            and rec.tiers is not None
        ):
            return rec.tiers, f"recording {name}"
    if contract.inverse:
        return margin.BINANCE_COINM_BTCUSD, "Binance COIN-M BTCUSD table (stand-in)"
    return margin.BINANCE_USDM_BTCUSDT, "Binance USD-M BTCUSDT table (stand-in)"


def perp_market(venue: str, symbol: str, market=None) -> PerpMarket | None:
    """The perpetual market ``venue`` ``symbol`` (its row ``market`` when the caller has it), or
    None for a spot or unknown market. Reads the database when ``market`` is not given."""
    from apps.exchanges.markets import market_contract

    if market is None:
        from apps.exchanges.models import Market

        market = Market.objects.filter(venue=venue, symbol=symbol).first()
    if market is None or not market.is_perpetual:
        return None
    contract = market_contract(market)
    tiers, source = tiers_for(venue, symbol, contract)
    return PerpMarket(contract, tiers, source)


def live_perp(venue: str, symbol: str) -> bool:
    """Whether a market is a perpetual of a live exchange: a ccxt exchange id (not ``replay:`` or
    ``sim:``) and ccxt's unified swap symbol ``BASE/QUOTE:SETTLE`` (a dated future's carries an
    expiry after a ``-`` and is not one). Its contract comes from the exchange at start."""
    if ":" in venue or ":" not in symbol:
        return False
    pair, _, settle = symbol.partition(":")
    return "/" in pair and bool(settle) and "-" not in settle


def split_risk(risk: dict) -> tuple[dict, dict | None]:
    """(the spot risk limits, the perpetual settings or None)."""
    if PERP_KEY not in risk:
        return risk, None
    return {k: v for k, v in risk.items() if k != PERP_KEY}, risk[PERP_KEY]


def validate(
    risk: dict, venue: str, symbol: str, market=None, perp: PerpMarket | None = None, *, paper: bool = False
) -> dict[str, str]:
    """The errors of ``risk["perp"]`` for this market (``{}`` when fine or absent); the leverage
    is bounded by the market row's ``max_leverage``. ``perp``: the market as already loaded (a
    bot loop's setup, which must not read the database). ``paper``: the bot's account is a paper
    one; on a live exchange's perpetual it is simulated here like any paper perpetual (its wallet
    allocation and a constant funding rate are its own settings), on the contract the market row
    carries."""
    from apps.backtests.validation import validate_perp

    _spot, settings = split_risk(risk)
    if settings is None:
        return {}
    if live_perp(venue, symbol) and not paper:  # its contract is the exchange's, checked at start
        return validate_live(settings, symbol)
    rec = perp if perp is not None else perp_market(venue, symbol, market)
    if rec is None:
        return {PERP_KEY: f"{venue} {symbol} is not a perpetual market served here; perpetual settings do not apply"}
    return {f"{PERP_KEY}.{k}": v for k, v in validate_perp(settings, rec.contract).items()}


def validate_live(settings: object, symbol: str) -> dict[str, str]:
    """A live perpetual bot's settings: ``leverage``, ``margin_mode`` and ``position_mode``
    (``one_way`` or ``hedge``; each optional: absent, the exchange's current setting stays) and
    ``limits``. The wallet and the funding are the
    exchange's, so ``wallet`` and ``funding_rate`` are refused."""
    from apps.backtests.validation import validate_perp
    from trading.contracts import ContractKind, ContractSpec

    if not isinstance(settings, dict):
        return {PERP_KEY: f"must be an object with any of: {', '.join(LIVE_FIELDS)}"}
    errors: dict[str, str] = {}
    for key in settings:
        if key == "wallet":
            errors[f"{PERP_KEY}.wallet"] = "a live bot's wallet is the exchange account's balance; remove it"
        elif key == "funding_rate":
            errors[f"{PERP_KEY}.funding_rate"] = (
                "a live bot reads the funding rate from the exchange (fetchFundingRate); remove it"
            )
        elif key not in LIVE_FIELDS:
            errors[f"{PERP_KEY}.{key}"] = f"unknown setting; accepted: {', '.join(LIVE_FIELDS)}"
    settle = symbol.partition(":")[2]
    spec = ContractSpec.create(kind=ContractKind.LINEAR, settle=settle, max_leverage=LIVE_MAX_LEVERAGE)
    known = {k: v for k, v in settings.items() if k in LIVE_FIELDS}
    for key, message in validate_perp(known, spec).items():
        if key == "leverage":
            message += " (the market's own maximum is checked with the exchange when the bot starts)"
        errors[f"{PERP_KEY}.{key}"] = message
    return errors
