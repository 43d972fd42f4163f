"""``portfolio_pnlminute``: PnL per bot and minute, kept up to date for every insert.

Plain PostgreSQL: a table and a statement-level AFTER INSERT trigger (transition table) that
merges each statement's new snapshots into it: the last values win by time, the equity high
and low and the largest drawdown combine. It sees COPY, bulk_create and single inserts alike.

TimescaleDB (hypertables cannot have transition tables): a view over the ``pnl_1m``
continuous aggregate, switched to real-time so the newest minutes are included.
"""

from django.db import migrations

from apps.core.timeseries import timescale_enabled

VALUES = ("position", "cash", "mid", "realized", "unrealized", "fees", "equity", "peak_equity")
NUM = "numeric(38, 18)"

TABLE = f"""
CREATE TABLE portfolio_pnlminute (
    bot_id bigint NOT NULL REFERENCES bots_bot (id) ON DELETE CASCADE DEFERRABLE INITIALLY DEFERRED,
    bucket timestamptz NOT NULL,
    last_ts timestamptz NOT NULL,
    {", ".join(f"{name} {NUM}" for name in VALUES)},
    equity_high {NUM},
    equity_low {NUM},
    max_drawdown {NUM},
    PRIMARY KEY (bot_id, bucket)
)
"""

TRIGGER = f"""
CREATE OR REPLACE FUNCTION portfolio_pnlminute_rollup() RETURNS trigger AS $$
BEGIN
    INSERT INTO portfolio_pnlminute AS m
        (bot_id, bucket, last_ts, {", ".join(VALUES)}, equity_high, equity_low, max_drawdown)
    SELECT bot_id,
           date_bin(INTERVAL '1 minute', ts, TIMESTAMPTZ '2000-01-03 00:00:00+00'),
           max(ts),
           {", ".join(f"(array_agg({name} ORDER BY ts DESC))[1]" for name in VALUES)},
           max(equity), min(equity), max(drawdown)
    FROM new_rows
    GROUP BY 1, 2
    ON CONFLICT (bot_id, bucket) DO UPDATE SET
        {", ".join(f"{name} = CASE WHEN EXCLUDED.last_ts >= m.last_ts THEN EXCLUDED.{name} ELSE m.{name} END" for name in VALUES)},
        last_ts = GREATEST(m.last_ts, EXCLUDED.last_ts),
        equity_high = GREATEST(m.equity_high, EXCLUDED.equity_high),
        equity_low = LEAST(m.equity_low, EXCLUDED.equity_low),
        max_drawdown = GREATEST(m.max_drawdown, EXCLUDED.max_drawdown);
    RETURN NULL;
END;
$$ LANGUAGE plpgsql;
CREATE TRIGGER portfolio_pnlminute_rollup
    AFTER INSERT ON portfolio_pnlsnapshot
    REFERENCING NEW TABLE AS new_rows
    FOR EACH STATEMENT EXECUTE FUNCTION portfolio_pnlminute_rollup();
"""

# Rows already there (e.g. a database upgraded after snapshots were recorded).
BACKFILL = f"""
INSERT INTO portfolio_pnlminute (bot_id, bucket, last_ts, {", ".join(VALUES)}, equity_high, equity_low, max_drawdown)
SELECT bot_id, date_bin(INTERVAL '1 minute', ts, TIMESTAMPTZ '2000-01-03 00:00:00+00'), max(ts),
       {", ".join(f"(array_agg({name} ORDER BY ts DESC))[1]" for name in VALUES)},
       max(equity), min(equity), max(drawdown)
FROM portfolio_pnlsnapshot GROUP BY 1, 2
"""

TIMESCALE_VIEW = f"""
ALTER MATERIALIZED VIEW pnl_1m SET (timescaledb.materialized_only = false);
CREATE VIEW portfolio_pnlminute AS
SELECT bot_id, bucket, bucket AS last_ts, {", ".join(VALUES)}, equity_high, equity_low, max_drawdown FROM pnl_1m;
"""


def forward(apps, schema_editor):
    if timescale_enabled(schema_editor.connection):
        schema_editor.execute(TIMESCALE_VIEW)
    else:
        schema_editor.execute(TABLE)
        schema_editor.execute(TRIGGER)
        schema_editor.execute(BACKFILL)


def backward(apps, schema_editor):
    if timescale_enabled(schema_editor.connection):
        schema_editor.execute("DROP VIEW IF EXISTS portfolio_pnlminute")
    else:
        schema_editor.execute("DROP TRIGGER IF EXISTS portfolio_pnlminute_rollup ON portfolio_pnlsnapshot")
        schema_editor.execute("DROP FUNCTION IF EXISTS portfolio_pnlminute_rollup()")
        schema_editor.execute("DROP TABLE IF EXISTS portfolio_pnlminute")


class Migration(migrations.Migration):
    dependencies = [("portfolio", "0004_ingest_without_fk_checks"), ("bots", "0003_drop_redundant_fk_indexes")]
    operations = [migrations.RunPython(forward, backward)]
