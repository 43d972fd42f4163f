"""Markets: seeded replay/sim venues, conversion to trading instruments, sync from ccxt, API."""

from __future__ import annotations

from decimal import Decimal

import pytest

from apps.exchanges.models import Market
from apps.exchanges.services import market_sync, market_to_instrument
from tests.apps.bots.factories import api
from tests.connectors.conftest import binance_markets

pytestmark = pytest.mark.django_db


def test_replay_and_sim_markets_are_seeded_with_exact_steps():
    spot = Market.objects.get(venue="replay:binance-spot", symbol="BTC/USDT")
    usdm = Market.objects.get(venue="replay:binance-usdm", symbol="BTC/USDT:USDT")
    assert (spot.tick_size, spot.lot_size) == (Decimal("0.01"), Decimal("0.00001"))
    assert (usdm.tick_size, usdm.lot_size) == (Decimal("0.1"), Decimal("0.001"))
    for venue in ("sim:alpha", "sim:beta"):
        sim = Market.objects.get(venue=venue, symbol="BTC/USDT")
        assert (sim.tick_size, sim.lot_size) == (Decimal("0.01"), Decimal("0.0001"))


def test_market_becomes_an_instrument_with_integer_ticks_and_fees():
    inst = market_to_instrument(Market.objects.get(venue="replay:binance-usdm", symbol="BTC/USDT:USDT"))
    assert inst.ticks("65000.1") == 650001 and inst.lots("0.005") == 5
    assert (inst.maker_fee_e8, inst.taker_fee_e8) == (20_000, 50_000)
    assert (inst.base, inst.quote, inst.venue) == ("BTC", "USDT", "replay:binance-usdm")


class _FakeCcxt:
    """Just what MarketCache needs from a ccxt exchange: recorded Binance markets."""

    id = "binance"
    precisionMode = 4  # ccxt.TICK_SIZE
    fees = {"trading": {"maker": 0.001, "taker": 0.001}}

    def __init__(self, markets):
        self._markets = markets
        self.closed = False

    async def load_markets(self, reload=False):
        return self._markets

    async def close(self):
        self.closed = True


def test_market_sync_upserts_live_markets_and_deactivates_vanished_ones():
    Market.objects.create(venue="binance", symbol="GONE/USDT", base="GONE", quote="USDT", tick_size=1, lot_size=1)
    exchange = _FakeCcxt(binance_markets())
    counts = market_sync(venue="binance", exchange=exchange)
    assert counts["created"] >= 10 and counts["deactivated"] == 1 and exchange.closed
    btc = Market.objects.get(venue="binance", symbol="BTC/USDT")
    assert btc.tick_size == Decimal("0.01") and btc.active
    assert not Market.objects.get(venue="binance", symbol="GONE/USDT").active
    again = market_sync(venue="binance", exchange=_FakeCcxt(binance_markets()))
    assert again["created"] == 0 and again["updated"] == counts["created"]


def test_markets_api_is_read_only_and_filters_by_venue(trader):
    client = api(trader)
    response = client.get("/api/v1/markets/", {"venue": "sim:beta"})
    assert response.status_code == 200
    assert [m["symbol"] for m in response.json()["results"]] == ["BTC/USDT"]
    assert client.post("/api/v1/markets/", {"venue": "x"}, format="json").status_code == 405
