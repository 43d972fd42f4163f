"""Orders and fills keep their bot's id when the bot is deleted (DO_NOTHING, no database
constraint): no UPDATE of a deleted bot's history, which on TimescaleDB decompressed the fills'
compressed batches and failed past the decompression limit (docs/timescaledb.md). Drops the
orders' foreign-key constraint to bots_bot; no row is touched."""

import django.db.models.deletion
from django.db import migrations, models


class Migration(migrations.Migration):
    dependencies = [
        ("bots", "0003_drop_redundant_fk_indexes"),
        ("orders", "0006_order_indexes_without_copies"),
    ]

    operations = [
        migrations.AlterField(
            model_name="fill",
            name="bot",
            field=models.ForeignKey(
                blank=True,
                db_constraint=False,
                db_index=False,
                null=True,
                on_delete=django.db.models.deletion.DO_NOTHING,
                related_name="fills",
                to="bots.bot",
            ),
        ),
        migrations.AlterField(
            model_name="order",
            name="bot",
            field=models.ForeignKey(
                blank=True,
                db_constraint=False,
                db_index=False,
                null=True,
                on_delete=django.db.models.deletion.DO_NOTHING,
                related_name="orders",
                to="bots.bot",
            ),
        ),
    ]
