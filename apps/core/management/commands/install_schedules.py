from django.conf import settings
from django.core.management.base import BaseCommand
from django.db import transaction
from django_celery_beat.models import CrontabSchedule, IntervalSchedule, PeriodicTask

from apps.core.schedules import DEFAULT_SCHEDULES


class Command(BaseCommand):
    help = "Install the default beat schedules (idempotent; keeps operators' edits)."

    @transaction.atomic
    def handle(self, *args, **options):
        created = moved = 0
        for entry in DEFAULT_SCHEDULES:
            when = self._schedule(entry)
            task, was_created = PeriodicTask.objects.get_or_create(
                name=entry["name"], defaults={"task": entry["task"], "queue": entry.get("queue"), **when}
            )
            created += was_created
            old = entry.get("replaces_every_seconds")
            still_old_default = (
                not was_created
                and old
                and task.crontab_id is None
                and task.interval_id
                and (task.interval.every, task.interval.period) == (old, IntervalSchedule.SECONDS)
            )
            if still_old_default:  # not an operator's choice: move it to the new schedule
                task.interval, task.crontab = None, when["crontab"]
                task.save(update_fields=["interval", "crontab"])
                moved += 1
        self.stdout.write(
            f"schedules: {created} created, {len(DEFAULT_SCHEDULES) - created} already present"
            + (f", {moved} moved to a fixed time of day" if moved else "")
        )

    @staticmethod
    def _schedule(entry: dict) -> dict:
        if "daily_at_hour" in entry:
            hour = getattr(settings, entry["daily_at_hour"])
            crontab, _ = CrontabSchedule.objects.get_or_create(
                minute="5", hour=str(hour), day_of_week="*", day_of_month="*", month_of_year="*", timezone="UTC"
            )
            return {"crontab": crontab}
        interval, _ = IntervalSchedule.objects.get_or_create(
            every=entry["every_seconds"], period=IntervalSchedule.SECONDS
        )
        return {"interval": interval}
