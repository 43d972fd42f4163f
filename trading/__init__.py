"""Framework-free market-making core: one engine for backtest, paper and live.

Never imports Django, Celery, Redis, Channels, ccxt, ``connectors``, ``apps`` or ``workers``;
time is injected (``ts`` on every event), never read from the wall clock.
"""
