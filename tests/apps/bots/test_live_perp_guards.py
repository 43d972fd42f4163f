"""The new-bot size guards on a LIVE exchange's perpetual (``binanceusdm`` ``BTC/USDT:USDT``):
an order is judged on the account's settle balance x the bot's leverage, as for paper perpetuals,
not on its spot holdings; without ``risk.perp.leverage`` (the exchange's setting stays, unknown
here) at 1x, saying so. The balances are the ones stored when the account's verification fetched
them from the exchange (the fake Binance USD-M server); before any was fetched a perpetual bot on
the account is refused, saying so."""

from __future__ import annotations

from decimal import Decimal

import pytest
from django.utils import timezone

from apps.bots.models import Bot
from apps.exchanges.services import account_balances_store, exchange_account_create
from apps.marketdata.models import Trade
from tests.apps.bots.factories import api

pytestmark = pytest.mark.django_db

PARAMS = {"order_amount": "0.1", "bid_spread": "0.001", "ask_spread": "0.001"}


def live_perp_market(symbol: str, base: str, quote: str, price: int, venue: str = "binanceusdm"):
    """The exchange's market row as ``market_sync`` stores it (a linear perpetual), last traded at ``price``."""
    from apps.exchanges.models import Market

    market, _ = Market.objects.get_or_create(
        venue=venue,
        symbol=symbol,
        defaults={"base": base, "quote": quote, "tick_size": "0.1", "lot_size": "0.001", "min_notional": "5",
                  "maker_fee": "0.0002", "taker_fee": "0.0005", "kind": "linear", "settle": quote, "max_leverage": 125},
    )  # fmt: skip
    Trade.objects.create(
        market=market, ts=timezone.now(), price=Decimal(price), qty=Decimal("0.01"), aggressor="buy", trade_id="l1"
    )
    return market


def payload(account, market, name: str, **extra) -> dict:
    return {"name": name, "exchange_account": account.pk, "market": market.pk, "strategy": "fixed_spread",
            "params": PARAMS, "confirm_large": True, **extra}  # fmt: skip


def test_a_live_perpetual_order_is_judged_on_the_settle_balance_times_leverage(trader):
    market = live_perp_market("BTC/USDT:USDT", "BTC", "USDT", 50_000)
    account = exchange_account_create(
        owner=trader, label="usdm live", kind="live", venue="binanceusdm", api_key="k", api_secret="s"
    )
    account_balances_store(account=account, balances={"USDT": {"free": "1000", "total": "1000"}})
    client = api(trader)
    # 0.1 BTC is 5,000 USDT: within 1,000 USDT x 10 (judged as spot, 1,000 USDT would refuse it).
    created = client.post(
        "/api/v1/bots/", payload(account, market, "at-10x", risk={"perp": {"leverage": 10}}), format="json"
    )
    assert created.status_code == 201, created.content
    risk = Bot.objects.get(name="at-10x").risk
    assert Decimal(risk["max_order_size"]) > 0  # the default limits come from the margin too

    at_2x = client.post(
        "/api/v1/bots/", payload(account, market, "at-2x", risk={"perp": {"leverage": 2}}), format="json"
    )
    assert at_2x.status_code == 400
    message = at_2x.json()["params"]["order_amount"][0]
    assert "0.1 BTC is an order of 5,000.00 USDT" in message
    assert "the account's margin is 1000 USDT, 2,000.00 USDT of orders at 2x leverage (at 50000" in message
    assert "accepted: at most 0.04 BTC" in message

    unset = client.post("/api/v1/bots/", payload(account, market, "no-leverage", risk={"perp": {}}), format="json")
    assert unset.status_code == 400
    message = unset.json()["params"]["order_amount"][0]
    assert "1,000.00 USDT of orders at 1x leverage (risk.perp.leverage not given: the exchange's own setting" in message
    assert "accepted: at most 0.02 BTC" in message


def test_balances_fetched_by_verification_are_stored_and_judge_the_order(trader, monkeypatch):
    """Never fetched: the perpetual bot is refused (``exchange_account``), not passed silently.
    The account's verification fetches the swap wallet from the fake USD-M exchange (1,000 USDT)
    and stores it; then 0.1 BTC at 50,000 (5,000 USDT, margin 2,500 USDT at 2x) is refused as
    above 1,000 USDT x 2, and accepted at 10x (margin 500 USDT)."""
    from apps.exchanges.services import exchange_account_verify
    from apps.portfolio.models import Balance
    from connectors.ccxt_venue import make_exchange
    from tests.connectors.conftest import binance_markets
    from tests.connectors.servers.binance_usdm import FakeBinanceUsdm
    from tests.workers.test_live_venue import FakeBinanceThread

    market = live_perp_market("BTC/USDT:USDT", "BTC", "USDT", 50_000)
    account = exchange_account_create(
        owner=trader, label="usdm live", kind="live", venue="binanceusdm", api_key="k", api_secret="s"
    )
    client = api(trader)
    unknown = client.post("/api/v1/bots/", payload(account, market, "unknown", risk={"perp": {"leverage": 10}}),
                          format="json")  # fmt: skip
    assert unknown.status_code == 400
    assert unknown.json()["exchange_account"] == [
        "the balances of live account 'usdm live' are not known (never fetched from the exchange), so this "
        "perpetual bot's order size cannot be checked against its settle balance x leverage; accepted: an account "
        f"whose balances are stored: verify it first (Settings, Verify; or POST /api/v1/exchange-accounts/"
        f"{account.pk}/verify/), which fetches and stores them"
    ]
    fake = FakeBinanceThread()
    try:
        usdm = fake.run(lambda: FakeBinanceUsdm(fake.server).install())
        fake.run(usdm.wallet.__setitem__, "USDT", Decimal("1000"))
        markets = binance_markets()

        def build(acct, creds):
            return make_exchange("binanceusdm", api_key=creds.api_key, secret=creds.secret, streaming=False,
                                 http_base=fake.server.http_base, markets=markets, timeout_ms=3000,
                                 options=acct.ccxt_options)  # fmt: skip

        verified = exchange_account_verify(account=account, actor=trader, exchange_factory=build)
    finally:
        fake.stop()
    assert verified.verify_status == "ok", verified.verify_message
    assert verified.balances_at is not None
    stored = {b.asset: (b.free, b.total) for b in Balance.objects.filter(account=account)}
    assert stored["USDT"] == (Decimal("1000"), Decimal("1000"))
    at_2x = client.post("/api/v1/bots/", payload(account, market, "at-2x", risk={"perp": {"leverage": 2}}),
                        format="json")  # fmt: skip
    assert at_2x.status_code == 400
    message = at_2x.json()["params"]["order_amount"][0]
    assert "0.1 BTC is an order of 5,000.00 USDT; the account's margin is 1000 USDT, 2,000.00 USDT" in message
    at_10x = client.post("/api/v1/bots/", payload(account, market, "at-10x", risk={"perp": {"leverage": 10}}),
                         format="json")  # fmt: skip
    assert at_10x.status_code == 201, at_10x.content


def test_balances_out_of_the_rows_bounds_are_not_stored(trader):
    account = exchange_account_create(
        owner=trader, label="big", kind="live", venue="binanceusdm", api_key="k", api_secret="s"
    )
    why = account_balances_store(account=account, balances={"USDT": {"free": "1E+21", "total": "1E+21"}})
    assert why == "balances not stored: '1E+21' is not accepted; accepted: a finite decimal >= 0 and below 1E+20"
    account.refresh_from_db()
    assert account.balances_at is None
