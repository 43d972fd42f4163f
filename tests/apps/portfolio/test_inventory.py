"""Net inventory per asset over a user's accounts and bots (real PostgreSQL): spot balances of
live and paper accounts, perpetual positions from fills, the value at the mark, target,
deviation and limit usage; targets refused field by field; the API scoped to the user."""

from __future__ import annotations

from datetime import timedelta
from decimal import Decimal

import pytest
from django.utils import timezone

from apps.accounts.errors import FieldErrors
from apps.bots.services import bot_create
from apps.exchanges.models import ExchangeAccount, Market
from apps.orders.models import Fill
from apps.portfolio.inventory import inventory_list, owner_inventory
from apps.portfolio.models import Balance, InventoryTarget
from apps.portfolio.targets import inventory_target_set
from tests.apps.bots.factories import PAPER_BALANCES, api, make_account, make_bot, make_user, sim_market

pytestmark = pytest.mark.django_db


def perp_market(venue: str = "sim:alpha") -> Market:
    market, _ = Market.objects.get_or_create(
        venue=venue,
        symbol="BTC/USDT:USDT",
        defaults={"base": "BTC", "quote": "USDT", "tick_size": Decimal("0.1"), "lot_size": Decimal("0.001")},
    )
    market.refresh_from_db()  # decimals, not the defaults given
    return market


def fill(account, bot, side: str, price: str, qty: str, fee: str = "0", n: list = [0]):  # noqa: B006
    n[0] += 1
    return Fill.objects.create(
        ts=timezone.now() - timedelta(seconds=n[0]),
        account=account,
        bot=bot,
        venue_trade_id=f"t{n[0]}",
        side=side,
        price=Decimal(price),
        quantity=Decimal(qty),
        fee=Decimal(fee),
    )


def mark(market: Market, bid: str, ask: str) -> None:
    from apps.marketdata.models import TopOfBookSnapshot

    TopOfBookSnapshot.objects.create(
        ts=timezone.now(), market=market, bid=Decimal(bid), bid_qty=1, ask=Decimal(ask), ask_qty=1
    )


def row(inventory: dict, asset: str) -> dict:
    return next(r for r in inventory["assets"] if r["asset"] == asset)


def test_net_sums_spot_of_paper_and_live_accounts_and_perp_positions_valued_at_the_mark(clean_redis):
    alice = make_user("alice")
    spot_bot = make_bot(alice, name="spot")
    paper = spot_bot.exchange_account
    perp_bot = bot_create(
        owner=alice,
        name="perp",
        exchange_account=make_account(alice, label="perp acct"),
        market=perp_market(),
        strategy="fixed_spread",
        params={"order_amount": "0.01", "bid_spread": "0.001", "ask_spread": "0.001"},
        risk={"max_position_base": "1"},
    )
    live = ExchangeAccount.objects.create(owner=alice, label="live", kind="live", venue="sim:alpha")
    Balance.objects.create(account=live, asset="BTC", free=Decimal("0.7"), total=Decimal("1.25"))
    Balance.objects.create(account=live, asset="USDT", free=Decimal("100"), total=Decimal("100"))
    fill(paper, spot_bot, "buy", "60000", "0.1", fee="3")
    fill(paper, spot_bot, "sell", "60100", "0.04", fee="1")
    fill(perp_bot.exchange_account, perp_bot, "sell", "60050", "0.3")
    fill(perp_bot.exchange_account, perp_bot, "buy", "60020", "0.1")
    mark(sim_market(), "59990", "60010")

    btc = row(owner_inventory(owner=alice), "BTC")
    start = Decimal(PAPER_BALANCES["BTC"])
    spot = start + Decimal("0.1") - Decimal("0.04") + start + Decimal("1.25")  # two paper accounts + live
    perp = Decimal("-0.3") + Decimal("0.1")
    assert btc["spot"] == spot and btc["perp"] == perp and btc["net"] == spot + perp
    assert btc["mark"] == Decimal("60000") and btc["quote"] == "USDT"
    assert btc["value"] == (spot + perp) * Decimal("60000")
    assert btc["target"] is None and btc["usage"] is None and btc["breached"] is False
    kinds = sorted((s["account"], s["kind"]) for s in btc["sources"])
    assert kinds == sorted([(paper.pk, "spot"), (perp_bot.exchange_account_id, "spot"),
                            (perp_bot.exchange_account_id, "perp"), (live.pk, "spot")])  # fmt: skip
    usdt = row(owner_inventory(owner=alice), "USDT")
    paid = Decimal("60000") * Decimal("0.1") + 3 - Decimal("60100") * Decimal("0.04") + 1
    assert usdt["net"] == 2 * Decimal(PAPER_BALANCES["USDT"]) - paid + 100  # perp fills move no spot USDT
    assert usdt["mark"] == 1 and usdt["value"] == usdt["net"]

    inventory_target_set(owner=alice, actor=alice, asset="btc", target="1", max_net="1.5", band="0.1")
    btc = row(owner_inventory(owner=alice), "BTC")
    net = spot + perp
    assert btc["target"] == 1 and btc["deviation"] == net - 1
    assert btc["usage"] == (net / Decimal("1.5")).quantize(Decimal("1e-4"))
    assert btc["breached"] is (net > Decimal("1.5"))
    assert btc["in_band"] is (abs(net - 1) <= Decimal("0.1"))


def test_a_target_for_an_asset_not_held_is_listed_with_zero_net():
    alice = make_user("alice")
    inventory_target_set(owner=alice, actor=alice, asset="ETH", target="-2", max_net="5")
    eth = row(owner_inventory(owner=alice), "ETH")
    assert eth["net"] == 0 and eth["deviation"] == 2 and eth["usage"] == 0 and eth["mark"] is None


@pytest.mark.parametrize(
    ("fields", "field", "words"),
    [
        ({"target": "abc"}, "target", ["'abc'", "accepted"]),
        ({"target": "1e3"}, "target", ["'1e3'", "plain decimal"]),
        ({"max_net": "-1"}, "max_net", ["'-1'", "above 0"]),
        ({"band": "0"}, "band", ["'0'", "above 0"]),
        ({"target": "10000000000000000"}, "target", ["10000000000000000", "1000000000000000"]),
        ({"target": "0.0000000000000000001"}, "target", ["0.0000000000000000001", "accepted"]),
        ({"hedge_enabled": "yes"}, "hedge_enabled", ["'yes'", "true or false"]),
        ({"hedge_enabled": True, "band": "0.1"}, "hedge_bot", ["None", "one of your bots trading BTC"]),
        ({"hedge_enabled": True, "hedge_bot": "x"}, "hedge_bot", ["'x'", "one of your bots"]),
    ],
)
def test_bad_target_input_is_refused_naming_field_value_and_what_is_accepted(fields, field, words):
    alice = make_user("alice")
    with pytest.raises(FieldErrors) as caught:
        inventory_target_set(owner=alice, actor=alice, asset="BTC", **fields)
    message = " ".join(caught.value.errors[field])
    assert all(w in message for w in words), message
    assert not InventoryTarget.objects.exists()


def test_hedge_bot_must_be_the_owners_and_trade_the_asset():
    alice, bob = make_user("alice"), make_user("bob")
    bobs = make_bot(bob, name="bobs")
    alices = make_bot(alice, name="alices")
    with pytest.raises(FieldErrors) as caught:
        inventory_target_set(owner=alice, actor=alice, asset="BTC", hedge_bot=bobs.pk)
    assert f"{bobs.pk} is not one of your bots" in caught.value.errors["hedge_bot"][0]
    with pytest.raises(FieldErrors) as caught:
        inventory_target_set(owner=alice, actor=alice, asset="ETH", hedge_bot=alices.pk)
    assert "trades BTC/USDT, not ETH" in caught.value.errors["hedge_bot"][0]
    with pytest.raises(FieldErrors) as caught:
        inventory_target_set(owner=alice, actor=alice, asset="B TC")
    assert "'B TC'" in caught.value.errors["asset"][0]
    saved = inventory_target_set(
        owner=alice, actor=alice, asset="BTC", band="0.1", hedge_enabled=True, hedge_bot=alices.pk
    )
    assert saved.hedge_bot_id == alices.pk and saved.hedge_enabled


def test_api_shows_only_my_inventory_and_targets_and_operators_see_everyones():
    alice, bob, olga = make_user("alice"), make_user("bob"), make_user("olga", "operator")
    make_bot(alice, name="a1")
    bob_account = make_account(bob, label="bob acct")
    ExchangeAccount.objects.filter(pk=bob_account.pk).update(paper_balances={"SOL": "42"})
    inventory_target_set(owner=bob, actor=bob, asset="SOL", target="40", max_net="50")

    mine = api(alice).get("/api/v1/portfolio/inventory/")
    assert mine.status_code == 200, mine.content
    assert [i["owner"] for i in mine.json()] == [alice.pk]
    assert "SOL" not in {a["asset"] for a in mine.json()[0]["assets"]}
    assert api(alice).get(f"/api/v1/portfolio/inventory/?owner={bob.pk}").json() == []
    assert api(alice).get("/api/v1/portfolio/inventory/?owner=x").status_code == 400

    everyone = api(olga).get("/api/v1/portfolio/inventory/").json()
    assert {i["owner"] for i in everyone} == {alice.pk, bob.pk}
    sol = next(a for i in everyone if i["owner"] == bob.pk for a in i["assets"] if a["asset"] == "SOL")
    assert Decimal(sol["net"]) == 42 and Decimal(sol["deviation"]) == 2 and Decimal(sol["target"]) == 40

    target = InventoryTarget.objects.get(owner=bob)
    assert api(alice).get("/api/v1/portfolio/targets/").json()["results"] == []
    assert api(alice).get(f"/api/v1/portfolio/targets/{target.pk}/").status_code == 404
    assert (
        api(alice).patch(f"/api/v1/portfolio/targets/{target.pk}/", {"target": "1"}, format="json").status_code == 404
    )
    assert api(alice).delete(f"/api/v1/portfolio/targets/{target.pk}/").status_code == 404
    assert api(olga).get(f"/api/v1/portfolio/targets/{target.pk}/").status_code == 200
    assert api(olga).patch(f"/api/v1/portfolio/targets/{target.pk}/", {"target": "1"}, format="json").status_code == 403

    created = api(alice).post(
        "/api/v1/portfolio/targets/", {"asset": "btc", "target": "0.5", "max_net": "2"}, format="json"
    )
    assert created.status_code == 201, created.content
    assert created.json()["asset"] == "BTC" and created.json()["target"] == "0.5" and created.json()["max_net"] == "2"
    bad = api(alice).post("/api/v1/portfolio/targets/", {"asset": "BTC", "max_net": "-3"}, format="json")
    assert bad.status_code == 400 and "'-3'" in bad.json()["max_net"][0] and "above 0" in bad.json()["max_net"][0]
    changed = api(alice).patch(f"/api/v1/portfolio/targets/{created.json()['id']}/", {"band": "0.2"}, format="json")
    assert changed.status_code == 200 and changed.json()["band"] == "0.2" and changed.json()["target"] == "0.5"
    assert (
        api(make_user("vic", "viewer")).post("/api/v1/portfolio/targets/", {"asset": "BTC"}, format="json").status_code
        == 403
    )
    assert [t.asset for t in InventoryTarget.objects.filter(owner=alice)] == ["BTC"]
    assert inventory_list(user=bob) == [owner_inventory(owner=bob)]


def test_target_changes_are_in_the_audit_log():
    from apps.accounts.models import AuditLog

    alice = make_user("alice")
    inventory_target_set(owner=alice, actor=alice, asset="BTC", target="1")
    inventory_target_set(owner=alice, actor=alice, asset="BTC", max_net="3")
    entries = list(AuditLog.objects.filter(object_type="inventory_target").order_by("id"))
    assert [e.after["max_net"] for e in entries] == [None, "3"]
    assert entries[1].before["target"] == "1"


def test_the_overview_shows_the_table_and_its_form_saves_or_names_the_bad_field(client):
    alice = make_user("alice")
    make_account(alice, label="a")
    client.force_login(alice)
    page = client.get("/")
    assert b'id="inventory-rows"' in page.content and b'data-asset="BTC"' in page.content
    refused = client.post("/portfolio/targets/", {"asset": "BTC", "target": "1", "max_net": "-2"}, follow=True)
    assert b"inventory target refused" in refused.content and b"max_net" in refused.content
    assert not InventoryTarget.objects.exists()
    saved = client.post("/portfolio/targets/", {"asset": "BTC", "target": "0.4", "max_net": "2"}, follow=True)
    assert b"inventory target for BTC saved" in saved.content
    target = InventoryTarget.objects.get(owner=alice, asset="BTC")
    assert target.target == Decimal("0.4") and target.max_net == 2 and not target.hedge_enabled


def test_anonymous_requests_are_refused_not_crashed():
    for path in ("/api/v1/portfolio/inventory/", "/api/v1/portfolio/targets/"):
        assert api(None).get(path).status_code in (401, 403)
    assert api(None).post("/api/v1/portfolio/targets/", {"asset": "BTC"}, format="json").status_code in (401, 403)
