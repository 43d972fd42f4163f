"""TimescaleDB only: compression and retention of PnL snapshots and the ``pnl_1m`` continuous
aggregate (last-of-minute values). Nothing happens on plain PostgreSQL."""

from django.db import migrations

from apps.core.timeseries import timescale_enabled

FORWARD = [
    "ALTER TABLE portfolio_pnlsnapshot SET (timescaledb.compress, "
    "timescaledb.compress_segmentby = 'bot_id', timescaledb.compress_orderby = 'ts DESC')",
    "SELECT add_compression_policy('portfolio_pnlsnapshot', INTERVAL '7 days', if_not_exists => true)",
    "SELECT add_retention_policy('portfolio_pnlsnapshot', INTERVAL '400 days', if_not_exists => true)",
    """
    CREATE MATERIALIZED VIEW IF NOT EXISTS pnl_1m WITH (timescaledb.continuous) AS
    SELECT time_bucket(INTERVAL '1 minute', ts) AS bucket,
           bot_id,
           last(position, ts) AS position,
           last(cash, ts) AS cash,
           last(mid, ts) AS mid,
           last(realized, ts) AS realized,
           last(unrealized, ts) AS unrealized,
           last(fees, ts) AS fees,
           last(equity, ts) AS equity,
           max(equity) AS equity_high,
           min(equity) AS equity_low,
           last(peak_equity, ts) AS peak_equity,
           max(drawdown) AS max_drawdown
    FROM portfolio_pnlsnapshot
    GROUP BY bucket, bot_id
    WITH NO DATA
    """,
    "SELECT add_continuous_aggregate_policy('pnl_1m', start_offset => INTERVAL '1 day', "
    "end_offset => INTERVAL '1 minute', schedule_interval => INTERVAL '1 minute', if_not_exists => true)",
]

BACKWARD = [
    "DROP MATERIALIZED VIEW IF EXISTS pnl_1m",
    "SELECT remove_retention_policy('portfolio_pnlsnapshot', if_exists => true)",
    "SELECT remove_compression_policy('portfolio_pnlsnapshot', if_exists => true)",
]


def _run(statements):
    def run(apps, schema_editor):
        if not timescale_enabled(schema_editor.connection):
            return
        for sql in statements:
            schema_editor.execute(sql)

    return run


class Migration(migrations.Migration):
    dependencies = [("portfolio", "0001_initial")]
    operations = [migrations.RunPython(_run(FORWARD), _run(BACKWARD))]
