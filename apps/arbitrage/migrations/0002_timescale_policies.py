"""Compression and retention of the opportunities time series (TimescaleDB only; no-op on plain PostgreSQL)."""

from django.db import migrations

from apps.core import timescale

TABLE = "arbitrage_opportunity"


class Migration(migrations.Migration):
    dependencies = [("arbitrage", "0001_initial")]

    operations = [
        timescale.timescale_only(
            timescale.compression_sql(TABLE, segment_by=["symbol"], order_by="ts DESC", compress_after="7 days"),
            timescale.retention_sql(TABLE, drop_after="90 days"),
            reverse=timescale.remove_policies_sql(TABLE),
        )
    ]
