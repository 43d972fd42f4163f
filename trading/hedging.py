"""Hedged maker pricing: quotes on a maker venue priced from a hedge venue's book.

A hedged maker rests quotes on the *maker* venue and, when one fills, takes the opposite side on
the *hedge* venue. A quote is only worth resting at a price where the fill can be hedged at a
profit, so each side is priced from the hedge venue's depth:

* the quoted size is converted to hedge-venue lots (:meth:`HedgeLegs.hedge_lots`: spot base
  units, or linear perpetual contracts of ``contract_size`` base units — a delta hedge in
  contracts);
* the hedge venue's book is walked for that size (``OrderBook.cost_to_trade``): the volume
  weighted price at which a buy on the maker venue could be sold there (bids) or a sell bought
  back (asks);
* the maker bid is that price times ``1 - edge`` rounded down to a maker tick, the maker ask
  the hedge price times ``1 + edge`` rounded up, where
  ``edge = min_profitability + hedge_slippage + latency_buffer``.

``min_profitability`` is the edge kept over the hedge price *including* both legs' fees (the
maker venue's maker fee and the hedge venue's taker fee); the expected net profit per fill is
``min_profitability - fees``. A ``min_profitability`` below the two fees is refused
(:func:`validate_hedge_config`). ``hedge_slippage`` is the expected extra cost of the hedge
beyond the walked price, ``latency_buffer`` covers the hedge venue moving between our last view
of it and the hedge reaching it.

Everything is exact: rates are integers in 1e-8 (``fee_e8``), prices integer ticks, sizes
integer lots; the conversion between venues is a :class:`fractions.Fraction`. Inverse
perpetuals are refused as either leg (their delta in base units changes with the price).
"""

from __future__ import annotations

from dataclasses import dataclass
from decimal import Decimal
from fractions import Fraction

from trading.book import OrderBook
from trading.contracts import SPOT, ContractKind, ContractSpec, decimal_text
from trading.instruments import FEE_SCALE, Instrument, InstrumentError, Side, fee_rate_e8


@dataclass(frozen=True, slots=True)
class Leg:
    """One venue of a hedged bot: its instrument and contract (spot or linear perpetual)."""

    instrument: Instrument
    contract: ContractSpec = SPOT

    @property
    def base_per_lot(self) -> Fraction:
        """Base units one lot stands for (a linear contract is ``contract_size`` base units)."""
        lot = Fraction(self.instrument.lot_size)
        if self.contract.kind is ContractKind.LINEAR:
            return lot * Fraction(self.contract.contract_size)
        return lot


@dataclass(frozen=True, slots=True)
class HedgeLegs:
    maker: Leg
    hedge: Leg

    def base(self, leg: Leg, lots: int) -> Fraction:
        return leg.base_per_lot * lots

    def hedge_lots(self, base: Fraction) -> int:
        """Whole hedge lots nearest to ``base`` units (half away from zero), signed like ``base``."""
        lots = abs(base) / self.hedge.base_per_lot
        whole = int(lots + Fraction(1, 2))
        return whole if base >= 0 else -whole


@dataclass(frozen=True, slots=True)
class HedgeConfig:
    """What a hedged maker quotes and how it hedges (rates as fee_e8 integers, times in ns).

    ``order_lots`` is in maker lots and must be a whole number of hedge lots.
    ``max_unhedged_base`` bounds the net exposure (maker + hedge, base units) the bot may run,
    ``max_unhedged_ns`` how long any exposure above half a hedge lot may last before quoting stops.
    """

    order_lots: int
    min_profitability_e8: int
    hedge_slippage_e8: int = 0
    latency_buffer_e8: int = 0
    hedge_mode: str = "ioc"  # "ioc" (taker) or "limit" (aggressive limit cancelled at the timeout)
    hedge_timeout_ns: int = 500_000_000
    hedge_price_slack_e8: int = 50_000  # the hedge order's limit beyond the walked price (0.05 %)
    max_unhedged_base: Fraction = Fraction(0)
    max_unhedged_ns: int = 2_000_000_000
    retry_budget: int = 3
    retry_backoff_ns: int = 200_000_000
    stale_after_ns: int = 2_000_000_000
    requote_ticks: int = 0  # leave a quote alone while it is within this many ticks of the target
    max_maker_base: Fraction | None = None  # |maker position| a quote may lead to (base; None: no limit)

    @property
    def edge_e8(self) -> int:
        return self.min_profitability_e8 + self.hedge_slippage_e8 + self.latency_buffer_e8


def fees_e8(legs: HedgeLegs) -> int:
    """Both legs' fees per unit of notional: maker fee on the maker venue + taker fee on the hedge."""
    return legs.maker.instrument.maker_fee_e8 + legs.hedge.instrument.taker_fee_e8


def validate_hedge_config(legs: HedgeLegs, config: dict) -> tuple[HedgeConfig | None, dict[str, str]]:
    """Build a :class:`HedgeConfig` from decimal strings; errors name field, value and what is accepted.

    Fields: ``order_amount`` (maker base quantity), ``min_profitability``, ``hedge_slippage``,
    ``latency_buffer`` (rates, e.g. ``"0.0015"``), ``hedge_mode`` (ioc/limit), ``hedge_timeout_ms``,
    ``max_unhedged`` (base quantity), ``max_unhedged_ms``, ``retry_budget``, ``retry_backoff_ms``,
    ``stale_after_ms``, ``max_position`` (the maker leg's position, base quantity; optional: a
    hedged maker's legs grow together while the net stays flat, and this bounds them).
    """
    errors: dict[str, str] = {}
    maker, hedge = legs.maker.instrument, legs.hedge.instrument
    accepted = (
        "order_amount",
        "min_profitability",
        "hedge_slippage",
        "latency_buffer",
        "hedge_mode",
        "hedge_timeout_ms",
        "max_unhedged",
        "max_unhedged_ms",
        "retry_budget",
        "retry_backoff_ms",
        "stale_after_ms",
        "max_position",
    )
    for key in config:
        if key not in accepted:
            errors[key] = f"unknown parameter; accepted: {', '.join(accepted)}"
    for name, leg in (("maker", legs.maker), ("hedge", legs.hedge)):
        if leg.contract.kind is ContractKind.INVERSE:
            errors[name] = (
                f"{leg.instrument.symbol} is an inverse perpetual; its delta in {leg.instrument.base} changes "
                "with the price; accepted: spot or linear perpetual legs"
            )
    if (maker.base, maker.quote) != (hedge.base, hedge.quote) and "hedge" not in errors:
        errors["hedge"] = (
            f"{hedge.symbol} ({hedge.venue}) does not list {maker.base}/{maker.quote}; "
            f"accepted: a hedge market of the same base and quote as {maker.symbol}"
        )

    def rate(key: str, default: str) -> int:
        try:
            value = fee_rate_e8(key, config.get(key, default))
        except InstrumentError as exc:
            errors[key] = f"{config.get(key)!r} is not accepted; give a rate from 0 to 0.05 ({exc})"
            return 0
        if value < 0:
            errors[key] = f"{config.get(key)!r} is not accepted; give a rate from 0 to 0.05"
        return value

    def whole(key: str, default: int, low: int, high: int) -> int:
        value = config.get(key, default)
        if isinstance(value, bool) or not isinstance(value, int) or not low <= value <= high:
            errors[key] = f"{value!r} is not accepted; give a whole number from {low} to {high}"
            return default
        return value

    def quantity(key: str, default: str) -> Fraction | None:
        raw = config.get(key, default)
        try:
            value = Fraction(maker.quantity(maker.lots(raw, field=key)))
        except InstrumentError as exc:
            errors[key] = f"{raw!r} is not accepted; {exc}"
            return None
        if value <= 0:
            errors[key] = f"{raw!r} is not accepted; give a quantity above 0 in {maker.base}"
            return None
        return value

    min_profit = rate("min_profitability", "0.002")
    slippage = rate("hedge_slippage", "0")
    latency = rate("latency_buffer", "0")
    amount = quantity("order_amount", "0.001")
    limit = quantity("max_unhedged", str(2 * maker.quantity(int(amount / legs.maker.base_per_lot))) if amount else "0")
    max_position = quantity("max_position", "0") if config.get("max_position") is not None else None
    mode = config.get("hedge_mode", "ioc")
    if mode not in ("ioc", "limit"):
        errors["hedge_mode"] = f"{mode!r} is not accepted; accepted: ioc (taker), limit (aggressive limit + timeout)"
    timeout = whole("hedge_timeout_ms", 500, 1, 60_000)
    max_ms = whole("max_unhedged_ms", 2_000, 1, 600_000)
    budget = whole("retry_budget", 3, 0, 100)
    backoff = whole("retry_backoff_ms", 200, 0, 60_000)
    stale = whole("stale_after_ms", 2_000, 1, 600_000)
    fees = fees_e8(legs)
    if "min_profitability" not in errors and min_profit < fees:
        errors["min_profitability"] = (
            f"{config.get('min_profitability', '0.002')!r} is below the two venues' fees "
            f"({maker.venue or maker.symbol} maker {_rate(maker.maker_fee_e8)} + {hedge.venue or hedge.symbol} "
            f"taker {_rate(hedge.taker_fee_e8)} = {_rate(fees)}); accepted: at least {_rate(fees)}"
        )
    if amount is not None:
        per_hedge_lot = legs.hedge.base_per_lot
        if amount % per_hedge_lot:
            errors["order_amount"] = (
                f"{config.get('order_amount', '0.001')!r} is not a whole number of {hedge.symbol} contracts "
                f"({decimal_text(per_hedge_lot)} {maker.base} each); accepted: a multiple of {decimal_text(per_hedge_lot)}"
            )
        if max_position is not None and max_position < amount:
            errors["max_position"] = (
                f"{config.get('max_position')!r} is below the order amount {decimal_text(amount)}; no quote could "
                f"be placed; accepted: at least {decimal_text(amount)}"
            )
        if limit is not None and limit < amount:
            errors["max_unhedged"] = (
                f"{config.get('max_unhedged')!r} is below the order amount {decimal_text(amount)}; one fill of a "
                f"quote is unhedged until its hedge fills; accepted: at least {decimal_text(amount)}"
            )
    if errors or amount is None or limit is None:
        return None, errors
    order_lots = int(amount / legs.maker.base_per_lot)
    ms = 1_000_000
    return (
        HedgeConfig(
            order_lots=order_lots,
            min_profitability_e8=min_profit,
            hedge_slippage_e8=slippage,
            latency_buffer_e8=latency,
            hedge_mode=mode,
            hedge_timeout_ns=timeout * ms,
            max_unhedged_base=limit,
            max_unhedged_ns=max_ms * ms,
            retry_budget=budget,
            retry_backoff_ns=backoff * ms,
            stale_after_ns=stale * ms,
            max_maker_base=max_position,
        ),
        {},
    )


def _rate(e8: int) -> str:
    return format((Decimal(e8) / FEE_SCALE).normalize(), "f")


@dataclass(frozen=True, slots=True)
class HedgePrice:
    """The walked hedge price of one maker side: hedge lots, their summed ticks x lots, as a price."""

    side: Side  # the maker side this prices
    hedge_lots: int
    hedge_cost: int  # sum of hedge ticks x lots walked
    maker_price: int  # maker ticks

    def hedge_vwap(self, hedge: Instrument) -> Fraction:
        """Volume-weighted hedge price in quote currency."""
        return Fraction(self.hedge_cost, self.hedge_lots) * Fraction(hedge.tick_size)


def price_side(legs: HedgeLegs, config: HedgeConfig, hedge_book: OrderBook, side: Side, lots: int) -> HedgePrice | None:
    """Price the maker ``side`` for ``lots`` maker lots from the hedge book, or ``None`` when the
    hedge book cannot absorb the hedge (too thin) or the result is not a positive price.

    A maker BUY is hedged by selling on the hedge venue (walk its bids), a maker SELL by buying
    (walk its asks)."""
    hedge_lots = legs.hedge_lots(legs.base(legs.maker, lots))
    if hedge_lots <= 0:
        return None
    filled, cost = hedge_book.cost_to_trade(side.opposite, hedge_lots)
    if filled < hedge_lots:
        return None
    vwap = Fraction(cost, filled) * Fraction(legs.hedge.instrument.tick_size)
    edge = Fraction(config.edge_e8, FEE_SCALE)
    tick = Fraction(legs.maker.instrument.tick_size)
    if side is Side.BUY:
        raw = vwap * (1 - edge) / tick
        ticks = raw.numerator // raw.denominator
    else:
        raw = vwap * (1 + edge) / tick
        ticks = -((-raw.numerator) // raw.denominator)
    if ticks <= 0:
        return None
    return HedgePrice(side, hedge_lots, cost, ticks)


def hedge_limit_price(legs: HedgeLegs, config: HedgeConfig, hedge_book: OrderBook, side: Side, lots: int) -> int | None:
    """The limit of a hedge order of ``lots`` hedge lots on ``side``: the worst level the walk
    reaches, moved ``hedge_price_slack`` further so a book that moved a little still fills it.
    ``None`` when the book has nothing on the opposite side."""
    bids, asks = hedge_book.top(50)
    levels = asks if side is Side.BUY else bids
    if not levels:
        return None
    remaining = lots
    worst = levels[0][0]
    for price, qty in levels:
        worst = price
        remaining -= qty
        if remaining <= 0:
            break
    slack = Fraction(worst * config.hedge_price_slack_e8, FEE_SCALE)
    if side is Side.BUY:
        up = worst + slack
        return -((-up.numerator) // up.denominator)
    down = worst - slack
    return max(1, down.numerator // down.denominator)
