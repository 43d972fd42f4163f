"""Which hosted markets are perpetuals, and a bot's perpetual settings (``risk["perp"]``),
validated as a backtest's (:func:`apps.backtests.validation.validate_perp`) with the wallet left
out: a hosted bot's wallet is its paper account's balance of the settle currency. The loop side
is :mod:`workers.perp_hosting`."""

from __future__ import annotations

PERP_KEY = "perp"


def perp_market(venue: str, symbol: str):
    """The shipped recording of a perpetual market a replay venue serves (contract and
    maintenance-margin tiers), or None: ``replay:binance-usdm`` ``BTC/USDT:USDT`` is the
    ``binance-usdm-btcusdt`` recording (the venue is the recording's name without its market)."""
    from connectors.binance_recording import RECORDINGS

    for name, rec in RECORDINGS.items():
        if (
            rec.contract.is_perpetual
            and venue == f"replay:{name.rsplit('-', 1)[0]}"
            and symbol == rec.instrument.symbol
        ):
            return rec
    return None


def split_risk(risk: dict) -> tuple[dict, dict | None]:
    """(the spot risk limits, the perpetual settings or None)."""
    if PERP_KEY not in risk:
        return risk, None
    return {k: v for k, v in risk.items() if k != PERP_KEY}, risk[PERP_KEY]


def validate(risk: dict, venue: str, symbol: str) -> dict[str, str]:
    """The errors of ``risk["perp"]`` for this market (``{}`` when fine or absent)."""
    from apps.backtests.validation import validate_perp

    _spot, settings = split_risk(risk)
    if settings is None:
        return {}
    rec = perp_market(venue, symbol)
    if rec is None:
        return {PERP_KEY: f"{venue} {symbol} is not a perpetual market served here; perpetual settings do not apply"}
    if isinstance(settings, dict) and "wallet" in settings:
        return {f"{PERP_KEY}.wallet": "the wallet is the paper account's balance of the settle currency; remove it"}
    return {f"{PERP_KEY}.{k}": v for k, v in validate_perp(settings, rec.contract).items()}
