import pytest
from django.test import Client

from tests.apps.bots.factories import make_bot, make_user, operator, other_trader, trader, viewer  # noqa: F401


def client_for(user) -> Client:
    client = Client()
    client.force_login(user)
    return client


@pytest.fixture
def bot(trader):  # noqa: F811
    return make_bot(trader, name="alice-mm")


@pytest.fixture
def shared_bot(bot, trader, viewer):  # noqa: F811
    from apps.bots.services import bot_share

    bot_share(bot=bot, actor=trader, users=[viewer])
    return bot
