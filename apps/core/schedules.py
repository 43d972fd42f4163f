"""The default beat schedules. ``manage.py install_schedules`` writes them to the database
(django-celery-beat) idempotently: existing entries keep any interval an operator changed in
the admin; missing ones are created. An entry runs ``every_seconds``, or at a fixed time of
day (``daily_at_hour``: minute 5 of that hour, UTC; the hour from a setting)."""

DEFAULT_SCHEDULES: list[dict] = [
    {
        "name": "Clear expired sessions",
        "task": "workers.maintenance.clear_expired_sessions",
        "every_seconds": 3600,
    },
    {
        "name": "Supervisor: bots and feeds follow their desired state",
        "task": "workers.supervisor.tick",
        "every_seconds": 5,
    },
    {
        "name": "Risk sweep: daily loss, drawdown, exposure",
        "task": "workers.risk.sweep",
        "every_seconds": 10,
    },
    {
        "name": "Portfolio: net inventory per asset against each user's limits (incidents, pre-trade blocks)",
        "task": "workers.portfolio.sweep",
        "every_seconds": 10,
    },
    {
        "name": "Portfolio hedge: nets outside their band back to the target (only where a user switched it on)",
        "task": "workers.portfolio.hedge",
        "every_seconds": 15,
    },
    {
        "name": "Reconciliation: venue orders, fills and balances vs database",
        "task": "workers.reconcile.run",
        "every_seconds": 30,
    },
    {
        "name": "Perpetual positions: live perpetual bots' booked position vs the exchange's (fetchPositions)",
        "task": "workers.perp_reconcile.sweep",
        "every_seconds": 30,
    },
    {
        "name": "Housekeeping: trim paper venue trade logs and stale host records",
        "task": "workers.housekeeping.run",
        "every_seconds": 600,
    },
    {
        "name": "Arbitrage tracker: scan the latest books of every venue per symbol",
        "task": "workers.arbitrage.scan",
        "every_seconds": 1,
    },
    {
        "name": "Notifications: fills, risk breaches, pauses, bot errors and stops, feeds down",
        "task": "workers.notifications.scan_events",
        "every_seconds": 5,
    },
    {
        "name": "Notifications: daily summary",
        "task": "workers.notifications.daily_summary",
        "daily_at_hour": "NOTIFICATIONS_DAILY_SUMMARY_HOUR",
        # Installs before 2026-11-21 ran it every 86,400 s from the install time; such an entry
        # (still at that default) is moved to the fixed hour.
        "replaces_every_seconds": 86400,
    },
    {
        "name": "Fill markouts at 1 s, 10 s and 60 s",
        "task": "workers.markouts.settle",
        "every_seconds": 10,
    },
]
