"""Seed the markets of the replay and simulated venues (live venues come from ``market_sync``)."""

from decimal import Decimal

from django.db import migrations

SEED = [
    # venue, symbol, base, quote, tick, lot, min_notional, maker, taker
    ("replay:binance-spot", "BTC/USDT", "BTC", "USDT", "0.01", "0.00001", "5", "0.001", "0.001"),
    ("replay:binance-usdm", "BTC/USDT:USDT", "BTC", "USDT", "0.1", "0.001", "100", "0.0002", "0.0005"),
    ("sim:alpha", "BTC/USDT", "BTC", "USDT", "0.01", "0.0001", "0", "0.0001", "0.0005"),
    ("sim:beta", "BTC/USDT", "BTC", "USDT", "0.01", "0.0001", "0", "0.0001", "0.0005"),
]


def seed(apps, schema_editor):
    Market = apps.get_model("exchanges", "Market")
    for venue, symbol, base, quote, tick, lot, notional, maker, taker in SEED:
        Market.objects.update_or_create(
            venue=venue,
            symbol=symbol,
            defaults={
                "base": base,
                "quote": quote,
                "tick_size": Decimal(tick),
                "lot_size": Decimal(lot),
                "min_notional": Decimal(notional),
                "maker_fee": Decimal(maker),
                "taker_fee": Decimal(taker),
                "active": True,
            },
        )


def unseed(apps, schema_editor):
    Market = apps.get_model("exchanges", "Market")
    for venue, symbol, *_ in SEED:
        Market.objects.filter(venue=venue, symbol=symbol).delete()


class Migration(migrations.Migration):
    dependencies = [("exchanges", "0001_initial")]
    operations = [migrations.RunPython(seed, unseed)]
