"""``Bot.risk_paused_by``: what holds a bot risk-paused (the risk sweep or a liquidation), so the
sweep's auto-resume clears only its own pauses.

The data step names the pauses already on the rows: a reason the paper perpetual's liquidation
wrote (``liquidated: ...``) is a liquidation's, any other the risk sweep's.
"""

from django.db import migrations, models


def name_existing_pauses(apps, schema_editor):
    Bot = apps.get_model("bots", "Bot")
    paused = Bot.objects.filter(risk_paused_at__isnull=False)
    paused.filter(risk_paused_reason__startswith="liquidated").update(risk_paused_by="liquidation")
    paused.exclude(risk_paused_reason__startswith="liquidated").update(risk_paused_by="risk_sweep")


class Migration(migrations.Migration):
    dependencies = [
        ("bots", "0005_bot_risk_pause"),
    ]

    operations = [
        migrations.AddField(
            model_name="bot",
            name="risk_paused_by",
            field=models.CharField(
                blank=True,
                choices=[("risk_sweep", "the risk sweep"), ("liquidation", "a liquidation")],
                default="",
                help_text="what holds the bot risk-paused (empty when nothing does); auto-resume clears only "
                "the risk sweep's pauses",
                max_length=16,
            ),
        ),
        migrations.RunPython(name_existing_pauses, migrations.RunPython.noop),
    ]
