"""Simulated venues as the legs of a hedged backtest (:mod:`apps.backtests.hedged`), so that
pairs the shipped recordings do not cover run too: perp-to-perp on the seeded sim perpetuals
(``sim:gamma`` and ``sim:delta`` ``BTC/USDT:USDT``), spot-to-spot on ``sim:alpha`` / ``sim:beta``.

A leg named ``"sim:<name>"`` is that venue's one stored market (``"sim:<name> <symbol>"`` picks
one when the venue has several): its instrument and contract come from the market row (fees
overridable by ``maker_fees`` / ``hedge_fees`` as for recordings), its events are the hosted
synthetic market's (:func:`connectors.sim.hosted_market`: the same books and trades the paper
venue plays live), from ``sim_start`` (unix seconds) for ``sim_seconds``. A perpetual leg's
maintenance-margin tiers are :func:`apps.derivatives.hosting.tiers_for`'s for its contract.
Both legs must be sim venues (a recording's minutes and a sim window do not overlap).
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass

from trading.contracts import ContractSpec
from trading.instruments import Instrument
from trading.margin import BracketTable

PREFIX = "sim:"
FIELDS = ("sim_start", "sim_seconds")
DEFAULT_START = 1_796_687_700  # 2026-12-07 23:55 UTC: the 00:00 funding time falls inside the default window
DEFAULT_SECONDS = 600
MAX_SECONDS = 86_400


@dataclass(frozen=True)
class SimSource:
    """A sim venue's market as a hedged leg's source (the attributes of a shipped recording the
    hedged backtest reads: ``instrument``, ``contract``, ``tiers``)."""

    venue: str
    instrument: Instrument
    contract: ContractSpec
    tiers: BracketTable | None


def is_sim(value: object) -> bool:
    return isinstance(value, str) and value.startswith(PREFIX)


def resolve(value: str) -> SimSource | str:
    """The source a leg value names, or the refusal (value and what is accepted)."""
    from apps.derivatives.hosting import tiers_for
    from apps.exchanges.markets import market_contract, market_to_instrument
    from apps.exchanges.models import Market

    venue, _, symbol = value.partition(" ")
    rows = Market.objects.filter(venue=venue, active=True).order_by("symbol")
    if symbol:
        rows = rows.filter(symbol=symbol)
    found = list(rows[:21])
    if len(found) != 1:
        listed = Market.objects.filter(venue__startswith=PREFIX, active=True).order_by("venue", "symbol")
        names = ", ".join(f"'{m.venue} {m.symbol}'" for m in listed[:30]) or "none stored"
        why = "has no stored market" if not found else "has several markets: name one"
        return f"{value!r} is not accepted: {venue} {why}; accepted: a sim venue's market ({names})"
    market = found[0]
    contract = market_contract(market)
    tiers = tiers_for(market.venue, market.symbol, contract)[0] if contract.is_perpetual else None
    return SimSource(market.venue, market_to_instrument(market), contract, tiers)


def window_errors(data: dict, legs_sim: tuple[bool, bool]) -> dict[str, str]:
    """The errors of ``sim_start`` / ``sim_seconds`` and of mixing a sim leg with a recording."""
    errors: dict[str, str] = {}
    if any(legs_sim) and not all(legs_sim):
        errors["hedge" if legs_sim[0] else "maker"] = (
            f"{data.get('hedge' if legs_sim[0] else 'maker')!r} is not accepted with a sim leg; accepted: another sim "
            "venue (a recording's minutes and a sim window do not overlap)"
        )
    for key, low, high in (("sim_start", 0, 4_102_444_800), ("sim_seconds", 1, MAX_SECONDS)):
        if key not in data:
            continue
        value = data[key]
        if not any(legs_sim):
            errors[key] = "applies to sim legs only; remove it for recordings"
        elif isinstance(value, bool) or not isinstance(value, int) or not low <= value <= high:
            errors[key] = f"{value!r} is not accepted; give a whole number of seconds from {low} to {high}"
    return errors


def events(source: SimSource, data: dict) -> Iterator:
    """The venue's books (a snapshot first, then deltas) and trades over the window, in order."""
    from connectors.sim import hosted_market

    start_ns = data.get("sim_start", DEFAULT_START) * 1_000_000_000
    end_ns = start_ns + data.get("sim_seconds", DEFAULT_SECONDS) * 1_000_000_000
    name = source.venue
    market = hosted_market((name,), source.instrument)
    step = market.step_ns
    k = -(-start_ns // step)
    snapshot = True
    while k * step < end_ns:
        for _venue, event in market.step_events(k, (name,), snapshot=snapshot):
            yield event
        snapshot = False
        k += 1
