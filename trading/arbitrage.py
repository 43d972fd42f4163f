"""Cross-venue arbitrage detection (pure: books and times in, opportunities out).

Given the latest books of several venues quoting the same symbol, an opportunity is: buy on
venue A (lift its asks), sell on venue B (hit its bids), at the same moment, as a taker on both
legs. Per base unit walked, the marginal net is::

    bid_B * (1 - taker_fee_B - discount_B) - ask_A * (1 + taker_fee_A + discount_A)

where ``discount_X = discount_bps_per_second / 10,000 * age_X`` and ``age_X`` is the age of
venue X's book (``now - book ts``) plus its measured order-entry latency: the older the picture
and the slower the venue, the more the price may have moved before our order lands.

The size is the largest at which every marginal unit still earns at least ``min_edge_bps``
(walking both books level by level, so depth and slippage are taken into account), capped by
``max_base``, rounded down to a size both venues accept. The exact figures for that size are
then taken from :meth:`trading.book.OrderBook.cost_to_trade` on both books; the opportunity is
reported only when its net profit is at least ``min_profit``.

Prices of different venues may use different tick and lot sizes: arithmetic is exact with
:class:`fractions.Fraction` on the instruments' decimal steps; results are ``Decimal`` (the
discount, the only inexact figure, is rounded up to 1e-12 so the net is never overstated).
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass
from decimal import ROUND_CEILING, Decimal
from fractions import Fraction

from trading.book import OrderBook
from trading.instruments import FEE_SCALE, Instrument, Side

BPS = 10_000
NS_PER_S = 1_000_000_000
DISCOUNT_STEP = Decimal("1e-12")


@dataclass(frozen=True)
class VenueBook:
    """The latest known book of one venue for the symbol.

    ``ts`` is the book's time (ns); ``taker_fee_e8`` overrides the instrument's taker fee
    (e.g. the fee observed by the observatory); ``latency_ns`` is the measured order-entry
    latency to that venue.
    """

    venue: str
    instrument: Instrument
    book: OrderBook
    ts: int
    taker_fee_e8: int | None = None
    latency_ns: int = 0

    @property
    def fee_e8(self) -> int:
        return self.instrument.taker_fee_e8 if self.taker_fee_e8 is None else self.taker_fee_e8


@dataclass(frozen=True)
class ArbitrageConfig:
    """Thresholds of the detector. Money in quote currency, sizes in base currency."""

    min_profit: Decimal = Decimal(0)
    min_edge_bps: Decimal = Decimal(0)
    max_staleness_ns: int = 5 * NS_PER_S
    discount_bps_per_second: Decimal = Decimal(1)
    max_base: Decimal | None = None
    depth_levels: int = 20

    def __post_init__(self) -> None:
        for name in ("min_profit", "min_edge_bps", "discount_bps_per_second"):
            value = getattr(self, name)
            if not isinstance(value, Decimal) or not value.is_finite() or value < 0:
                raise ValueError(f"{name}: {value!r} is not accepted; give a Decimal >= 0")
        if self.max_base is not None and (not isinstance(self.max_base, Decimal) or self.max_base <= 0):
            raise ValueError(f"max_base: {self.max_base!r} is not accepted; give a Decimal > 0 or None")
        for name in ("max_staleness_ns", "depth_levels"):
            value = getattr(self, name)
            if isinstance(value, bool) or not isinstance(value, int) or value <= 0:
                raise ValueError(f"{name}: {value!r} is not accepted; give a whole number > 0")


@dataclass(frozen=True)
class Opportunity:
    """Buy ``size`` on ``buy_venue`` and sell it on ``sell_venue``.

    ``buy_price``/``sell_price`` are the top of each book (best ask / best bid);
    ``buy_avg``/``sell_avg`` the averages over the walked levels. ``slippage`` is the cost of
    walking both books beyond the top, ``fees`` the taker fees of both legs, ``discount`` the
    staleness/latency allowance, so ``net_profit = (sell_price - buy_price) * size - fees -
    slippage - discount`` exactly.
    """

    ts: int
    symbol: str
    buy_venue: str
    sell_venue: str
    size: Decimal
    buy_price: Decimal
    sell_price: Decimal
    buy_avg: Decimal
    sell_avg: Decimal
    buy_cost: Decimal
    sell_proceeds: Decimal
    fees: Decimal
    slippage: Decimal
    discount: Decimal
    net_profit: Decimal
    gross_edge_bps: Decimal
    net_edge_bps: Decimal
    staleness_ns: int
    latency_ns: int
    buy_lots: int
    sell_lots: int
    buy_limit: Decimal  # worst ask walked: the buy leg's IOC limit price
    sell_limit: Decimal  # worst bid walked: the sell leg's IOC limit price


@dataclass(frozen=True)
class Execution:
    """Outcome of sending both legs of an opportunity as IOC taker orders at their limits.

    ``profit`` is ``sell_proceeds - buy_cost - fees`` plus any unhedged remainder (one leg
    filled more than the other) valued where it can be closed: bought base at the buy venue's
    best bid, sold base at the sell venue's best ask (0 when that side is empty).
    """

    bought: Decimal
    sold: Decimal
    buy_cost: Decimal
    sell_proceeds: Decimal
    fees: Decimal
    unhedged_value: Decimal
    profit: Decimal


def _frac(d: Decimal) -> Fraction:
    return Fraction(d)


def _dec(f: Fraction, *, places: Decimal | None = None) -> Decimal:
    """Exact Fraction -> Decimal when the denominator allows it, else rounded up to ``places``."""
    value = Decimal(f.numerator) / Decimal(f.denominator)
    if places is not None and Fraction(value) != f:
        value = value.quantize(places, rounding=ROUND_CEILING)
    return value


def _lcm(a: Fraction, b: Fraction) -> Fraction:
    """Smallest positive quantity that is a whole multiple of both ``a`` and ``b``."""
    return Fraction(math.lcm(a.numerator, b.numerator), math.gcd(a.denominator, b.denominator))


def _marginal_size(buy: VenueBook, sell: VenueBook, ages: tuple[int, int], config: ArbitrageConfig) -> Fraction:
    """Base quantity over which every marginal unit earns at least ``min_edge_bps`` net.

    Exact integer arithmetic: per level pair the test ``bid * K_b - ask * K_a >= ask * E`` (with
    ``K`` the tick size times the fee/discount factor and ``E`` the tick size times the minimum
    edge) is multiplied through by the denominators; quantities are counted in units of
    ``1 / (denominator of lot_a * denominator of lot_b)`` base.
    """
    inst_a, inst_b = buy.instrument, sell.instrument
    per_s = _frac(config.discount_bps_per_second) / BPS
    cost_rate = 1 + Fraction(buy.fee_e8, FEE_SCALE) + per_s * Fraction(ages[0], NS_PER_S)
    gain_rate = 1 - Fraction(sell.fee_e8, FEE_SCALE) - per_s * Fraction(ages[1], NS_PER_S)
    if gain_rate <= 0:
        return Fraction(0)
    k_a = _frac(inst_a.tick_size) * cost_rate
    k_b = _frac(inst_b.tick_size) * gain_rate
    edge = _frac(inst_a.tick_size) * _frac(config.min_edge_bps) / BPS
    c_bid = k_b.numerator * k_a.denominator * edge.denominator
    c_ask = k_a.numerator * k_b.denominator * edge.denominator
    c_edge = edge.numerator * k_b.denominator * k_a.denominator
    lot_a, lot_b = _frac(inst_a.lot_size), _frac(inst_b.lot_size)
    unit_a = lot_a.numerator * lot_b.denominator  # common units per lot of A
    unit_b = lot_b.numerator * lot_a.denominator
    _, asks = buy.book.top(config.depth_levels)
    bids, _ = sell.book.top(config.depth_levels)
    i = j = 0
    left_a = asks[0][1] * unit_a if asks else 0
    left_b = bids[0][1] * unit_b if bids else 0
    size = 0
    n_asks, n_bids = len(asks), len(bids)
    while i < n_asks and j < n_bids:
        ask = asks[i][0]
        margin = bids[j][0] * c_bid - ask * c_ask
        if margin <= 0 or margin < ask * c_edge:
            break
        step = left_a if left_a < left_b else left_b
        size += step
        left_a -= step
        left_b -= step
        if left_a == 0:
            i += 1
            if i < n_asks:
                left_a = asks[i][1] * unit_a
        if left_b == 0:
            j += 1
            if j < n_bids:
                left_b = bids[j][1] * unit_b
    return Fraction(size, lot_a.denominator * lot_b.denominator)


def evaluate_pair(
    buy: VenueBook, sell: VenueBook, *, now_ns: int, config: ArbitrageConfig = ArbitrageConfig()
) -> Opportunity | None:
    """The opportunity of buying on ``buy`` and selling on ``sell`` now, or ``None``."""
    if buy.venue == sell.venue:
        return None
    stale = (now_ns - buy.ts, now_ns - sell.ts)
    if max(stale) > config.max_staleness_ns:
        return None
    best_ask, best_bid = buy.book.best_ask(), sell.book.best_bid()
    if best_ask is None or best_bid is None:
        return None
    inst_a, inst_b = buy.instrument, sell.instrument
    top_ask = best_ask * inst_a.tick_size
    top_bid = best_bid * inst_b.tick_size
    if top_bid <= top_ask:
        return None
    ages = (max(0, stale[0]) + buy.latency_ns, max(0, stale[1]) + sell.latency_ns)
    size = _marginal_size(buy, sell, ages, config)
    if config.max_base is not None:
        size = min(size, _frac(config.max_base))
    step = _lcm(_frac(inst_a.lot_size), _frac(inst_b.lot_size))
    size = (size // step) * step
    if size <= 0:
        return None
    lots_a = int(size / _frac(inst_a.lot_size))
    lots_b = int(size / _frac(inst_b.lot_size))
    filled_a, cost_ticks = buy.book.cost_to_trade(Side.BUY, lots_a)
    filled_b, proceeds_ticks = sell.book.cost_to_trade(Side.SELL, lots_b)
    if filled_a != lots_a or filled_b != lots_b:
        return None  # the depth walked above is larger than the book: cannot happen unless racing
    buy_cost = cost_ticks * inst_a.tick_size * inst_a.lot_size
    sell_proceeds = proceeds_ticks * inst_b.tick_size * inst_b.lot_size
    size_d = _dec(size)
    fees = buy_cost * Decimal(buy.fee_e8) / FEE_SCALE + sell_proceeds * Decimal(sell.fee_e8) / FEE_SCALE
    slippage = (buy_cost - top_ask * size_d) + (top_bid * size_d - sell_proceeds)
    per_s = _frac(config.discount_bps_per_second) / BPS
    discount = _dec(
        per_s * (_frac(buy_cost) * Fraction(ages[0], NS_PER_S) + _frac(sell_proceeds) * Fraction(ages[1], NS_PER_S)),
        places=DISCOUNT_STEP,
    )
    gross = (top_bid - top_ask) * size_d
    net = gross - fees - slippage - discount
    if net <= 0 or net < config.min_profit:
        return None
    worst_ask = _worst_price(buy.book, Side.BUY, lots_a)
    worst_bid = _worst_price(sell.book, Side.SELL, lots_b)
    notional = top_ask * size_d
    return Opportunity(
        ts=now_ns,
        symbol=inst_a.symbol,
        buy_venue=buy.venue,
        sell_venue=sell.venue,
        size=size_d,
        buy_price=top_ask,
        sell_price=top_bid,
        buy_avg=buy_cost / size_d,
        sell_avg=sell_proceeds / size_d,
        buy_cost=buy_cost,
        sell_proceeds=sell_proceeds,
        fees=fees,
        slippage=slippage,
        discount=discount,
        net_profit=net,
        gross_edge_bps=gross / notional * BPS,
        net_edge_bps=net / notional * BPS,
        staleness_ns=max(0, max(stale)),
        latency_ns=buy.latency_ns + sell.latency_ns,
        buy_lots=lots_a,
        sell_lots=lots_b,
        buy_limit=worst_ask * inst_a.tick_size,
        sell_limit=worst_bid * inst_b.tick_size,
    )


def _worst_price(book: OrderBook, side: Side, lots: int) -> int:
    """The last level a taker of ``lots`` on ``side`` reaches (asks for BUY, bids for SELL)."""
    bids, asks = book.top(1_000_000)
    left = lots
    worst = 0
    for level_price, qty in asks if side is Side.BUY else bids:
        worst = level_price
        left -= qty
        if left <= 0:
            break
    return worst


def _ioc_fill(book: OrderBook, side: Side, lots: int, limit_ticks: int) -> tuple[int, int]:
    """Lots filled and sum(price * lots) of an IOC taker order limited at ``limit_ticks``."""
    bids, asks = book.top(1_000_000)
    filled = cost = 0
    for price, qty in asks if side is Side.BUY else bids:
        if (side is Side.BUY and price > limit_ticks) or (side is Side.SELL and price < limit_ticks):
            break
        take = min(qty, lots - filled)
        filled += take
        cost += take * price
        if filled == lots:
            break
    return filled, cost


def execute_ioc(opportunity: Opportunity, buy: VenueBook, sell: VenueBook) -> Execution:
    """Paper-execute ``opportunity`` against the books as they are when the orders land
    (``buy``/``sell`` should be read after the venues' latency): each leg is an IOC taker order
    of the detected size at the detected limit price, filled by walking the book."""
    inst_a, inst_b = buy.instrument, sell.instrument
    limit_a = inst_a.ticks(opportunity.buy_limit, side=Side.BUY)
    limit_b = inst_b.ticks(opportunity.sell_limit, side=Side.SELL)
    lots_a, ticks_a = _ioc_fill(buy.book, Side.BUY, opportunity.buy_lots, limit_a)
    lots_b, ticks_b = _ioc_fill(sell.book, Side.SELL, opportunity.sell_lots, limit_b)
    bought, sold = inst_a.quantity(lots_a), inst_b.quantity(lots_b)
    buy_cost = ticks_a * inst_a.tick_size * inst_a.lot_size
    sell_proceeds = ticks_b * inst_b.tick_size * inst_b.lot_size
    fees = buy_cost * Decimal(buy.fee_e8) / FEE_SCALE + sell_proceeds * Decimal(sell.fee_e8) / FEE_SCALE
    rest = bought - sold
    unhedged = Decimal(0)
    if rest > 0:
        bid = buy.book.best_bid()
        unhedged = (
            rest * bid * inst_a.tick_size * (1 - Decimal(buy.fee_e8) / FEE_SCALE) if bid is not None else Decimal(0)
        )
    elif rest < 0:
        ask = sell.book.best_ask()
        unhedged = (
            rest * ask * inst_b.tick_size * (1 + Decimal(sell.fee_e8) / FEE_SCALE) if ask is not None else Decimal(0)
        )
    return Execution(
        bought=bought,
        sold=sold,
        buy_cost=buy_cost,
        sell_proceeds=sell_proceeds,
        fees=fees,
        unhedged_value=unhedged,
        profit=sell_proceeds - buy_cost - fees + unhedged,
    )


def find_opportunities(
    books: Sequence[VenueBook], *, now_ns: int, config: ArbitrageConfig = ArbitrageConfig()
) -> list[Opportunity]:
    """Every profitable (buy venue, sell venue) pair among ``books``, best net profit first."""
    found = []
    for buy in books:
        for sell in books:
            if buy is sell:
                continue
            opportunity = evaluate_pair(buy, sell, now_ns=now_ns, config=config)
            if opportunity is not None:
                found.append(opportunity)
    found.sort(key=lambda o: o.net_profit, reverse=True)
    return found
