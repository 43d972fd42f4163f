"""Beat task: settle fill markouts that have become due (see ``apps.orders.markouts``)."""

from celery import shared_task

from apps.orders.markouts import fills_settle_markouts


@shared_task(name="workers.markouts.settle")
def settle() -> dict[str, int]:
    return fills_settle_markouts()
