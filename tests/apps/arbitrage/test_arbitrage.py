"""Arbitrage tracker data: edges computed exactly, execution outcome, notifications above a
user's threshold, opportunities readable by every authenticated user with validated filters,
settings private to each user."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from decimal import Decimal

import pytest

from apps.arbitrage import selectors, services
from apps.arbitrage.models import ArbitrageSettings, Opportunity
from apps.arbitrage.services import ArbitrageInputError, DetectedOpportunity
from apps.notifications.services import channel_create, rule_create

pytestmark = pytest.mark.django_db

T0 = datetime(2026, 11, 20, 9, 0, tzinfo=UTC)


def detected(seconds=0, symbol="BTC/USDT", buy="sim:alpha", sell="sim:beta", **kw) -> DetectedOpportunity:
    values = {
        "buy_price": Decimal("100.00"),
        "sell_price": Decimal("100.50"),
        "size": Decimal("2"),
        "fees": Decimal("0.20"),
        "slippage": Decimal("0.10"),
        "discount": Decimal("0.05"),
        "staleness_ms": 40,
        "latency_ms": 12,
    }
    values.update(kw)
    return DetectedOpportunity(
        ts=T0 + timedelta(seconds=seconds), symbol=symbol, buy_venue=buy, sell_venue=sell, **values
    )


def test_edges_are_computed_exactly_from_prices_fees_and_slippage():
    (opp,) = services.opportunity_record_batch(detected=[detected()])
    opp = Opportunity.objects.get(pk=opp.pk)
    # gross: 0.50 * 2 = 1.00 on 200 notional = 50 bps; net: 1.00 - 0.20 - 0.10 - 0.05 = 0.65 = 32.5 bps
    assert opp.gross_edge_bps == Decimal("50.0000")
    assert opp.net_profit == Decimal("0.65")
    assert opp.net_edge_bps == Decimal("32.5000")
    assert opp.slippage == Decimal("0.15") and opp.fees == Decimal("0.20")


def test_invalid_items_are_refused_with_their_index_and_nothing_is_stored():
    with pytest.raises(ArbitrageInputError) as err:
        services.opportunity_record_batch(
            detected=[detected(), detected(size=Decimal(0), sell="sim:alpha"), detected(fees=Decimal(-1))]
        )
    assert set(err.value.errors) == {"1.size", "1.sell_venue", "2.fees"}
    assert Opportunity.objects.count() == 0


def test_execution_outcome_shows_realized_edge():
    (opp,) = services.opportunity_record_batch(detected=[detected()])
    services.opportunity_record_execution(opportunity=opp, realized_profit=Decimal("0.30"))
    opp = Opportunity.objects.get(pk=opp.pk)
    assert opp.executed and opp.realized_profit == Decimal("0.30") and opp.realized_edge_bps == Decimal("15.0000")


def test_notify_users_whose_threshold_and_filters_match(trader, trader2, viewer, sent):
    for user in (trader, trader2, viewer):
        channel = channel_create(owner=user, kind="email", name="m", config={"address": f"{user.username}@example.com"})
        rule_create(owner=user, event_kind="arbitrage", channels=[channel])
    services.arbitrage_settings_update(user=trader, notify_threshold_bps="30")
    services.arbitrage_settings_update(user=trader2, notify_threshold_bps="40")  # above 32.5: not notified
    services.arbitrage_settings_update(user=viewer, notify_threshold_bps="10", venues=["sim:alpha", "sim:gamma"])
    (opp,) = services.opportunity_record_batch(detected=[detected()])
    assert services.opportunity_notify(opportunity=opp) == 1
    assert services.opportunity_notify(opportunity=opp) == 0  # same minute and pair: deduplicated
    from apps.notifications.models import Delivery

    (delivery,) = Delivery.objects.all()
    assert delivery.channel.owner == trader and "32.5" in delivery.payload["subject"]


def test_settings_update_validates_each_field(trader):
    with pytest.raises(ArbitrageInputError) as err:
        services.arbitrage_settings_update(
            user=trader, min_profit="-1", notify_threshold_bps="abc", symbols="BTC", venues=[1]
        )
    assert set(err.value.errors) == {"min_profit", "notify_threshold_bps", "symbols", "venues"}
    assert not ArbitrageSettings.objects.filter(owner=trader, min_profit__lt=0).exists()


def test_opportunity_filters(trader):
    services.opportunity_record_batch(
        detected=[
            detected(0),
            detected(10, symbol="ETH/USDT"),
            detected(20, buy="sim:gamma"),
            detected(30, sell_price=Decimal("100.20")),  # net 0.05 = 2.5 bps
        ]
    )
    assert selectors.opportunity_list(user=trader).count() == 4
    assert selectors.opportunity_list(user=trader, symbol="ETH/USDT").count() == 1
    assert selectors.opportunity_list(user=trader, venues=["sim:alpha", "sim:beta"]).count() == 3
    assert selectors.opportunity_list(user=trader, min_net_edge_bps=Decimal(10)).count() == 3
    assert (
        selectors.opportunity_list(user=trader, start=T0 + timedelta(seconds=5), end=T0 + timedelta(seconds=25)).count()
        == 2
    )


# --- API ---------------------------------------------------------------------------------------
def test_api_every_authenticated_user_reads_opportunities(trader, viewer, api_for, client):
    services.opportunity_record_batch(detected=[detected(0), detected(1, sell_price=Decimal("100.20"))])
    for user in (trader, viewer):
        body = api_for(user).get("/api/v1/arbitrage/opportunities/", {"min_net_edge_bps": "10"}).json()
        assert body["count"] == 1 and body["results"][0]["net_edge_bps"] == "32.5000"
    assert client.get("/api/v1/arbitrage/opportunities/").status_code in (401, 403)


@pytest.mark.parametrize(
    ("params", "field"),
    [
        ({"min_net_edge_bps": "lots"}, "min_net_edge_bps"),
        ({"start": "soon"}, "start"),
        ({"start": "2026-11-20T10:00:00Z", "end": "2026-11-20T09:00:00Z"}, "start"),
        ({"venues": " , "}, "venues"),
        ({"executed": "maybe"}, "executed"),
    ],
)
def test_api_bad_filters_are_400_naming_the_parameter(trader, api_for, params, field):
    response = api_for(trader).get("/api/v1/arbitrage/opportunities/", params)
    assert response.status_code == 400 and field in response.json()


def test_api_settings_are_per_user(trader, trader2, api_for):
    api = api_for(trader)
    assert api.get("/api/v1/arbitrage/settings/").json()["notify_threshold_bps"] == "10.0000"
    saved = api.patch(
        "/api/v1/arbitrage/settings/", {"notify_threshold_bps": "25", "symbols": ["BTC/USDT"]}, format="json"
    )
    assert saved.status_code == 200, saved.json()
    assert saved.json()["symbols"] == ["BTC/USDT"]
    assert api_for(trader2).get("/api/v1/arbitrage/settings/").json()["symbols"] == []
    bad = api.put("/api/v1/arbitrage/settings/", {"min_profit": "-5"}, format="json")
    assert bad.status_code == 400 and "min_profit" in bad.json()
    assert ArbitrageSettings.objects.get(owner=trader).notify_threshold_bps == Decimal(25)


def test_viewers_can_read_but_not_change_tracker_settings(viewer, api_for):
    api = api_for(viewer)
    assert api.get("/api/v1/arbitrage/settings/").status_code == 200
    assert api.patch("/api/v1/arbitrage/settings/", {"paper_execute": True}, format="json").status_code == 403
    assert not ArbitrageSettings.objects.filter(owner=viewer, paper_execute=True).exists()
