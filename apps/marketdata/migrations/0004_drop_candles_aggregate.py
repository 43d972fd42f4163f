"""TimescaleDB: drop the ``marketdata_candles_1m`` continuous aggregate (a no-op on plain
PostgreSQL, where it never existed).

Nothing read it: candles are computed from the trades (``apps.marketdata.selectors.candles``),
and they must stay so. Its ``first(price, ts)``/``last(price, ts)`` cannot break ties between
trades sharing a timestamp, it held only its 3-hour refresh window, and refreshing it every
minute cost work for no reader. Dropping the view drops its refresh and retention policies.
"""

from importlib import import_module

from django.db import migrations

from apps.core import timescale

policies = import_module("apps.marketdata.migrations.0002_timescale_policies")
VIEW = policies.CANDLES_VIEW


def _recreate():
    statements = timescale.continuous_aggregate_sql(
        VIEW,
        select=timescale.candles_select_sql("marketdata_trade", width="1 minute"),
        start_offset="3 hours",
        end_offset="1 minute",
        schedule_interval="1 minute",
    )
    return statements + timescale.retention_sql(VIEW, drop_after="365 days")


class Migration(migrations.Migration):
    dependencies = [("marketdata", "0003_drop_redundant_time_indexes")]

    operations = [timescale.timescale_only(timescale.drop_continuous_aggregate_sql(VIEW), reverse=_recreate())]
