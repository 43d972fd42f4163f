"""A Celery bots worker (solo pool) whose live exchanges use the recorded ccxt markets, since the
fake exchanges have no exchangeInfo: ``python -m tests.workers.live_worker <hostname> [queues]``
(queues ``bots,feeds`` unless given). Its environment points them at the fake (``MM_LIVE_HTTP_BASE``)."""

from __future__ import annotations

import sys


def main() -> None:
    from tests.connectors.conftest import binance_markets
    from workers import live_venue

    markets = binance_markets()
    real = live_venue.make_exchange

    def with_recorded_markets(exchange_id, **kwargs):
        return real(exchange_id, markets=markets, timeout_ms=3000, **kwargs)

    live_venue.make_exchange = with_recorded_markets
    from mmsite.celery import app
    from tests.workers.conftest import worker_argv

    queues = sys.argv[2] if len(sys.argv) > 2 else "bots,feeds"
    app.worker_main(worker_argv(sys.argv[1], loglevel="INFO", queues=queues))


if __name__ == "__main__":
    main()
