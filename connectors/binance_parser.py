"""Binance market-data messages -> events, with exact numbers.

Decimal strings become integer ticks / lots with integer arithmetic only (:func:`decimal_parser`),
never through a float; :class:`BinanceMessageParser` turns one decoded message (a combined-stream
envelope's ``data`` or a REST ``/depth`` snapshot) into an event, learning the venue's fixed number
format from the first value for a one-slice hot path. The recording readers
(:mod:`connectors.binance_recording`) and the upload checks (``apps.research.recordings``) use it.
"""

from __future__ import annotations

import re
from collections.abc import Callable
from decimal import Decimal

from connectors.binance_lines import LineDecoder
from trading.events import BookDelta, BookSnapshot, TopOfBook, TradeTick
from trading.instruments import Instrument, Side

__all__ = ["BinanceMessageParser", "RecordingError", "decimal_parser", "fixed_decimals_format"]

_BUY = Side.BUY
_SELL = Side.SELL


class RecordingError(ValueError):
    """A recorded line or value cannot be read; the message names the field and the value."""


# ---------------------------------------------------------------------------------------------
# Exact decimal strings -> integer units
# ---------------------------------------------------------------------------------------------
_PLAIN_DECIMAL = re.compile(r"[+-]?(?:[0-9]+\.?[0-9]*|\.[0-9]+)")


def decimal_parser(step: Decimal, field_name: str = "value", *, strict: bool = True) -> Callable[[str], int]:
    """Return a function turning a plain decimal string into an exact integer count of ``step``.

    ``"61737.63000000"`` with step ``0.01`` gives ``6173763``. Only integer arithmetic is used;
    a value that is not a whole multiple of ``step`` (or not a plain decimal) raises
    :class:`RecordingError`. ``strict`` first checks the text is a plain ASCII decimal
    (``[+-]digits[.digits]``); the non-strict variant skips that check (``int()`` then also
    lets through ``_`` separators and surrounding whitespace) and is for the hot path of a
    trusted venue feed, where it is several times faster than ``Decimal`` + ``Instrument.ticks``.
    """
    sign, digits, exponent = step.normalize().as_tuple()
    if sign or step <= 0 or not isinstance(exponent, int):
        raise ValueError(f"step: {step!r} must be a positive finite decimal")
    mantissa = int("".join(map(str, digits)))
    scale = max(0, -exponent)  # decimals of the step
    if exponent > 0:
        mantissa *= 10**exponent
    pow10 = [10**i for i in range(40)]

    def parse(text: str) -> int:
        try:
            dot = text.find(".")
            if dot < 0:
                units = int(text) * pow10[scale]
            else:
                decimals = len(text) - dot - 1
                raw = int(text[:dot] + text[dot + 1 :]) if decimals else int(text[:dot])
                if decimals == scale:
                    units = raw
                elif decimals > scale:
                    units, rest = divmod(raw, pow10[decimals - scale])
                    if rest:
                        raise RecordingError(f"{field_name}: {text!r} is not a multiple of {step}")
                else:
                    units = raw * pow10[scale - decimals]
        except (ValueError, IndexError, TypeError, AttributeError) as exc:
            if isinstance(exc, RecordingError):
                raise
            raise RecordingError(f"{field_name}: {text!r} is not a plain decimal number such as '0.01'") from exc
        if mantissa != 1:
            units, rest = divmod(units, mantissa)
            if rest:
                raise RecordingError(f"{field_name}: {text!r} is not a multiple of {step}")
        return units

    if not strict:
        return parse

    def parse_strict(text: str) -> int:
        if type(text) is not str or _PLAIN_DECIMAL.fullmatch(text) is None:
            raise RecordingError(f"{field_name}: {text!r} is not a plain decimal number such as '0.01'")
        return parse(text)

    return parse_strict


# ---------------------------------------------------------------------------------------------
# Messages -> events
# ---------------------------------------------------------------------------------------------
def fixed_decimals_format(step: Decimal, sample: str) -> tuple[int, int | None, str] | None:
    """Describe how to read strings shaped like ``sample`` (same number of decimals) exactly.

    Return ``(dot_index, cut, zeros)`` for the hot-path expression
    ``int(s[:cut].replace(".", "", 1)) if s[dot_index] == "." and s.endswith(zeros)``: the dot
    must sit exactly ``d`` characters from the end and the ``d - k`` digits finer than the step
    (``10**-k``) must be zeros, so the integer is exact. ``None`` when no such shortcut exists
    (a step that is not a power of ten, or samples with fewer decimals than the step).
    """
    _sign, digits, exponent = step.normalize().as_tuple()
    if digits != (1,) or not isinstance(exponent, int) or exponent > 0:
        return None
    k = -exponent
    dot = sample.find(".")
    if dot < 0:
        # Whole numbers (COIN-M contracts, a lot of 1): ``(0, None, "")``, no dot to find.
        return (0, None, "") if k == 0 and sample.isascii() and sample.isdigit() else None
    d = len(sample) - dot - 1
    if d < k or d == 0:
        return None
    extra = d - k
    return -(d + 1), (-extra if extra else None), "0" * extra


class BinanceMessageParser:
    """Turn one decoded Binance message (envelope or REST snapshot) into an event.

    Binance formats every price and quantity of a market with a fixed number of decimals
    (``"61737.63000000"``). The parser learns that shape from the first value and then reads
    each number with one slice, one ``replace`` and one ``int`` — exact, because the shape and
    the zero tail are checked on every value; any value of another shape goes through the
    general exact parser (:func:`decimal_parser`), which raises :class:`RecordingError` for
    values off the tick or lot grid.
    """

    def __init__(self, instrument: Instrument) -> None:
        self.instrument = instrument
        self._price = decimal_parser(instrument.tick_size, "price", strict=False)
        self._qty = decimal_parser(instrument.lot_size, "qty", strict=False)
        self._formats_ready = False
        #: Raw-line decoder for the common message shapes, once the number formats are learned.
        self.line_decoder: LineDecoder | None = None
        # Until learned, the zero tail "\x00" never matches: every value takes the exact slow path.
        self._p_fmt: tuple[int, int | None, str] = (0, None, "\x00")
        self._q_fmt: tuple[int, int | None, str] = (0, None, "\x00")

    def _learn(self, price: str, qty: str) -> None:
        p_fmt = fixed_decimals_format(self.instrument.tick_size, price)
        q_fmt = fixed_decimals_format(self.instrument.lot_size, qty)
        # A format that cannot be used keeps the impossible check: every value takes the slow path.
        self._p_fmt = p_fmt or (0, None, "\x00")
        self._q_fmt = q_fmt or (0, None, "\x00")
        self._formats_ready = True
        self.line_decoder = LineDecoder.for_formats(p_fmt, q_fmt)

    def price(self, text: str) -> int:
        """Price string -> ticks (exact)."""
        dot, cut, zeros = self._p_fmt
        if type(text) is str and len(text) > -dot and text[dot] == "." and text.endswith(zeros):
            try:
                return int(text[:cut].replace(".", "", 1))
            except ValueError:
                pass
        return self._price(text)

    def qty(self, text: str) -> int:
        """Quantity string -> lots (exact)."""
        dot, cut, zeros = self._q_fmt
        if type(text) is str and len(text) > -dot and text[dot] == "." and text.endswith(zeros):
            try:
                return int(text[:cut].replace(".", "", 1))
            except ValueError:
                pass
        return self._qty(text)

    def levels(self, raw: list[list[str]]) -> tuple[tuple[int, int], ...]:
        """Parse ``[[price, qty], ...]`` into ``((ticks, lots), ...)``."""
        if not raw:
            return ()
        if not self._formats_ready:
            self._learn(raw[0][0], raw[0][1])
        pd, pc, pz = self._p_fmt
        qd, qc, qz = self._q_fmt
        slow_p = self._price
        slow_q = self._qty
        try:
            if qc is None and not qz:  # quantities carry exactly the lot's decimals: no zero tail to check
                return tuple(
                    [
                        (
                            int(p[:pc].replace(".", "", 1)) if p[pd] == "." and p.endswith(pz) else slow_p(p),
                            int(q.replace(".", "", 1)) if q[qd] == "." else slow_q(q),
                        )
                        for p, q in raw
                    ]
                )
            return tuple(
                [
                    (
                        int(p[:pc].replace(".", "", 1)) if p[pd] == "." and p.endswith(pz) else slow_p(p),
                        int(q[:qc].replace(".", "", 1)) if q[qd] == "." and q.endswith(qz) else slow_q(q),
                    )
                    for p, q in raw
                ]
            )
        except (ValueError, IndexError, TypeError, AttributeError):
            # Some value is not shaped as learned: read every level the careful way (errors name it).
            return tuple([(self.price(p), self.qty(q)) for p, q in raw])

    def snapshot(self, ts: int, msg: dict) -> BookSnapshot:
        """A REST ``/depth`` answer."""
        venue_ms = msg.get("E") or msg.get("T") or 0
        return BookSnapshot(
            ts=ts,
            bids=self.levels(msg["bids"]),
            asks=self.levels(msg["asks"]),
            sequence=msg["lastUpdateId"],
            venue_ts=venue_ms * 1_000_000,
        )

    def depth(self, ts: int, data: dict) -> BookDelta:
        """A ``depthUpdate`` (``U``..``u``; futures also ``pu``)."""
        return BookDelta(
            ts,
            self.levels(data["b"]),
            self.levels(data["a"]),
            data["U"],
            data["u"],
            data.get("pu", 0),
            data.get("E", 0) * 1_000_000,
        )

    def book_ticker(self, ts: int, data: dict) -> TopOfBook:
        """A ``bookTicker``: best bid/ask as of update id ``u``."""
        if not self._formats_ready:
            self._learn(data["b"], data["B"])
        bid, bid_qty, ask, ask_qty = data["b"], data["B"], data["a"], data["A"]
        pd, pc, pz = self._p_fmt
        qd, qc, qz = self._q_fmt
        try:
            # The hot path of ~3 in 4 messages: the four numbers inline, exact (see ``levels``).
            if (
                bid[pd] == "."
                and ask[pd] == "."
                and bid_qty[qd] == "."
                and ask_qty[qd] == "."
                and bid.endswith(pz)
                and ask.endswith(pz)
                and bid_qty.endswith(qz)
                and ask_qty.endswith(qz)
            ):
                return TopOfBook(
                    ts,
                    int(bid[:pc].replace(".", "", 1)),
                    int(bid_qty[:qc].replace(".", "", 1)),
                    int(ask[:pc].replace(".", "", 1)),
                    int(ask_qty[:qc].replace(".", "", 1)),
                    data["u"],
                    data.get("E", 0) * 1_000_000,
                )
        except (IndexError, ValueError, TypeError, AttributeError):
            pass
        return TopOfBook(
            ts,
            self.price(bid),
            self.qty(bid_qty),
            self.price(ask),
            self.qty(ask_qty),
            data["u"],
            data.get("E", 0) * 1_000_000,
        )

    def trade(self, ts: int, data: dict) -> TradeTick | None:
        """A ``trade``; ``m`` (buyer is maker) means the aggressor sold. Non-market futures
        prints (``X`` other than ``MARKET``, e.g. insurance-fund fills) give ``None``."""
        kind = data.get("X")
        if kind is not None and kind != "MARKET":
            return None
        price, qty = data["p"], data["q"]
        if not self._formats_ready:
            self._learn(price, qty)
        pd, pc, pz = self._p_fmt
        qd, qc, qz = self._q_fmt
        try:
            if price[pd] == "." and qty[qd] == "." and price.endswith(pz) and qty.endswith(qz):
                price_ticks = int(price[:pc].replace(".", "", 1))
                qty_lots = int(qty[:qc].replace(".", "", 1))
            else:
                price_ticks, qty_lots = self.price(price), self.qty(qty)
        except (IndexError, ValueError, TypeError, AttributeError):
            price_ticks, qty_lots = self.price(price), self.qty(qty)
        return TradeTick(
            ts,
            price_ticks,
            qty_lots,
            _SELL if data["m"] else _BUY,
            str(data["t"]),
            data.get("T", 0) * 1_000_000,
        )
