"""TimescaleDB: the same ``portfolio_pnlminute`` table as on plain PostgreSQL, in place of the
``pnl_1m`` continuous aggregate. Nothing changes on plain PostgreSQL.

The continuous aggregate held only what its refresh policy had materialised (a 1-day window
every minute): history older than the window, backfills, late inserts and scheduler outages
were missing from ``pnl_series``; and its invalidation trigger made every DELETE decompress
the rows it touched (a bot's delete failed past 100,000 compressed snapshots). Here:

- the table, its primary key and the merge rule are those of migration 0005;
- a row-level AFTER INSERT trigger merges each new snapshot into its minute (hypertables
  accept row-level triggers but not the transition tables the plain trigger uses; it fires for
  COPY and for rows inserted into compressed chunks too);
- rows already there are rolled up once (``BACKFILL``);
- TRUNCATE empties the rollup as on plain PostgreSQL; deletes go through
  ``apps.portfolio.services.pnl_delete_for_bot`` (no DELETE trigger: a row-level one would
  make TimescaleDB decompress every batch a delete touches).
"""

from importlib import import_module

from django.db import migrations

from apps.core import timescale

rollup = import_module("apps.portfolio.migrations.0005_pnl_minute_rollup")
policies = import_module("apps.portfolio.migrations.0002_timescale_policies")
VALUES = rollup.VALUES
ORIGIN = "TIMESTAMPTZ '2000-01-03 00:00:00+00'"
NEW_ROW = ", ".join(
    ["NEW.bot_id", f"date_bin(INTERVAL '1 minute', NEW.ts, {ORIGIN})", "NEW.ts"]
    + [f"NEW.{name}" for name in VALUES]
    + ["NEW.equity", "NEW.equity", "NEW.drawdown"]
)
MERGE = rollup.TRIGGER[rollup.TRIGGER.index("ON CONFLICT") : rollup.TRIGGER.index("RETURN NULL")]

FORWARD = [
    "DROP VIEW IF EXISTS portfolio_pnlminute",
    "DROP MATERIALIZED VIEW IF EXISTS pnl_1m",
    rollup.TABLE,
    "ALTER TABLE portfolio_pnlminute DROP CONSTRAINT IF EXISTS portfolio_pnlminute_bot_id_fkey",
    f"""
    CREATE OR REPLACE FUNCTION portfolio_pnlminute_rollup_row() RETURNS trigger AS $$
    BEGIN
        INSERT INTO portfolio_pnlminute AS m
            (bot_id, bucket, last_ts, {", ".join(VALUES)}, equity_high, equity_low, max_drawdown)
        VALUES ({NEW_ROW})
        {MERGE}
        RETURN NULL;
    END;
    $$ LANGUAGE plpgsql
    """,
    "CREATE TRIGGER portfolio_pnlminute_rollup AFTER INSERT ON portfolio_pnlsnapshot "
    "FOR EACH ROW EXECUTE FUNCTION portfolio_pnlminute_rollup_row()",
    """
    CREATE OR REPLACE FUNCTION portfolio_pnlminute_truncate() RETURNS trigger AS $$
    BEGIN
        TRUNCATE portfolio_pnlminute;
        RETURN NULL;
    END;
    $$ LANGUAGE plpgsql
    """,
    "CREATE TRIGGER portfolio_pnlminute_truncate AFTER TRUNCATE ON portfolio_pnlsnapshot "
    "FOR EACH STATEMENT EXECUTE FUNCTION portfolio_pnlminute_truncate()",
    rollup.BACKFILL,
]

BACKWARD = [
    "DROP TRIGGER IF EXISTS portfolio_pnlminute_truncate ON portfolio_pnlsnapshot",
    "DROP FUNCTION IF EXISTS portfolio_pnlminute_truncate()",
    "DROP TRIGGER IF EXISTS portfolio_pnlminute_rollup ON portfolio_pnlsnapshot",
    "DROP FUNCTION IF EXISTS portfolio_pnlminute_rollup_row()",
    "DROP TABLE IF EXISTS portfolio_pnlminute",
    *[sql for sql in policies.FORWARD if "pnl_1m" in sql],
    rollup.TIMESCALE_VIEW,
]


class Migration(migrations.Migration):
    dependencies = [("portfolio", "0006_pnl_minute_without_fk")]
    operations = [timescale.timescale_only(FORWARD, reverse=BACKWARD)]
