"""A paper perpetual bot in a real browser (Debian chromium via Playwright) against the whole
system (uvicorn, a Celery worker hosting the replay feed and the bot, beat): add a derivatives
paper account on ``replay:binance-usdm``, create a bot on ``BTC/USDT:USDT`` with its perpetual
settings through the new-bot form (a bad leverage is refused next to its input first), start it,
wait for a fill, and check that the bot page's perpetual card — position, entry, mark,
unrealized PnL, leverage, margin used, liquidation price and distance, funding paid, rate and next
funding — shows exactly what ``GET /api/v1/bots/<id>/perp/`` returns for the same live status,
and that the card follows the live status; the account's type cannot be changed in the settings
page while the bot runs (the form says why). Screenshots go to ``artifacts/screenshots/``."""

from __future__ import annotations

import re
import time

import pytest
from django.core.management import call_command
from django.utils.html import strip_tags

from apps.bots.models import Bot
from apps.dashboard.templatetags.dashboard import num, signed
from tests.e2e.test_browser import DEMO, shot, sign_in

pytestmark = [pytest.mark.e2e, pytest.mark.slow, pytest.mark.django_db(transaction=True), pytest.mark.timeout(420)]

# the card's cells and how the page formats each API figure (the template's filters)
CELLS = {
    "perp-contracts": ("position_contracts", lambda v: num(v)),
    "perp-entry": ("entry_price", lambda v: num(v, 2)),
    "perp-mark": ("mark_price", lambda v: num(v, 2)),
    "perp-unrealized": ("unrealized", lambda v: strip_tags(signed(v, 4))),
    "perp-realized": ("realized", lambda v: strip_tags(signed(v, 4))),
    "perp-fees": ("fees", lambda v: num(v, 4)),
    "perp-leverage": ("leverage", lambda v: f"{v}x"),
    "perp-margin-mode": ("margin_mode", lambda v: v),
    "perp-margin-used": ("margin_used", lambda v: num(v, 2)),
    "perp-margin-free": ("margin_free", lambda v: num(v, 2)),
    "perp-margin-balance": ("margin_balance", lambda v: num(v, 2)),
    "perp-liquidation": ("liquidation_price", lambda v: num(v, 2)),
    "perp-liquidation-distance": ("liquidation_distance_pct", lambda v: "—" if v is None else f"{v} %"),
    "perp-funding": ("funding", lambda v: strip_tags(signed(v, 4))),
    "perp-funding-rate": ("funding_rate", lambda v: num(v)),
    "perp-funding-source": ("funding_source", lambda v: v or ""),
    "perp-next-funding": ("next_funding", lambda v: v or "—"),
    "perp-settle": ("settle", lambda v: v),
}

READ_CARD = """(ids) => {
  const out = {asOf: document.getElementById("perp-position").dataset.asOf || ""};
  for (const id of ids) out[id] = document.getElementById(id).textContent.trim();
  return out;
}"""


def ensure_usdm_market() -> None:
    from apps.exchanges.models import Market

    Market.objects.get_or_create(
        venue="replay:binance-usdm",
        symbol="BTC/USDT:USDT",
        defaults={"base": "BTC", "quote": "USDT", "tick_size": "0.1", "lot_size": "0.001", "min_notional": "100",
                  "maker_fee": "0.0002", "taker_fee": "0.0005", "kind": "linear", "contract_size": "1", "settle": "USDT",
                  "max_leverage": 125},
    )  # fmt: skip


def test_trader_runs_a_paper_perp_bot_and_its_page_shows_the_apis_position_and_funding(system, browser):
    base = system
    ensure_usdm_market()
    call_command("seed_demo", "--no-bots")
    page = browser.new_context(viewport={"width": 1400, "height": 1000}).new_page()
    errors: list[str] = []
    page.on("pageerror", lambda exc: errors.append(str(exc)))
    sign_in(page, base, *DEMO)

    # A derivatives paper account on the USD-M replay venue.
    page.goto(base + "/settings/")
    page.click("text=Add an account")
    page.fill("#id_label", "USD-M paper")
    page.select_option("#id_kind", "paper")
    page.fill("#id_venue", "replay:binance-usdm")
    page.select_option("#id_default_type", "swap")
    page.fill("#id_paper_balances", '{"USDT": "100"}')  # a small margin: a liquidation price to show
    page.click("text=Add account")
    page.wait_for_selector("text=USD-M paper")
    assert page.locator("td[data-default-type=swap]").count() == 1

    # The new-bot form: the account's perpetual market and its settings; a bad leverage first.
    page.goto(base + "/bots/new/")
    page.fill("#id_name", "E2E perp bot")
    page.select_option("#id_exchange_account", label="USD-M paper · replay:binance-usdm")
    page.select_option("#id_market", label="BTC/USDT:USDT · replay:binance-usdm · perpetual")
    page.fill("[name='params.order_amount']", "0.002")
    page.fill("[name='params.bid_spread']", "0")
    page.fill("[name='params.ask_spread']", "0")
    page.click("#perp-settings summary")
    page.fill("[name='perp.leverage']", "500")
    page.select_option("[name='perp.margin_mode']", "isolated")
    page.fill("[name='perp.funding_rate']", "0.0001")
    page.fill("[name='perp.limits.min_liquidation_distance']", "0.05")
    page.click("text=Create bot")
    error = page.locator(".field-error[data-field='perp.leverage']")
    error.wait_for()
    assert error.inner_text() == "500 is not accepted; give a whole number from 1 to 125"
    shot(page, "perp_bot_create_refused")
    page.fill("[name='perp.leverage']", "50")
    shot(page, "perp_bot_create")
    page.click("text=Create bot")
    page.wait_for_url(re.compile(r".*/bots/\d+/$"))
    bot = Bot.objects.get(name="E2E perp bot")
    assert bot.risk["perp"]["leverage"] == 50 and bot.risk["perp"]["funding_rate"] == "0.0001"
    assert page.locator("#perp-idle").count() == 1  # the card waits for a running bot

    # Start it; a fill arrives; the card follows the live status.
    page.click("button[data-action=start]")
    page.wait_for_selector("button[data-action=stop]")
    page.wait_for_selector("#fills tbody tr:not(.empty-row)", timeout=240_000)
    page.wait_for_function("Number(document.getElementById('perp-position').dataset.updates || 0) >= 2", timeout=30_000)
    assert page.locator("#perp-idle").count() == 0

    # The page's figures are the API's for the same status (the status time both carry).
    checked = None
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline and checked is None:
        shown = page.evaluate(READ_CARD, list(CELLS))
        response = page.request.get(f"{base}/api/v1/bots/{bot.pk}/perp/")
        assert response.status == 200, response.text()
        figures = response.json()
        # the page's time is the status's ns as a JavaScript number (a double: within 1 µs)
        if shown["asOf"] and abs(int(float(shown["asOf"])) - figures["as_of_ts"]) < 1000:
            checked = (shown, figures)
        else:
            time.sleep(0.2)
    assert checked is not None, "the page never showed the status the API returned"
    shown, figures = checked
    expected = {cell: fmt(figures[key]) for cell, (key, fmt) in CELLS.items()}
    assert {cell: shown[cell] for cell in CELLS} == expected
    assert figures["leverage"] == 50 and figures["margin_mode"] == "isolated" and figures["settle"] == "USDT"
    assert figures["funding_rate"] == "0.00010000" and figures["funding_source"] == "constant rate (bot configuration)"
    assert re.fullmatch(r"\d{4}-\d\d-\d\dT(00|08|16):00:00\+00:00", figures["next_funding"])
    assert figures["mark_price"] is not None and figures["margin_balance"] is not None
    if figures["position_contracts"] != "0":  # a position on 100 USDT at 50x has a liquidation price
        assert figures["liquidation_price"] is not None and figures["liquidation_distance_pct"] is not None
    assert page.locator("#perp-paused").is_visible() == bool(figures["liquidation_paused"])
    shot(page, "perp_bot_live")

    # Live: the card moves on with later statuses without a reload.
    first = int(float(shown["asOf"])) + 1000
    page.wait_for_function(
        f"Number(document.getElementById('perp-position').dataset.asOf || 0) > {first}", timeout=30_000
    )

    # The account's type cannot change while the bot runs: the settings page's form says why.
    page.goto(base + "/settings/")
    row = page.locator("#accounts tr", has_text="USD-M paper")
    row.locator(".account-type summary").click()
    row.locator("select[name=default_type]").select_option("spot")
    row.locator(".account-type button").click()
    refused = page.locator("ul.messages li.error")
    refused.wait_for()
    assert refused.inner_text() == (
        "USD-M paper: not changed: default_type: 'spot' is not accepted now: the type of account 'USD-M paper' "
        "('swap') cannot change while its bots run ('E2E perp bot'): their exchange connection, wallet and "
        "markets would change under them; stop them first, then change the type"
    )
    assert page.locator("td[data-default-type=swap]").count() == 1
    shot(page, "account_type_refused")

    # The overview lists the position under its account.
    page.goto(base + "/")
    row = page.locator(f"#positions tr[data-bot='{bot.pk}']")
    row.wait_for()
    assert "BTC/USDT:USDT" in row.inner_text()
    shot(page, "overview_positions")

    # Stop it (the system fixture then shuts the worker down).
    page.goto(base + f"/bots/{bot.pk}/")
    page.click("button[data-action=stop]")
    page.wait_for_function("document.querySelector('#bot-state .badge').textContent === 'stopped'", timeout=60_000)
    assert not errors, f"JavaScript errors: {errors}"
