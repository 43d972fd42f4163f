"""The test's hands inside the stack: a process with Django set up against the stack's own
PostgreSQL and Redis (``DATABASE_URL``/``REDIS_URL``/``REDIS_PREFIX`` from its environment).
It reads one JSON command per line on stdin and answers one JSON line on stdout:
``{"ok": true, "result": ...}`` or ``{"ok": false, "error": "..."}`` (a database or Redis error
while a service is down is an answer, not a crash; the next command reconnects).

    python -m tests.reliability.agent
"""

from __future__ import annotations

import json
import sys
import traceback

OPEN = ["pending_new", "open", "partially_filled"]


def op_setup(bots_per_venue: int, venues: list[str]) -> dict:
    """Migrate, install the beat schedules, and create an operator (API token) and a trader with
    one paper account and ``bots_per_venue`` started bots per venue."""
    from django.core.management import call_command

    call_command("migrate", verbosity=0, interactive=False)
    call_command("install_schedules", verbosity=0)
    from rest_framework.authtoken.models import Token

    from apps.accounts.models import User
    from tests.workers.helpers import make_paper_bots

    operator = User.objects.create_user(username="ops", password="pw-12345678", is_staff=True, is_superuser=True)
    out = {"token": Token.objects.create(user=operator).key, "accounts": [], "bots": []}
    for venue in venues:
        _user, account, bots = make_paper_bots(bots_per_venue, venue=venue, spread="0.00003", start=False)
        out["accounts"].append({"id": account.pk, "venue": venue})
        out["bots"] += [b.pk for b in bots]
    return out


def op_want(bot_ids: list[int]) -> int:
    """Set desired_state=running in the database only: nothing is enqueued, so only the beat ->
    worker -> supervisor -> host path can get these bots running."""
    from apps.bots.models import Bot

    return Bot.objects.filter(pk__in=bot_ids).update(desired_state="running")


def op_backtest(max_events: int) -> int:
    """Queue a backtest on the shipped recording (the worker's ``backtests`` queue)."""
    from apps.accounts.models import User
    from apps.backtests.services import backtest_create

    run = backtest_create(
        owner=User.objects.get(username="trader"),
        name="reliability",
        strategy="fixed_spread",
        params={"order_amount": "0.01", "bid_spread": "0.001"},
        risk={"max_position_base": "1"},
        data_source="recording",
        data_params={"recording": "binance-spot-btcusdt", "max_events": max_events},
    )
    return run.pk


def op_backtest_status(run_id: int) -> str:
    from apps.backtests.models import BacktestRun

    return BacktestRun.objects.get(pk=run_id).status


def op_states(bot_ids: list[int]) -> dict:
    from apps.bots.models import Bot

    return {str(pk): state for pk, state in Bot.objects.filter(pk__in=bot_ids).values_list("pk", "actual_state")}


def op_fills(account_ids: list[int]) -> int:
    from apps.orders.models import Fill

    return Fill.objects.filter(account_id__in=account_ids).count()


def op_stop(bot_ids: list[int], kill: bool = False) -> int:
    from apps.bots.models import Bot
    from workers import lifecycle

    Bot.objects.filter(pk__in=bot_ids).update(desired_state="stopped")
    for pk in bot_ids:
        lifecycle.apply(pk, kill=kill)
    return len(bot_ids)


def op_tick() -> dict:
    from workers import supervisor

    return supervisor.tick()


def op_reconcile() -> str:
    from workers import reconcile

    # The audits run on a settled system (nothing is in flight): no grace for fills, rather than
    # waiting out the 30 s the beat job gives a fill still queued in its bot's writer.
    return repr(reconcile.run(fill_grace_s=0))


def op_writer_fills(account_id: int, bot_id: int, prefix: str, batches: int) -> int:
    """Hand ``batches`` fills (one per batch, with a PnL snapshot of the bot beside each, as
    the hosts do) to a bot host's database writer and wait until each batch is acknowledged
    (committed). Returns how many fills were acknowledged."""
    import threading
    from datetime import UTC, datetime
    from decimal import Decimal

    from apps.orders.services import fills_record
    from workers.dbwriter import DbWriter

    writer = DbWriter("agent-db", linger_s=0.0)
    acknowledged = []
    for i in range(batches):
        done, failed = threading.Event(), []
        now = datetime.now(UTC)
        row = {"ts": now, "account_id": account_id, "bot_id": bot_id, "client_order_id": f"{prefix}-{i}",
               "venue_trade_id": f"{prefix}-{i}", "side": "buy", "price": Decimal("60000.5"),
               "quantity": Decimal("0.001"), "fee": Decimal("0.01"), "fee_currency": "USDT", "liquidity": "maker"}  # fmt: skip
        writer.submit(
            fills_record,
            [row],
            done=lambda result, exc, done=done, failed=failed: (failed.append(exc), done.set()),
        )
        if done.wait(10) and failed == [None]:
            acknowledged.append(i)
    writer.drain(10)
    return len(acknowledged)


def op_fills_with_prefix(account_id: int, prefix: str) -> int:
    from apps.orders.models import Fill

    return Fill.objects.filter(account_id=account_id, venue_trade_id__startswith=prefix).count()


def op_audit(accounts: list[dict], bot_ids: list[int]) -> dict:
    """Venue (Redis) against database: lost and duplicated fills, open and orphan orders, and
    fencing tokens per bot in the place log in the order they were written."""
    from apps.orders.models import Fill, Order
    from workers import keys, lifecycle

    redis = lifecycle.redis_client()
    out = {"lost": [], "extra": [], "duplicated": [], "venue_open": [], "orphans": [], "db_open": [], "venue_fills": 0}
    for acc in accounts:
        market = "BTC/USDT"
        venue_ids = [json.loads(raw)["id"] for raw in redis.lrange(keys.paper(acc["id"], market, "trades"), 0, -1)]
        db_ids = list(Fill.objects.filter(account_id=acc["id"]).values_list("venue_trade_id", flat=True))
        out["venue_fills"] += len(venue_ids)
        out["duplicated"] += sorted({i for i in db_ids if db_ids.count(i) > 1})
        out["lost"] += sorted(set(venue_ids) - set(db_ids))
        out["extra"] += sorted(set(db_ids) - set(venue_ids))
        open_cids = [c.decode() for c in redis.hkeys(keys.paper(acc["id"], market, "orders"))]
        out["venue_open"] += open_cids
        known = set(Order.objects.filter(account_id=acc["id"]).values_list("client_order_id", flat=True))
        out["orphans"] += [c for c in open_cids if c not in known]
    out["db_open"] = list(Order.objects.filter(bot_id__in=bot_ids, status__in=OPEN).values_list("pk", flat=True))
    tokens: dict[str, list[int]] = {}
    places: dict[str, int] = {}
    for _id, fields in redis.xrange(keys.place_log()):
        tokens.setdefault(fields[b"bot"].decode(), []).append(int(fields[b"token"]))
        if fields[b"action"] == b"place":
            cid = fields[b"cid"].decode()
            places[cid] = places.get(cid, 0) + 1
    out["tokens"] = tokens
    out["placed_twice"] = sorted(c for c, n in places.items() if n > 1)
    out["places"] = len(places)
    return out


OPS = {name[3:]: fn for name, fn in globals().items() if name.startswith("op_")}


def main() -> None:
    import django

    django.setup()
    from django.db import connections

    answers, sys.stdout = sys.stdout, sys.stderr  # what commands print goes to the log
    print(json.dumps({"ok": True, "result": "ready"}), file=answers, flush=True)
    for line in sys.stdin:
        try:
            command = json.loads(line)
            result = {"ok": True, "result": OPS[command["op"]](**command.get("args", {}))}
        except Exception as exc:  # answered, never fatal: services go down on purpose here
            connections.close_all()
            result = {"ok": False, "error": f"{type(exc).__name__}: {exc}", "trace": traceback.format_exc()[-1500:]}
        print(json.dumps(result, default=str), file=answers, flush=True)


if __name__ == "__main__":
    main()
