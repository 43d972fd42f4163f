"""Avellaneda–Stoikov (2008) optimal market making.

Units (documented because the formulas are unit-sensitive):

* prices ``s`` in quote currency; ``sigma`` in quote currency per sqrt(second);
* ``k`` per quote-currency unit of distance from the mid, ``A`` trades per second;
* ``gamma`` per quote-currency unit of wealth *per unit of q*; ``q`` is the inventory in units of
  ``order_amount`` (``(position - inventory_target) / order_amount``);
* time in seconds.

Traders set ``risk_aversion``, a pure number, instead of ``gamma``: the model's absolute risk
aversion is ``risk_aversion`` per one order's value (``mid x order_amount``), so per unit of q
``gamma = risk_aversion / mid``. The inventory term of the spread is then
``risk_aversion x (sigma / mid)^2 x tau`` as a fraction of the mid, the same on any price level
and order size (BTC/USDT at 60,000 with sigma 8 USDT/sqrt(s) and tau 3600 s: 0.006% at
``risk_aversion`` 1). ``gamma`` can still be given directly (absolute, per quote unit per q).

Finite horizon (the paper's eqs. 29–30), with ``tau = T - t``::

    r = s - q * gamma * sigma^2 * tau
    delta_a + delta_b = gamma * sigma^2 * tau + (2 / gamma) * ln(1 + gamma / k)

and quotes ``r -/+ spread / 2``. The session starts at the first event and restarts every
``horizon`` seconds so a long-running bot keeps a meaningful ``tau``.

Infinite horizon (the paper's section 2.3): reservation ask/bid prices with
``omega = 0.5 * gamma^2 * sigma^2 * (q_max + 1)^2``::

    r_a = s + (1/gamma) ln(1 + (1 - 2q) gamma^2 sigma^2 / (2 omega - gamma^2 q^2 sigma^2))
    r_b = s + (1/gamma) ln(1 + (-1 - 2q) gamma^2 sigma^2 / (2 omega - gamma^2 q^2 sigma^2))

and quotes ``r_b - (1/gamma) ln(1 + gamma/k)`` and ``r_a + (1/gamma) ln(1 + gamma/k)``
(``|q|`` is capped at ``q_max``).
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from decimal import Decimal

from trading.config import ConfigBase
from trading.events import TradeTick
from trading.instruments import Instrument
from trading.signals import ArrivalIntensity, MidVolatility
from trading.strategies._funding import funding_note, funding_shift, funding_skew_field, funding_skew_minutes_field
from trading.strategies._quoting import (
    NS,
    Market,
    QuotingStrategy,
    amount_to_lots,
    ask_ticks,
    bid_ticks,
    build_quote_set,
    pulled,
)
from trading.strategy import QuoteSet, StrategyContext

_POSITIVE = {"min": 0.0, "exclusive_min": True}
_FIT_EVERY_NS = 5 * NS  # refit A and k at most this often (the fit sorts the trade window)


@dataclass(frozen=True)
class AvellanedaStoikovConfig(ConfigBase):
    """Avellaneda–Stoikov quotes around a reservation price that leans against inventory.

    ``sigma``, ``A`` and ``k`` are estimated online (mid changes; trade distances from mid)
    unless given. On a perpetual, amounts are contracts and ``q`` is the position in contracts over
    ``order_amount``; ``funding_skew`` leans the quotes against paying funding
    (``trading.strategies._funding``).
    """

    order_amount: Decimal = field(
        metadata={
            "min": Decimal(0),
            "exclusive_min": True,
            "unit": "base",
            "help": "size per quote (contracts on a perpetual); q unit",
        }
    )
    risk_aversion: float = field(
        default=1.0,
        metadata={
            **_POSITIVE,
            "max": 1e6,
            "help": "risk aversion per one order's value (a pure number; the same on any price and size); "
            "higher = wider quotes and a stronger lean against inventory",
        },
    )
    gamma: float | None = field(
        default=None,
        metadata={**_POSITIVE, "unit": "1/quote per q", "help": "absolute risk aversion; empty = from risk_aversion"},
    )
    sigma: float | None = field(
        default=None, metadata={**_POSITIVE, "unit": "quote/sqrt(s)", "help": "volatility; empty = estimate"}
    )
    k: float | None = field(
        default=None,
        metadata={**_POSITIVE, "unit": "1/quote", "help": "order-book liquidity (intensity decay); empty = estimate"},
    )
    A: float | None = field(
        default=None,
        metadata={**_POSITIVE, "unit": "1/s", "help": "arrival rate at mid (shown; quotes use k); empty = estimate"},
    )
    horizon: float = field(default=3600.0, metadata={**_POSITIVE, "unit": "s", "help": "session length T"})
    infinite_horizon: bool = field(default=False, metadata={"help": "use the stationary (infinite-horizon) form"})
    q_max: float = field(
        default=10.0, metadata={**_POSITIVE, "help": "inventory bound (in order_amount units) for omega"}
    )
    inventory_target: Decimal = field(
        default=Decimal(0),
        metadata={"unit": "base", "help": "position the quotes lean toward (contracts on a perpetual)"},
    )
    min_spread: Decimal = field(
        default=Decimal(0), metadata={"min": Decimal(0), "max": Decimal(1), "help": "total spread floor, fraction"}
    )
    max_spread: Decimal = field(
        default=Decimal("0.05"),
        metadata={"min": Decimal(0), "exclusive_min": True, "max": Decimal(1), "help": "total spread cap, fraction"},
    )
    volatility_interval: float = field(default=1.0, metadata={**_POSITIVE, "unit": "s", "help": "mid sampling"})
    volatility_halflife: float = field(default=300.0, metadata={**_POSITIVE, "unit": "s", "help": "EWMA half-life"})
    volatility_window: int | None = field(
        default=None, metadata={"min": 2, "help": "if set, a rolling window of this many samples instead of EWMA"}
    )
    intensity_window: float = field(
        default=600.0, metadata={**_POSITIVE, "unit": "s", "help": "trades used to fit A and k"}
    )
    funding_skew: float = funding_skew_field()
    funding_skew_minutes: float = funding_skew_minutes_field()

    def validate(self) -> dict[str, str]:
        if self.min_spread > self.max_spread:
            return {"min_spread": f"{self.min_spread} must not exceed max_spread {self.max_spread}"}
        return {}

    def gamma_at(self, mid: float) -> float:
        """The model's ``gamma`` (per quote unit per q) at ``mid``: given, or ``risk_aversion / mid``."""
        return self.gamma if self.gamma is not None else self.risk_aversion / mid


def spread_preview(config: AvellanedaStoikovConfig, mid: float, sigma: float, k: float | None) -> dict[str, float]:
    """The spread the model asks for at the start of a session with no inventory (the widest of
    the finite-horizon session; the infinite-horizon form has no sigma term), in quote currency,
    and the floor and cap it is clamped to. ``k`` unknown (``None``): the liquidity term is left
    out, so ``spread`` is a lower bound. ``capped``: 1.0 when the model's spread exceeds the cap."""
    gamma = config.gamma_at(mid)
    liquidity = 0.0 if k is None else (2.0 / gamma) * math.log(1.0 + gamma / k)
    inventory = 0.0 if config.infinite_horizon else gamma * sigma**2 * config.horizon
    spread = inventory + liquidity
    cap = float(config.max_spread) * mid
    return {"spread": spread, "floor": float(config.min_spread) * mid, "cap": cap, "capped": float(spread > cap)}


def finite_horizon_quotes(
    s: float, q: float, gamma: float, sigma: float, k: float, tau: float
) -> tuple[float, float, float, float]:
    """Return ``(reservation_price, total_spread, bid, ask)`` for the finite-horizon model."""
    r = s - q * gamma * sigma**2 * tau
    spread = gamma * sigma**2 * tau + (2.0 / gamma) * math.log(1.0 + gamma / k)
    return r, spread, r - spread / 2.0, r + spread / 2.0


def infinite_horizon_quotes(
    s: float, q: float, gamma: float, sigma: float, k: float, q_max: float
) -> tuple[float, float, float, float]:
    """Return ``(reservation_price, total_spread, bid, ask)`` for the stationary model.

    ``q`` is capped at ``+-q_max``. With ``omega`` proportional to ``sigma^2`` the ratio inside the
    logarithms does not depend on ``sigma`` (so ``sigma = 0`` is fine):
    ``gamma^2 sigma^2 / (2 omega - gamma^2 q^2 sigma^2) = 1 / ((q_max + 1)^2 - q^2)``.
    At ``q = q_max`` the reservation bid is minus infinity (the model never buys at its bound):
    ``bid`` is then ``-inf``, the spread ``inf`` and the reservation price is the reservation ask.
    """
    del sigma  # cancels out; kept in the signature to mirror the finite-horizon function
    q = max(-q_max, min(q_max, q))
    inv = 1.0 / ((q_max + 1.0) ** 2 - q * q)
    r_ask = s + math.log(1.0 + (1.0 - 2.0 * q) * inv) / gamma
    edge = math.log(1.0 + gamma / k) / gamma
    bid_arg = 1.0 + (-1.0 - 2.0 * q) * inv
    if bid_arg <= 1e-12:
        return r_ask, math.inf, -math.inf, r_ask + edge
    r_bid = s + math.log(bid_arg) / gamma
    bid, ask = r_bid - edge, r_ask + edge
    return (r_ask + r_bid) / 2.0, ask - bid, bid, ask


class AvellanedaStoikovStrategy(QuotingStrategy):
    """Quote one bid and one ask per the Avellaneda–Stoikov model.

    ``reservation_price`` and ``optimal_spread`` (quote currency, before clamping and rounding)
    hold the values of the last computation for tests and the UI.
    """

    name = "avellaneda_stoikov"
    config: AvellanedaStoikovConfig

    def __init__(self, config: AvellanedaStoikovConfig, instrument: Instrument) -> None:
        super().__init__(config, instrument)
        self.order_lots = amount_to_lots(instrument, "order_amount", config.order_amount)
        self.target_lots = instrument.lots(config.inventory_target, field="inventory_target", round_down=True)
        self.tick = float(instrument.tick_size)
        self.volatility = MidVolatility(
            interval_s=config.volatility_interval,
            halflife_s=None if config.volatility_window else config.volatility_halflife,
            window=config.volatility_window,
        )
        # Distances are measured in quote currency; the depth grid steps one tick.
        self.intensity = ArrivalIntensity(window_s=config.intensity_window, depth_step=self.tick)
        self.session_start: int | None = None
        self.intensity_fit: tuple[float, float] | None = None  # (A per second, k per quote unit)
        self._next_fit_ts = 0
        self.reservation_price: float | None = None
        self.optimal_spread: float | None = None
        self._spread_bounds = (float(config.min_spread), float(config.max_spread))  # hot path: no Decimal

    def observe(self, ts: int, market: Market, ctx: StrategyContext) -> None:
        if self.session_start is None:
            self.session_start = ts
        self.volatility.update(ts, market.mid_float * self.tick)
        self.intensity.observe_time(ts)
        if ts >= self._next_fit_ts and (self.config.k is None or self.config.A is None):
            self.intensity_fit = self.intensity.estimate()
            self._next_fit_ts = ts + _FIT_EVERY_NS

    def on_trade(self, trade: TradeTick, ctx: StrategyContext, market: Market) -> None:
        if self.session_start is None:
            self.session_start = trade.ts
        self.intensity.on_trade(trade.ts, trade.price * self.tick, market.mid_float * self.tick)

    def parameters(self) -> tuple[float | None, float | None]:
        """Current ``(sigma, k)``: configured values, else the online estimates (``None`` = not yet)."""
        sigma = self.config.sigma if self.config.sigma is not None else self.volatility.sigma
        k = self.config.k
        if k is None and self.intensity_fit is not None:
            k = self.intensity_fit[1]
        return sigma, k

    @property
    def arrival_rate(self) -> float | None:
        """``A`` (trades per second at the mid): configured, else estimated. Reported for the UI;
        the Avellaneda–Stoikov quotes depend on ``k`` only."""
        if self.config.A is not None:
            return self.config.A
        return None if self.intensity_fit is None else self.intensity_fit[0]

    def time_left(self, ts: int) -> float:
        """Seconds left in the current session (sessions restart every ``horizon``)."""
        start = ts if self.session_start is None else self.session_start
        elapsed = (ts - start) / NS
        return self.config.horizon - math.fmod(elapsed, self.config.horizon)

    def quote(self, ctx: StrategyContext, market: Market) -> QuoteSet | None:
        cfg = self.config
        sigma, k = self.parameters()
        if sigma is None or k is None:
            missing = [n for n, v in (("sigma", sigma), ("k", k)) if v is None]
            return pulled(f"warming up: estimating {', '.join(missing)}")
        s = market.mid_float * self.tick
        q = (ctx.position - self.target_lots) / self.order_lots
        gamma = cfg.gamma if cfg.gamma is not None else cfg.risk_aversion / s
        if cfg.infinite_horizon:
            r, spread, bid, ask = infinite_horizon_quotes(s, q, gamma, sigma, k, cfg.q_max)
            tau_note = "infinite horizon"
        else:
            tau = self.time_left(ctx.ts)
            r, spread, bid, ask = finite_horizon_quotes(s, q, gamma, sigma, k, tau)
            tau_note = f"T-t {tau:.0f}s"
        self.reservation_price, self.optimal_spread = r, spread
        shift = funding_shift(cfg, ctx, s)
        skew_note = funding_note(ctx, shift, self.instrument.quote) if shift else ""
        if not math.isfinite(bid):
            reason = f"avellaneda-stoikov: at inventory bound q {q:.2f} >= q_max {cfg.q_max:g}: asks only{skew_note}"
            asks = [(ask_ticks((ask + shift) / self.tick), self.order_lots)]
            return build_quote_set(self.instrument, market, [], asks, reason)
        min_spread, max_spread = self._spread_bounds
        lo, hi = s * min_spread, s * max_spread
        clamped = min(max(spread, lo), hi)
        if clamped != spread:
            # Keep the model's skew: scale both half-spreads around the reservation price.
            center = (bid + ask) / 2.0
            bid, ask = center - clamped / 2.0, center + clamped / 2.0
        reason = (
            f"avellaneda-stoikov: r {r:.6g} (mid {s:.6g}, q {q:.2f}), spread {spread:.6g}"
            f"{' clamped to ' + format(clamped, '.6g') if clamped != spread else ''}; "
            f"sigma {sigma:.4g}, k {k:.4g}, {tau_note}{skew_note}"
        )
        bids = [(bid_ticks((bid + shift) / self.tick), self.order_lots)]
        asks = [(ask_ticks((ask + shift) / self.tick), self.order_lots)]
        return build_quote_set(self.instrument, market, bids, asks, reason)
