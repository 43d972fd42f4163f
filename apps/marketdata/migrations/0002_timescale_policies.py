"""Compression and retention policies and the 1-minute candles continuous aggregate.

Runs only where TimescaleDB is enabled (see ``apps.core.timescale``); a no-op on plain PostgreSQL.
"""

from django.db import migrations

from apps.core import timescale

TABLES = {
    # table: (orderby for compression, compress after, drop after)
    "marketdata_topofbooksnapshot": ("ts DESC", "2 days", "30 days"),
    "marketdata_depthsnapshot": ("ts DESC", "2 days", "14 days"),
    # trades are unique on (market_id, trade_id, ts): trade_id must be an orderby column.
    "marketdata_trade": ("ts DESC, trade_id", "7 days", "180 days"),
}
CANDLES_VIEW = "marketdata_candles_1m"


def _forward():
    statements = []
    for table, (order_by, compress_after, drop_after) in TABLES.items():
        statements += timescale.compression_sql(
            table, segment_by=["market_id"], order_by=order_by, compress_after=compress_after
        )
        statements += timescale.retention_sql(table, drop_after=drop_after)
    statements += timescale.continuous_aggregate_sql(
        CANDLES_VIEW,
        select=timescale.candles_select_sql("marketdata_trade", width="1 minute"),
        start_offset="3 hours",
        end_offset="1 minute",
        schedule_interval="1 minute",
    )
    statements += timescale.retention_sql(CANDLES_VIEW, drop_after="365 days")
    return statements


def _reverse():
    statements = timescale.drop_continuous_aggregate_sql(CANDLES_VIEW)
    for table in TABLES:
        statements += timescale.remove_policies_sql(table)
    return statements


class Migration(migrations.Migration):
    dependencies = [("marketdata", "0001_initial")]

    operations = [timescale.timescale_only(_forward(), reverse=_reverse())]
