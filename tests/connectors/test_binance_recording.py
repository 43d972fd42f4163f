"""Binance recording reader: exact decimals, message mapping, update-id rules, real recordings."""

from __future__ import annotations

import gzip
from decimal import Decimal
from pathlib import Path

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
    decimal_parser,
    iter_recording,
)
from trading.events import BookDelta, BookSnapshot, TopOfBook, TradeTick
from trading.instruments import Side

STEPS = [Decimal(s) for s in ("0.01", "0.00000001", "0.1", "0.001", "1", "0.5", "5", "0.25")]


@st.composite
def decimal_strings_on_grid(draw):
    step = draw(st.sampled_from(STEPS))
    units = draw(st.integers(min_value=-(10**15), max_value=10**15))
    value = units * step
    extra_zeros = draw(st.integers(0, 6))
    text = format(value, "f")
    if extra_zeros:
        text = text + ("" if "." in text else ".") + "0" * extra_zeros
    return step, text


@settings(max_examples=500, deadline=None)
@given(decimal_strings_on_grid())
def test_fast_parser_equals_decimal_division_for_on_grid_values(case) -> None:
    step, text = case
    expected = Decimal(text) / step
    assert expected == expected.to_integral_value()
    assert decimal_parser(step)(text) == int(expected)
    assert decimal_parser(step, strict=False)(text) == int(expected)


@settings(max_examples=300, deadline=None)
@given(
    step=st.sampled_from(STEPS),
    value=st.decimals(allow_nan=False, allow_infinity=False, places=10, min_value=-(10**9), max_value=10**9),
)
def test_fast_parser_agrees_with_decimal_or_refuses_off_grid(step, value) -> None:
    text = format(value, "f")
    quotient = Decimal(text) / step
    parse = decimal_parser(step, "price")
    if quotient == quotient.to_integral_value():
        assert parse(text) == int(quotient)
    else:
        with pytest.raises(RecordingError, match="price"):
            parse(text)


@pytest.mark.parametrize("text", ["", ".", "abc", "1e5", "1_0", " 1.5", "1.5.0", "--1", "nan", "1._5"])
def test_strict_parser_refuses_anything_but_plain_decimals(text) -> None:
    with pytest.raises(RecordingError, match="plain decimal"):
        decimal_parser(Decimal("0.01"), "price")(text)


def test_off_grid_value_error_names_field_value_and_step() -> None:
    with pytest.raises(RecordingError) as info:
        decimal_parser(Decimal("0.01"), "price")("61737.635")
    assert "price" in str(info.value) and "61737.635" in str(info.value) and "0.01" in str(info.value)


# --- message mapping -------------------------------------------------------------------------
def test_trade_with_buyer_maker_is_a_sell_aggressor() -> None:
    parser = BinanceMessageParser(BINANCE_SPOT_BTCUSDT)
    data = {"t": 7, "p": "61837.63000000", "q": "0.02000000", "T": 1723161255342, "m": True}
    trade = parser.trade(5, data)
    assert trade == TradeTick(
        ts=5, price=6183763, qty=2_000_000, aggressor=Side.SELL, trade_id="7", venue_ts=1723161255342_000_000
    )
    assert parser.trade(5, {**data, "m": False}).aggressor is Side.BUY


def test_futures_non_market_trade_is_skipped() -> None:
    parser = BinanceMessageParser(BINANCE_USDM_BTCUSDT)
    data = {"t": 1, "p": "61800.30", "q": "0.006", "T": 1, "m": False, "X": "INSURANCE_FUND"}
    assert parser.trade(1, data) is None
    assert parser.trade(1, {**data, "X": "MARKET"}).qty == 6


def test_futures_depth_keeps_prev_update_id() -> None:
    parser = BinanceMessageParser(BINANCE_USDM_BTCUSDT)
    delta = parser.depth(
        9, {"E": 2, "U": 10, "u": 20, "pu": 8, "b": [["61742.60", "0.000"]], "a": [["61800.30", "1.091"]]}
    )
    assert delta == BookDelta(
        ts=9,
        bids=((617426, 0),),
        asks=((618003, 1091),),
        first_sequence=10,
        last_sequence=20,
        prev_sequence=8,
        venue_ts=2_000_000,
    )


def _write_recording(path: Path, messages: list[tuple[int, object]]) -> Path:
    with gzip.open(path, "wb") as fh:
        for ts, msg in messages:
            body = msg if isinstance(msg, bytes) else orjson.dumps(msg)
            fh.write(str(ts).encode() + b" " + body + b"\n")
    return path


def _depth(first: int, last: int, bids: list, asks: list) -> dict:
    return {"stream": "btcusdt@depth@100ms", "data": {"E": 1, "U": first, "u": last, "b": bids, "a": asks}}


def test_reader_buffers_diffs_before_snapshot_and_applies_update_id_rules(tmp_path) -> None:
    trade = {"stream": "btcusdt@trade", "data": {"t": 1, "p": "10.00", "q": "1", "T": 1, "m": False}}
    path = _write_recording(
        tmp_path / "r.gz",
        [
            (100, _depth(1, 5, [["9.00", "1"]], [])),  # older than the snapshot: dropped
            (110, trade),  # before the snapshot: skipped
            (120, _depth(6, 12, [["9.50", "2"]], [])),  # covers snapshot + 1: released after it
            (130, {"lastUpdateId": 8, "bids": [["9.00", "1"]], "asks": [["11.00", "3"]]}),
            (140, b"{not json"),
            (150, _depth(13, 14, [], [["10.50", "1"]])),
            (160, {"stream": "btcusdt@bookTicker", "data": {"u": 14, "b": "9.50", "B": "2", "a": "10.50", "A": "1"}}),
            (170, trade),
        ],
    )
    stats = ReaderStats()
    events = list(iter_recording([path], BINANCE_SPOT_BTCUSDT, stats=stats))
    assert [type(e) for e in events] == [BookSnapshot, BookDelta, BookDelta, TopOfBook, TradeTick]
    assert events[0].sequence == 8
    assert (events[1].first_sequence, events[1].ts) == (6, 130)  # stamped with the snapshot's time
    assert [e.ts for e in events] == sorted(e.ts for e in events)
    assert (stats.stale_deltas_dropped, stats.skipped_before_snapshot, len(stats.bad_lines)) == (1, 1, 1)


def test_reader_reads_consecutive_files_as_one_stream(tmp_path) -> None:
    first = _write_recording(
        tmp_path / "a.gz", [(1, {"lastUpdateId": 0, "bids": [], "asks": []}), (2, _depth(1, 2, [["1.00", "1"]], []))]
    )
    second = _write_recording(tmp_path / "b.gz", [(3, _depth(3, 4, [["1.00", "2"]], []))])
    events = list(iter_recording([first, second], BINANCE_SPOT_BTCUSDT))
    assert [e.ts for e in events] == [1, 2, 3]


# --- the real recordings ---------------------------------------------------------------------
def _replay_through_book(name: str) -> dict[str, int]:
    from trading.book import OrderBook

    recording = RECORDINGS[name]
    stats = ReaderStats()
    book = OrderBook()
    counts = {
        "snapshots": 0,
        "deltas": 0,
        "applied": 0,
        "update_ids": 0,
        "crossed": 0,
        "top_matches": 0,
        "top_mismatches": 0,
    }
    tops_by_id: dict[int, TopOfBook] = {}
    checked_ids: set[int] = set()
    snapshot_id = 0
    prev_last = 0
    for event in iter_recording(recording.paths, recording.instrument, stats=stats):
        kind = type(event)
        if kind is BookSnapshot:
            book.apply_snapshot(event)
            counts["snapshots"] += 1
            snapshot_id = prev_last = event.sequence
        elif kind is BookDelta:
            counts["deltas"] += 1
            assert book.apply_delta(event), f"delta {event.first_sequence}..{event.last_sequence} ignored"
            counts["applied"] += 1
            # every update id between the snapshot and the end is covered exactly once
            counts["update_ids"] += event.last_sequence - max(event.first_sequence, prev_last + 1) + 1
            if event.prev_sequence and counts["applied"] > 1:
                assert event.prev_sequence == prev_last
            prev_last = event.last_sequence
            counts["crossed"] += book.is_crossed()
            # bookTicker ids can arrive before or after the diff that reaches them
            top = tops_by_id.get(book.sequence)
            if top is not None:
                checked_ids.add(book.sequence)
                _compare(book, top, counts)
        elif kind is TopOfBook:
            tops_by_id[event.sequence] = event
            if event.sequence == book.sequence and event.sequence not in checked_ids:
                checked_ids.add(event.sequence)
                _compare(book, event, counts)
    counts["span"] = prev_last - snapshot_id
    counts["reader_deltas"] = stats.deltas
    counts["bad_lines"] = len(stats.bad_lines)
    return counts


def _compare(book, top: TopOfBook, counts: dict[str, int]) -> None:
    got = (book.best_bid(), book.best_bid_qty(), book.best_ask(), book.best_ask_qty())
    if got == (top.bid_price, top.bid_qty, top.ask_price, top.ask_qty):
        counts["top_matches"] += 1
    else:
        counts["top_mismatches"] += 1


@pytest.mark.parametrize("name", ["binance-spot-btcusdt", "binance-usdm-btcusdt", "binance-coinm-btcusd"])
def test_real_recording_builds_a_consistent_book(name) -> None:
    counts = _replay_through_book(name)
    assert counts["bad_lines"] == 0
    assert counts["snapshots"] == 1
    # the COIN-M file is the first 20,000 lines of the USD-M one, converted to contracts
    assert counts["deltas"] == counts["applied"] == counts["reader_deltas"] > (1500 if "coinm" in name else 6000)
    assert counts["crossed"] == 0
    assert counts["top_matches"] > (100 if "coinm" in name else 500)
    assert counts["top_mismatches"] == 0
    if name == "binance-spot-btcusdt":
        # spot update ids are contiguous: none lost, none applied twice
        assert counts["update_ids"] == counts["span"]


def test_shipped_recordings_exist_with_their_source_note() -> None:
    for recording in RECORDINGS.values():
        for path in recording.paths:
            assert path.is_file(), path
    source = RECORDINGS["binance-spot-btcusdt"].paths[0].parent.parent / "SOURCE.md"
    assert "MIT" in source.read_text()


@st.composite
def binance_like_levels(draw):
    """Levels shaped like Binance's (fixed decimals) with the odd value of another shape."""
    decimals = draw(st.integers(0, 9))

    def number(d: int) -> str:
        units = draw(st.integers(0, 10**12))
        text = format(Decimal(units).scaleb(-d), "f")
        return text

    count = draw(st.integers(1, 6))
    out = []
    for _ in range(count):
        dp = decimals if draw(st.booleans()) else draw(st.integers(0, 9))
        dq = decimals if draw(st.booleans()) else draw(st.integers(0, 9))
        out.append([number(dp), number(dq)])
    return out


@settings(max_examples=400, deadline=None)
@given(
    raw=binance_like_levels(),
    instrument=st.sampled_from([BINANCE_SPOT_BTCUSDT, BINANCE_USDM_BTCUSDT]),
)
def test_hot_path_level_parser_is_exact_or_refuses(raw, instrument) -> None:
    parser = BinanceMessageParser(instrument)

    def exact(text: str, step: Decimal) -> int | None:
        q = Decimal(text) / step
        return int(q) if q == q.to_integral_value() else None

    expected = [(exact(p, instrument.tick_size), exact(q, instrument.lot_size)) for p, q in raw]
    if any(None in pair for pair in expected):
        with pytest.raises(RecordingError):
            parser.levels(raw)
    else:
        assert list(parser.levels(raw)) == expected
        # after learning, single values agree too
        assert [(parser.price(p), parser.qty(q)) for p, q in raw] == expected


def test_hot_path_never_misreads_a_value_with_fewer_decimals() -> None:
    parser = BinanceMessageParser(BINANCE_SPOT_BTCUSDT)
    assert parser.levels([["61737.63000000", "1.00000000"]]) == ((6173763, 100_000_000),)
    assert parser.levels([["61737.6", "1.5"]]) == ((6173760, 150_000_000),)
    assert parser.price(".50000000") == 50
    with pytest.raises(RecordingError, match=r"61737\.63500000"):
        parser.levels([["61737.63500000", "1.00000000"]])
