"""Imported by the Celery app so every task module registers."""

from workers import (  # noqa: F401
    arbitrage,
    backtests,
    bots,
    heartbeat,
    hosting,
    housekeeping,
    maintenance,
    markouts,
    notifications,
    orders,
    perp_reconcile,
    portfolio,
    reconcile,
    risk,
    supervisor,
)
