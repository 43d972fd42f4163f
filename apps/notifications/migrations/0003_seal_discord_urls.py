"""Discord webhook URLs are credentials: move them from the public config into the encrypted
secret, leaving a masked ``url_hint``. Reversible (moves them back)."""

from django.db import migrations


def seal(apps, schema_editor):
    from apps.exchanges import crypto
    from apps.notifications.services import discord_url_hint

    Channel = apps.get_model("notifications", "NotificationChannel")
    for channel in Channel.objects.filter(kind="discord"):
        url = (channel.config or {}).get("url")
        if url:
            channel.secret_enc = crypto.encrypt(url)
            channel.config = {"url_hint": discord_url_hint(url)}
            channel.save(update_fields=["secret_enc", "config"])


def unseal(apps, schema_editor):
    from apps.exchanges import crypto

    Channel = apps.get_model("notifications", "NotificationChannel")
    for channel in Channel.objects.filter(kind="discord").exclude(secret_enc=""):
        channel.config = {"url": crypto.decrypt(channel.secret_enc)}
        channel.secret_enc = ""
        channel.save(update_fields=["secret_enc", "config"])


class Migration(migrations.Migration):
    dependencies = [("notifications", "0002_rule_bot")]

    operations = [migrations.RunPython(seal, unseal)]
