from django.core.management.base import BaseCommand
from django.db import transaction
from django_celery_beat.models import IntervalSchedule, PeriodicTask

from apps.core.schedules import DEFAULT_SCHEDULES


class Command(BaseCommand):
    help = "Install the default beat schedules (idempotent; keeps operators' edits)."

    @transaction.atomic
    def handle(self, *args, **options):
        created = 0
        for entry in DEFAULT_SCHEDULES:
            interval, _ = IntervalSchedule.objects.get_or_create(
                every=entry["every_seconds"], period=IntervalSchedule.SECONDS
            )
            _, was_created = PeriodicTask.objects.get_or_create(
                name=entry["name"],
                defaults={"task": entry["task"], "interval": interval, "queue": entry.get("queue")},
            )
            created += was_created
        self.stdout.write(f"schedules: {created} created, {len(DEFAULT_SCHEDULES) - created} already present")
