"""``manage.py install_schedules``: every default entry, idempotent, operators' edits kept, the
daily summary at a fixed hour (UTC)."""

from __future__ import annotations

import pytest
from django.core.management import call_command
from django.test import override_settings
from django_celery_beat.models import IntervalSchedule, PeriodicTask

from apps.core.schedules import DEFAULT_SCHEDULES

pytestmark = pytest.mark.django_db
SUMMARY = "Notifications: daily summary"


def test_every_default_is_installed_once_and_the_summary_runs_at_a_fixed_hour():
    with override_settings(NOTIFICATIONS_DAILY_SUMMARY_HOUR=7):
        call_command("install_schedules")
        call_command("install_schedules")
    tasks = {t.name: t for t in PeriodicTask.objects.all()}
    assert {e["name"] for e in DEFAULT_SCHEDULES} <= set(tasks)
    assert PeriodicTask.objects.filter(name=SUMMARY).count() == 1
    summary = tasks[SUMMARY]
    assert summary.interval is None
    assert (summary.crontab.minute, summary.crontab.hour, str(summary.crontab.timezone)) == ("5", "7", "UTC")
    assert tasks["Supervisor: bots and feeds follow their desired state"].interval.every == 5


def test_an_old_install_moves_to_the_fixed_hour_but_an_operators_interval_stays():
    every_day, _ = IntervalSchedule.objects.get_or_create(every=86400, period=IntervalSchedule.SECONDS)
    PeriodicTask.objects.create(name=SUMMARY, task="workers.notifications.daily_summary", interval=every_day)
    call_command("install_schedules")
    moved = PeriodicTask.objects.get(name=SUMMARY)
    assert moved.interval is None and moved.crontab.hour == "0"

    twice_a_day, _ = IntervalSchedule.objects.get_or_create(every=43200, period=IntervalSchedule.SECONDS)
    PeriodicTask.objects.filter(name=SUMMARY).update(interval=twice_a_day, crontab=None)
    call_command("install_schedules")
    kept = PeriodicTask.objects.get(name=SUMMARY)
    assert kept.crontab is None and kept.interval.every == 43200
