"""The paper venue's Lua scripts check everything before their first write (issue 23 item 3):
a fill whose balance counter would overflow int64, an order whose size or notional is beyond
64 bits, or a key of the wrong type is refused with an error naming it, and nothing is written
(before, the trade was logged by RPUSH and the HINCRBY after it failed: scripts do not roll back).
Run against the real Redis."""

from __future__ import annotations

import json

import pytest
from redis.exceptions import ResponseError

from workers import keys
from workers.paper_scripts import DELETE, FILL, PUT

INT64_MAX = 2**63 - 1
ACCOUNT, SYMBOL, BOT = 71, "BTC/USDT", 93


@pytest.fixture
def venue_keys(clean_redis):
    k = {
        "lease": keys.bot_lease(BOT),
        "orders": keys.paper(ACCOUNT, SYMBOL, "orders"),
        "trades": keys.paper(ACCOUNT, SYMBOL, "trades"),
        "delta": keys.paper(ACCOUNT, SYMBOL, "delta"),
        "log": keys.place_log(),
        "last": keys.bot_last_place(BOT),
    }
    clean_redis.set(k["lease"], "owner-1")
    return k


def _order(cid: str, price: int, qty: int, filled: int = 0) -> str:
    return json.dumps({"cid": cid, "voi": f"P{ACCOUNT}-{cid}", "side": 1, "price": price, "qty": qty,
                       "filled": filled, "tif": "GTC", "ts": 1})  # fmt: skip


def _fill(r, k, cid: str, blob: str, base: int, notional: int, fee: int, trade_id: str):
    fill = json.dumps({"cid": cid, "side": 1, "price": 1, "qty": base, "fee": fee, "ts": 1})[:-1]
    return r.eval(FILL, 4, k["lease"], k["orders"], k["trades"], k["delta"], "owner-1", cid, blob, fill,
                  base, notional, trade_id, fee)  # fmt: skip


def _put(r, k, cid: str, record: str):
    return r.eval(PUT, 4, k["lease"], k["orders"], k["log"], k["last"], "owner-1", cid, record, "place", BOT, 1)


def _state(r, k) -> tuple:
    return (r.hgetall(k["orders"]), r.lrange(k["trades"], 0, -1), r.hgetall(k["delta"]),
            r.xlen(k["log"]) if r.exists(k["log"]) else 0, r.get(k["last"]))  # fmt: skip


def test_a_fill_whose_balance_counter_would_overflow_is_refused_and_nothing_is_written(clean_redis, venue_keys):
    r, k = clean_redis, venue_keys
    assert _put(r, k, "t9-1", _order("t9-1", 100, 10)) == 1
    assert _fill(r, k, "t9-1", _order("t9-1", 100, 10, 5), 5, -500, 1, "tr-1") == b"tr-1"
    r.hset(k["delta"], "base", INT64_MAX - 7)  # (as a long run, or an absurd size, would leave it)
    before = _state(r, k)
    with pytest.raises(ResponseError) as info:
        _fill(r, k, "t9-1", "", 8, -800, 1, "tr-2")
    message = str(info.value)
    assert "refused before writing" in message and "tr-2" in message
    assert f"base {INT64_MAX - 7} + 8 overflows a 64-bit counter" in message
    assert _state(r, k) == before  # no trade logged, the order untouched, no counter moved
    # The same fill within range goes through, exactly to the int64 maximum.
    assert _fill(r, k, "t9-1", "", 7, -700, 1, "tr-3") == b"tr-3"
    assert int(r.hget(k["delta"], "base")) == INT64_MAX and r.llen(k["trades"]) == 2


@pytest.mark.parametrize(
    ("counter", "start", "delta"),
    [("notional", -(2**63) + 10, -11), ("fees", INT64_MAX, 1), ("notional", 0, "1" + "0" * 19)],
)
def test_every_counter_is_checked_both_ways(clean_redis, venue_keys, counter, start, delta):
    r, k = clean_redis, venue_keys
    r.hset(k["delta"], counter, start)
    args = {"base": 1, "notional": -100, "fee": 0}
    args[{"notional": "notional", "fees": "fee"}[counter]] = delta
    before = _state(r, k)
    with pytest.raises(ResponseError, match=counter):
        _fill(r, k, "t9-2", "", args["base"], args["notional"], args["fee"], "tr-9")
    assert _state(r, k) == before
    # the lower bound itself is representable
    r.hset(k["delta"], "notional", -(2**63) + 10)
    assert _fill(r, k, "t9-2", "", 1, -10, 0, "tr-10") == b"tr-10"
    assert int(r.hget(k["delta"], "notional")) == -(2**63)


@pytest.mark.parametrize(
    ("price", "qty", "expected"),
    [(100, 2**63, "beyond int64"), (10**10, 10**9, "notional"), (100, 0, "not positive"), (-5, 1, "not positive")],
)
def test_a_place_beyond_64_bits_is_refused_before_it_is_stored_logged_or_marked(
    clean_redis, venue_keys, price, qty, expected
):
    r, k = clean_redis, venue_keys
    with pytest.raises(ResponseError, match=expected):
        _put(r, k, "t9-3", _order("t9-3", price, qty))
    assert _state(r, k) == ({}, [], {}, 0, None)


def test_a_key_of_the_wrong_type_is_refused_before_the_order_is_touched(clean_redis, venue_keys):
    r, k = clean_redis, venue_keys
    assert _put(r, k, "t9-4", _order("t9-4", 100, 10)) == 1
    r.set(k["trades"], "not a list")
    with pytest.raises(ResponseError, match="holds a string, not a list"):
        _fill(r, k, "t9-4", "", 10, -1000, 1, "tr-4")
    assert r.hexists(k["orders"], "t9-4") and r.hgetall(k["delta"]) == {}  # before: the order was removed
    r.delete(k["log"])
    r.set(k["log"], "x")
    with pytest.raises(ResponseError, match="not a stream"):
        r.eval(DELETE, 3, k["lease"], k["orders"], k["log"], "owner-1", "t9-4", "cancel", BOT, 1)
    assert r.hexists(k["orders"], "t9-4")


def test_a_lost_lease_still_answers_0_before_anything_is_checked(clean_redis, venue_keys):
    r, k = clean_redis, venue_keys
    r.set(k["lease"], "owner-2")
    assert _put(r, k, "t9-5", _order("t9-5", 100, 2**63)) == 0
    assert _state(r, k) == ({}, [], {}, 0, None)


def test_compact_json_records_are_read_as_well(clean_redis, venue_keys):
    r, k = clean_redis, venue_keys
    record = json.dumps(json.loads(_order("t9-6", 100, 10)), separators=(",", ":"))
    assert _put(r, k, "t9-6", record) == 1
    with pytest.raises(ResponseError, match="beyond int64"):
        _put(r, k, "t9-7", record.replace('"qty":10', f'"qty":{2**64}'))


def test_the_overflow_check_is_exact_at_every_magnitude(clean_redis, venue_keys):
    import random

    r, k = clean_redis, venue_keys
    rng = random.Random(23)
    edges = [0, 1, 10**9 - 1, 10**9, 10**15 - 1, 10**15, 2**53, 2**62, 2**63 - 1]
    values = edges + [-e for e in edges] + [-(2**63)]
    cases = [(rng.choice(values) + rng.randint(-3, 3), rng.choice(values) + rng.randint(-3, 3)) for _ in range(150)]
    cases += [(2**63 - 1 - d, d) for d in (5, 6)] + [(-(2**63) + 5, -5), (-(2**63) + 5, -6), (5, 2**63 - 6)]
    seen = {True: 0, False: 0}
    for n, (current, delta) in enumerate(cases):
        if not -(2**63) <= current < 2**63:
            continue  # a counter Redis would never hold
        r.delete(k["delta"], k["trades"])
        r.hset(k["delta"], "base", current)
        fits = -(2**63) <= delta < 2**63 and -(2**63) <= current + delta < 2**63
        seen[fits] += 1
        try:
            _fill(r, k, "t9-8", "", delta, 0, 0, f"x{n}")
        except ResponseError as exc:
            assert not fits, (current, delta, str(exc))
            assert int(r.hget(k["delta"], "base")) == current and r.llen(k["trades"]) == 0
        else:
            assert fits, (current, delta)
            assert int(r.hget(k["delta"], "base")) == current + delta
    assert seen[True] > 30 and seen[False] > 10, seen
