"""``manage.py telegram_poll``: answer the commands of linked Telegram chats (long polling)."""

import time

from django.core.management.base import BaseCommand, CommandError

from apps.telegram.poller import Poller


class Command(BaseCommand):
    help = "Answer Telegram commands of linked chats by long polling the Bot API (getUpdates)."

    def add_arguments(self, parser):
        parser.add_argument("--once", action="store_true", help="one getUpdates round, then exit")
        parser.add_argument("--timeout", type=int, default=25, help="long-poll seconds (default 25)")
        parser.add_argument(
            "--idle-without-token",
            action="store_true",
            help="without TELEGRAM_CONTROL_BOT_TOKEN say so and wait instead of failing (process managers)",
        )

    def handle(self, *args, once=False, timeout=25, idle_without_token=False, **options):
        try:
            poller = Poller(timeout_s=timeout)
        except ValueError as exc:
            if not idle_without_token:
                raise CommandError(str(exc)) from None
            self.stderr.write(f"Telegram control is off: {exc}")
            while True:
                time.sleep(3600)
        poller.run(once=once)
