"""Seed two simulated linear perpetuals, ``sim:gamma`` and ``sim:delta`` ``BTC/USDT:USDT``
(contracts of 1 BTC in lots of 0.001, settled in USDT, up to 100x), so a perp-to-perp hedged
maker (maker on one, hedge on the other) runs hosted on paper. A sim venue plays the hosted
synthetic market (``connectors.sim.hosted_feed``) for any symbol; its row's contract fields make
it a perpetual (``apps.derivatives.hosting.perp_market``)."""

from decimal import Decimal

from django.db import migrations

SIM_PERPS = [
    # venue, symbol, base, quote, tick, lot, min_notional, maker, taker, kind, contract size, settle, max leverage
    ("sim:gamma", "BTC/USDT:USDT", "BTC", "USDT", "0.1", "0.001", "0", "0.0002", "0.0005", "linear", "1", "USDT", 100),
    ("sim:delta", "BTC/USDT:USDT", "BTC", "USDT", "0.1", "0.001", "0", "0.0002", "0.0005", "linear", "1", "USDT", 100),
]  # fmt: skip


def seed(apps, schema_editor):
    Market = apps.get_model("exchanges", "Market")
    for venue, symbol, base, quote, tick, lot, notional, maker, taker, kind, size, settle, lev in SIM_PERPS:
        Market.objects.update_or_create(
            venue=venue,
            symbol=symbol,
            defaults={
                "base": base, "quote": quote, "tick_size": Decimal(tick), "lot_size": Decimal(lot),
                "min_notional": Decimal(notional), "maker_fee": Decimal(maker), "taker_fee": Decimal(taker),
                "kind": kind, "contract_size": Decimal(size), "settle": settle, "max_leverage": Decimal(lev),
                "active": True,
            },
        )  # fmt: skip


def unseed(apps, schema_editor):
    Market = apps.get_model("exchanges", "Market")
    for venue, symbol, *_ in SIM_PERPS:
        Market.objects.filter(venue=venue, symbol=symbol).delete()


class Migration(migrations.Migration):
    dependencies = [("exchanges", "0005_exchangeaccount_balances_at")]
    operations = [migrations.RunPython(seed, unseed)]
