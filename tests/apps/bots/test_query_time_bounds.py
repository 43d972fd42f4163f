"""Query times far outside real market history are refused with a 400 naming the field, not a 500."""

from __future__ import annotations

import pytest

from tests.apps.bots.factories import api, make_bot

pytestmark = pytest.mark.django_db
ANCIENT = "0001-01-01T00:30:00Z"


@pytest.mark.parametrize(
    "path",
    [
        "/api/v1/marketdata/candles/?market={market}&end={t}",
        "/api/v1/marketdata/top-of-book/?market={market}&end={t}",
        "/api/v1/marketdata/heatmap/?market={market}&end={t}",
        "/api/v1/bots/{bot}/pnl/?interval=1h&end={t}",
        "/api/v1/bots/{bot}/analytics/?end={t}",
    ],
)
def test_a_time_near_year_one_is_a_field_error(trader, path):
    bot = make_bot(trader)
    response = api(trader).get(path.format(market=bot.market_id, bot=bot.pk, t=ANCIENT))
    assert response.status_code == 400, response.content
    assert "end" in response.json() and "1970" in str(response.json()["end"])


def test_a_huge_page_size_is_refused_naming_the_maximum(rf):
    from rest_framework.exceptions import ValidationError
    from rest_framework.request import Request

    from apps.core.pagination import BoundedLimitOffsetPagination

    request = Request(rf.get("/api/v1/fills/", {"limit": "100000000"}))
    with pytest.raises(ValidationError) as info:
        BoundedLimitOffsetPagination().get_limit(request)
    assert "from 1 to 1000" in str(info.value.detail["limit"])
    assert BoundedLimitOffsetPagination().get_limit(Request(rf.get("/", {"limit": "1000"}))) == 1000
