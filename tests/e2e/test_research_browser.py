"""The research loop in a real browser (Debian chromium via Playwright) against the whole system:
upload a recording and read its quality report, run a walk-forward optimisation on it, watch its
progress, open the results and create a bot from the recommended parameters; a corrupt file is
refused with the reason. Screenshots go to ``artifacts/screenshots/``."""

from __future__ import annotations

import gzip
import re

import pytest
from django.core.management import call_command

from apps.bots.models import Bot
from apps.research.models import Optimisation, UserRecording
from connectors.binance_recording import RECORDINGS
from tests.e2e.test_browser import DEMO, ensure_replay_market, shot, sign_in

pytestmark = [pytest.mark.e2e, pytest.mark.slow, pytest.mark.django_db(transaction=True), pytest.mark.timeout(420)]


def test_upload_optimise_walk_forward_and_create_a_bot(system, browser, tmp_path, settings):
    from apps.exchanges.models import Market

    base = system
    ensure_replay_market()
    call_command("seed_demo", "--no-bots")
    market = Market.objects.create(
        venue="binance", symbol="BTC/USDT", base="BTC", quote="USDT", tick_size="0.01", lot_size="0.00000001"
    )
    from apps.accounts.models import User
    from apps.exchanges.services import exchange_account_create

    account = exchange_account_create(
        owner=User.objects.get(username=DEMO[0]),
        label="research paper",
        venue="replay:binance-spot",
        paper_balances={"USDT": "10000", "BTC": "0.2"},
    )
    page = browser.new_page()
    sign_in(page, base, *DEMO)

    # a corrupt file is refused with the reason, nothing registered
    bad = tmp_path / "bad.gz"
    bad.write_bytes(gzip.compress(b"1 {}\n" * 20)[:-10])
    page.goto(base + "/research/")
    page.fill("#upload-form input[name=name]", "broken")
    page.select_option("#upload-form select[name=market]", str(market.pk))
    page.set_input_files("#upload-form input[name=files]", str(bad))
    page.click("#upload-form button[type=submit]")
    page.wait_for_selector("text=Recording refused", timeout=60_000)
    assert "not a readable gzip" in page.content() and not UserRecording.objects.exists()

    # the shipped spot file as the trader's own recording: its quality report
    page.fill("#upload-form input[name=name]", "my spot minutes")
    page.select_option("#upload-form select[name=market]", str(market.pk))
    page.set_input_files("#upload-form input[name=files]", str(RECORDINGS["binance-spot-btcusdt"].paths[0]))
    page.click("#upload-form button[type=submit]")
    page.wait_for_url(re.compile(r".*/research/recordings/\d+/$"), timeout=120_000)  # read in full first
    rec = UserRecording.objects.get(name="my spot minutes")
    assert page.inner_text("#bad-lines") == "0" and "41249" in page.inner_text("#quality")
    shot(page, "research-recording")

    # a walk-forward optimisation on it, followed until done
    page.goto(base + "/research/")
    page.select_option("#opt-recording", f"user:{rec.pk}")
    page.fill("#optimise-form input[name=name]", "spreads wf")
    page.fill("#optimise-form input[name=n_trials]", "4")
    page.fill("#optimise-form input[name=folds]", "2")
    page.fill("#optimise-form input[name=parallel]", "1")
    page.fill("#optimise-form input[name=max_events]", "6000")
    page.click("#optimise-form button[type=submit]")
    page.wait_for_url(re.compile(r".*/research/optimisations/\d+/$"))
    shot(page, "research-optimisation-running")
    page.wait_for_selector("#best, .error", timeout=240_000)
    opt = Optimisation.objects.get(name="spreads wf")
    assert opt.status == "succeeded", opt.error
    assert page.locator("#folds tbody tr, #folds tr").count() >= 3  # header + two folds
    shot(page, "research-optimisation-results")

    # a bot from the recommendation
    replay = Market.objects.get(venue="replay:binance-spot", symbol="BTC/USDT")
    page.fill("#create-bot-form input[name=bot_name]", "optimised")
    page.select_option("#create-bot-form select[name=account]", str(account.pk))
    page.fill("#create-bot-form input[name=market]", str(replay.pk))
    page.click("#create-bot-form button[type=submit]")
    page.wait_for_url(re.compile(r".*/bots/\d+/$"))
    bot = Bot.objects.get(name="optimised")
    assert bot.strategy == "fixed_spread" and bot.params["bid_spread"] == opt.results["best"]["bid_spread"]
    shot(page, "research-bot-created")
