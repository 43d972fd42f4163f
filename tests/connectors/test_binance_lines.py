"""Raw-line decoder: equal to the general path (orjson + exact per-value parser) or declines."""

from __future__ import annotations

import json
from decimal import Decimal
from itertools import islice

import orjson
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from connectors.binance_recording import (
    BINANCE_SPOT_BTCUSDT,
    BINANCE_USDM_BTCUSDT,
    RECORDINGS,
    BinanceMessageParser,
    ReaderStats,
    RecordingError,
    iter_lines,
    iter_messages,
)
from trading.events import BookDelta, TopOfBook, TradeTick
from trading.instruments import Side

SPOT_LEARN = ("61737.63000000", "0.50000000")  # spot: 8 decimals, tick 0.01, lot 1e-8
USDM_LEARN = ("61800.20", "2.507")  # USD-M: 2 decimals, tick 0.1, lot 0.001


def _parser(instrument):
    parser = BinanceMessageParser(instrument)
    learn = SPOT_LEARN if instrument is BINANCE_SPOT_BTCUSDT else USDM_LEARN
    parser.levels([list(learn)])  # learns the number formats and builds the line decoder
    assert parser.line_decoder is not None
    return parser


def _general(parser: BinanceMessageParser, ts: int, line: bytes):
    """The general path's event, or the exception it raises."""
    try:
        msg = orjson.loads(line)
        stream = msg["stream"]
        data = msg["data"]
        if "@depth" in stream:
            return parser.depth(ts, data)
        if stream.endswith("@bookTicker"):
            return parser.book_ticker(ts, data)
        return parser.trade(ts, data)
    except (orjson.JSONDecodeError, KeyError, TypeError, AttributeError, RecordingError, ValueError) as exc:
        return exc


def _assert_same_or_declined(parser, ts: int, line: bytes) -> object:
    general = _general(parser, ts, line)  # first: on a fresh parser this learns the formats
    fast = parser.line_decoder.decode(ts, line)
    if fast is not None:
        assert not isinstance(general, Exception), (line, general)
        assert fast == general, line
        assert type(fast) is type(general)
    return fast


@st.composite
def number_text(draw, decimals: int, grid_zeros: int, shape_weight: int = 12) -> str:
    """A decimal string usually in the venue's shape (``decimals`` digits after the dot, the last
    ``grid_zeros`` of them zero), sometimes off it (off the grid, other decimals, sign, leading
    zeros, exponent, junk)."""
    kind = draw(st.sampled_from(["shape"] * shape_weight + ["offgrid", "decimals", "sign", "zeros", "junk"]))
    units = draw(st.integers(0, 10**13))
    if kind != "offgrid":
        units *= 10**grid_zeros
    if kind in ("shape", "zeros", "offgrid"):
        text = format(Decimal(units).scaleb(-decimals), "f")
        if "." not in text:
            text += "." + "0" * decimals
        return ("00" + text) if kind == "zeros" else text
    if kind == "decimals":
        return format(Decimal(units).scaleb(-draw(st.integers(0, 10))), "f")
    if kind == "sign":
        return draw(st.sampled_from(["-", "+"])) + format(Decimal(units).scaleb(-decimals), "f")
    return draw(st.sampled_from(["1e5", "NaN", "", "1_000.00000000", " 1.00000000", "0x10", "1.0.0"]))


def _int_value(draw) -> object:
    if draw(st.integers(0, 19)):
        return draw(st.integers(0, 10**15))
    return draw(st.sampled_from([-1, 10**18, 2**63 - 1, 2**64, "7", 1.5]))


@st.composite
def ticker_line(draw, price: tuple[int, int], qty: tuple[int, int]) -> bytes:
    data: dict[str, object] = {}
    if draw(st.booleans()):
        data["e"] = "bookTicker"
    data["u"] = _int_value(draw)
    data["s"] = draw(st.sampled_from(["BTCUSDT", "ETHBTC", "BTCUSDT", "btc\u00e9"]))
    for key in ("b", "B", "a", "A"):
        data[key] = draw(number_text(*(price if key in "ba" else qty)))
    if draw(st.booleans()):
        data["T"] = _int_value(draw)
    if draw(st.booleans()):
        data["E"] = _int_value(draw)
    if draw(st.integers(0, 19)) == 0:
        data["x"] = 1  # an unknown extra key: the decoder must decline
    return _envelope(draw, "btcusdt@bookTicker", data)


@st.composite
def trade_line(draw, price: tuple[int, int], qty: tuple[int, int]) -> bytes:
    data: dict[str, object] = {"e": "trade", "E": _int_value(draw)}
    futures = draw(st.booleans())
    if futures:
        data["T"] = _int_value(draw)
    data["s"] = "BTCUSDT"
    data["t"] = _int_value(draw)
    data["p"] = draw(number_text(*price))
    data["q"] = draw(number_text(*qty))
    if not futures:
        data["T"] = _int_value(draw)
    if draw(st.booleans()):
        data["X"] = draw(st.sampled_from(["MARKET", "MARKET", "INSURANCE_FUND", "NA"]))
    data["m"] = draw(st.sampled_from([True, False, True, False, 1, "true"]))
    if not futures:
        data["M"] = True
    return _envelope(draw, "btcusdt@trade", data)


@st.composite
def depth_line(draw, price: tuple[int, int], qty: tuple[int, int]) -> bytes:
    data: dict[str, object] = {"e": "depthUpdate", "E": _int_value(draw)}
    futures = draw(st.booleans())
    if futures:
        data["T"] = _int_value(draw)
    data["s"] = "BTCUSDT"
    data["U"] = _int_value(draw)
    data["u"] = _int_value(draw)
    if futures:
        data["pu"] = draw(st.one_of(st.integers(-1, 2**62), st.integers(-1, 2**62), st.just("1")))
    for key in ("b", "a"):
        data[key] = draw(st.lists(st.tuples(number_text(*price, 30), number_text(*qty, 30)).map(list), max_size=8))
    stream = draw(st.sampled_from(["btcusdt@depth@100ms", "btcusdt@depth", "btcusdt@depth@0ms"]))
    return _envelope(draw, stream, data)


def _dumps(obj: dict) -> bytes:
    return json.dumps(obj, separators=(",", ":")).encode()  # like Binance's; big ints allowed


def _envelope(draw, stream: str, data: dict) -> bytes:
    line = _dumps({"stream": stream, "data": data})
    style = draw(st.sampled_from(["plain"] * 4 + ["newline"] * 3 + ["spaced", "reordered"]))
    if style == "newline":
        return line + b"\n"
    if style == "spaced":
        return line.replace(b",", b", ", 1)
    if style == "reordered":
        return _dumps({"data": data, "stream": stream})
    return line


# (instrument, (decimals, zero tail) of its prices, of its quantities) as Binance sends them
INSTRUMENTS = st.sampled_from([(BINANCE_SPOT_BTCUSDT, (8, 6), (8, 0)), (BINANCE_USDM_BTCUSDT, (2, 1), (3, 0))])


@settings(max_examples=200, deadline=None)
@given(case=INSTRUMENTS, data=st.data())
def test_ticker_line_decodes_as_the_general_path_or_declines(case, data) -> None:
    instrument, price, qty = case
    line = data.draw(ticker_line(price, qty))
    _assert_same_or_declined(_parser(instrument), 7, line)
    # the reader (which inlines the bookTicker shape) gives the same events from bytes and str
    learn = SPOT_LEARN if instrument is BINANCE_SPOT_BTCUSDT else USDM_LEARN
    snapshot = _dumps({"lastUpdateId": 1, "bids": [list(learn)], "asks": []})
    raw = [(1, snapshot), (2, line), (3, line)]
    stats_bytes, stats_text = ReaderStats(), ReaderStats()
    from_bytes = list(iter_messages(raw, instrument, stats=stats_bytes))
    from_text = list(iter_messages([(ts, b.decode()) for ts, b in raw], instrument, stats=stats_text))
    assert from_bytes == from_text
    assert stats_bytes == stats_text


@settings(max_examples=200, deadline=None)
@given(case=INSTRUMENTS, data=st.data())
def test_trade_line_decodes_as_the_general_path_or_declines(case, data) -> None:
    instrument, price, qty = case
    _assert_same_or_declined(_parser(instrument), 7, data.draw(trade_line(price, qty)))


@settings(max_examples=200, deadline=None)
@given(case=INSTRUMENTS, data=st.data())
def test_depth_line_decodes_as_the_general_path_or_declines(case, data) -> None:
    instrument, price, qty = case
    _assert_same_or_declined(_parser(instrument), 7, data.draw(depth_line(price, qty)))


def test_spot_lines_in_the_venue_shape_decode_exactly() -> None:
    parser = _parser(BINANCE_SPOT_BTCUSDT)
    decode = parser.line_decoder.decode
    top = decode(
        5,
        b'{"stream":"btcusdt@bookTicker","data":{"u":50093239212,"s":"BTCUSDT","b":"61837.63000000",'
        b'"B":"3.78826000","a":"61837.64000000","A":"1.54698000"}}\n',
    )
    assert top == TopOfBook(5, 6183763, 378826000, 6183764, 154698000, 50093239212, 0)
    trade = decode(
        6,
        b'{"stream":"btcusdt@trade","data":{"e":"trade","E":1723161255343,"s":"BTCUSDT","t":3735683259,'
        b'"p":"61837.63000000","q":"0.02000000","T":1723161255342,"m":true,"M":true}}',
    )
    assert trade == TradeTick(6, 6183763, 2000000, Side.SELL, "3735683259", 1723161255342 * 1_000_000)
    delta = decode(
        7,
        b'{"stream":"btcusdt@depth@100ms","data":{"e":"depthUpdate","E":1723161255208,"s":"BTCUSDT",'
        b'"U":50093239189,"u":50093239202,"b":[["61737.63000000","0.00000000"],["1000000.00000000",'
        b'"10.00000000"]],"a":[]}}',
    )
    assert delta == BookDelta(
        7, ((6173763, 0), (100000000, 1_000_000_000)), (), 50093239189, 50093239202, 0, 1723161255208 * 1_000_000
    )


def test_value_off_the_tick_grid_is_left_to_the_general_path_which_names_it() -> None:
    parser = _parser(BINANCE_SPOT_BTCUSDT)
    line = (
        b'{"stream":"btcusdt@bookTicker","data":{"u":1,"s":"BTCUSDT","b":"61837.63500000",'
        b'"B":"3.78826000","a":"61837.64000000","A":"1.54698000"}}'
    )
    assert parser.line_decoder.decode(1, line) is None
    with pytest.raises(RecordingError, match=r"61837\.63500000"):
        parser.book_ticker(1, orjson.loads(line)["data"])


@pytest.mark.parametrize("name", ["binance-spot-btcusdt", "binance-usdm-btcusdt", "binance-coinm-btcusd"])
def test_recorded_lines_take_the_fast_path_and_equal_the_general_path(name) -> None:
    recording = RECORDINGS[name]
    parser = BinanceMessageParser(recording.instrument)
    lines = list(islice(iter_lines(recording.paths), 15_000))
    decoded = 0
    for ts, line in lines:
        msg = orjson.loads(line)
        if "stream" not in msg:
            parser.snapshot(ts, msg)
            continue
        decoded += _assert_same_or_declined(parser, ts, line) is not None
    assert decoded == len(lines) - 1  # every stream line of the recording is in a known shape
    # and the reader's events are the same whether lines come as bytes (fast) or str (general)
    as_text = [(ts, line.decode()) for ts, line in lines]
    assert list(iter_messages(lines, recording.instrument)) == list(iter_messages(as_text, recording.instrument))
