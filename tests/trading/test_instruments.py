"""Instrument pickling: instruments go with every order update to the database writer process."""

from __future__ import annotations

import pickle
from decimal import Decimal

import pytest

from trading.instruments import Instrument, OutOfRange


def test_an_instrument_survives_pickling_exactly_and_is_rebuilt_once_per_process():
    inst = Instrument.create(
        symbol="BTC/USDT:USDT",
        tick_size="0.1",
        lot_size="1E-5",
        min_notional="5.00",
        maker_fee="-0.0001",
        taker_fee="0.0004",
        venue="binance-usdm",
    )
    coarse = Instrument.create(symbol="X/Y", tick_size="10", lot_size="100", venue="sim:alpha")
    for original in (inst, coarse):
        for protocol in (2, pickle.HIGHEST_PROTOCOL):
            copy = pickle.loads(pickle.dumps(original, protocol))
            assert copy == original
            assert (copy.tick_size, copy.lot_size, copy.min_notional) == (
                original.tick_size,
                original.lot_size,
                original.min_notional,
            )
            assert copy.price(12345) == original.price(12345)
            assert copy.quantity(7) == original.quantity(7)
    assert inst.min_notional == Decimal("5.00")
    assert pickle.loads(pickle.dumps(inst)) is pickle.loads(pickle.dumps(inst))
    assert pickle.loads(pickle.dumps(inst)) is not pickle.loads(pickle.dumps(coarse))


@pytest.mark.parametrize("value", ["1e400", 1e30, "92233720368547758.08"])
def test_prices_and_sizes_beyond_int64_counts_are_refused_naming_the_bound(value) -> None:
    inst = Instrument.create(symbol="BTC/USDT", tick_size="0.01", lot_size="0.00001")
    with pytest.raises(OutOfRange, match=r"price: .* out of range; accepted: at most 92233720368547758\.07"):
        inst.ticks(value)
    with pytest.raises(OutOfRange, match=r"quantity: .* out of range; accepted: at most 92233720368547\.75807"):
        inst.lots(value)
    assert inst.ticks("92233720368547758.07") == 2**63 - 1
