"""The portfolio hedge run by a real Celery worker (which also hosts the paper bot): a net
outside its band is brought back inside by one order through the chosen bot's loop (the
manual-order service, so the bot's pre-trade risk applies), recorded as a bot event and in the
audit log; nothing is sent while the hedge is off or the net is inside the band."""

from __future__ import annotations

import os
import subprocess
import sys
from decimal import Decimal

import pytest

from tests.conftest import child_env
from tests.workers.conftest import ROOT
from tests.workers.helpers import make_paper_bots, wait_until

pytestmark = [pytest.mark.django_db(transaction=True), pytest.mark.slow]


@pytest.fixture
def celery_worker(clean_redis, tmp_path):
    log = (tmp_path / "worker.log").open("wb")
    argv = [sys.executable, "-m", "celery", "-A", "mmsite", "worker", "--pool", "solo",
            "--queues", "default,bots,feeds", "--hostname", f"hedge-{os.getpid()}@%h", "--loglevel", "WARNING",
            "--without-mingle", "--without-gossip", "--without-heartbeat"]  # fmt: skip
    process = subprocess.Popen(argv, cwd=ROOT, env=child_env(), stdout=subprocess.DEVNULL, stderr=log)
    yield process
    process.terminate()
    try:
        process.wait(timeout=20)
    except subprocess.TimeoutExpired:
        process.kill()
    log.close()


def _btc(user) -> dict:
    from apps.portfolio.inventory import owner_inventory

    return next(a for a in owner_inventory(owner=user)["assets"] if a["asset"] == "BTC")


def test_the_hedge_task_brings_the_net_back_into_the_band_through_the_chosen_bot(celery_worker, redis_client):
    from celery import current_app

    from apps.accounts.models import AuditLog
    from apps.bots.models import Bot, BotEvent
    from apps.orders.models import Order
    from apps.portfolio.targets import inventory_target_set
    from workers import supervisor

    # quotes 1 % away: the bot's own quoting does not fill while the test runs
    user, _account, (bot,) = make_paper_bots(1, username="dave", spread="0.01")
    supervisor.tick()
    assert wait_until(lambda: Bot.objects.get(pk=bot.pk).actual_state == "running", 60), "the worker never ran the bot"
    start = _btc(user)["net"]
    band = Decimal("0.05")
    target = start - Decimal("0.3")

    # hedge off (the default): the task leaves the net alone
    inventory_target_set(owner=user, actor=user, asset="BTC", target=str(target), band=str(band), hedge_bot=bot.pk)
    current_app.send_task("workers.portfolio.hedge")
    assert not wait_until(lambda: BotEvent.objects.filter(bot=bot, kind="portfolio").exists(), 5)

    inventory_target_set(owner=user, actor=user, asset="BTC", hedge_enabled=True)
    assert _btc(user)["in_band"] is False
    current_app.send_task("workers.portfolio.hedge")
    assert wait_until(lambda: BotEvent.objects.filter(bot=bot, code="portfolio_hedge").exists(), 30)
    assert wait_until(lambda: _btc(user)["in_band"], 60), f"net stayed out of the band: {_btc(user)}"
    row = _btc(user)
    assert abs(row["net"] - target) <= band and row["net"] < start

    event = BotEvent.objects.get(bot=bot, code="portfolio_hedge")
    assert "portfolio hedge sell 0.3 BTC" in event.message and event.data["order"]["side"] == "sell"
    sent = BotEvent.objects.filter(bot=bot, code="manual_order")
    assert sent.count() == 1, list(sent.values_list("message", flat=True))
    order = Order.objects.get(client_order_id=sent.get().message.split()[2])
    assert order.side == "sell" and order.quantity == Decimal("0.3") and order.filled_quantity > 0
    audit = AuditLog.objects.get(action="order_manual", object_id=str(bot.pk))
    assert audit.after["side"] == "sell" and audit.after["quantity"] == "0.3"

    # back inside the band: the next pass sends nothing
    current_app.send_task("workers.portfolio.hedge")
    assert not wait_until(lambda: BotEvent.objects.filter(bot=bot, kind="portfolio").count() > 1, 5)
    assert BotEvent.objects.filter(bot=bot, code="manual_order").count() == 1
