"""Pure market making with fixed spreads around the mid (in the style of Hummingbot's
``pure_market_making``): a ladder of bids and asks, inventory skew toward a target base ratio,
minimum spread, price ceiling and floor, ping-pong and hanging orders."""

from __future__ import annotations

from dataclasses import dataclass, field
from decimal import Decimal

from trading.config import ConfigBase, ConfigError
from trading.events import OrderFilled
from trading.instruments import Instrument, Side
from trading.strategies._quoting import (
    NS,
    Market,
    QuotingStrategy,
    amount_to_lots,
    build_quote_set,
    frac,
    pulled,
    scaled_lots,
    target_base_lots,
)
from trading.strategy import QuoteSet, StrategyContext

_FRACTION = {"min": Decimal(0), "max": Decimal("0.5"), "unit": "fraction of mid"}


@dataclass(frozen=True)
class FixedSpreadConfig(ConfigBase):
    """Fixed-spread ladder around the mid.

    Spreads and spacing are fractions of the mid price (0.001 = 10 bps). Amounts are base
    currency, prices quote currency.
    """

    order_amount: Decimal = field(
        metadata={"min": Decimal(0), "exclusive_min": True, "unit": "base", "help": "size of the level-0 orders"}
    )
    bid_spread: Decimal = field(
        default=Decimal("0.001"), metadata={**_FRACTION, "help": "distance of the best bid below mid"}
    )
    ask_spread: Decimal = field(
        default=Decimal("0.001"), metadata={**_FRACTION, "help": "distance of the best ask above mid"}
    )
    order_levels: int = field(default=1, metadata={"min": 1, "max": 50, "help": "orders per side"})
    level_spacing: Decimal = field(
        default=Decimal("0.001"), metadata={**_FRACTION, "help": "extra distance per further level"}
    )
    order_level_amount: Decimal = field(
        default=Decimal(0),
        metadata={"min": Decimal(0), "unit": "base", "help": "size added per further level"},
    )
    minimum_spread: Decimal = field(
        default=Decimal(0),
        metadata={**_FRACTION, "help": "quotes closer to mid than this are pulled (0 = off)"},
    )
    price_ceiling: Decimal | None = field(
        default=None,
        metadata={"min": Decimal(0), "exclusive_min": True, "unit": "quote", "help": "no bids above"},
    )
    price_floor: Decimal | None = field(
        default=None,
        metadata={"min": Decimal(0), "exclusive_min": True, "unit": "quote", "help": "no asks below"},
    )
    inventory_skew_enabled: bool = field(default=False, metadata={"help": "size orders toward the target"})
    target_base_ratio: Decimal = field(
        default=Decimal("0.5"),
        metadata={"min": Decimal(0), "max": Decimal(1), "help": "wanted share of value held in base"},
    )
    inventory_range_multiplier: Decimal = field(
        default=Decimal(1),
        metadata={
            "min": Decimal(0),
            "exclusive_min": True,
            "help": "skew range = multiplier x total ladder size; at the range edge one side stops",
        },
    )
    refresh_time: Decimal = field(
        default=Decimal(30), metadata={"min": Decimal(0), "unit": "s", "help": "seconds between requotes"}
    )
    refresh_tolerance: Decimal = field(
        default=Decimal(0),
        metadata={"min": Decimal(0), "max": Decimal("0.5"), "help": "engine keeps orders within this fraction"},
    )
    max_order_age: Decimal = field(
        default=Decimal(1800),
        metadata={"min": Decimal(0), "unit": "s", "help": "engine replaces orders older than this"},
    )
    hanging_orders: bool = field(
        default=False, metadata={"help": "after a fill, the engine keeps the other side's order working"}
    )
    ping_pong: bool = field(default=False, metadata={"help": "after a buy fill quote only asks, and vice versa"})


class FixedSpreadStrategy(QuotingStrategy):
    """Quote a fixed ladder around the mid every ``refresh_time`` seconds.

    Between refreshes the working quotes are left alone unless the mid has moved so that one of
    them is now closer than ``minimum_spread`` or would cross the book; then it requotes at once.
    """

    name = "fixed_spread"
    config: FixedSpreadConfig

    def __init__(self, config: FixedSpreadConfig, instrument: Instrument) -> None:
        super().__init__(config, instrument)
        base = amount_to_lots(instrument, "order_amount", config.order_amount)
        step = instrument.lots(config.order_level_amount, field="order_level_amount", round_down=True)
        self.level_lots = [base + i * step for i in range(config.order_levels)]
        self.ceiling_ticks = (
            None
            if config.price_ceiling is None
            else instrument.ticks(config.price_ceiling, side=Side.BUY, field="price_ceiling")
        )
        self.floor_ticks = (
            None
            if config.price_floor is None
            else instrument.ticks(config.price_floor, side=Side.SELL, field="price_floor")
        )
        if self.ceiling_ticks is not None and self.ceiling_ticks <= 0:
            raise ConfigError({"price_ceiling": f"{config.price_ceiling} is below one tick"})
        # Exact per-level price multipliers of the mid, computed once.
        spacing = frac(config.level_spacing)
        self._bid_ratios = [1 - frac(config.bid_spread) - i * spacing for i in range(config.order_levels)]
        self._ask_ratios = [1 + frac(config.ask_spread) + i * spacing for i in range(config.order_levels)]
        # ... as integer (numerator, 2 * denominator) pairs for the hot path (Fraction's
        # numerator/denominator are Python-level properties)
        self._bid_terms = [(r.numerator, 2 * r.denominator) for r in self._bid_ratios]
        self._ask_terms = [(r.numerator, 2 * r.denominator) for r in self._ask_ratios]
        self._min_spread = frac(config.minimum_spread)
        self._min_num, self._min_den = self._min_spread.numerator, self._min_spread.denominator
        self._level_terms = list(zip(self.level_lots, self._bid_terms, self._ask_terms, strict=True))
        self._refresh_ns = int(config.refresh_time * NS)
        self._next_refresh_ts: int | None = None
        self._fill_balance = 0  # buys minus sells (orders), for ping-pong
        self._last_key: tuple | None = None  # inputs of the last ladder, and the ladder
        self._last_result: QuoteSet | None = None
        self._counted_orders: set[str] = set()

    def on_fill(self, fill: OrderFilled, ctx: StrategyContext) -> None:
        # Requote at the next event, and count each filled order once for ping-pong.
        self._next_refresh_ts = None
        if fill.client_order_id in self._counted_orders:
            return
        self._counted_orders.add(fill.client_order_id)
        self._fill_balance += 1 if fill.side is Side.BUY else -1
        if self._fill_balance == 0:
            self._counted_orders.clear()

    def inventory_ratios(self, ctx: StrategyContext, market: Market) -> tuple[float, float]:
        """Size multipliers ``(bid, ask)`` in 0..2 from the inventory's distance to the target.

        At the target both are 1; at ``target + range`` lots of base the bid is 0 and the ask 2.
        """
        target = target_base_lots(ctx, market.mid_float, float(self.config.target_base_ratio))
        span = sum(self.level_lots) * float(self.config.inventory_range_multiplier)
        bid = 1.0 - (ctx.base_balance - target) / span
        bid = min(max(bid, 0.0), 2.0)
        return bid, 2.0 - bid

    def _working_quotes_invalid(self, market: Market) -> bool:
        """Whether the last quotes now sit closer to mid than ``minimum_spread`` or would cross."""
        last = self.last_quotes
        if last is None or not (last.bids or last.asks):
            return True  # nothing working (e.g. pulled on a one-sided book): recompute now
        best_bid = market.best_bid
        best_ask = market.best_ask
        mid2 = best_bid + best_ask
        den = self._min_den
        least = mid2 * self._min_num  # distance * 2 * den must reach mid2 * num
        for q in last.bids:
            price = q.price
            if price >= best_ask or (mid2 - 2 * price) * den < least:
                return True
        for q in last.asks:
            price = q.price
            if price <= best_bid or (2 * price - mid2) * den < least:
                return True
        return False

    def quote(self, ctx: StrategyContext, market: Market) -> QuoteSet | None:
        due = self._next_refresh_ts is None or ctx.ts >= self._next_refresh_ts
        if not due and not self._working_quotes_invalid(market):
            return None  # between refreshes the engine keeps the working quotes
        self._next_refresh_ts = ctx.ts + self._refresh_ns
        cfg = self.config
        mid2 = market.mid2
        bid_mult, ask_mult = 1.0, 1.0
        if cfg.inventory_skew_enabled:
            bid_mult, ask_mult = self.inventory_ratios(ctx, market)
        # The ladder depends only on these (the config is frozen): with the touch unchanged (most
        # book events only change sizes) the last quote set is returned as it is.
        key = (market.best_bid, market.best_ask, bid_mult, ask_mult, cfg.ping_pong and self._fill_balance)
        if key == self._last_key and self._last_result is not None:
            return self._last_result
        result = self._ladder(market, mid2, bid_mult, ask_mult)
        self._last_key = key
        self._last_result = result
        return result

    def _ladder(self, market: Market, mid2: int, bid_mult: float, ask_mult: float) -> QuoteSet:
        cfg = self.config
        notes = [f"mid {mid2 / 2:.2f}t"]
        if cfg.inventory_skew_enabled:
            notes.append(f"inventory skew bid x{bid_mult:.2f} ask x{ask_mult:.2f}")
        # distance >= mid * minimum_spread, in integers: 2*distance*den >= mid2*num
        min_den = self._min_den
        min_dist2 = mid2 * self._min_num
        ceiling = self.ceiling_ticks
        floor = self.floor_ticks
        bids: list[tuple[int, int]] = []
        asks: list[tuple[int, int]] = []
        for lots, (b_num, b_den2), (a_num, a_den2) in self._level_terms:
            # floor(mid * bid ratio) and ceil(mid * ask ratio), exact (see mid_times_floor/ceil)
            bid_price = (mid2 * b_num) // b_den2
            ask_price = -((-mid2 * a_num) // a_den2)
            if (mid2 - 2 * bid_price) * min_den >= min_dist2 and (ceiling is None or bid_price <= ceiling):
                bids.append((bid_price, lots if bid_mult == 1.0 else scaled_lots(lots, bid_mult)))
            if (2 * ask_price - mid2) * min_den >= min_dist2 and (floor is None or ask_price >= floor):
                asks.append((ask_price, lots if ask_mult == 1.0 else scaled_lots(lots, ask_mult)))
        if cfg.ping_pong and self._fill_balance > 0:
            bids = []
            notes.append("ping-pong: bought last, quoting asks only")
        elif cfg.ping_pong and self._fill_balance < 0:
            asks = []
            notes.append("ping-pong: sold last, quoting bids only")
        if not bids and not asks:
            return pulled("; ".join([*notes, "no quote passes minimum spread, ceiling and floor"]))
        return build_quote_set(self.instrument, market, bids, asks, "fixed spread: " + "; ".join(notes))
