"""Settings -> Add an account: the venue field offers the paper venues served here (derived from
connectors/venues.py, with what each offers) and ccxt's exchange ids in a <datalist>, its help
tells which venues offer perpetuals, and a replay/sim venue that is not served is refused naming
the value and what is accepted."""

from __future__ import annotations

import html
import importlib
import re

import pytest
from django.apps import apps as registry
from django.urls import reverse

from apps.exchanges.models import ExchangeAccount, Market
from apps.exchanges.paper_venues import served
from connectors.venues import paper_venues
from tests.apps.dashboard.conftest import client_for

pytestmark = pytest.mark.django_db
PAPER = {
    "replay:binance-spot": "spot: BTC/USDT",
    "replay:binance-usdm": "perpetuals: BTC/USDT:USDT",
    "replay:binance-coinm": "perpetuals: BTC/USD:BTC",
    "sim:alpha": "spot: BTC/USDT",
    "sim:beta": "spot: BTC/USDT",
    "sim:gamma": "perpetuals: BTC/USDT:USDT",
    "sim:delta": "perpetuals: BTC/USDT:USDT",
}
ACCEPTED = (
    "accepted: spot: replay:binance-spot, sim:alpha, sim:beta; perpetuals: replay:binance-usdm, "
    "replay:binance-coinm, sim:gamma, sim:delta; or a ccxt exchange id (paper orders on its live market data)"
)


def _seed_markets() -> None:
    """The seeded markets (transactional tests earlier in the session flush them)."""
    for migration in ("0002_seed_markets", "0003_market_contract_fields", "0006_seed_sim_perpetuals"):
        importlib.import_module(f"apps.exchanges.migrations.{migration}").seed(registry, None)


def _venue_errors(body: str) -> list[str]:
    found = re.findall(r'<div class="field-error" data-field="venue">([^<]*)</div>', body)
    return [html.unescape(e) for e in found]


def test_the_served_paper_venues_are_the_seeded_markets_venues():
    _seed_markets()
    assert {venue: f"{kind}: {', '.join(symbols)}" for venue, symbols, kind in served()} == PAPER
    stored = set(Market.objects.filter(venue__regex=r"^(replay|sim):", active=True).values_list("venue", "symbol"))
    assert stored == {(venue, symbol) for venue, symbols in paper_venues().items() for symbol in symbols}


def test_the_account_form_offers_the_paper_venues_and_ccxt_ids(trader):
    body = client_for(trader).get(reverse("settings")).content.decode()
    venue_input = re.search(r'<input[^>]*name="venue"[^>]*>', body).group(0)
    assert 'list="venue-options"' in venue_input and 'value="replay:binance-spot"' in venue_input
    datalist = re.search(r'<datalist id="venue-options">(.*?)</datalist>', body, re.S).group(1)
    options = [
        (v, html.unescape(label)) for v, label in re.findall(r'<option value="([^"]*)" label="([^"]*)">', datalist)
    ]
    paper = [(v, label) for v, label in options if label.startswith("paper")]
    assert paper == [(venue, f"paper · {offered}") for venue, offered in PAPER.items()]  # in connectors' order
    live = {v for v, label in options if label == "live · ccxt"}
    assert {"binance", "binanceusdm", "kraken"} <= live and len(live) > 50
    text = html.unescape(body)
    assert (
        "Paper: a venue served here — spot: replay:binance-spot, sim:alpha, sim:beta; perpetuals: "
        "replay:binance-usdm, replay:binance-coinm, sim:gamma, sim:delta; a venue with perpetuals only opens a "
        "derivatives account (Markets below). Live: a ccxt exchange id" in text
    )


def test_an_unknown_paper_venue_is_refused_with_what_is_accepted(trader):
    client = client_for(trader)
    add = reverse("account-add")
    for venue in ("sim:nowhere", "replay:binance-spot-btcusdt"):  # the latter a recording's name, not a venue
        refused = client.post(add, {"label": "bad", "kind": "paper", "venue": venue, "paper_balances": '{"USDT": "1"}'})
        assert refused.status_code == 400
        assert _venue_errors(refused.content.decode()) == [f"'{venue}' is not a paper venue served here; {ACCEPTED}"]
    assert not ExchangeAccount.objects.filter(owner=trader).exists()
    # a live account on a replay venue is refused by the service, naming the kind
    live = client.post(add, {"label": "bad", "kind": "live", "venue": "sim:nowhere", "api_key": "k", "api_secret": "s"})
    assert (
        live.status_code == 400
        and "is a replay/simulated venue; accepted kind: &#x27;paper&#x27;" in live.content.decode()
    )


def test_served_venues_a_stored_sim_market_and_a_ccxt_id_open_paper_accounts(trader):
    _seed_markets()
    client = client_for(trader)
    add = reverse("account-add")
    Market.objects.create(venue="sim:epsilon", symbol="ETH/USDT", base="ETH", quote="USDT", tick_size="0.01",
                          lot_size="0.001", min_notional="0", maker_fee="0", taker_fee="0")  # fmt: skip
    for label, venue in (("gamma", "sim:gamma"), ("coinm", "replay:binance-coinm"), ("eps", "sim:epsilon"),
                         ("bn", "binance")):  # fmt: skip
        made = client.post(add, {"label": label, "kind": "paper", "venue": venue, "paper_balances": '{"USDT": "1000"}'})
        assert made.status_code == 302, _venue_errors(made.content.decode())
    types = dict(ExchangeAccount.objects.filter(owner=trader).values_list("venue", "default_type"))
    # perpetual-only venues open derivatives accounts when left to the venue
    assert types == {"sim:gamma": "swap", "replay:binance-coinm": "swap", "sim:epsilon": "spot", "binance": "spot"}
