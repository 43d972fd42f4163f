"""One place that turns "which venue" into a feed and a gateway.

A :class:`VenueSpec` names the kind and ids:

- ``live``: ``venue`` is a ccxt exchange id (``binance``, ``backpack``, ...), credentials for
  order entry; the feed is :class:`CcxtFeed`, the gateway :class:`CcxtGateway` (rate limited
  per exchange account — through Redis when ``redis_url`` is given, so all bots on the account
  share one budget);
- ``replay``: ``venue`` is a shipped recording name (``binance-spot-btcusdt``); feed
  :class:`connectors.replay.ReplayFeed`;
- ``sim``: ``venue`` is the simulated venue's name; feeds of the same ``seed`` (and ``venues``
  list) share one generator, so several sim venues are correlated.

Paper order entry (on any kind) is the hosted paper venue, :class:`workers.paper_venue.PaperVenue`;
replay and sim specs have no gateway here.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from connectors.ccxt_feed import CcxtFeed
from connectors.ccxt_gateway import CcxtGateway
from connectors.ccxt_venue import make_exchange
from connectors.markets import MarketCache
from connectors.ratelimit import LocalRateLimiter, RateLimiter, RedisRateLimiter, rate_limit_key
from connectors.sim import SimFeed, SimMarket, multi_venue_market, single_venue_market
from trading.instruments import Instrument
from trading.ports import MarketDataFeed, OrderGateway

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
        self._sim_markets: dict[tuple, SimMarket] = {}

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
            return SimFeed(self.sim_market(spec), spec.venue, await self.instrument(spec))
        exchange = self._exchange(spec, streaming=True)
        cache = MarketCache(exchange)
        instrument = await cache.instrument(spec.symbol)
        return CcxtFeed(exchange, instrument, depth=int(spec.options.get("depth", 20)))

    def sim_market(self, spec: VenueSpec) -> SimMarket:
        """The shared generator behind a sim venue (one per seed and venue list)."""
        seed = int(spec.options.get("seed", 0))
        venues = tuple(spec.options.get("venues") or (spec.venue,))
        speed = float(spec.options.get("speed", 1.0))
        key = (seed, venues, speed)
        market = self._sim_markets.get(key)
        if market is None:
            instrument = spec.options.get("instrument", SIM_INSTRUMENT)
            if len(venues) > 1:
                market = multi_venue_market(instrument, list(venues), seed=seed, speed=speed)
            else:
                market = single_venue_market(instrument, venue=venues[0], seed=seed, speed=speed)
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
