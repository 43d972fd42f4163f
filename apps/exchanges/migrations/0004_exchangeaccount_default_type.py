"""Exchange accounts are spot or derivatives (ccxt defaultType): the new ``default_type`` column,
filled for existing accounts from what their venue offers (apps.exchanges.market_types)."""

from django.db import migrations, models


def fill(apps, schema_editor):
    ExchangeAccount = apps.get_model("exchanges", "ExchangeAccount")
    Market = apps.get_model("exchanges", "Market")
    for account in ExchangeAccount.objects.filter(default_type=""):
        kinds = set(Market.objects.filter(venue=account.venue).values_list("kind", flat=True))
        derivatives_only = bool(kinds) and "spot" not in kinds
        account.default_type = "swap" if derivatives_only else "spot"
        account.save(update_fields=["default_type"])


class Migration(migrations.Migration):
    dependencies = [("exchanges", "0003_market_contract_fields")]

    operations = [
        migrations.AddField(
            model_name="exchangeaccount",
            name="default_type",
            field=models.CharField(
                blank=True,
                choices=[("spot", "Spot"), ("swap", "Derivatives (perpetual swaps)")],
                default="",
                help_text="spot or swap (derivatives): ccxt's defaultType; blank = inferred from the venue when saved",
                max_length=8,
            ),
        ),
        migrations.RunPython(fill, migrations.RunPython.noop),
    ]
