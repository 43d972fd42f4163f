"""Plain PostgreSQL: the minute rollup follows deletes and truncates of the snapshots instead of
holding a foreign key to bots (a foreign key would stop Django's test flush, which truncates
only the tables it manages, from truncating ``bots_bot``).

- AFTER DELETE (statement, transition table): the minutes that lost snapshots are recomputed
  from what is left (a deleted bot's snapshots go first, so its minutes disappear);
- AFTER TRUNCATE: the rollup is emptied too.
"""

from django.db import migrations

from apps.core.timeseries import timescale_enabled

VALUES = ("position", "cash", "mid", "realized", "unrealized", "fees", "equity", "peak_equity")
ORIGIN = "TIMESTAMPTZ '2000-01-03 00:00:00+00'"

FORWARD = f"""
ALTER TABLE portfolio_pnlminute DROP CONSTRAINT IF EXISTS portfolio_pnlminute_bot_id_fkey;

CREATE OR REPLACE FUNCTION portfolio_pnlminute_forget() RETURNS trigger AS $$
BEGIN
    DELETE FROM portfolio_pnlminute m
    USING (SELECT DISTINCT bot_id, date_bin(INTERVAL '1 minute', ts, {ORIGIN}) AS bucket FROM old_rows) k
    WHERE m.bot_id = k.bot_id AND m.bucket = k.bucket;
    INSERT INTO portfolio_pnlminute
        (bot_id, bucket, last_ts, {", ".join(VALUES)}, equity_high, equity_low, max_drawdown)
    SELECT s.bot_id, k.bucket, max(s.ts),
           {", ".join(f"(array_agg(s.{name} ORDER BY s.ts DESC))[1]" for name in VALUES)},
           max(s.equity), min(s.equity), max(s.drawdown)
    FROM (SELECT DISTINCT bot_id, date_bin(INTERVAL '1 minute', ts, {ORIGIN}) AS bucket FROM old_rows) k
    JOIN portfolio_pnlsnapshot s
      ON s.bot_id = k.bot_id AND s.ts >= k.bucket AND s.ts < k.bucket + INTERVAL '1 minute'
    GROUP BY s.bot_id, k.bucket;
    RETURN NULL;
END;
$$ LANGUAGE plpgsql;
CREATE TRIGGER portfolio_pnlminute_forget
    AFTER DELETE ON portfolio_pnlsnapshot
    REFERENCING OLD TABLE AS old_rows
    FOR EACH STATEMENT EXECUTE FUNCTION portfolio_pnlminute_forget();

CREATE OR REPLACE FUNCTION portfolio_pnlminute_truncate() RETURNS trigger AS $$
BEGIN
    TRUNCATE portfolio_pnlminute;
    RETURN NULL;
END;
$$ LANGUAGE plpgsql;
CREATE TRIGGER portfolio_pnlminute_truncate
    AFTER TRUNCATE ON portfolio_pnlsnapshot
    FOR EACH STATEMENT EXECUTE FUNCTION portfolio_pnlminute_truncate();
"""

BACKWARD = """
DROP TRIGGER IF EXISTS portfolio_pnlminute_truncate ON portfolio_pnlsnapshot;
DROP FUNCTION IF EXISTS portfolio_pnlminute_truncate();
DROP TRIGGER IF EXISTS portfolio_pnlminute_forget ON portfolio_pnlsnapshot;
DROP FUNCTION IF EXISTS portfolio_pnlminute_forget();
"""


def forward(apps, schema_editor):
    if not timescale_enabled(schema_editor.connection):
        schema_editor.execute(FORWARD)


def backward(apps, schema_editor):
    if not timescale_enabled(schema_editor.connection):
        schema_editor.execute(BACKWARD)


class Migration(migrations.Migration):
    dependencies = [("portfolio", "0005_pnl_minute_rollup")]
    operations = [migrations.RunPython(forward, backward)]
