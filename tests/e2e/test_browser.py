"""The trader's day in a real browser (Debian chromium via Playwright) against the whole system:
sign in as the demo user, add a paper account on the replay venue, create a bot, start it, watch
the order book update live with the bot's quotes on it, see a fill arrive and the PnL chart move,
stop the bot and see its orders gone; a second user can open neither the bot page nor its socket.
Screenshots of every page go to ``artifacts/screenshots/``."""

from __future__ import annotations

import os
import re
import time
from decimal import Decimal

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


def _shown_pnl(page) -> dict:
    """The bot page's PnL figures as a person reads them (one websocket update's worth)."""
    return page.evaluate(
        """() => {
            const q = (s) => document.querySelector(s).textContent.trim().replace(/,/g, "").replace("+", "");
            return {total: q("#kpi-total"), realized: q("#kpi-realized"), unrealized: q("#kpi-unrealized"),
                    fees: q("#kpi-fees"), position: q("#kpi-position"), mark: q("#kpi-mark"),
                    fills: q("#bot-pnl .pnl-since .fills")};
        }"""
    )


def _first_load_seconds(browser, base: str, path: str, storage_state) -> float:
    """A first visit in a fresh browser (no cache): navigation start to the load event."""
    context = browser.new_context(viewport={"width": 1400, "height": 900}, storage_state=storage_state)
    page = context.new_page()
    page.goto(base + path, wait_until="load")
    timing = page.evaluate(
        """() => {
            const n = performance.getEntriesByType('navigation')[0];
            const slow = performance.getEntriesByType('resource').sort((a, b) => b.duration - a.duration).slice(0, 3)
                .map((r) => `${r.name.split('/').pop()} ${Math.round(r.duration)} ms ${Math.round(r.transferSize / 1024)} KiB`);
            return {load: n.loadEventEnd / 1000, first_byte: n.responseStart / 1000, html: n.responseEnd / 1000,
                    dom: n.domContentLoadedEventEnd / 1000, slow: slow};
        }"""
    )
    context.close()
    load = os.getloadavg()
    print(f"first load of {path}: {timing}; load average {load[0]:.2f} {load[1]:.2f} {load[2]:.2f}")
    SCREENSHOTS.parent.mkdir(parents=True, exist_ok=True)
    with (SCREENSHOTS.parent / "first_load.txt").open("a") as report:
        report.write(f"{time.strftime('%Y-%m-%dT%H:%M:%SZ', time.gmtime())} {path} load {timing['load']:.3f} s "
                     f"first byte {timing['first_byte']:.3f} s; load average {load[0]:.2f}; slowest {timing['slow']}\n")  # fmt: skip
    return timing["load"]


def test_trader_cockpit_pnl_flatten_live_markets_and_every_page(system, browser):
    """The cockpit: the bot's PnL equals its fills' realized PnL plus the position at the mark
    minus fees; a stopped bot's position is shown and flattened to zero; every chart of the
    market page changes within 10 s; the bot page's first load is timed; every page is shot."""
    from apps.bots.controls import bot_position
    from apps.orders.models import Fill
    from apps.portfolio.bot_pnl import FillBook

    test_started = time.time() - 1
    base = system
    ensure_replay_market()
    call_command("seed_demo", "--no-bots")
    context = browser.new_context(viewport={"width": 1400, "height": 900})
    page = context.new_page()
    errors: list[str] = []
    page.on("pageerror", lambda exc: errors.append(str(exc)))
    page.on("dialog", lambda dialog: dialog.accept())  # the confirmations a person clicks through
    sign_in(page, base, *DEMO)
    page.goto(base + "/settings/")
    page.click("text=Add an account")
    page.fill("#id_label", "Cockpit paper")
    page.select_option("#id_kind", "paper")
    page.fill("#id_venue", "replay:binance-spot")
    page.fill("#id_paper_balances", '{"BTC": "1", "USDT": "100000"}')
    page.click("text=Add account")
    page.wait_for_selector("text=Cockpit paper")
    page.goto(base + "/bots/new/")
    page.fill("#id_name", "Cockpit bot")
    page.select_option("#id_exchange_account", label="Cockpit paper · replay:binance-spot")
    page.select_option("#id_market", label="BTC/USDT · replay:binance-spot")
    page.fill("[name='params.order_amount']", "0.001")
    page.fill("[name='params.bid_spread']", "0")
    page.fill("[name='params.ask_spread']", "0")
    page.click("text=Create bot")
    page.wait_for_url(re.compile(r".*/bots/\d+/$"))
    bot = Bot.objects.get(name="Cockpit bot")
    page.click("button[data-action=start]")
    page.wait_for_selector("button[data-action=stop]")

    # Fills arrive; the bot's PnL follows over the websocket.
    page.wait_for_selector("#fills tbody tr:not(.empty-row)", timeout=180_000)
    page.wait_for_function("Number(document.getElementById('bot-pnl').dataset.updates || 0) >= 2", timeout=30_000)
    # The fill row comes over the socket as the loop sees it; the PnL panel is computed from the
    # database, which the writer commits a moment later: wait until the panel counts it.
    page.wait_for_function(
        "Number(document.querySelector('#bot-pnl .pnl-since .fills').textContent) >= 1", timeout=60_000, polling=500
    )
    live_fee = page.locator("#fills tbody tr").first.locator("td.fee").inner_text()
    assert live_fee.strip() != "", "a live fill row shows its fee"
    page.wait_for_function("Number(document.getElementById('quality-panel').dataset.loaded || 0) >= 1", timeout=60_000)
    page.wait_for_function("Number(document.getElementById('chart-candles').dataset.changes || 0) >= 1", timeout=30_000)
    shot(page, "cockpit_bot_live")

    # The identity, from what the page shows: total = sum of the fills' realized PnL + the
    # position at the mark - fees, with the fills the page counted.
    shown = _shown_pnl(page)
    n = int(shown["fills"])
    assert n >= 1
    rows = Fill.objects.filter(bot=bot).order_by("ts", "id").values_list("side", "price", "quantity", "fee")[:n]
    book = FillBook()
    realized_each = [book.apply(*row) for row in rows]
    mark = Decimal(shown["mark"])
    expected = sum(realized_each) + (book.position * mark - book.cost) - book.fees
    cent = Decimal("0.0001")
    assert Decimal(shown["position"]) == book.position
    assert abs(Decimal(shown["total"]) - expected) <= cent, (shown, expected)
    assert abs(Decimal(shown["fees"]) - book.fees) <= cent
    parts = Decimal(shown["realized"]) + Decimal(shown["unrealized"]) - Decimal(shown["fees"])
    assert abs(parts - Decimal(shown["total"])) <= 2 * cent
    print(f"\nbot PnL shown {shown['total']} = expected {expected:.6f} from {n} fills at mark {mark}")

    # The candles stay drawn as they are redrawn (not just counted), and the quality panel's
    # 30 s reload leaves the live PnL chart's points in place.
    page.wait_for_function("Number(document.getElementById('chart-candles').dataset.changes || 0) >= 2", timeout=60_000)
    assert page.locator("#chart-candles svg.main-svg").count() >= 1, "the candles chart is drawn"
    assert page.locator("#chart-candles .xtick").count() >= 1, "the candles chart has its time axis"
    page.wait_for_function("Number(document.getElementById('quality-panel').dataset.loaded || 0) >= 2", timeout=90_000)
    kept = page.evaluate(
        "() => { const el = document.getElementById('chart-pnl');"
        " return [el.data[0].y.length, Number(el.dataset.points || 0)]; }"
    )
    assert kept[0] >= kept[1] >= 1, f"PnL chart points {kept[0]} after the quality reload, {kept[1]} added live"
    # The drawdown chart is the bot PnL's (below its best so far), not the account's equity's.
    drawdown, pnl_line = page.evaluate(
        "() => ['chart-drawdown', 'chart-pnl'].map((id) => document.getElementById(id).data[0].y"
        ".filter((v) => v !== null).map(Number))"
    )
    assert drawdown and all(v <= 1e-9 for v in drawdown), drawdown
    assert drawdown[-1] == pytest.approx(pnl_line[-1] - max([0.0, *pnl_line]), abs=1e-6), (drawdown, pnl_line)

    # A 1,000,000 BTC manual order is refused at once, naming the field and its value.
    price = mark.quantize(Decimal("0.01"))
    page.select_option("#manual-order-form select[name=side]", "buy")
    page.fill("#manual-order-form input[name=quantity]", "1000000")
    page.fill("#manual-order-form input[name=price]", str(price))
    page.click("#manual-order-form button[type=submit]")
    refused = page.locator(".messages li.error", has_text="manual order refused")
    refused.wait_for(timeout=30_000)
    text = refused.inner_text()
    notional = f"{(1_000_000 * price).quantize(Decimal('0.01')):,}"
    shown_price = f"{price.normalize():f}"
    assert f"manual order refused: quantity: 1000000 BTC at {shown_price} is an order of {notional} USDT" in text, text
    assert "accepted: at most" in text, text
    shot(page, "cockpit_manual_order_refused")

    # The overview's PnL column follows the socket too, with the account's equity apart.
    page.goto(base + "/")
    page.wait_for_function(
        f"document.querySelector('tr[data-bot=\"{bot.pk}\"] .pnl-today').dataset.updated !== undefined",
        timeout=30_000,
    )
    assert page.locator("th", has_text="Account equity").count() >= 1
    shot(page, "cockpit_overview")

    # Stop with a position, see it, flatten it (confirmed): the position ends at zero.
    page.goto(base + f"/bots/{bot.pk}/")
    page.wait_for_function(
        "Number(document.getElementById('kpi-position').textContent) !== 0", timeout=180_000, polling=500
    )
    page.click("button[data-action=stop]")
    page.wait_for_function("document.querySelector('#bot-state .badge').textContent === 'stopped'", timeout=90_000)
    page.reload()
    assert Decimal(page.locator("#kpi-position").inner_text()) == bot_position(bot.pk) != 0
    page.wait_for_function("Number(document.getElementById('chart-candles').dataset.changes || 0) >= 1", timeout=30_000)
    shot(page, "cockpit_stopped_with_position")
    page.click("button[data-action=flatten]")
    page.wait_for_selector("text=flatten requested")
    deadline = time.monotonic() + 150
    while bot_position(bot.pk) != 0 and time.monotonic() < deadline:
        time.sleep(1)
    assert bot_position(bot.pk) == 0, "flatten leaves the position at zero"
    page.reload()
    page.wait_for_function("document.getElementById('kpi-position').textContent.trim() === '0'", timeout=30_000)
    bot.refresh_from_db()
    assert bot.desired_state == "stopped"
    shot(page, "cockpit_flattened")

    # The bot page's first load in a fresh browser (reported; asserted loosely: the machine is shared).
    state = context.storage_state()
    seconds = _first_load_seconds(browser, base, f"/bots/{bot.pk}/", state)
    print(f"bot page first load (fresh browser, loopback): {seconds:.3f} s")
    # Loose on purpose: 8 engineers share this 2-core machine (load average 15-20 while measured).
    assert seconds < 15.0

    # Every chart of the market page changes within 10 s.
    market = bot.market
    page.goto(base + f"/markets/{market.pk}/")
    charts = ["#chart-candles", "#chart-heatmap", "#chart-depth", "#trades"]
    # The page keeps the market's feed running (the bot that used it is stopped): wait for it live.
    page.wait_for_function("Number(document.querySelector('#chart-depth').dataset.changes || 0) >= 2", timeout=90_000)
    page.wait_for_function(
        "(ids) => ids.every((id) => Number(document.querySelector(id).dataset.changes || 0) >= 1)",
        arg=charts,
        timeout=30_000,
    )
    before = page.evaluate("(ids) => ids.map((id) => Number(document.querySelector(id).dataset.changes))", charts)
    started = time.monotonic()
    try:
        page.wait_for_function(
            "([ids, before]) => ids.every((id, i) => Number(document.querySelector(id).dataset.changes) > before[i])",
            arg=[charts, before],
            timeout=10_000,
        )
    finally:
        after = page.evaluate("(ids) => ids.map((id) => Number(document.querySelector(id).dataset.changes))", charts)
        polls = page.evaluate(
            "() => performance.getEntriesByType('resource').filter((r) => r.name.includes('/live/'))"
            ".map((r) => Math.round(r.duration))"
        )
        print(f"market charts {charts}: changes {before} -> {after}; chart requests (ms): {polls}")
    print(f"every market chart changed within {time.monotonic() - started:.1f} s")
    page.select_option("#timeframe", "5m")
    page.wait_for_function("document.querySelector('#chart-candles .gtitle').textContent === 'Candles (5m)'")
    shot(page, "cockpit_market")

    # Every other page, for review.
    for name, path in [
        ("cockpit_markets", "/markets/"),
        ("cockpit_arbitrage", "/arbitrage/"),
        ("cockpit_backtests", "/backtests/"),
        ("cockpit_research", "/research/"),
        ("cockpit_settings", "/settings/"),
        ("cockpit_bot_create", "/bots/new/"),
        ("cockpit_api_root", "/api/v1/"),
    ]:
        response = page.goto(base + path)
        assert response.status == 200, path
        shot(page, name)
    assert page.goto(base + "/favicon.ico").status == 200
    assert not errors, f"JavaScript errors: {errors}"

    # An operator kills everything with a reason and lifts it with another; traders see both.
    ops = browser.new_context(viewport={"width": 1400, "height": 900}).new_page()
    ops.on("dialog", lambda dialog: dialog.accept())
    sign_in(ops, base, *OPS)
    ops.goto(base + "/operators/")
    ops.fill(".killform input[name=reason]", "exchange maintenance")
    ops.fill(".killform input[name=confirm]", "KILL")
    ops.click("text=Global kill switch")
    ops.wait_for_selector("#global-lift")
    shot(ops, "cockpit_operators_killed")
    page.goto(base + "/")
    assert "exchange maintenance" in page.locator("#global-kill").inner_text()
    ops.fill("#global-lift input[name=reason]", "maintenance over")
    ops.click("#global-lift button")
    ops.wait_for_selector("text=Global kill lifted")
    page.goto(base + "/")
    assert "maintenance over" in page.locator("#global-kill").inner_text()
    shot(page, "cockpit_overview_after_lift")
    assert ops.goto(base + "/admin/").status == 200
    ops.wait_for_selector("#site-name")
    shot(ops, "cockpit_admin")
    # Every page a trader or an operator opens is in the artifacts (the overview is the bots list).
    pages = ["overview", "bot_live", "bot_create", "markets", "market", "backtests", "research", "settings"]
    pages += ["operators_killed", "admin", "arbitrage", "api_root"]
    files = [SCREENSHOTS / f"cockpit_{name}.png" for name in pages]
    missing = [f.name for f in files if not f.exists() or f.stat().st_mtime < test_started or not f.stat().st_size]
    assert not missing, missing


def _add_replay_paper_account(page, base: str, label: str) -> None:
    """Settings -> Add an account: a paper account on the replay venue as ``make demo`` seeds one."""
    page.goto(base + "/settings/")
    page.click("text=Add an account")
    page.fill("#id_label", label)
    page.select_option("#id_kind", "paper")
    page.fill("#id_venue", "replay:binance-spot")
    page.fill("#id_paper_balances", '{"BTC": "1", "USDT": "100000"}')
    page.click("text=Add account")
    page.wait_for_selector(f"text={label}")


def test_a_million_btc_is_refused_and_a_default_avellaneda_stoikov_bot_fills(system, browser):
    """On the demo's replay market before anything was recorded for it (no bot has run, no feed,
    no trade or book in the database): the new-bot form refuses a 1,000,000 BTC order under the
    order-amount field, with its value at the market's price, the account's balance and what is
    accepted. Then an Avellaneda-Stoikov bot with default parameters (only the order size typed)
    is created, started, and fills within two minutes."""
    from apps.exchanges.models import Market
    from apps.marketdata.models import DepthSnapshot, Trade
    from apps.orders.models import Fill

    base = system
    ensure_replay_market()
    call_command("seed_demo", "--no-bots")
    market = Market.objects.get(venue="replay:binance-spot", symbol="BTC/USDT")
    assert not Trade.objects.filter(market=market).exists() and not DepthSnapshot.objects.filter(market=market).exists()
    page = browser.new_context(viewport={"width": 1400, "height": 900}).new_page()
    errors: list[str] = []
    page.on("pageerror", lambda exc: errors.append(str(exc)))
    sign_in(page, base, *DEMO)
    _add_replay_paper_account(page, base, "Fat finger paper")

    # 1,000,000 BTC on an account holding 1 BTC + 100,000 USDT: refused in the form, with figures.
    page.goto(base + "/bots/new/")
    page.fill("#id_name", "Fat finger bot")
    page.select_option("#id_exchange_account", label="Fat finger paper · replay:binance-spot")
    page.select_option("#id_market", label="BTC/USDT · replay:binance-spot")
    page.fill("[name='params.order_amount']", "1000000")
    page.click("text=Create bot")
    error = page.locator(".field-error[data-field='params.order_amount']")
    error.wait_for(timeout=30_000)
    assert page.url.endswith("/bots/new/")
    field = page.locator(".field.has-error", has=error)
    assert field.locator("label").inner_text().startswith("Order amount"), field.locator("label").inner_text()
    text = error.inner_text().strip()
    shot(page, "guard_million_btc_refused")
    found = re.fullmatch(
        r"1000000 BTC is an order of ([\d,]+\.\d\d) USDT; the account holds 1 BTC \+ 100000 USDT = ([\d,]+\.\d\d) "
        r"USDT at ([\d.]+) \((.+)\); accepted: at most ([\d.]+) BTC",
        text,
    )
    assert found, text
    notional, value, price, source, accepted = found.groups()
    price = Decimal(price)
    assert price > 0
    assert source == "the replay recording's opening price", text  # nothing recorded for the market yet
    money = lambda d: f"{d.quantize(Decimal('0.01')):,}"  # noqa: E731
    assert notional == money(1_000_000 * price), text
    assert value == money(price + 100_000), text
    lot = market.lot_size.normalize()
    assert Decimal(accepted) == ((price + 100_000) / price // lot) * lot, text
    print(f"\nrefused in the form: {text!r}")
    assert not Bot.objects.filter(name="Fat finger bot").exists()

    # Avellaneda-Stoikov with its defaults: only the order size is typed.
    page.goto(base + "/bots/new/")
    page.fill("#id_name", "AS defaults bot")
    page.select_option("#id_exchange_account", label="Fat finger paper · replay:binance-spot")
    page.select_option("#id_market", label="BTC/USDT · replay:binance-spot")
    with page.expect_navigation():
        page.select_option("#id_strategy", "avellaneda_stoikov")  # the form reloads its parameters
    assert "Strategy parameters (avellaneda_stoikov)" in page.locator("h3", has_text="Strategy parameters").inner_text()
    defaults = page.evaluate(
        "() => Object.fromEntries([...document.querySelectorAll('#bot-create-form [name^=\"params.\"]')]"
        ".map((e) => [e.name, e.type === 'checkbox' ? e.checked : e.value]))"
    )
    page.fill("[name='params.order_amount']", "0.001")
    shot(page, "as_bot_create_defaults")
    page.click("text=Create bot")
    page.wait_for_url(re.compile(r".*/bots/\d+/$"), timeout=30_000)
    bot = Bot.objects.get(name="AS defaults bot")
    assert bot.strategy == "avellaneda_stoikov"
    typed = {k.removeprefix("params."): v for k, v in defaults.items() if v not in ("", False)}
    print(f"AS parameters as the form showed them (left as they were): {typed}; saved: {bot.params}")
    assert bot.params["order_amount"] == "0.001"
    page.click("button[data-action=start]")
    page.wait_for_selector("button[data-action=stop]")
    started = time.monotonic()
    page.wait_for_function(
        "document.querySelector('#bot-state .badge').textContent === 'running'", timeout=90_000, polling=500
    )
    running = time.monotonic()
    try:
        page.wait_for_selector("#fills tbody tr:not(.empty-row)", timeout=120_000)
    finally:
        shot(page, "as_bot_defaults_fill")
    filled = time.monotonic()
    print(
        f"AS bot with defaults: running {running - started:.1f} s after start, first fill {filled - running:.1f} s later"
    )
    assert filled - running <= 120
    deadline = time.monotonic() + 60  # the fill row came over the socket; its row is committed soon after
    while not Fill.objects.filter(bot=bot).exists() and time.monotonic() < deadline:
        time.sleep(0.5)
    assert Fill.objects.filter(bot=bot).exists()
    page.click("button[data-action=stop]")
    page.wait_for_function("document.querySelector('#bot-state .badge').textContent === 'stopped'", timeout=90_000)
    assert not errors, f"JavaScript errors: {errors}"
