"""Live verification fetches the balance through ccxt: OK, authentication failure and network
failure are told apart (against the local fake Binance server, with real recorded payloads)."""

from __future__ import annotations

import asyncio
import threading

import pytest

from apps.exchanges.models import VerifyStatus
from apps.exchanges.services import exchange_account_create, exchange_account_verify
from connectors.ccxt_venue import make_exchange
from tests.conftest import free_port
from tests.connectors.conftest import binance_markets, case
from tests.connectors.servers.fake_exchange import FakeExchange, Reply

pytestmark = pytest.mark.django_db

KEY, SECRET = "verify-key-0000000000001234", "verify-secret-999999999999"


@pytest.fixture
def fake_binance():
    loop = asyncio.new_event_loop()
    thread = threading.Thread(target=loop.run_forever, daemon=True)
    thread.start()
    fake = asyncio.run_coroutine_threadsafe(FakeExchange().start(), loop).result(10)
    yield fake
    asyncio.run_coroutine_threadsafe(fake.stop(), loop).result(10)
    loop.call_soon_threadsafe(loop.stop)
    thread.join(5)


def _factory(http_base: str):
    markets = binance_markets()

    def build(account, creds):
        return make_exchange(
            "binance",
            api_key=creds.api_key,
            secret=creds.secret,
            streaming=False,
            http_base=http_base,
            markets=markets,
            timeout_ms=3000,
        )

    return build


def _account(trader):
    return exchange_account_create(
        owner=trader, label="live", kind="live", venue="binance", api_key=KEY, api_secret=SECRET
    )


def test_good_keys_fetch_the_balance_and_sign_with_the_stored_key(trader, fake_binance):
    fake_binance.route(
        "GET", "/api/v3/account", case("response", "binance", "fetchBalance", "Spot balance")["httpResponse"]
    )
    account = exchange_account_verify(
        account=_account(trader), actor=trader, exchange_factory=_factory(fake_binance.http_base)
    )
    assert account.verify_status == VerifyStatus.OK, account.verify_message
    assert account.verify_message.startswith("balance fetched from binance")
    assert account.verified_at is not None
    request = fake_binance.calls("GET", "/api/v3/account")[0]
    assert request.headers.get("X-MBX-APIKEY") == KEY and "signature" in request.query


def test_rejected_keys_are_an_authentication_failure_with_advice(trader, fake_binance):
    fake_binance.route(
        "GET", "/api/v3/account", Reply(401, {"code": -2015, "msg": "Invalid API-key, IP, or permissions for action."})
    )
    account = exchange_account_verify(
        account=_account(trader), actor=trader, exchange_factory=_factory(fake_binance.http_base)
    )
    assert account.verify_status == VerifyStatus.AUTH_FAILED
    assert "refused the API key" in account.verify_message and "IP whitelist" in account.verify_message
    assert SECRET not in account.verify_message and KEY not in account.verify_message


def test_unreachable_venue_is_a_network_error_not_an_auth_failure(trader):
    account = exchange_account_verify(
        account=_account(trader), actor=trader, exchange_factory=_factory(f"http://127.0.0.1:{free_port()}")
    )
    assert account.verify_status == VerifyStatus.NETWORK_ERROR
    assert "could not reach binance" in account.verify_message
