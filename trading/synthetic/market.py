"""A synthetic market of several venues quoting one asset, generated as a function of time.

The market at time ``t`` is a pure function of ``(seed, venue profiles, t)``: no state carries
from one call to the next, so two processes (a bot host and a backtest, or a second host after a
fail-over) that build the same :class:`SyntheticMarket` see the same books and trades at the same
times, whenever each of them starts. Time runs on a grid of ``step_ns``; ``ts`` is absolute
(nanoseconds since the epoch for hosted venues, from 0 for backtests).

The mid of venue ``v`` at step ``k`` is, in log price::

    log(start_price) + beta_v * latent(k - lag_v) + noise_v(k) + jumps_v(k) + episode_v(k)

- ``latent``: shared by every venue; a sum of seeded waves (slow drift) plus a random walk of
  ``volatility_bps`` per sqrt(second), drawn one hour at a time as a Brownian bridge pinned to 0
  at the hour, so any hour is computed from its own seed alone;
- ``lag_v``: a lagging venue follows the leader ``lag_ns`` late; ``beta_v`` signs the correlation;
- ``noise_v``: the venue's own Ornstein-Uhlenbeck noise (``noise_bps``, ``noise_half_life_ns``);
  it restarts from a stationary draw each hour (a step of about one ``noise_bps`` once an hour);
- ``jumps_v``: dislocations on this venue alone, Poisson (``jump_rate`` per second) of
  ``jump_bps``, decaying with ``jump_half_life_ns``;
- ``episode_v``: divergence episodes: in a share ``episode_share`` of the minutes the venue drifts
  away from the others by up to ``episode_bps`` and back (half a sine over the minute).

Around the mid a venue shows ``levels`` integer-tick levels per side, ``level_step_ticks`` apart,
sizes growing away from the touch and redrawn about every ``1 / level_refresh`` steps (from a
table of 1,024 draws per price slot and hour, so a size pattern may recur within the hour), and prints
Poisson trades (``trade_rate`` per second) at its touch. Events are ``BookSnapshot`` (the first
step of a window, and every ``snapshot_every`` steps if set), ``BookDelta`` (the changed levels,
sequence = step index + 1, chained) and ``TradeTick`` (ids ``<venue>-<step>-<n>``, the same in
every process). Random numbers come from numpy's PCG64 seeded by ``(seed, hour, venue, stream)``.
Floats here are model math; books and trades are integer ticks and lots.
"""

from __future__ import annotations

import hashlib
import math
import threading
from collections import OrderedDict
from collections.abc import Iterator, Sequence
from dataclasses import dataclass

import numpy as np

from trading.events import BookDelta, BookSnapshot, MarketEvent, TradeTick
from trading.instruments import Instrument, Side

BPS = 1e-4
MINUTE_NS = 60_000_000_000
SEGMENT_NS = 60 * MINUTE_NS  # random numbers are drawn one hour at a time
SIZE_SLOTS = 64  # a level's size is drawn from a table by price % SIZE_SLOTS ...
SIZE_ROWS = 1024  # ... and refresh epoch % SIZE_ROWS (drawn afresh each hour)
_LATENT, _NOISE, _JUMPS, _EPISODES, _TRADES, _SIZES, _WAVES = range(7)


@dataclass(frozen=True, slots=True)
class VenueProfile:
    """How one venue looks. Rates are per second; sizes in lots; noise, jumps, episodes in bps."""

    name: str
    lag_ns: int = 0
    beta: float = 1.0
    noise_bps: float = 0.5
    noise_half_life_ns: int = 1_000_000_000
    half_spread_ticks: int = 1
    level_step_ticks: int = 1
    levels: int = 20
    touch_qty: float = 5.0
    qty_growth: float = 0.25  # mean size grows by this fraction of touch_qty per level
    level_refresh: float = 0.2  # a level's size is redrawn every round(1 / level_refresh) steps
    trade_rate: float = 4.0
    trade_qty: float = 2.0  # mean trade size
    jump_rate: float = 0.0
    jump_bps: float = 15.0
    jump_half_life_ns: int = 3_000_000_000
    episode_share: float = 0.0
    episode_bps: float = 0.0

    def __post_init__(self) -> None:
        if not self.name:
            raise ValueError("name: empty; give each venue a name such as 'alpha'")
        checks = {
            "lag_ns": self.lag_ns >= 0,
            "noise_bps": self.noise_bps >= 0,
            "noise_half_life_ns": self.noise_half_life_ns > 0,
            "half_spread_ticks": self.half_spread_ticks >= 1,
            "level_step_ticks": self.level_step_ticks >= 1,
            "levels": self.levels >= 1,
            "touch_qty": self.touch_qty > 0,
            "qty_growth": self.qty_growth >= 0,
            "level_refresh": 0 < self.level_refresh <= 1,
            "trade_rate": self.trade_rate >= 0,
            "trade_qty": self.trade_qty > 0,
            "jump_rate": self.jump_rate >= 0,
            "jump_bps": self.jump_bps >= 0,
            "jump_half_life_ns": self.jump_half_life_ns > 0,
            "episode_share": 0 <= self.episode_share <= 1,
            "episode_bps": self.episode_bps >= 0,
        }
        for field, ok in checks.items():
            if not ok:
                raise ValueError(f"{field}: {getattr(self, field)!r} is out of range for venue {self.name!r}")


DEFAULT_VENUES = (VenueProfile("alpha"), VenueProfile("beta", lag_ns=300_000_000, jump_rate=0.02))


def _key(name: str) -> int:
    return int.from_bytes(hashlib.blake2b(name.encode(), digest_size=8).digest(), "big")


class _VenueHour:
    """One venue's random draws and mids for one hour."""

    __slots__ = ("buys", "counts", "mid_ticks", "offsets", "qtys", "sizes", "starts")


class SyntheticMarket:
    """Correlated venues as a function of time (see the module docstring)."""

    def __init__(
        self,
        instrument: Instrument,
        venues: Sequence[VenueProfile] = DEFAULT_VENUES,
        *,
        seed: int = 0,
        step_ns: int = 100_000_000,
        start_price: float = 100.0,
        volatility_bps: float = 2.0,  # latent random walk, per sqrt(second)
        waves: Sequence[tuple[float, float]] = (),  # (period seconds, amplitude in log price)
        snapshot_every: int = 0,
    ) -> None:
        if isinstance(seed, bool) or not isinstance(seed, int) or seed < 0:
            raise ValueError(f"seed: {seed!r} is not accepted; give a whole number >= 0")
        if step_ns <= 0 or MINUTE_NS % step_ns:
            raise ValueError(f"step_ns: {step_ns!r} is not accepted; give nanoseconds > 0 that divide one minute")
        if not venues:
            raise ValueError("venues: empty; give at least one VenueProfile")
        names = [v.name for v in venues]
        if len(set(names)) != len(names):
            raise ValueError(f"venues: names {names!r} repeat; give each venue its own name")
        if not start_price > 0 or not volatility_bps >= 0:
            raise ValueError(
                f"start_price/volatility_bps: {start_price!r}/{volatility_bps!r}; give a price > 0 and volatility >= 0"
            )
        if snapshot_every < 0:
            raise ValueError(f"snapshot_every: {snapshot_every!r}; give 0 (never) or a number of steps")
        for period, amplitude in waves:
            if not period > 0 or not amplitude >= 0:
                raise ValueError(f"waves: ({period!r}, {amplitude!r}); give (period seconds > 0, amplitude >= 0)")
        self.instrument = instrument
        self.seed = seed
        self.step_ns = step_ns
        self.snapshot_every = snapshot_every
        self.start_price = start_price
        self.volatility_bps = volatility_bps
        self.venues = {v.name: v for v in venues}
        self._n = SEGMENT_NS // step_ns
        self._dt = step_ns / 1e9
        self._log_tick = math.log(start_price) - math.log(float(instrument.tick_size))
        rng = self._rng(0, 0, _WAVES)
        self._waves = [
            (p * 1e9, a, float(phase))
            for (p, a), phase in zip(waves, rng.random(len(waves)) * 2 * math.pi, strict=True)
        ]
        self._latent: OrderedDict[int, np.ndarray] = OrderedDict()
        self._hours: OrderedDict[tuple[str, int], _VenueHour] = OrderedDict()
        self._books: dict[str, dict[int, tuple[tuple, tuple]]] = {}  # the last books per venue
        self._lock = threading.RLock()  # the caches may be shared by threads (web views pricing orders)

    @property
    def venue_names(self) -> tuple[str, ...]:
        return tuple(self.venues)

    def step_of(self, ts: int) -> int:
        """The grid step in force at ``ts``."""
        return ts // self.step_ns

    # --- prices -----------------------------------------------------------------------------
    def mid_ticks(self, venue: str, ts: int) -> float:
        """The venue's model mid at ``ts``, in ticks."""
        k = self.step_of(ts)
        return self._hour(self._profile(venue), k // self._n).mid_ticks[k % self._n]

    def mid(self, venue: str, ts: int) -> float:
        """The venue's model mid at ``ts``, in quote currency."""
        return self.mid_ticks(venue, ts) * float(self.instrument.tick_size)

    def book_at(self, venue: str, ts: int) -> BookSnapshot:
        """The venue's book at ``ts``."""
        k = self.step_of(ts)
        bids, asks = self._book(self._profile(venue), k)
        return BookSnapshot(ts=ts, bids=bids, asks=asks, sequence=k + 1)

    # --- events -----------------------------------------------------------------------------
    def step_events(
        self, k: int, venues: Sequence[str] | None = None, *, snapshot: bool = False
    ) -> list[tuple[str, MarketEvent]]:
        """Step ``k``'s events for ``venues`` (default all) in ``ts`` order: each venue's book
        (a snapshot when asked or due, else the delta from step ``k - 1``), then the trades."""
        ts = k * self.step_ns
        snapshot = snapshot or (self.snapshot_every > 0 and k % self.snapshot_every == 0)
        books: list[tuple[str, MarketEvent]] = []
        trades: list[tuple[str, MarketEvent]] = []
        for name in venues if venues is not None else self.venues:
            profile = self._profile(name)
            bids, asks = self._book(profile, k)
            if snapshot:
                books.append((name, BookSnapshot(ts=ts, bids=bids, asks=asks, sequence=k + 1)))
            else:
                old_bids, old_asks = self._book(profile, k - 1)
                books.append(
                    (
                        name,
                        BookDelta(
                            ts=ts,
                            bids=_diff(old_bids, bids),
                            asks=_diff(old_asks, asks),
                            first_sequence=k + 1,
                            last_sequence=k + 1,
                            prev_sequence=k,
                        ),
                    )
                )
            trades.extend((name, t) for t in self._trades(profile, k, bids, asks))
        trades.sort(key=lambda item: item[1].ts)
        return books + trades

    def events(
        self, start_ts: int, end_ts: int, venues: Sequence[str] | None = None
    ) -> Iterator[tuple[str, MarketEvent]]:
        """The events of the steps in ``[start_ts, end_ts)``, a snapshot per venue first."""
        k = -(-start_ts // self.step_ns)
        first = True
        while k * self.step_ns < end_ts:
            yield from self.step_events(k, venues, snapshot=first)
            first = False
            k += 1

    def take(self, n_steps: int, start_ts: int = 0) -> list[tuple[str, MarketEvent]]:
        """The events of ``n_steps`` steps from ``start_ts``."""
        return list(self.events(start_ts, start_ts + n_steps * self.step_ns))

    # --- internals --------------------------------------------------------------------------
    def _profile(self, venue: str) -> VenueProfile:
        try:
            return self.venues[venue]
        except KeyError:
            raise KeyError(f"venue: {venue!r} is not one of {', '.join(self.venues)}") from None

    def _rng(self, hour: int, venue_key: int, stream: int) -> np.random.Generator:
        return np.random.Generator(np.random.PCG64(np.random.SeedSequence([self.seed, hour, venue_key, stream])))

    def _latent_hour(self, hour: int) -> np.ndarray:
        """The latent log price over the hour's steps (bridge + waves)."""
        cached = self._latent.get(hour)
        if cached is not None:
            self._latent.move_to_end(hour)
            return cached
        n = self._n
        if hour < 0:
            values = np.zeros(n)
        else:
            sigma = self.volatility_bps * BPS * math.sqrt(self._dt)
            walk = np.concatenate(([0.0], np.cumsum(self._rng(hour, 0, _LATENT).standard_normal(n) * sigma)))
            values = walk[:-1] - np.arange(n) / n * walk[-1]
            t = (hour * n + np.arange(n)) * float(self.step_ns)
            for period, amplitude, phase in self._waves:
                values = values + amplitude * np.sin(2 * math.pi * t / period + phase)
        self._latent[hour] = values
        if len(self._latent) > 4:
            self._latent.popitem(last=False)
        return values

    def _hour(self, profile: VenueProfile, hour: int) -> _VenueHour:
        if hour < 0:
            raise ValueError(f"ts: {hour * SEGMENT_NS!r}.. is before 0; give times >= 0 (ns)")
        with self._lock:
            return self._hour_locked(profile, hour)

    def _hour_locked(self, profile: VenueProfile, hour: int) -> _VenueHour:
        cache_key = (profile.name, hour)
        cached = self._hours.get(cache_key)
        if cached is not None:
            self._hours.move_to_end(cache_key)
            return cached
        n = self._n
        key = _key(profile.name)
        lag = round(profile.lag_ns / self.step_ns)
        latent = self._latent_hour(hour)
        if lag:
            latent = np.concatenate((self._latent_hour(hour - 1), latent))[n - lag : 2 * n - lag]
        log_mid = self._log_tick + profile.beta * latent
        log_mid = log_mid + self._noise(profile, hour, key) + self._jumps(profile, hour, key)
        log_mid = log_mid + self._episodes(profile, hour, key)
        h = _VenueHour()
        h.mid_ticks = np.exp(log_mid).tolist()
        rng = self._rng(hour, key, _TRADES)
        h.counts = rng.poisson(profile.trade_rate * self._dt, n)
        h.starts = np.concatenate(([0], np.cumsum(h.counts)))
        total = int(h.starts[-1])
        h.buys = rng.random(total) < 0.5
        h.qtys = np.maximum(1, (rng.exponential(profile.trade_qty, total) + 0.5).astype(np.int64))
        h.offsets = rng.integers(1, self.step_ns, total)
        period = max(1, round(1 / profile.level_refresh))
        rows = min(n // period + 3, SIZE_ROWS)
        h.sizes = self._rng(hour, key, _SIZES).lognormal(-0.125, 0.5, (rows, 2, SIZE_SLOTS)).tolist()
        self._hours[cache_key] = h
        if len(self._hours) > 4 * len(self.venues):
            self._hours.popitem(last=False)
        return h

    def _noise(self, profile: VenueProfile, hour: int, key: int) -> np.ndarray | float:
        if not profile.noise_bps:
            return 0.0
        keep = 0.5 ** (self.step_ns / profile.noise_half_life_ns)
        sd = profile.noise_bps * BPS
        shocks = self._rng(hour, key, _NOISE).standard_normal(self._n + 1)
        shocks[1:] *= sd * math.sqrt(max(1.0 - keep * keep, 0.0))
        out = np.empty(self._n)
        x = shocks[0] * sd  # a stationary start
        for i, e in enumerate(shocks[1:].tolist()):
            x = x * keep + e
            out[i] = x
        return out

    def _jump_arrivals(self, profile: VenueProfile, hour: int, key: int) -> np.ndarray:
        if hour < 0:
            return np.zeros(self._n)
        rng = self._rng(hour, key, _JUMPS)
        arrive = rng.random(self._n) < profile.jump_rate * self._dt
        signs = np.where(rng.random(self._n) < 0.5, 1.0, -1.0)
        return arrive * signs * profile.jump_bps * BPS

    def _jumps(self, profile: VenueProfile, hour: int, key: int) -> np.ndarray | float:
        if not profile.jump_rate or not profile.jump_bps:
            return 0.0
        keep = 0.5 ** (self.step_ns / profile.jump_half_life_ns)
        # What is left at the hour's start of the jumps of the hour before (60 half-lives back).
        back = min(self._n, math.ceil(60 * profile.jump_half_life_ns / self.step_ns))
        x = 0.0
        for j in self._jump_arrivals(profile, hour - 1, key)[-back:].tolist():
            x = x * keep + j
        out = np.empty(self._n)
        for i, j in enumerate(self._jump_arrivals(profile, hour, key).tolist()):
            x = x * keep + j
            out[i] = x
        return out

    def _episodes(self, profile: VenueProfile, hour: int, key: int) -> np.ndarray | float:
        if not profile.episode_share or not profile.episode_bps:
            return 0.0
        minutes = SEGMENT_NS // MINUTE_NS
        rng = self._rng(hour, key, _EPISODES)
        on = rng.random(minutes) < profile.episode_share
        amplitude = np.where(on, profile.episode_bps * BPS * (2 * rng.random(minutes) - 1), 0.0)
        per_minute = MINUTE_NS // self.step_ns
        phase = (np.arange(self._n) % per_minute) / per_minute
        return np.repeat(amplitude, per_minute) * np.sin(math.pi * phase)

    def _book(self, profile: VenueProfile, k: int) -> tuple[tuple, tuple]:
        books = self._books.setdefault(profile.name, {})
        cached = books.get(k)
        if cached is not None:
            return cached
        hour, i = divmod(k, self._n)
        h = self._hour(profile, hour)
        mid = h.mid_ticks[i]
        half = profile.half_spread_ticks
        best_bid = math.floor(mid - half + 0.5)
        best_ask = max(math.ceil(mid + half - 0.5), best_bid + 1)
        period = max(1, round(1 / profile.level_refresh))
        first_epoch = hour * self._n // period
        sizes = h.sizes
        rows = len(sizes)
        step = profile.level_step_ticks
        sides = []
        for side, (start, sign) in enumerate(((best_bid, -1), (best_ask, 1))):
            levels = []
            for depth in range(profile.levels):
                price = start + sign * depth * step
                if price <= 0:
                    break
                epoch = ((k + price % period) // period - first_epoch) % rows
                mean = profile.touch_qty * (1.0 + profile.qty_growth * depth)
                levels.append((price, max(1, round(mean * sizes[epoch][side][price % SIZE_SLOTS]))))
            sides.append(tuple(levels))
        bids, asks = sides
        for old in [j for j in list(books) if abs(j - k) > 1]:
            books.pop(old, None)
        books[k] = (bids, asks)
        return bids, asks

    def _trades(self, profile: VenueProfile, k: int, bids: tuple, asks: tuple) -> list[TradeTick]:
        hour, i = divmod(k, self._n)
        h = self._hour(profile, hour)
        first, last = int(h.starts[i]), int(h.starts[i + 1])
        if first == last or not bids or not asks:
            return []
        ts = k * self.step_ns
        trades = [
            TradeTick(
                ts=ts + int(h.offsets[j]),
                price=asks[0][0] if h.buys[j] else bids[0][0],
                qty=int(h.qtys[j]),
                aggressor=Side.BUY if h.buys[j] else Side.SELL,
                trade_id=f"{profile.name}-{k}-{j - first}",
            )
            for j in range(first, last)
        ]
        trades.sort(key=lambda t: t.ts)
        return trades


def _diff(old: tuple, new: tuple) -> tuple:
    """The levels that changed from ``old`` to ``new`` (removed ones with size 0)."""
    before = dict(old)
    after = dict(new)
    changed = [(p, q) for p, q in new if before.get(p) != q]
    changed.extend((p, 0) for p, _ in old if p not in after)
    return tuple(changed)
