"""Which market-data feed serves a (venue, symbol): replay recordings, sim venues, live ccxt.

Feeds publish in the *market's* instrument (the ``exchanges.Market`` row): when the source's
tick or lot differs (the Binance recording's lot is 1e-8, the seeded market's 1e-5), sizes and
prices are converted once here, so bot loops never convert.
"""

from __future__ import annotations

from decimal import Decimal

from trading.events import BookDelta, BookSnapshot, TopOfBook, TradeTick
from trading.instruments import Instrument

REPLAY_RECORDINGS = {
    ("replay:binance-spot", "BTC/USDT"): "binance-spot-btcusdt",
    ("replay:binance-usdm", "BTC/USDT:USDT"): "binance-usdm-btcusdt",
}


class UnsupportedVenue(ValueError):
    """No feed can serve this venue/symbol here."""


def build_feed(venue: str, instrument: Instrument, *, speed: float = 1.0):
    """Return a ``MarketDataFeed`` for the venue and the market instrument."""
    kind, _, name = venue.partition(":")
    if kind == "replay":
        from connectors.replay import ReplayFeed
        from connectors.validation import FeedValidator

        recording = REPLAY_RECORDINGS.get((venue, instrument.symbol))
        if recording is None:
            raise UnsupportedVenue(
                f"venue: no recording for {venue} {instrument.symbol}; accepted: "
                + ", ".join(f"{v} {s}" for v, s in REPLAY_RECORDINGS)
            )
        from connectors.binance_recording import RECORDINGS

        validator = FeedValidator(RECORDINGS[recording].instrument, max_staleness_ns=60_000_000_000)
        return ReplayFeed.from_recording(recording, speed=speed, validator=validator)
    if kind == "sim":
        from workers.simvenue import SimFeed

        return SimFeed(venue, instrument)
    if kind and not name:  # a ccxt exchange id: live public market data through ccxt.pro / REST
        return _LiveFeed(venue, instrument)
    raise UnsupportedVenue(f"venue: {venue!r} is not a ccxt id, 'replay:<name>' or 'sim:<name>'")


class _LiveFeed:
    """A live ccxt feed built on first connect (``connectors.venues`` builds it asynchronously)."""

    def __init__(self, venue: str, instrument: Instrument) -> None:
        self.venue = venue
        self.instrument = instrument
        self._feed = None

    @property
    def stats(self):
        return getattr(self._feed, "stats", None)

    async def connect(self) -> None:
        from connectors.venues import VenueFactory, VenueSpec

        self._feed = await VenueFactory().feed(VenueSpec(kind="live", venue=self.venue, symbol=self.instrument.symbol))
        self.instrument = getattr(self._feed, "instrument", self.instrument)
        await self._feed.connect()

    async def close(self) -> None:
        if self._feed is not None:
            await self._feed.close()

    def events(self):
        return self._feed.events()


class Converter:
    """Convert events from a source instrument's ticks/lots to the market instrument's."""

    def __init__(self, source: Instrument, target: Instrument) -> None:
        self.identity = source.tick_size == target.tick_size and source.lot_size == target.lot_size
        self._p = source.tick_size / target.tick_size
        self._q = source.lot_size / target.lot_size
        self._p_int = int(self._p) if self._p == self._p.to_integral_value() else None
        self._q_int = int(self._q) if self._q == self._q.to_integral_value() else None

    def price(self, p: int) -> int:
        if self._p_int is not None:
            return p * self._p_int
        return int(Decimal(p) * self._p)

    def qty(self, q: int) -> int:
        if q == 0:
            return 0
        if self._q_int is not None:
            return q * self._q_int
        return max(1, int(Decimal(q) * self._q))  # a displayed level never vanishes by rounding

    def levels(self, levels):
        return tuple((self.price(p), self.qty(q)) for p, q in levels)

    def event(self, ev):
        if self.identity:
            return ev
        t = type(ev)
        if t is BookSnapshot or t is BookDelta:
            import dataclasses

            return dataclasses.replace(ev, bids=self.levels(ev.bids), asks=self.levels(ev.asks))
        if t is TradeTick:
            import dataclasses

            return dataclasses.replace(ev, price=self.price(ev.price), qty=self.qty(ev.qty))
        if t is TopOfBook:
            import dataclasses

            return dataclasses.replace(
                ev,
                bid_price=self.price(ev.bid_price),
                bid_qty=self.qty(ev.bid_qty),
                ask_price=self.price(ev.ask_price),
                ask_qty=self.qty(ev.ask_qty),
            )
        return ev
