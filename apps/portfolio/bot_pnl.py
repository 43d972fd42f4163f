"""A bot's own PnL, from its own fills and the mark: realized (average cost), unrealized at the
mark, fees, total; since the bot's first fill and since midnight UTC.

Nothing here depends on the paper account's starting balances: the account's equity is a
different figure (``PnlSnapshot.equity``, shown separately as "account equity"). The identity
that always holds, exactly (Decimal, 60 digits of precision):

    total = realized + unrealized - fees = cash_flow + position * mark - fees

where ``cash_flow`` is what the fills paid and received (``-sum(side * price * qty)``).

The state at midnight is cached (Redis, keyed by bot and date) and reused while the number of
the bot's fills before midnight is unchanged, so a page or websocket refresh replays only
today's fills.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, fields
from datetime import datetime, timedelta
from decimal import Decimal, localcontext
from typing import Any

from django.core.cache import cache
from django.utils import timezone

from apps.bots.selectors import bot_list

ZERO = Decimal(0)
PLACES = Decimal("1e-18")  # the database's money precision
CACHE_SECONDS = 2 * 24 * 3600


@dataclass
class FillBook:
    """Average-cost book of a sequence of fills (quote currency; position in base)."""

    position: Decimal = ZERO
    cost: Decimal = ZERO  # signed cost basis of the open position (negative when short)
    realized: Decimal = ZERO
    fees: Decimal = ZERO
    cash_flow: Decimal = ZERO
    fills: int = 0
    volume: Decimal = ZERO

    def apply(self, side: str, price: Decimal, qty: Decimal, fee: Decimal) -> Decimal:
        """Book one fill; returns the PnL it realized (before its fee)."""
        s = 1 if side == "buy" else -1
        notional = price * qty
        self.cash_flow -= s * notional
        self.fees += fee
        self.fills += 1
        self.volume += qty
        pos = self.position
        realized = ZERO
        if pos == 0 or (pos > 0) == (s > 0):
            self.cost += s * notional
            self.position = pos + s * qty
            return realized
        size = abs(pos)
        closed = min(qty, size)
        portion = self.cost if closed == size else (self.cost * closed / size).quantize(PLACES)
        realized = -s * price * closed - portion
        self.realized += realized
        self.cost -= portion
        self.position = pos + s * closed
        rest = qty - closed
        if rest:  # through zero: the rest opens a new position at this price
            self.cost = s * price * rest
            self.position = s * rest
        return realized

    def unrealized(self, mark: Decimal | None) -> Decimal | None:
        if self.position == 0:
            return ZERO
        if mark is None:
            return None
        return self.position * mark - self.cost

    def avg_cost(self) -> Decimal | None:
        return None if self.position == 0 else self.cost / self.position

    def to_cache(self) -> dict[str, str | int]:
        return {k: v if isinstance(v, int) else str(v) for k, v in asdict(self).items()}

    @classmethod
    def from_cache(cls, data: dict[str, Any]) -> FillBook:
        return cls(**{f.name: data[f.name] if f.name == "fills" else Decimal(data[f.name]) for f in fields(cls)})


def _replay(book: FillBook, rows) -> FillBook:
    with localcontext() as ctx:
        ctx.prec = 60
        for side, price, qty, fee in rows:
            book.apply(side, price, qty, fee)
    return book


def _figures(book: FillBook, mark: Decimal | None) -> dict[str, Any]:
    unrealized = book.unrealized(mark)
    total = None if unrealized is None else book.realized + unrealized - book.fees
    return {
        "realized": book.realized,
        "unrealized": unrealized,
        "fees": book.fees,
        "total": total,
        "fills": book.fills,
        "volume": book.volume,
    }


def _mark_at(bot, moment: datetime) -> Decimal | None:
    """The mid in force at ``moment``: the last PnL snapshot's mid before it, else the market's
    last top of book before it."""
    from apps.marketdata.models import TopOfBookSnapshot
    from apps.portfolio.models import PnlSnapshot

    mid = (
        PnlSnapshot.objects.filter(bot=bot, ts__lt=moment, mid__isnull=False)
        .order_by("-ts")
        .values_list("mid", flat=True)
        .first()
    )
    if mid is not None:
        return mid
    top = (
        TopOfBookSnapshot.objects.filter(market_id=bot.market_id, ts__lt=moment, ts__gte=moment - timedelta(hours=1))
        .order_by("-ts")
        .values_list("bid", "ask")
        .first()
    )
    if top and top[0] > 0 and top[1] > 0:
        return (top[0] + top[1]) / 2
    return None


def _book_at_midnight(bot, midnight: datetime) -> FillBook:
    from apps.orders.models import Fill

    before = Fill.objects.filter(bot=bot, ts__lt=midnight)
    count = before.count()
    key = f"botpnl:{bot.pk}:{midnight.date().isoformat()}"
    cached = cache.get(key)
    if cached and cached.get("count") == count:
        return FillBook.from_cache(cached["book"])
    book = _replay(FillBook(), before.order_by("ts", "id").values_list("side", "price", "quantity", "fee").iterator())
    cache.set(key, {"count": count, "book": book.to_cache()}, CACHE_SECONDS)
    return book


def bot_pnl(*, user, bot_id: int, mark: Decimal | None = None, now: datetime | None = None) -> dict[str, Any]:
    """The bot's own PnL (a bot the user may see, else ``Bot.DoesNotExist``).

    ``mark``: the price the position is valued at (the caller's live mid); without one, the
    last PnL snapshot's mid, else the last fill's price. Returns ``{position, avg_cost, mark,
    mark_source, since_start: {realized, unrealized, fees, total, fills, volume}, today: {...},
    cash_flow}``; a figure that needs a mark nobody has is ``None``."""
    from apps.orders.models import Fill

    bot = bot_list(user=user).get(pk=bot_id)
    now = now or timezone.now()
    midnight = now.replace(hour=0, minute=0, second=0, microsecond=0)
    start_book = _book_at_midnight(bot, midnight)
    book = FillBook(**asdict(start_book))
    today_rows = Fill.objects.filter(bot=bot, ts__gte=midnight, ts__lte=now).order_by("ts", "id")
    _replay(book, today_rows.values_list("side", "price", "quantity", "fee").iterator())
    source = "live mid"
    if mark is None:
        mark, source = _mark_at(bot, now + timedelta(seconds=1)), "last snapshot mid"
    if mark is None and book.fills:
        last = Fill.objects.filter(bot=bot).order_by("-ts", "-id").values_list("price", flat=True).first()
        mark, source = last, "last fill price"
    if mark is None:
        source = ""
    since = _figures(book, mark)
    today: dict[str, Any] = {"fills": book.fills - start_book.fills, "volume": book.volume - start_book.volume}
    today["realized"] = book.realized - start_book.realized
    today["fees"] = book.fees - start_book.fees
    # Today's total: the change of the total since midnight, the open position then valued at
    # the mark in force at midnight.
    midnight_mark = _mark_at(bot, midnight) if start_book.position else None
    start_unrealized = start_book.unrealized(midnight_mark)
    if since["total"] is None or start_unrealized is None:
        today["total"] = today["unrealized"] = None
    else:
        start_total = start_book.realized + start_unrealized - start_book.fees
        today["total"] = since["total"] - start_total
        today["unrealized"] = today["total"] - today["realized"] + today["fees"]
    return {
        "bot": bot.pk,
        "position": book.position,
        "avg_cost": book.avg_cost(),
        "mark": mark,
        "mark_source": source,
        "cash_flow": book.cash_flow,
        "since_start": since,
        "today": today,
        "ts": now,
    }


def fills_with_realized(*, user, bot_id: int, limit: int = 30, now: datetime | None = None) -> list[dict[str, Any]]:
    """The bot's latest ``limit`` fills, newest first, each with its fee and the PnL it
    realized (average cost over every earlier fill of the bot). Fills of earlier days than
    today's are listed with ``realized`` ``None`` (their book is cached, not their rows)."""
    from apps.orders.models import Fill

    bot = bot_list(user=user).get(pk=bot_id)
    now = now or timezone.now()
    midnight = now.replace(hour=0, minute=0, second=0, microsecond=0)
    book = FillBook(**asdict(_book_at_midnight(bot, midnight)))
    columns = ("id", "ts", "side", "price", "quantity", "fee", "fee_currency", "liquidity", "realized_pnl")
    rows = list(Fill.objects.filter(bot=bot, ts__gte=midnight).order_by("ts", "id").values(*columns))
    with localcontext() as ctx:
        ctx.prec = 60
        for row in rows:
            row["realized"] = book.apply(row["side"], row["price"], row["quantity"], row["fee"])
    rows = rows[::-1][:limit]
    if len(rows) < limit:
        earlier = Fill.objects.filter(bot=bot, ts__lt=midnight).order_by("-ts", "-id").values(*columns)
        rows += [{**row, "realized": None} for row in earlier[: limit - len(rows)]]
    return rows
