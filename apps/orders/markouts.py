"""Fill markouts in the database: the mid a while after each fill, against the fill price.

A fill's markout at horizon ``h`` is ``mid(ts + h) - price`` for a buy and ``price - mid(ts + h)``
for a sell, per unit of base, in quote currency: positive when the market moved our way after we
traded (no adverse selection), negative when it moved against us. The mid comes from the
top-of-book snapshots the feeds store (about one a second), taking the latest one at or before
``ts + h`` and no older than ``MAX_MID_AGE``; until such a snapshot exists the markout stays
empty. ``fills_settle_markouts`` is run by beat; each call settles what has become due.
"""

from __future__ import annotations

from datetime import datetime, timedelta

from django.db import connection, transaction
from django.utils import timezone

from apps.bots.models import Bot
from apps.marketdata.models import TopOfBookSnapshot
from apps.orders.models import Fill

HORIZONS_S = (1, 10, 60)
MAX_MID_AGE = timedelta(seconds=5)
GRACE = timedelta(seconds=3)  # snapshots reach the database in batches about once a second
LOOKBACK = timedelta(days=1)  # fills older than this without a mid are left alone
BATCH = 5000


def fills_settle_markouts(*, now: datetime | None = None, batch: int = BATCH) -> dict[str, int]:
    """Fill in every markout that has become due; return how many were set per horizon."""
    now = now or timezone.now()
    fill, bot, tob = Fill._meta.db_table, Bot._meta.db_table, TopOfBookSnapshot._meta.db_table
    settled: dict[str, int] = {}
    for horizon in HORIZONS_S:
        column = f"markout_{horizon}s"
        sql = f"""
            UPDATE {fill} AS f
               SET {column} = CASE WHEN f.side = 'buy' THEN due.mid - f.price ELSE f.price - due.mid END
              FROM (
                    SELECT f2.id, f2.ts,
                           (SELECT (t.bid + t.ask) / 2
                              FROM {tob} AS t
                             WHERE t.market_id = b.market_id
                               AND t.ts <= f2.ts + %(horizon)s
                               AND t.ts > f2.ts + %(horizon)s - %(max_age)s
                             ORDER BY t.ts DESC
                             LIMIT 1) AS mid
                      FROM {fill} AS f2
                      JOIN {bot} AS b ON b.id = f2.bot_id
                     WHERE f2.{column} IS NULL
                       AND f2.ts <= %(due_before)s - %(horizon)s
                       AND f2.ts >= %(now)s - %(lookback)s
                     ORDER BY f2.ts
                     LIMIT %(batch)s
                   ) AS due
             WHERE f.id = due.id AND f.ts = due.ts AND due.mid IS NOT NULL
        """
        params = {
            "horizon": timedelta(seconds=horizon),
            "max_age": MAX_MID_AGE,
            "due_before": now - GRACE,
            "now": now,
            "lookback": LOOKBACK,
            "batch": batch,
        }
        with transaction.atomic(), connection.cursor() as cursor:
            cursor.execute(sql, params)
            settled[column] = cursor.rowcount
    return settled
