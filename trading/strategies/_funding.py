"""Funding skew: lean quotes against paying funding in the minutes before a funding time.

On a perpetual the position held at a funding time pays or receives
``position x mark x rate`` (a positive rate: longs pay shorts). A strategy with ``funding_skew``
above 0 shifts its bids and asks together by ``-funding_skew x rate x mid`` during the last
``funding_skew_minutes`` before the next funding time: with a positive rate the quotes move
down (buying less readily, selling more readily) by ``funding_skew`` times the funding one unit
held would pay, with a negative rate they move up. Outside the window, on spot, or while the
rate or the funding time is unknown (``ctx.funding_rate`` / ``ctx.next_funding_ts``, set by the
engine's perpetual risk from the venue or the backtest's funding schedule) nothing changes.

Worked example: BTC/USDT:USDT at a mid of 60,000, rate 0.01 %, ``funding_skew`` 1: the quotes
move down by 6 USDT (60 ticks of 0.1) in the window.
"""

from __future__ import annotations

from dataclasses import field
from typing import Any

NS = 1_000_000_000


def funding_skew_field() -> Any:
    return field(
        default=0.0,
        metadata={
            "min": 0.0,
            "max": 100.0,
            "help": "perpetuals: shift quotes by this many times rate x mid against the side that pays "
            "funding, in the window before each funding time; 0 = off",
        },
    )


def funding_skew_minutes_field() -> Any:
    return field(
        default=30.0,
        metadata={
            "min": 0.0,
            "exclusive_min": True,
            "max": 480.0,
            "unit": "min",
            "help": "the funding skew applies in this many minutes before a funding time",
        },
    )


def funding_shift(config: Any, ctx: Any, mid: float) -> float:
    """The shift of both quotes, in the unit of ``mid`` (negative: down); 0.0 when none applies."""
    skew = config.funding_skew
    if not skew:
        return 0.0
    rate, at = ctx.funding_rate, ctx.next_funding_ts
    if rate is None or at is None:
        return 0.0
    left = at - ctx.ts
    if left <= 0 or left > config.funding_skew_minutes * 60 * NS:
        return 0.0
    return -skew * rate * mid


def funding_note(ctx: Any, shift: float, unit: str) -> str:
    left = (ctx.next_funding_ts - ctx.ts) / NS
    return f"; funding skew {shift:+.6g} {unit} (rate {ctx.funding_rate:.4%}, funding in {left:.0f}s)"


def is_perpetual(instrument: Any) -> bool:
    """Derivative symbols carry their settle currency after a colon (ccxt: ``BTC/USDT:USDT``)."""
    return ":" in instrument.symbol
