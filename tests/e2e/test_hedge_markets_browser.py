"""The new-bot form of a hedged maker in a real browser (Debian chromium via Playwright) against
the real ASGI app: choosing another hedge account replaces the hedge-market list with that
account's venue's markets, fetched from the REST API by ``static/js/hedge_markets.js``, without a
page reload; the bot created from the form is hedged on the market picked from the new list, and
its page's configuration form follows its hedge account the same way.
Screenshots go to ``artifacts/screenshots/``."""

from __future__ import annotations

import pytest
from django.core.management import call_command

from tests.e2e.test_browser import DEMO, shot, sign_in

pytestmark = [pytest.mark.e2e, pytest.mark.slow, pytest.mark.django_db(transaction=True), pytest.mark.timeout(300)]

OPTIONS = "sel => Array.from(document.getElementById(sel).options).map(o => [o.value, o.textContent])"


def _market(venue: str, symbol: str, **contract):
    from apps.exchanges.models import Market

    quote = "USDT"
    market, _ = Market.objects.get_or_create(
        venue=venue,
        symbol=symbol,
        defaults={"base": "BTC", "quote": quote, "tick_size": "0.1" if contract else "0.01",
                  "lot_size": "0.001" if contract else "0.0001", "min_notional": "0", "maker_fee": "0.0001",
                  "taker_fee": "0.0005", **contract},
    )  # fmt: skip
    return market


def test_the_hedge_market_list_follows_the_chosen_hedge_account_without_a_reload(asgi_server, browser):
    from apps.accounts.models import User
    from apps.bots.models import Bot
    from apps.exchanges.services import exchange_account_create

    base = asgi_server
    call_command("seed_demo", "--no-bots")  # the demo users
    alpha, beta = _market("sim:alpha", "BTC/USDT"), _market("sim:beta", "BTC/USDT")
    beta_eth = _market("sim:beta", "ETH/USDT")
    perp = {"kind": "linear", "contract_size": "1", "settle": "USDT", "max_leverage": 100}
    gamma = _market("sim:gamma", "BTC/USDT:USDT", **perp)
    demo = User.objects.get(username=DEMO[0])
    maker_account = exchange_account_create(owner=demo, label="Paper sim alpha", venue="sim:alpha",
                                            paper_balances={"BTC": "1", "USDT": "100000"})  # fmt: skip
    beta_account = exchange_account_create(owner=demo, label="Paper sim beta", venue="sim:beta",
                                           paper_balances={"BTC": "1", "USDT": "100000"})  # fmt: skip
    gamma_account = exchange_account_create(owner=demo, label="Paper sim gamma", venue="sim:gamma",
                                            paper_balances={"USDT": "100000"})  # fmt: skip
    page = browser.new_page()
    api_calls = []
    page.on("request", lambda r: api_calls.append(r.url) if "/api/v1/" in r.url else None)
    sign_in(page, base, *DEMO)
    page.goto(base + "/bots/new/?strategy=hedged_maker")
    page.wait_for_selector("#id-params\\.hedge_account")
    page.evaluate("() => { window.__notReloaded = true; }")

    # the perpetual venue's account: its markets replace the list, no navigation
    page.select_option("#id-params\\.hedge_account", str(gamma_account.pk))
    page.wait_for_function(
        "sel => Array.from(document.getElementById(sel).options).some(o => o.textContent.includes('sim:gamma'))",
        arg="id-params.hedge_market",
        timeout=15_000,
    )
    assert page.evaluate(OPTIONS, "id-params.hedge_market") == [[str(gamma.pk), "BTC/USDT:USDT · sim:gamma"]]
    assert page.evaluate("() => window.__notReloaded === true"), "the page was reloaded"
    help_text = page.locator("#id-params\\.hedge_market").locator("xpath=..").locator(".help").inner_text()
    assert help_text == "a market on sim:gamma, the hedge account's venue"
    assert any(f"/api/v1/exchange-accounts/{gamma_account.pk}/" in u for u in api_calls), api_calls
    assert any("/api/v1/markets/" in u and "venue=sim%3Agamma" in u for u in api_calls), api_calls
    shot(page, "hedge-markets-gamma")

    # back to sim:beta: its two markets, in symbol order; pick ETH then BTC, still no reload
    page.select_option("#id-params\\.hedge_account", str(beta_account.pk))
    page.wait_for_function(
        "sel => Array.from(document.getElementById(sel).options).some(o => o.textContent.includes('sim:beta'))",
        arg="id-params.hedge_market",
        timeout=15_000,
    )
    assert page.evaluate(OPTIONS, "id-params.hedge_market") == [
        [str(beta.pk), "BTC/USDT · sim:beta"],
        [str(beta_eth.pk), "ETH/USDT · sim:beta"],
    ]
    assert page.evaluate("() => window.__notReloaded === true"), "the page was reloaded"
    page.select_option("#id-params\\.hedge_market", str(beta.pk))
    shot(page, "hedge-markets-beta")

    # the form, submitted, creates the bot hedged on the market picked from the fetched list
    page.fill("#id_name", "hedged from the browser")
    page.select_option("#id_exchange_account", str(maker_account.pk))
    page.select_option("#id_market", str(alpha.pk))
    page.click("#bot-create-form button.primary")
    page.wait_for_url(lambda url: "/bots/new/" not in url, timeout=30_000)
    bot = Bot.objects.get(name="hedged from the browser")
    assert (bot.strategy, bot.exchange_account_id, bot.market_id) == ("hedged_maker", maker_account.pk, alpha.pk)
    assert (bot.params["hedge_account"], bot.params["hedge_market"]) == (beta_account.pk, beta.pk)

    # the bot page's configuration form: the same list follows its hedge account, no reload
    page.goto(f"{base}/bots/{bot.pk}/")
    page.wait_for_selector("#bot-config-form #id-params\\.hedge_account")
    page.evaluate("() => { window.__notReloaded = true; }")
    page.select_option("#bot-config-form #id-params\\.hedge_account", str(gamma_account.pk))
    page.wait_for_function(
        "sel => Array.from(document.getElementById(sel).options).some(o => o.textContent.includes('sim:gamma'))",
        arg="id-params.hedge_market",
        timeout=15_000,
    )
    assert page.evaluate(OPTIONS, "id-params.hedge_market") == [[str(gamma.pk), "BTC/USDT:USDT · sim:gamma"]]
    assert page.evaluate("() => window.__notReloaded === true"), "the bot page was reloaded"
    shot(page, "hedge-markets-bot-page")
