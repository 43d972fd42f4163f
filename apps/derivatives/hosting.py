"""Which hosted markets are perpetuals, and a bot's perpetual settings (``risk["perp"]``),
validated as a backtest's (:func:`apps.backtests.validation.validate_perp`) with the wallet left
out: a hosted bot's wallet is its paper account's balance of the settle currency. The loop side
is :mod:`workers.perp_hosting` (paper) and :mod:`workers.perp_live` (a live exchange account)."""

from __future__ import annotations

PERP_KEY = "perp"
# What a live bot's leverage may be when it is created; the market's own maximum (often lower)
# is only known from the exchange, which the bot checks when it starts (workers.perp_live).
LIVE_MAX_LEVERAGE = 200
LIVE_FIELDS = ("leverage", "margin_mode", "limits")


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


def validate(risk: dict, venue: str, symbol: str) -> dict[str, str]:
    """The errors of ``risk["perp"]`` for this market (``{}`` when fine or absent)."""
    from apps.backtests.validation import validate_perp

    _spot, settings = split_risk(risk)
    if settings is None:
        return {}
    rec = perp_market(venue, symbol)
    if rec is None and live_perp(venue, symbol):
        return validate_live(settings, symbol)
    if rec is None:
        return {PERP_KEY: f"{venue} {symbol} is not a perpetual market served here; perpetual settings do not apply"}
    if isinstance(settings, dict) and "wallet" in settings:
        return {f"{PERP_KEY}.wallet": "the wallet is the paper account's balance of the settle currency; remove it"}
    return {f"{PERP_KEY}.{k}": v for k, v in validate_perp(settings, rec.contract).items()}


def validate_live(settings: object, symbol: str) -> dict[str, str]:
    """A live perpetual bot's settings: ``leverage`` and ``margin_mode`` (each optional: absent,
    the exchange's current setting stays) and ``limits``. The wallet and the funding are the
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
