"""Several synthetic venues quoting one asset: correlated, lead/lag, with dislocations.

A common latent log-price follows a random walk. Each venue's mid is that latent price as it
was ``lag_ns`` ago (a lagging venue follows the leader), scaled by the venue's ``beta`` (its
sign is the sign of the correlation), plus its own mean-reverting noise and occasional
dislocations: Poisson jumps on that venue alone that decay with a half-life. Around each mid a
venue shows an L2 book of ``levels`` integer-tick levels per side, sizes growing away from the
touch and randomised, and prints Poisson trades at its touch.

Events are ``BookSnapshot`` (at start, and every ``snapshot_every`` steps if set), ``BookDelta``
(only the levels that changed, chained update ids) and ``TradeTick``, stamped with ``ts`` and
tagged with the venue name. Everything comes from one seeded ``random.Random``: the same seed
gives the same events. :meth:`MultiVenueMarket.step` generates one step at a time forever (for
live simulated feeds); :meth:`MultiVenueMarket.take` a finite run (for backtests and tests).
"""

from __future__ import annotations

import math
import random
from collections import deque
from collections.abc import Iterator, Sequence
from dataclasses import dataclass

from trading.events import BookDelta, BookSnapshot, MarketEvent, TradeTick
from trading.instruments import Instrument, Side

BPS = 1e-4


@dataclass(frozen=True, slots=True)
class VenueSpec:
    """How one venue looks. Rates are per second; sizes in lots; noise and jumps in bps."""

    name: str
    lag_ns: int = 0
    beta: float = 1.0
    noise_bps: float = 0.5
    noise_half_life_ns: int = 1_000_000_000
    half_spread_ticks: int = 1
    levels: int = 20
    touch_qty: float = 5.0
    qty_growth: float = 0.25  # mean size grows by this fraction of touch_qty per level
    level_refresh: float = 0.2  # chance per step that a level's size is redrawn
    trade_rate: float = 4.0
    trade_qty: float = 2.0  # mean trade size
    jump_rate: float = 0.0
    jump_bps: float = 15.0
    jump_half_life_ns: int = 3_000_000_000

    def __post_init__(self) -> None:
        if not self.name:
            raise ValueError("name: empty; give each venue a name such as 'alpha'")
        checks = {
            "lag_ns": self.lag_ns >= 0,
            "noise_bps": self.noise_bps >= 0,
            "noise_half_life_ns": self.noise_half_life_ns > 0,
            "half_spread_ticks": self.half_spread_ticks >= 1,
            "levels": self.levels >= 1,
            "touch_qty": self.touch_qty > 0,
            "qty_growth": self.qty_growth >= 0,
            "level_refresh": 0 <= self.level_refresh <= 1,
            "trade_rate": self.trade_rate >= 0,
            "trade_qty": self.trade_qty > 0,
            "jump_rate": self.jump_rate >= 0,
            "jump_bps": self.jump_bps >= 0,
            "jump_half_life_ns": self.jump_half_life_ns > 0,
        }
        for field, ok in checks.items():
            if not ok:
                raise ValueError(f"{field}: {getattr(self, field)!r} is out of range for venue {self.name!r}")


DEFAULT_VENUES = (VenueSpec("alpha"), VenueSpec("beta", lag_ns=300_000_000, jump_rate=0.02))


class _VenueState:
    __slots__ = ("asks", "bids", "jump", "lag_steps", "mid_ticks", "noise", "sequence", "spec")

    def __init__(self, spec: VenueSpec, lag_steps: int) -> None:
        self.spec = spec
        self.lag_steps = lag_steps
        self.bids: dict[int, int] = {}
        self.asks: dict[int, int] = {}
        self.noise = 0.0
        self.jump = 0.0
        self.sequence = 0
        self.mid_ticks = 0.0


class MultiVenueMarket:
    """Correlated venues, stepped ``step_ns`` at a time (see the module docstring)."""

    def __init__(
        self,
        instrument: Instrument,
        venues: Sequence[VenueSpec] = DEFAULT_VENUES,
        *,
        seed: int = 0,
        start_ts: int = 0,
        step_ns: int = 100_000_000,
        start_price: float = 100.0,
        volatility_bps: float = 2.0,  # latent price, per sqrt(second)
        snapshot_every: int = 0,
    ) -> None:
        if step_ns <= 0:
            raise ValueError(f"step_ns: {step_ns!r} is not accepted; give nanoseconds > 0")
        if not venues:
            raise ValueError("venues: empty; give at least one VenueSpec")
        names = [v.name for v in venues]
        if len(set(names)) != len(names):
            raise ValueError(f"venues: names {names!r} repeat; give each venue its own name")
        if not start_price > 0 or not volatility_bps >= 0:
            raise ValueError(
                f"start_price/volatility_bps: {start_price!r}/{volatility_bps!r}; give a price > 0 and volatility >= 0"
            )
        if snapshot_every < 0:
            raise ValueError(f"snapshot_every: {snapshot_every!r}; give 0 (never) or a number of steps")
        self.instrument = instrument
        self.step_ns = step_ns
        self.snapshot_every = snapshot_every
        self.ts = start_ts
        self.steps = 0
        self._rng = random.Random(seed)
        self._tick = float(instrument.tick_size)
        self._log_start = math.log(start_price)
        self._dt = step_ns / 1e9
        self._sigma_step = volatility_bps * BPS * math.sqrt(self._dt)
        self._venues = [_VenueState(v, round(v.lag_ns / step_ns)) for v in venues]
        max_lag = max(v.lag_steps for v in self._venues)
        self._latent: deque[float] = deque([0.0] * (max_lag + 1), maxlen=max_lag + 1)

    @property
    def venue_names(self) -> tuple[str, ...]:
        return tuple(v.spec.name for v in self._venues)

    @property
    def latent_price(self) -> float:
        """The common price now (quote currency)."""
        return math.exp(self._log_start + self._latent[-1])

    def mid(self, venue: str) -> float:
        """The venue's current model mid in ticks."""
        for v in self._venues:
            if v.spec.name == venue:
                return v.mid_ticks
        raise KeyError(f"venue: {venue!r} is not one of {', '.join(self.venue_names)}")

    def __iter__(self) -> Iterator[tuple[str, MarketEvent]]:
        """Generate forever, one step at a time."""
        while True:
            yield from self.step()

    def take(self, n_steps: int) -> list[tuple[str, MarketEvent]]:
        """The next ``n_steps`` steps' events, in time order."""
        out: list[tuple[str, MarketEvent]] = []
        for _ in range(n_steps):
            out.extend(self.step())
        return out

    # -----------------------------------------------------------------------------------------
    def step(self) -> list[tuple[str, MarketEvent]]:
        """Advance one step; return each venue's book update and trades, in ``ts`` order."""
        rng = self._rng
        first = self.steps == 0
        if not first:
            self._latent.append(self._latent[-1] + rng.gauss(0.0, self._sigma_step))
            self.ts += self.step_ns
        ts = self.ts
        snapshot = first or (self.snapshot_every > 0 and self.steps % self.snapshot_every == 0)
        out: list[tuple[str, MarketEvent]] = []
        for v in self._venues:
            spec = v.spec
            self._move_venue(v)
            name = spec.name
            book_event = self._rebuild_book(v, ts, snapshot)
            if book_event is not None:
                out.append((name, book_event))
            out.extend((name, t) for t in self._trades(v, ts))
        self.steps += 1
        out.sort(key=lambda item: item[1].ts)
        return out

    def _move_venue(self, v: _VenueState) -> None:
        rng = self._rng
        spec = v.spec
        dt_ns = self.step_ns
        keep = 0.5 ** (dt_ns / spec.noise_half_life_ns)
        # Stationary OU noise with standard deviation noise_bps.
        v.noise = v.noise * keep + rng.gauss(0.0, spec.noise_bps * BPS * math.sqrt(max(1.0 - keep * keep, 0.0)))
        v.jump *= 0.5 ** (dt_ns / spec.jump_half_life_ns)
        if spec.jump_rate and rng.random() < spec.jump_rate * self._dt:
            v.jump += (1.0 if rng.random() < 0.5 else -1.0) * spec.jump_bps * BPS
        latent = self._latent[-1 - v.lag_steps]
        log_mid = self._log_start + spec.beta * latent + v.noise + v.jump
        v.mid_ticks = math.exp(log_mid) / self._tick

    def _level_qty(self, spec: VenueSpec, depth: int) -> int:
        mean = spec.touch_qty * (1.0 + spec.qty_growth * depth)
        return max(1, round(mean * self._rng.lognormvariate(-0.125, 0.5)))

    def _rebuild_book(self, v: _VenueState, ts: int, snapshot: bool) -> BookSnapshot | BookDelta | None:
        spec = v.spec
        rng = self._rng
        half = spec.half_spread_ticks
        best_bid = math.floor(v.mid_ticks - half + 0.5)
        best_ask = max(math.ceil(v.mid_ticks + half - 0.5), best_bid + 1)
        changes: list[list[tuple[int, int]]] = [[], []]
        for index, (old, prices) in enumerate(
            (
                (v.bids, range(best_bid, best_bid - spec.levels, -1)),
                (v.asks, range(best_ask, best_ask + spec.levels)),
            )
        ):
            new: dict[int, int] = {}
            for depth, price in enumerate(prices):
                if price <= 0:
                    break
                qty = old.get(price)
                if qty is None or rng.random() < spec.level_refresh:
                    qty = self._level_qty(spec, depth)
                new[price] = qty
            delta = changes[index]
            for price, qty in new.items():
                if old.get(price) != qty:
                    delta.append((price, qty))
            delta.extend((price, 0) for price in old if price not in new)
            old.clear()
            old.update(new)
        v.sequence += 1
        if snapshot:
            return BookSnapshot(
                ts=ts,
                bids=tuple(sorted(v.bids.items(), reverse=True)),
                asks=tuple(sorted(v.asks.items())),
                sequence=v.sequence,
            )
        if not changes[0] and not changes[1]:
            v.sequence -= 1
            return None
        return BookDelta(
            ts=ts,
            bids=tuple(changes[0]),
            asks=tuple(changes[1]),
            first_sequence=v.sequence,
            last_sequence=v.sequence,
            prev_sequence=v.sequence - 1,
        )

    def _trades(self, v: _VenueState, ts: int) -> list[TradeTick]:
        spec = v.spec
        rng = self._rng
        expected = spec.trade_rate * self._dt
        if expected <= 0:
            return []
        # Poisson count (Knuth); expected counts per step are small.
        limit = math.exp(-expected)
        count = 0
        product = rng.random()
        while product > limit:
            count += 1
            product *= rng.random()
        trades = []
        best_bid = max(v.bids) if v.bids else None
        best_ask = min(v.asks) if v.asks else None
        for i in range(count):
            buy = rng.random() < 0.5
            price = best_ask if buy else best_bid
            if price is None:
                continue
            qty = max(1, int(rng.expovariate(1.0 / spec.trade_qty) + 0.5))
            offset = int(rng.random() * self.step_ns)
            trades.append(
                TradeTick(
                    ts=ts + max(offset, 1),
                    price=price,
                    qty=qty,
                    aggressor=Side.BUY if buy else Side.SELL,
                    trade_id=f"{spec.name}-{self.steps}-{i}",
                )
            )
        trades.sort(key=lambda t: t.ts)
        return trades
