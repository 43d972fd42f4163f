"""TimescaleDB only: compression and retention of bot events. No-op on plain PostgreSQL."""

from django.db import migrations

from apps.core.timeseries import timescale_enabled

FORWARD = [
    "ALTER TABLE bots_botevent SET (timescaledb.compress, "
    "timescaledb.compress_segmentby = 'bot_id', timescaledb.compress_orderby = 'ts DESC')",
    "SELECT add_compression_policy('bots_botevent', INTERVAL '7 days', if_not_exists => true)",
    "SELECT add_retention_policy('bots_botevent', INTERVAL '180 days', if_not_exists => true)",
]
BACKWARD = [
    "SELECT remove_retention_policy('bots_botevent', if_exists => true)",
    "SELECT remove_compression_policy('bots_botevent', if_exists => true)",
]


def _run(statements):
    def run(apps, schema_editor):
        if not timescale_enabled(schema_editor.connection):
            return
        for sql in statements:
            schema_editor.execute(sql)

    return run


class Migration(migrations.Migration):
    dependencies = [("bots", "0001_initial")]
    operations = [migrations.RunPython(_run(FORWARD), _run(BACKWARD))]
