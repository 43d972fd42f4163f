"""One place that turns "which venue" into a feed and a gateway.

Two entry points:

- :func:`build_feed` for the hosted feeds (``workers/feeds.py``): a venue string as stored on a
  ``exchanges.Market`` row -- ``replay:<name>`` (a shipped recording, see
  :data:`REPLAY_RECORDINGS`), ``sim:<name>`` (:func:`connectors.sim.hosted_feed`, the same
  market in every process) or a ccxt exchange id (a live feed built on first connect). Feeds
  publish in the *market's* instrument: when the source's tick or lot differs (the Binance
  recording's lot is 1e-8, the seeded market's 1e-5), :class:`Converter` converts once, so bot
  loops never convert.
- :class:`VenueFactory` for code that builds its own feed and gateway from a :class:`VenueSpec`
  (the connector tests, and the live feed behind :func:`build_feed`).

A :class:`VenueSpec` names the kind and ids:

- ``live``: ``venue`` is a ccxt exchange id (``binance``, ``backpack``, ...), credentials for
  order entry; the feed is :class:`CcxtFeed`, the gateway :class:`CcxtGateway` (rate limited
  per exchange account — through Redis when ``redis_url`` is given, so all bots on the account
  share one budget);
- ``replay``: ``venue`` is a shipped recording name (``binance-spot-btcusdt``); feed
  :class:`connectors.replay.ReplayFeed`;
- ``sim``: ``venue`` is the simulated venue's name; feeds of the same ``seed`` (and ``venues``
  list) play one :class:`trading.synthetic.market.SyntheticMarket`, so several sim venues are
  correlated; options ``speed`` (1 = real time), ``start_ts`` (market time at connect; default
  the wall clock at speed 1, else 0), ``start_price``.

Paper order entry (on any kind) is the hosted paper venue, :class:`workers.paper_venue.PaperVenue`;
replay and sim specs have no gateway here.
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass, field
from decimal import Decimal
from typing import Any

from connectors.ccxt_feed import CcxtFeed
from connectors.ccxt_gateway import CcxtGateway
from connectors.ccxt_venue import make_exchange
from connectors.markets import MarketCache
from connectors.ratelimit import LocalRateLimiter, RateLimiter, RedisRateLimiter, rate_limit_key
from connectors.sim import SimFeed, hosted_feed
from trading.events import BookDelta, BookSnapshot, TopOfBook, TradeTick
from trading.instruments import Instrument
from trading.ports import MarketDataFeed, OrderGateway
from trading.synthetic.market import SyntheticMarket, VenueProfile

KINDS = ("live", "replay", "sim")

SIM_INSTRUMENT = Instrument.create(
    symbol="SIM/USD", tick_size="0.01", lot_size="0.001", maker_fee="0.0001", taker_fee="0.0005", venue="sim"
)


@dataclass(frozen=True)
class VenueSpec:
    """Which venue, which market, and how to reach it."""

    kind: str
    venue: str
    symbol: str = ""
    account_id: str = ""
    api_key: str = ""
    secret: str = ""
    password: str = ""
    sandbox: bool = False
    options: dict[str, Any] = field(default_factory=dict)

    def __post_init__(self) -> None:
        if self.kind not in KINDS:
            raise ValueError(f"kind: {self.kind!r} is not a venue kind; accepted: {', '.join(KINDS)}")
        if not self.venue:
            raise ValueError(f"venue: empty; give a ccxt id, a recording name or a sim venue name for {self.kind}")
        if self.kind == "live" and not self.symbol:
            raise ValueError("symbol: empty; a live venue needs a market symbol such as 'BTC/USDT'")


class VenueFactory:
    """Builds feeds and gateways; keeps shared sim markets and market caches per process."""

    def __init__(self, *, redis_url: str | None = None) -> None:
        self.redis_url = redis_url
        self._sim_markets: dict[tuple, SyntheticMarket] = {}

    # --- instruments ------------------------------------------------------------------------
    async def instrument(self, spec: VenueSpec) -> Instrument:
        """The instrument a spec trades (live: from the exchange's markets)."""
        if spec.kind == "replay":
            from connectors.binance_recording import RECORDINGS

            if spec.venue not in RECORDINGS:
                raise ValueError(f"venue: {spec.venue!r} is not a shipped recording; accepted: {sorted(RECORDINGS)}")
            return RECORDINGS[spec.venue].instrument
        if spec.kind == "sim":
            return spec.options.get("instrument", SIM_INSTRUMENT)
        exchange = self._exchange(spec, streaming=False)
        try:
            return await MarketCache(exchange).instrument(spec.symbol)
        finally:
            await exchange.close()

    def _exchange(self, spec: VenueSpec, *, streaming: bool) -> Any:
        return make_exchange(
            spec.venue,
            api_key=spec.api_key or None,
            secret=spec.secret or None,
            password=spec.password or None,
            streaming=streaming,
            sandbox=spec.sandbox,
            options=spec.options.get("ccxt_options"),
            http_base=spec.options.get("http_base"),
        )

    # --- feeds ------------------------------------------------------------------------------
    async def feed(self, spec: VenueSpec) -> MarketDataFeed:
        """A market-data feed for the spec (not yet connected)."""
        if spec.kind == "replay":
            from connectors.replay import ReplayFeed

            return ReplayFeed.from_recording(spec.venue, speed=float(spec.options.get("speed", 1.0)))
        if spec.kind == "sim":
            speed = float(spec.options.get("speed", 1.0))
            start_ts = spec.options.get("start_ts")
            if start_ts is None and speed != 1:
                start_ts = 0
            return SimFeed(self.sim_market(spec), spec.venue, speed=speed, start_ts=start_ts)
        exchange = self._exchange(spec, streaming=True)
        cache = MarketCache(exchange)
        instrument = await cache.instrument(spec.symbol)
        return CcxtFeed(exchange, instrument, depth=int(spec.options.get("depth", 20)))

    def sim_market(self, spec: VenueSpec) -> SyntheticMarket:
        """The market behind a sim venue (one per seed, venue list and instrument). The market is
        a function of time, so sharing it only saves recomputing; any two give the same events."""
        seed = int(spec.options.get("seed", 0))
        venues = tuple(spec.options.get("venues") or (spec.venue,))
        instrument = spec.options.get("instrument", SIM_INSTRUMENT)
        start_price = float(spec.options.get("start_price", 100.0))
        key = (seed, venues, instrument, start_price)
        market = self._sim_markets.get(key)
        if market is None:
            profiles = [v if isinstance(v, VenueProfile) else VenueProfile(str(v)) for v in venues]
            market = SyntheticMarket(instrument, profiles, seed=seed, start_price=start_price, snapshot_every=50)
            self._sim_markets[key] = market
        return market

    # --- gateways ---------------------------------------------------------------------------
    def rate_limiter(self, spec: VenueSpec, exchange: Any) -> RateLimiter:
        """The account's limiter: ccxt's published request rate, shared through Redis if set."""
        rate = 1000.0 / float(getattr(exchange, "rateLimit", 100) or 100)
        rate = float(spec.options.get("rate", rate))
        burst = float(spec.options.get("burst", max(1.0, rate)))
        if self.redis_url and spec.account_id:
            return RedisRateLimiter(self.redis_url, rate_limit_key(spec.venue, spec.account_id), rate, burst)
        return LocalRateLimiter(rate, burst)

    async def gateway(self, spec: VenueSpec) -> OrderGateway:
        """A live ccxt order gateway, rate limited per exchange account."""
        if spec.kind != "live":
            raise ValueError(
                f"kind: {spec.kind!r} has no order gateway; only 'live' does (paper order entry on "
                "replay and sim venues is the hosted paper venue, workers.paper_venue.PaperVenue)"
            )
        exchange = self._exchange(spec, streaming=True)
        return CcxtGateway(exchange, limiter=self.rate_limiter(spec, exchange))


# --- hosted feeds: a venue string of an ``exchanges.Market`` row -> feed ---------------------
REPLAY_RECORDINGS = {
    ("replay:binance-spot", "BTC/USDT"): "binance-spot-btcusdt",
    ("replay:binance-usdm", "BTC/USDT:USDT"): "binance-usdm-btcusdt",
    ("replay:binance-coinm", "BTC/USD:BTC"): "binance-coinm-btcusd",
}


# The simulated venues served here with their markets' symbols. Any ``sim:<name>`` plays the hosted
# synthetic market (:func:`connectors.sim.hosted_feed`); these are the ones whose markets are seeded
# (apps/exchanges migrations 0002 and 0006). A ``BASE/QUOTE:SETTLE`` symbol is a perpetual swap.
SIM_VENUES = {
    "sim:alpha": ("BTC/USDT",),
    "sim:beta": ("BTC/USDT",),
    "sim:gamma": ("BTC/USDT:USDT",),
    "sim:delta": ("BTC/USDT:USDT",),
}


def paper_venues() -> dict[str, tuple[str, ...]]:
    """Every replay and sim venue served here with its symbols, in order: the replay venues of
    :data:`REPLAY_RECORDINGS`, then :data:`SIM_VENUES`."""
    out: dict[str, tuple[str, ...]] = {}
    for venue, symbol in REPLAY_RECORDINGS:
        out[venue] = (*out.get(venue, ()), symbol)
    for venue, symbols in SIM_VENUES.items():
        out[venue] = (*out.get(venue, ()), *symbols)
    return out


def is_perpetual_symbol(symbol: str) -> bool:
    """ccxt's unified swap symbol, ``BASE/QUOTE:SETTLE`` (``BTC/USDT:USDT``, ``BTC/USD:BTC``)."""
    return ":" in symbol


class UnsupportedVenue(ValueError):
    """No feed can serve this venue/symbol here."""


def build_feed(venue: str, instrument: Instrument, *, speed: float = 1.0):
    """Return a ``MarketDataFeed`` for the venue and the market instrument."""
    kind, _, name = venue.partition(":")
    if kind == "replay":
        from connectors.binance_recording import RECORDINGS
        from connectors.replay import ReplayFeed
        from connectors.validation import FeedValidator

        recording = REPLAY_RECORDINGS.get((venue, instrument.symbol))
        if recording is None:
            raise UnsupportedVenue(
                f"venue: no recording for {venue} {instrument.symbol}; accepted: "
                + ", ".join(f"{v} {s}" for v, s in REPLAY_RECORDINGS)
            )
        validator = FeedValidator(RECORDINGS[recording].instrument, max_staleness_ns=60_000_000_000)
        return ReplayFeed.from_recording(recording, speed=speed, validator=validator)
    if kind == "sim" and name:
        return hosted_feed(venue, instrument)
    if kind and not name:  # a ccxt exchange id: live public market data through ccxt.pro / REST
        return _LiveFeed(venue, instrument)
    raise UnsupportedVenue(f"venue: {venue!r} is not a ccxt id, 'replay:<name>' or 'sim:<name>'")


class _LiveFeed:
    """A live ccxt feed built on first connect (:class:`VenueFactory` builds it asynchronously)."""

    def __init__(self, venue: str, instrument: Instrument) -> None:
        self.venue = venue
        self.instrument = instrument
        self._feed = None

    @property
    def stats(self):
        return getattr(self._feed, "stats", None)

    async def connect(self) -> None:
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
            return dataclasses.replace(ev, bids=self.levels(ev.bids), asks=self.levels(ev.asks))
        if t is TradeTick:
            return dataclasses.replace(ev, price=self.price(ev.price), qty=self.qty(ev.qty))
        if t is TopOfBook:
            return dataclasses.replace(
                ev,
                bid_price=self.price(ev.bid_price),
                bid_qty=self.qty(ev.bid_qty),
                ask_price=self.price(ev.ask_price),
                ask_qty=self.qty(ev.ask_qty),
            )
        return ev
