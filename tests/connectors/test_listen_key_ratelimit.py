"""ccxt's own user-data stream requests (the listen key made inside ``watchPositions`` and its
keep-alive on ccxt's timer) spend the account's rate limit like our requests do
(:func:`connectors.ratelimit.route_listen_key_calls`), against the fake Binance USD-M server
through the real ccxt ``binanceusdm`` class."""

from __future__ import annotations

import asyncio

from connectors.ccxt_venue import make_exchange
from connectors.ratelimit import LocalRateLimiter, route_listen_key_calls
from tests.connectors.conftest import binance_markets
from tests.connectors.servers.binance_usdm import FakeBinanceUsdm

SYMBOL = "BTC/USDT:USDT"


def usdm_exchange(fake):
    """ccxt.pro's binanceusdm with keys, pointed at the fake; ccxt's own throttle off."""
    return make_exchange(
        "binanceusdm",
        api_key="test-key",
        secret="test-secret",
        markets=binance_markets(),
        http_base=fake.http_base,
        enable_rate_limit=False,
    )


class Clock:
    now = 1000.0

    def __call__(self) -> float:
        return self.now


async def test_a_listen_key_and_its_keepalive_count_against_the_limiter(fake) -> None:
    usdm = FakeBinanceUsdm(fake).install()
    ex = usdm_exchange(fake)
    clock = Clock()  # frozen: no token comes back, so the bucket shows every request spent
    limiter = LocalRateLimiter(rate=10, burst=20, clock=clock)
    route_listen_key_calls(ex, limiter)
    try:
        ex.options.setdefault("watchPositions", {})["fetchPositionsSnapshot"] = False
        watch = asyncio.create_task(ex.watch_positions([SYMBOL]))
        for _ in range(100):  # ccxt posts the listen key, then opens the websocket with it
            if usdm.stream.connections:
                break
            await asyncio.sleep(0.02)
        assert usdm.stream.connections == 1
        assert [(r.method, r.path) for r in fake.requests if "listenKey" in r.path] == [("POST", "/fapi/v1/listenKey")]
        assert ex.listen_key_requests == 1 and limiter._tokens == 19

        # the keep-alive ccxt schedules every listenKeyRefreshRate (20 min), run now
        await ex.keep_alive_listen_key({"type": "linear"})
        assert [(r.method, r.path) for r in fake.requests if "listenKey" in r.path] == [
            ("POST", "/fapi/v1/listenKey"),
            ("PUT", "/fapi/v1/listenKey"),
        ]
        assert ex.listen_key_requests == 2 and limiter._tokens == 18

        # our own requests are not counted twice: the caller acquires, the route leaves them alone
        await ex.fetch_positions([SYMBOL])
        assert ex.listen_key_requests == 2 and limiter._tokens == 18

        # installed again (a new limiter): the new one is spent, not both
        other = LocalRateLimiter(rate=10, burst=5, clock=clock)
        route_listen_key_calls(ex, other)
        await ex.keep_alive_listen_key({"type": "linear"})
        assert (limiter._tokens, other._tokens, ex.listen_key_requests) == (18, 4, 3)
        watch.cancel()
        await asyncio.gather(watch, return_exceptions=True)
    finally:
        await ex.close()


async def test_a_spent_budget_makes_the_keepalive_wait(fake) -> None:
    """With the bucket empty the keep-alive waits for its token before it is sent."""
    FakeBinanceUsdm(fake).install()
    ex = usdm_exchange(fake)
    waits: list[float] = []

    async def sleep(seconds: float) -> None:
        waits.append(seconds)

    limiter = LocalRateLimiter(rate=2, burst=1, clock=Clock(), sleep=sleep)
    route_listen_key_calls(ex, limiter)
    try:
        ex.options["linear"] = {"listenKey": "k", "lastAuthenticatedTime": 0}
        await limiter.acquire(1)  # the one token spent elsewhere
        await ex.keep_alive_listen_key({"type": "linear"})
        assert waits == [0.5]  # one token at 2 a second
        assert [r.method for r in fake.requests if r.path == "/fapi/v1/listenKey"] == ["PUT"]
    finally:
        await ex.close()
