import pytest

from tests.apps.marketdata.conftest import api_for, make_user, operator, trader, trader2, viewer  # noqa: F401


@pytest.fixture
def sent(monkeypatch):
    """Tasks enqueued by name (captured instead of going to the broker)."""
    from apps.notifications import services

    calls = []
    monkeypatch.setattr(services.current_app, "send_task", lambda name, args: calls.append((name, args)))
    return calls


@pytest.fixture
def make_bot():
    from apps.bots.services import bot_create
    from apps.exchanges.models import Market
    from apps.exchanges.services import exchange_account_create

    def make(owner, name="mm-1"):
        account = exchange_account_create(owner=owner, label=f"paper {name}", venue="sim:alpha")
        market = Market.objects.get(venue="sim:alpha", symbol="BTC/USDT")
        return bot_create(
            owner=owner,
            name=name,
            exchange_account=account,
            market=market,
            strategy="fixed_spread",
            params={"order_amount": "0.01"},
        )

    return make
