"""The overview's legs line of a hedged bot follows its live status in a real browser (Debian
chromium via Playwright) against the real ASGI app and the Redis channel layer: rendered from the
stored status, then a status the host publishes changes both legs' positions, the net and the
"quoting stopped" badge in place (``static/js/hedge_leg.js``), without a reload, and a status
without the halt removes the badge; a hedge-position-mode perpetual bot's "legs: long / short" line
follows its status the same way."""

from __future__ import annotations

import pytest
from channels.layers import get_channel_layer
from django.core.management import call_command

from tests.apps.dashboard.test_hedge_leg_socket import hedged_status, make_hedge_mode_bot, make_hedged_bot
from tests.e2e.test_browser import DEMO, shot, sign_in

pytestmark = [pytest.mark.e2e, pytest.mark.slow, pytest.mark.django_db(transaction=True), pytest.mark.timeout(300)]


def publish(group: str, message: dict) -> None:
    """A host's group send, from its own thread and event loop (Playwright's runs in this one)."""
    import asyncio
    import threading

    sender = threading.Thread(target=lambda: asyncio.run(get_channel_layer().group_send(group, message)))
    sender.start()
    sender.join(10)


def _line(page, bot_id: int) -> str:
    return page.text_content(f'tr[data-bot="{bot_id}"] .hedge-leg').strip()


def test_the_legs_line_follows_the_bots_socket_without_a_reload(asgi_server, browser):
    import json

    from apps.accounts.models import User
    from apps.core.health import redis_client
    from apps.dashboard.live import bot_status_key

    call_command("seed_demo", "--no-bots")
    demo = User.objects.get(username=DEMO[0])
    bot = make_hedged_bot(demo)
    hedge_mode = make_hedge_mode_bot(demo)
    redis_client().set(bot_status_key(bot.pk), json.dumps(hedged_status("0.004", "-0.004", "0", None)))
    page = browser.new_page()
    try:
        sign_in(page, asgi_server, *DEMO)
        page.goto(asgi_server + "/")
        page.evaluate("() => { window.__notReloaded = true; }")
        assert " ".join(_line(page, bot.pk).split()) == "maker 0.004 · hedge on sim:beta BTC/USDT -0.004 · net 0"
        halted = hedged_status("0.006", "-0.004", "0.002000000000", "hedge_failed: 429 rate_limited")
        # the socket opens after the page's scripts run: publish until the line shows it
        expected = ("maker 0.006 · hedge on sim:beta BTC/USDT -0.004 · net 0.002 "
                    "quoting stopped: hedge_failed: 429 rate_limited")  # fmt: skip
        for _ in range(50):
            publish(f"bot.{bot.pk}", {"type": "bot.update", "data": halted})
            if " ".join(_line(page, bot.pk).split()) == expected:
                break
            page.wait_for_timeout(200)
        assert " ".join(_line(page, bot.pk).split()) == expected
        assert page.locator(f'tr[data-bot="{bot.pk}"] .hedge-leg .badge.state-error').count() == 1
        shot(page, "overview-hedge-leg-live")
        publish(f"bot.{bot.pk}", {"type": "bot.update", "data": hedged_status("0.006", "-0.006", "0", None)})
        page.wait_for_function(
            "id => document.querySelector(`tr[data-bot='${id}'] .hedge-leg .exposure`).textContent === '0'", arg=bot.pk
        )
        assert " ".join(_line(page, bot.pk).split()) == "maker 0.006 · hedge on sim:beta BTC/USDT -0.006 · net 0"
        assert page.locator(f'tr[data-bot="{bot.pk}"] .hedge-leg .badge').count() == 0
        # the hedge-mode bot: nothing stored on the paper venue yet, then its loop's legs
        legs = f'tr[data-bot="{hedge_mode.pk}"] .hedge-legs'
        assert page.text_content(legs).strip() == "legs: long 0 / short 0"
        from tests.apps.dashboard.test_perp_hedge_portal import hedge_status

        publish(f"bot.{hedge_mode.pk}", {"type": "bot.update", "data": {"type": "status", **hedge_status()}})
        page.wait_for_function("sel => document.querySelector(sel).textContent.includes('0.004')", arg=legs)
        assert page.text_content(legs).strip() == "legs: long 0.004 / short -0.002"
        assert page.evaluate("() => window.__notReloaded === true")
    finally:
        page.close()
