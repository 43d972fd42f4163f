"""The trader's day in a real browser (Debian chromium via Playwright) against the whole system:
sign in as the demo user, add a paper account on the replay venue, create a bot, start it, watch
the order book update live with the bot's quotes on it, see a fill arrive and the PnL chart move,
stop the bot and see its orders gone; a second user can open neither the bot page nor its socket.
Screenshots of every page go to ``artifacts/screenshots/``."""

from __future__ import annotations

import re

import pytest
from django.core.management import call_command

from apps.accounts.models import Role
from apps.accounts.services import user_create
from apps.bots.models import Bot
from tests.e2e.conftest import SCREENSHOTS

pytestmark = [pytest.mark.e2e, pytest.mark.slow, pytest.mark.django_db(transaction=True), pytest.mark.timeout(420)]

DEMO = ("demo", "demo-trader-2026")
OPS = ("ops", "ops-operator-2026")


def sign_in(page, base: str, username: str, password: str) -> None:
    page.goto(base + "/accounts/login/")
    page.fill("input[name=username]", username)
    page.fill("input[name=password]", password)
    page.click("button[type=submit]")
    page.wait_for_url(re.compile(r".*/$"))


def shot(page, name: str) -> None:
    page.screenshot(path=str(SCREENSHOTS / f"{name}.png"), full_page=True)


def ensure_replay_market() -> None:
    from decimal import Decimal

    from apps.exchanges.models import Market

    Market.objects.get_or_create(
        venue="replay:binance-spot",
        symbol="BTC/USDT",
        defaults={
            "base": "BTC",
            "quote": "USDT",
            "tick_size": Decimal("0.01"),
            "lot_size": Decimal("0.00001"),
            "min_notional": Decimal("5"),
            "maker_fee": Decimal("0.001"),
            "taker_fee": Decimal("0.001"),
        },
    )


def test_trader_runs_a_paper_bot_on_the_replay_venue_live_in_the_browser(system, browser):
    base = system
    ensure_replay_market()
    call_command("seed_demo", "--no-bots")
    user_create(username="eve", password="eve-trader-2026", role=Role.TRADER, check_password=False)

    context = browser.new_context(viewport={"width": 1400, "height": 900})
    page = context.new_page()
    errors: list[str] = []
    page.on("pageerror", lambda exc: errors.append(str(exc)))

    # Sign in; add a paper account on the replay venue in Settings.
    page.goto(base + "/accounts/login/")
    shot(page, "login")
    sign_in(page, base, *DEMO)
    page.goto(base + "/settings/")
    page.click("text=Add an account")
    page.fill("#id_label", "Replay paper")
    page.select_option("#id_kind", "paper")
    page.fill("#id_venue", "replay:binance-spot")
    page.fill("#id_paper_balances", '{"BTC": "1", "USDT": "100000"}')
    page.click("text=Add account")
    page.wait_for_selector("text=Replay paper")
    shot(page, "settings")

    # Create the bot with a tight spread so the replayed market fills it quickly.
    page.goto(base + "/bots/new/")
    page.fill("#id_name", "E2E replay bot")
    page.select_option("#id_exchange_account", label="Replay paper · replay:binance-spot")
    page.select_option("#id_market", label="BTC/USDT · replay:binance-spot")
    page.fill("[name='params.order_amount']", "0.001")
    page.fill("[name='params.bid_spread']", "0")
    page.fill("[name='params.ask_spread']", "0")
    shot(page, "bot_create")
    page.click("text=Create bot")
    page.wait_for_url(re.compile(r".*/bots/\d+/$"))
    bot = Bot.objects.get(name="E2E replay bot")
    assert page.url.endswith(f"/bots/{bot.pk}/")

    # Start it: the book updates live and the bot's quotes appear on it.
    page.click("button[data-action=start]")
    page.wait_for_selector("button[data-action=stop]")
    page.wait_for_function("Number(document.getElementById('ladder').dataset.updates || 0) >= 5", timeout=90_000)
    page.wait_for_function("Number(document.getElementById('ladder').dataset.quotes || 0) > 0", timeout=90_000)
    assert page.locator("#ladder td.quoted").count() > 0
    # How close the open-orders limit is follows the live status.
    page.wait_for_function(
        "Number(document.querySelector('#risk-table tr[data-risk=orders] .used').textContent) > 0", timeout=30_000
    )
    assert page.locator("#live-status").inner_text() == "live"
    shot(page, "bot_live_quotes")

    # A fill arrives and the PnL chart moves.
    page.wait_for_selector("#fills tbody tr:not(.empty-row)", timeout=150_000)
    page.wait_for_function("Number(document.getElementById('chart-pnl').dataset.points || 0) >= 3", timeout=30_000)
    points = page.evaluate("document.getElementById('chart-pnl').data[0].y.length")
    assert points >= 3
    shot(page, "bot_fill_pnl")

    # Stop: its orders are gone from the page (and the database says stopped).
    page.click("button[data-action=stop]")
    try:
        page.wait_for_function("document.getElementById('kpi-orders').textContent === '0'", timeout=60_000)
    except Exception:
        shot(page, "bot_stop_failed")
        raise
    page.wait_for_function("Number(document.getElementById('ladder').dataset.quotes) === 0", timeout=30_000)
    assert page.locator("#ladder td.quoted").count() == 0
    page.wait_for_function("document.querySelector('#bot-state .badge').textContent === 'stopped'", timeout=60_000)
    shot(page, "bot_stopped")

    # Every other page renders (screenshots for review).
    for name, path in [
        ("overview", "/"),
        ("markets", "/markets/"),
        ("arbitrage", "/arbitrage/"),
        ("backtests", "/backtests/"),
    ]:
        page.goto(base + path)
        shot(page, name)
    page.goto(base + "/markets/")
    page.click("text=BTC/USDT >> nth=0")
    page.wait_for_selector("#chart-depth")
    shot(page, "market_detail")
    assert not errors, f"JavaScript errors: {errors}"

    # A second trader can open neither the bot page nor its socket.
    other = browser.new_context().new_page()
    sign_in(other, base, "eve", "eve-trader-2026")
    response = other.goto(base + f"/bots/{bot.pk}/")
    assert response.status == 404
    code = other.evaluate(
        """(path) => new Promise((resolve) => {
            const ws = new WebSocket("ws://" + location.host + path);
            ws.onmessage = () => resolve("got data");
            ws.onclose = (ev) => resolve(ev.code);
            setTimeout(() => resolve("timeout"), 10000);
        })""",
        f"/ws/bot/{bot.pk}/",
    )
    assert code == 4403

    # The operator sees every bot.
    ops = browser.new_context(viewport={"width": 1400, "height": 900}).new_page()
    sign_in(ops, base, *OPS)
    ops.goto(base + "/operators/")
    assert ops.locator("text=E2E replay bot").count() == 1
    shot(ops, "operators")


def test_trader_runs_a_backtest_and_watches_progress_to_results(system, browser):
    base = system
    call_command("seed_demo", "--no-bots")
    page = browser.new_context(viewport={"width": 1400, "height": 900}).new_page()
    errors: list[str] = []
    page.on("pageerror", lambda exc: errors.append(str(exc)))
    sign_in(page, base, *DEMO)
    page.goto(base + "/backtests/")
    page.fill("#id_name", "E2E recording run")
    page.select_option("#id_data_source", "recording")
    page.fill("#id_data_params", '{"recording": "binance-spot-btcusdt", "max_events": 4000}')
    page.fill("[name='params.order_amount']", "0.001")
    page.fill("[name='params.bid_spread']", "0.00005")
    page.fill("[name='params.ask_spread']", "0.00005")
    page.click("text=Run backtest")
    page.wait_for_url(re.compile(r".*/backtests/\d+/$"))
    assert page.locator("#run-progress").count() == 1
    # The page follows the run over its socket and reloads with the results when it ends.
    page.wait_for_selector("#chart-equity", timeout=180_000)
    assert page.locator("#run-status .badge").inner_text() == "succeeded"
    assert page.locator("text=Metrics").count() == 1
    shot(page, "backtest_result")
    run_id = re.search(r"/backtests/(\d+)/", page.url).group(1)
    page.goto(base + f"/backtests/compare/?run={run_id}")
    page.wait_for_selector("#chart-compare")
    shot(page, "backtest_compare")
    assert not errors, f"JavaScript errors: {errors}"
