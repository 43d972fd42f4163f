"""TimescaleDB only: compression of fills (kept forever: never lose a fill). No-op on plain PostgreSQL."""

from django.db import migrations

from apps.core.timeseries import timescale_enabled

FORWARD = [
    "ALTER TABLE orders_fill SET (timescaledb.compress, "
    "timescaledb.compress_segmentby = 'account_id', timescaledb.compress_orderby = 'ts DESC')",
    "SELECT add_compression_policy('orders_fill', INTERVAL '30 days', if_not_exists => true)",
]
BACKWARD = ["SELECT remove_compression_policy('orders_fill', if_exists => true)"]


def _run(statements):
    def run(apps, schema_editor):
        if not timescale_enabled(schema_editor.connection):
            return
        for sql in statements:
            schema_editor.execute(sql)

    return run


class Migration(migrations.Migration):
    dependencies = [("orders", "0001_initial")]
    operations = [migrations.RunPython(_run(FORWARD), _run(BACKWARD))]
