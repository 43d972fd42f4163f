"""The Avellaneda-Stoikov (2008) market, as in the paper's simulation section.

"High-frequency trading in a limit order book", Quantitative Finance 8(3), 2008, section 3.
The mid moves up or down by ``sigma * sqrt(dt)`` with probability 1/2 each step. At every step
the agent quotes a bid and an ask at distances ``delta_b`` / ``delta_a`` from the mid; each side
is hit with probability ``lambda(delta) * dt`` where ``lambda(delta) = A * exp(-k * delta)``,
one unit at a time. Final profit is cash plus inventory marked at the final mid.

Timing within a step: the quotes are set from the mid at the start of the step, the mid then
moves, and the market orders that arrive during the step meet the quotes at their distance from
the *new* mid. (Evaluating fills against the old mid instead gives a profit about 2 higher than
the paper's table for the inventory strategy; this ordering reproduces the table within its
sampling error, see ``tests/trading/synthetic/test_avellaneda_stoikov.py``.)

Two strategies:

* ``"inventory"`` — quotes around the reservation price
  ``r = s - q * gamma * sigma**2 * (T - t)`` with the optimal spread
  ``gamma * sigma**2 * (T - t) + (2 / gamma) * ln(1 + gamma / k)``;
* ``"symmetric"`` — quotes around the mid with the inventory strategy's *average* spread.

:func:`monte_carlo` runs many paths (vectorised over paths with numpy) and summarises final
profit, final inventory and the average spread, to compare with the paper's table.
:func:`event_stream` emits the same market as ``BookSnapshot``/``TradeTick`` events in integer
ticks so it can drive the real engine and backtester. Floats here are model math, not money.
"""

from __future__ import annotations

import math
from collections.abc import Iterator
from dataclasses import dataclass

import numpy as np

from trading.events import BookSnapshot, TradeTick
from trading.instruments import Instrument, Side

STRATEGIES = ("inventory", "symmetric")


@dataclass(frozen=True, slots=True)
class ASParams:
    """Model parameters; the defaults are the paper's simulation (gamma = 0.1 row)."""

    s0: float = 100.0
    horizon: float = 1.0  # T
    sigma: float = 2.0
    dt: float = 0.005
    arrival_a: float = 140.0  # A
    decay_k: float = 1.5  # k
    gamma: float = 0.1
    q0: int = 0

    def __post_init__(self) -> None:
        for field in ("s0", "horizon", "sigma", "dt", "arrival_a", "decay_k", "gamma"):
            value = getattr(self, field)
            if not isinstance(value, int | float) or not math.isfinite(value) or value <= 0:
                raise ValueError(f"{field}: {value!r} is not accepted; give a finite number > 0")
        if self.dt > self.horizon:
            raise ValueError(f"dt: {self.dt!r} is longer than the horizon {self.horizon!r}; give dt <= horizon")

    @property
    def n_steps(self) -> int:
        return round(self.horizon / self.dt)


def reservation_price(mid: float, inventory: float, t: float, params: ASParams) -> float:
    """Indifference price ``s - q * gamma * sigma**2 * (T - t)``."""
    return mid - inventory * params.gamma * params.sigma**2 * (params.horizon - t)


def optimal_spread(t: float, params: ASParams) -> float:
    """Total bid-ask spread ``gamma * sigma**2 * (T - t) + (2 / gamma) * ln(1 + gamma / k)``."""
    return params.gamma * params.sigma**2 * (params.horizon - t) + (2.0 / params.gamma) * math.log(
        1.0 + params.gamma / params.decay_k
    )


def average_optimal_spread(params: ASParams) -> float:
    """The inventory strategy's spread averaged over the quoting steps (it does not depend on q)."""
    n = params.n_steps
    return sum(optimal_spread(i * params.dt, params) for i in range(n)) / n


@dataclass(frozen=True, slots=True)
class MonteCarloSummary:
    """Sample mean and standard deviation (ddof=1) over paths."""

    strategy: str
    n_paths: int
    profit_mean: float
    profit_std: float
    final_inventory_mean: float
    final_inventory_std: float
    spread_mean: float


def _check_strategy(strategy: str) -> None:
    if strategy not in STRATEGIES:
        raise ValueError(f"strategy: {strategy!r} is not known; choose one of {', '.join(STRATEGIES)}")


def simulate(
    n_paths: int, strategy: str, rng: np.random.Generator, params: ASParams
) -> tuple[np.ndarray, np.ndarray, float]:
    """Run ``n_paths`` paths; return (final profits, final inventories, mean quoted spread)."""
    _check_strategy(strategy)
    if isinstance(n_paths, bool) or not isinstance(n_paths, int) or n_paths < 1:
        raise ValueError(f"n_paths: {n_paths!r} is not accepted; give a whole number >= 1")
    p = params
    mid = np.full(n_paths, p.s0)
    inventory = np.full(n_paths, float(p.q0))
    cash = np.zeros(n_paths)
    step = p.sigma * math.sqrt(p.dt)
    symmetric_half = average_optimal_spread(p) / 2.0
    spread_sum = 0.0
    for i in range(p.n_steps):
        t = i * p.dt
        if strategy == "inventory":
            half = optimal_spread(t, p) / 2.0
            reservation = mid - inventory * (p.gamma * p.sigma**2 * (p.horizon - t))
            bid = reservation - half
            ask = reservation + half
            spread_sum += 2.0 * half
        else:
            bid = mid - symmetric_half
            ask = mid + symmetric_half
            spread_sum += 2.0 * symmetric_half
        # Quotes stand through the step; the mid moves, then the arriving market orders meet
        # the quotes at their distance from the new mid (see the module docstring).
        mid += np.where(rng.random(n_paths) < 0.5, step, -step)
        prob_bid = p.arrival_a * np.exp(-p.decay_k * (mid - bid)) * p.dt
        prob_ask = p.arrival_a * np.exp(-p.decay_k * (ask - mid)) * p.dt
        bought = rng.random(n_paths) < prob_bid
        sold = rng.random(n_paths) < prob_ask
        cash += np.where(sold, ask, 0.0) - np.where(bought, bid, 0.0)
        inventory += bought.astype(np.float64) - sold.astype(np.float64)
    profit = cash + inventory * mid
    return profit, inventory, spread_sum / p.n_steps


def monte_carlo(
    n_paths: int, strategy: str = "inventory", seed: int = 0, params: ASParams | None = None
) -> MonteCarloSummary:
    """Simulate ``n_paths`` independent paths of the AS market for ``strategy`` and summarise."""
    params = params or ASParams()
    rng = np.random.Generator(np.random.PCG64(seed))
    profit, inventory, spread = simulate(n_paths, strategy, rng, params)
    ddof = 1 if n_paths > 1 else 0
    return MonteCarloSummary(
        strategy=strategy,
        n_paths=n_paths,
        profit_mean=float(profit.mean()),
        profit_std=float(profit.std(ddof=ddof)),
        final_inventory_mean=float(inventory.mean()),
        final_inventory_std=float(inventory.std(ddof=ddof)),
        spread_mean=float(spread),
    )


def event_stream(
    instrument: Instrument,
    *,
    params: ASParams | None = None,
    seed: int = 0,
    start_ts: int = 0,
    step_ns: int = 100_000_000,
    book_levels: int = 5,
    level_qty: int = 10,
    trade_qty: int = 1_000,
) -> Iterator[BookSnapshot | TradeTick]:
    """Emit the AS market step by step as events in ``instrument`` ticks and lots.

    Each step: a ``BookSnapshot`` around the mid at ``start_ts + i * step_ns`` (a one- or two-tick
    market with ``book_levels`` levels of ``level_qty``); the mid then moves and, half a step
    later, per side, a ``TradeTick`` prints from the market order that reached furthest from the
    moved mid this step (when it reached the displayed best price at least). A market
    order reaches distance ``delta`` or beyond with probability ``A * exp(-k * delta) * dt``, so a
    resting quote at ``delta`` is traded at or through exactly as often as the paper's fills.
    """
    p = params or ASParams()
    if step_ns <= 0:
        raise ValueError(f"step_ns: {step_ns!r} is not accepted; give nanoseconds > 0")
    rng = np.random.Generator(np.random.PCG64(seed))
    tick = float(instrument.tick_size)
    step = p.sigma * math.sqrt(p.dt)
    log_a_dt = math.log(p.arrival_a * p.dt)
    mid = p.s0
    for i in range(p.n_steps):
        ts = start_ts + i * step_ns
        mid_ticks = mid / tick
        best_bid = math.ceil(mid_ticks - 1e-9) - 1
        best_ask = math.floor(mid_ticks + 1e-9) + 1
        bids = tuple((best_bid - j, level_qty) for j in range(book_levels))
        asks = tuple((best_ask + j, level_qty) for j in range(book_levels))
        yield BookSnapshot(ts=ts, bids=bids, asks=asks, sequence=i + 1)
        u_move, u_sell, u_buy = rng.random(3)
        mid += step if u_move < 0.5 else -step  # trades this step meet the moved mid
        reach_sell = (log_a_dt - math.log(max(u_sell, 1e-300))) / p.decay_k
        reach_buy = (log_a_dt - math.log(max(u_buy, 1e-300))) / p.decay_k
        trade_ts = ts + step_ns // 2
        sell_price = math.floor((mid - reach_sell) / tick + 1e-9)
        if sell_price <= best_bid:
            yield TradeTick(ts=trade_ts, price=sell_price, qty=trade_qty, aggressor=Side.SELL, trade_id=f"as-{i}-s")
        buy_price = math.ceil((mid + reach_buy) / tick - 1e-9)
        if buy_price >= best_ask:
            yield TradeTick(ts=trade_ts, price=buy_price, qty=trade_qty, aggressor=Side.BUY, trade_id=f"as-{i}-b")
