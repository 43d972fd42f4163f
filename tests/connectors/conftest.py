"""Shared fixtures: real ccxt payloads (see fixtures/ccxt/SOURCE.md) and the local fake exchange."""

from __future__ import annotations

import copy
import json
from pathlib import Path
from typing import Any

import ccxt
import pytest
import pytest_asyncio

from connectors.markets import DECIMAL_PLACES, TICK_SIZE, convert_precision
from tests.connectors.servers.fake_exchange import FakeExchange

FIXTURES = Path(__file__).parent / "fixtures" / "ccxt"


def load_fixture(relative: str) -> Any:
    with open(FIXTURES / relative) as fh:
        return json.load(fh)


def case(kind: str, exchange: str, method: str, description: str | None = None) -> dict:
    """One recorded case (``kind`` is response/ws/request) by method and description."""
    cases = load_fixture(f"{kind}/{exchange}.json")["methods"][method]
    if description is None:
        return copy.deepcopy(cases[0])
    for c in cases:
        if c["description"] == description:
            return copy.deepcopy(c)
    raise KeyError(f"no {exchange} {method} case {description!r}")


def _complete(markets: dict) -> dict:
    """Fill keys newer ccxt versions expect (e.g. ``inverse`` on spot) with ccxt's own defaults."""
    base = ccxt.Exchange()
    return {symbol: base.safe_market_structure(m) for symbol, m in markets.items()}


def binance_markets() -> dict:
    """Binance markets from the ccxt file (DECIMAL_PLACES) re-expressed in ccxt 4.5's TICK_SIZE."""
    return _complete(convert_precision(load_fixture("markets/binance.json"), DECIMAL_PLACES, TICK_SIZE))


def backpack_markets() -> dict:
    return _complete(load_fixture("markets/backpack.449a3b5.json"))


@pytest_asyncio.fixture
async def fake() -> FakeExchange:
    server = await FakeExchange().start()
    yield server
    await server.stop()


@pytest.fixture
def fixed_clock():
    """A wall clock frozen at the recorded payloads' time, so staleness checks are meaningful."""

    class Clock:
        now_ns = 1754500002500 * 1_000_000

        def __call__(self) -> int:
            return self.now_ns

    return Clock()
