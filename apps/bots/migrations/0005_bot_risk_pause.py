"""The risk sweep's pause becomes part of the bot's row (``Bot.risk_paused_reason`` /
``risk_paused_at``); before, it lived only in Redis (``<prefix>:bot:<id>:riskpause``).

The data step copies the pauses Redis still holds, so a bot paused by the risk sweep before the
upgrade is not started quoting by the new hosts' take-over. It is best effort: a Redis that
cannot be reached leaves the fields empty (the next sweep pauses again any bot whose condition
still holds) and says so.
"""

import logging

from django.db import migrations, models
from django.utils import timezone

logger = logging.getLogger(__name__)


def copy_redis_pauses(apps, schema_editor):
    from django.conf import settings

    Bot = apps.get_model("bots", "Bot")
    ids = list(Bot.objects.values_list("id", flat=True))
    if not ids:
        return
    try:
        import redis

        client = redis.Redis.from_url(settings.REDIS_URL, socket_timeout=5, socket_connect_timeout=5)
        reasons = client.mget([f"{settings.REDIS_PREFIX}:bot:{pk}:riskpause" for pk in ids])
    except Exception as exc:  # no Redis at migrate time: the sweep pauses again if needed
        logger.warning("risk pauses not copied from Redis (%s); the next risk sweep pauses again", exc)
        return
    now = timezone.now()
    for pk, reason in zip(ids, reasons, strict=True):
        if reason:
            text = reason.decode(errors="replace")[:500] or "paused by the risk sweep"
            Bot.objects.filter(pk=pk).update(risk_paused_reason=text, risk_paused_at=now)


class Migration(migrations.Migration):
    dependencies = [
        ("bots", "0004_hedge_fill_attribution"),
    ]

    operations = [
        migrations.AddField(
            model_name="bot",
            name="risk_paused_at",
            field=models.DateTimeField(
                blank=True,
                help_text="when the risk sweep paused the bot (null when it does not hold it paused)",
                null=True,
            ),
        ),
        migrations.AddField(
            model_name="bot",
            name="risk_paused_reason",
            field=models.CharField(
                blank=True,
                default="",
                help_text="why the risk sweep holds the bot paused (empty when it does not)",
                max_length=500,
            ),
        ),
        migrations.RunPython(copy_redis_pauses, migrations.RunPython.noop),
    ]
