"""Order tasks (enqueued by name by ``apps.orders.services``)."""

from __future__ import annotations

from celery import shared_task

from workers import keys, lifecycle


@shared_task(name="workers.orders.cancel")
def cancel(order_id: int) -> str:
    """Cancel one open order: through its bot's owner, or directly on the venue when unowned."""
    from apps.orders.models import CLOSED_STATUSES, Order
    from apps.orders.services import orders_update
    from workers.leases import SyncLease
    from workers.paper_scripts import DELETE

    order = Order.objects.select_related("bot", "market").filter(pk=order_id).first()
    if order is None or order.status in CLOSED_STATUSES:
        return "nothing to cancel"
    redis = lifecycle.redis_client()
    if order.bot_id and lifecycle.lease_value(redis, order.bot_id):
        lifecycle.control(redis, order.bot_id, f"cancel:{order.client_order_id}")
        return "sent to owner"
    resource = order.bot_id or 0
    lease = SyncLease(redis, keys.bot_lease(resource), keys.bot_fence(resource), "cancel-task")
    if not lease.acquire():
        return "busy; reconciliation will retry"
    try:
        k = keys.paper(order.account_id, order.market.symbol, "orders")
        redis.eval(
            DELETE,
            3,
            lease.key,
            k,
            keys.place_log(),
            lease.value,
            order.client_order_id,
            "cancel",
            resource,
            lease.token,
        )
        orders_update([(order.client_order_id, "cancelled", "", None, "cancelled by user", None)])
        return "cancelled"
    finally:
        lease.release()
