"""Imported by the Celery app so every task module registers."""

from workers import bots, heartbeat, hosting, housekeeping, maintenance, orders, reconcile, risk, supervisor  # noqa: F401

# isort: split
# H10: arbitrage tracker, notification delivery, backtest jobs
from workers import arbitrage, backtests, notifications  # noqa: F401
