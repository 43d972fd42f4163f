"""A paper venue reads its trade log from the end, a chunk at a time, down to what it may have
missed: a take-over does not read the whole log every bot of the account shares."""

from __future__ import annotations

import asyncio
import json

from workers import paper_venue


def _entry(cid: str, ts: int, n: int) -> str:
    return json.dumps({"cid": cid, "voi": "v", "side": 1, "price": 100, "qty": 1, "leaves": 0, "fee": 0,
                       "maker": True, "ts": ts, "id": f"t{n}"})  # fmt: skip


def test_trades_are_read_back_to_the_time_asked_and_each_once_while_others_append(clean_redis):
    import redis.asyncio as aioredis
    from django.conf import settings

    from trading.instruments import Instrument
    from workers import keys

    inst = Instrument.create(symbol="BTC/USDT", tick_size="0.01", lot_size="0.0001")
    key = keys.paper(7, "BTC/USDT", "trades")
    second = 1_000_000_000
    t0 = 1_800_000_000 * second
    # 3,500 trades a second apart; every third is ours (prefix "t9"), the others another bot's.
    entries = [_entry("t9-1" if n % 3 == 0 else "zz-1", t0 + n * second, n) for n in range(3500)]
    clean_redis.rpush(key, *entries)
    ours = [n for n in range(3500) if n % 3 == 0]

    async def scenario():
        client = aioredis.Redis.from_url(settings.REDIS_URL)
        venue = paper_venue.PaperVenue(client, account_id=7, instrument=inst, bot_id=9, prefix="t9",
                                       lease_key=keys.bot_lease(9))  # fmt: skip
        calls = []
        real = client.lrange

        async def lrange(name, start, end):
            calls.append((start, end))
            got = await real(name, start, end)
            if len(calls) == 1:  # another bot appends meanwhile: the chunks shift by 5
                await client.rpush(key, *[_entry("zz-1", t0 + (4000 + i) * second, 4000 + i) for i in range(5)])
            return got

        client.lrange = lrange
        everything = await venue.fetch_my_trades(0)
        whole_log = len(calls)
        calls.clear()
        since = t0 + 3000 * second
        recent = await venue.fetch_my_trades(since)
        await client.aclose()
        return everything, whole_log, recent, len(calls)

    everything, whole_log, recent, recent_calls = asyncio.run(scenario())
    assert [f.trade_id for f in everything] == [f"t{n}" for n in ours]  # in order, none twice
    assert whole_log == 4  # 3,505 entries in chunks of 1,000
    assert [f.trade_id for f in recent] == [f"t{n}" for n in ours if n >= 3000]
    # Back to the time asked less the clock margin (60 s: the 1,000 entries down to #2505).
    assert recent_calls == 1
