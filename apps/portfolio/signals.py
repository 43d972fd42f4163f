"""A bot's PnL goes before the bot (see :func:`apps.portfolio.services.pnl_delete_for_bot`)."""

from __future__ import annotations

from django.db.models.signals import pre_delete
from django.dispatch import receiver

from apps.bots.models import Bot
from apps.portfolio.services import pnl_delete_for_bot


@receiver(pre_delete, sender=Bot, dispatch_uid="portfolio_pnl_delete_for_bot")
def _bot_pre_delete(sender, instance: Bot, **kwargs) -> None:
    pnl_delete_for_bot(bot_id=instance.pk)
