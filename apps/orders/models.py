"""Orders (one row per client order id, created before the place is sent) and fills (time series)."""

from __future__ import annotations

from django.db import models
from timescale.db.models.fields import TimescaleDateTimeField

MONEY = {"max_digits": 38, "decimal_places": 18}


class OrderSide(models.TextChoices):
    BUY = "buy", "Buy"
    SELL = "sell", "Sell"


class OrderStatus(models.TextChoices):
    PENDING_NEW = "pending_new", "Pending new"
    OPEN = "open", "Open"
    PARTIALLY_FILLED = "partially_filled", "Partially filled"
    FILLED = "filled", "Filled"
    CANCELLED = "cancelled", "Cancelled"
    REJECTED = "rejected", "Rejected"
    EXPIRED = "expired", "Expired"


CLOSED_STATUSES = frozenset({OrderStatus.FILLED, OrderStatus.CANCELLED, OrderStatus.REJECTED, OrderStatus.EXPIRED})


class TimeInForce(models.TextChoices):
    GTC = "gtc", "Good till cancelled"
    IOC = "ioc", "Immediate or cancel"
    FOK = "fok", "Fill or kill"


class Liquidity(models.TextChoices):
    MAKER = "maker", "Maker"
    TAKER = "taker", "Taker"
    # The venue closed the position at its bankruptcy price (a paper perpetual's liquidation,
    # ``workers.liquidation_fills``): no order of the bot, ``realized_pnl`` holds the loss booked.
    LIQUIDATION = "liq", "Liquidation"


class Order(models.Model):
    """An order placed by a bot (or found on the venue by reconciliation)."""

    # Every index is paid on every order insert and status update (hundreds a second per bot
    # host): the (bot, status) and (account, status) indexes serve the foreign keys too, and the
    # client and venue order ids get plain b-tree indexes, without the LIKE-pattern copies Django
    # adds for an indexed or unique CharField (no query here matches them by pattern).
    # History keeps the id of the bot that placed it, also after the bot is deleted (no UPDATE of
    # its rows, no database constraint): see Fill.bot. ``order.bot`` is None for a deleted bot
    # under select_related; readers use ``bot_id``.
    bot = models.ForeignKey(
        "bots.Bot",
        null=True,
        blank=True,
        on_delete=models.DO_NOTHING,
        related_name="orders",
        db_index=False,
        db_constraint=False,
    )
    account = models.ForeignKey(
        "exchanges.ExchangeAccount", on_delete=models.PROTECT, related_name="orders", db_index=False
    )
    market = models.ForeignKey("exchanges.Market", on_delete=models.PROTECT, related_name="orders")
    client_order_id = models.CharField(max_length=64)
    venue_order_id = models.CharField(max_length=128, blank=True, default="")
    side = models.CharField(max_length=4, choices=OrderSide.choices)
    price = models.DecimalField(**MONEY)
    quantity = models.DecimalField(**MONEY)
    filled_quantity = models.DecimalField(**MONEY, default=0)
    average_price = models.DecimalField(**MONEY, null=True, blank=True)
    status = models.CharField(max_length=20, choices=OrderStatus.choices, default=OrderStatus.PENDING_NEW)
    reason = models.TextField(blank=True, default="")
    time_in_force = models.CharField(max_length=4, choices=TimeInForce.choices, default=TimeInForce.GTC)
    post_only = models.BooleanField(default=False)
    cancel_requested_at = models.DateTimeField(
        null=True,
        blank=True,
        help_text="when the cancel was asked for: a bot stamps when it sent its cancel request "
        "(cancel latency = closed_at - cancel_requested_at)",
    )
    sent_at = models.DateTimeField(
        null=True,
        blank=True,
        help_text="when the bot sent the place request (place latency = acked_at - sent_at; without it, - created)",
    )
    acked_at = models.DateTimeField(
        null=True,
        blank=True,
        help_text="when the venue acknowledged the place (order-entry latency = acked_at - sent_at, else - created)",
    )
    created = models.DateTimeField(auto_now_add=True, db_index=True)
    updated = models.DateTimeField(auto_now=True)
    closed_at = models.DateTimeField(null=True, blank=True)

    class Meta:
        ordering = ["-created", "-id"]
        indexes = [
            models.Index(fields=["bot", "status"]),
            models.Index(fields=["account", "status"]),
            models.Index(fields=["venue_order_id"], name="order_venue_order_id_idx"),
        ]
        constraints = [models.UniqueConstraint(fields=["client_order_id"], name="order_client_order_id_uniq")]

    def __str__(self) -> str:
        return f"{self.client_order_id} {self.side} {self.quantity}@{self.price} {self.status}"

    @property
    def is_open(self) -> bool:
        return self.status not in CLOSED_STATUSES


class Fill(models.Model):
    """One execution. Unique per (account, venue trade id, ts): a duplicate report is ignored."""

    ts = TimescaleDateTimeField(interval="1 day")
    # No single-column indexes on account/bot (the (account, ts) and (bot, ts) indexes cover them)
    # and no database FK checks per row: a fill is stored even if its bot or order row is not
    # (yet) there, and the bulk ingest stays fast. Django still applies PROTECT / SET_NULL.
    # ``bot`` keeps the id of the bot that made the fill after that bot is deleted (DO_NOTHING):
    # setting it to NULL would UPDATE every fill of the bot, which on TimescaleDB decompresses
    # the account's compressed batches (compression is segmented by account) and fails past
    # ``timescaledb.max_tuples_decompressed_per_dml_transaction`` (docs/timescaledb.md).
    # Fills are scoped by ``account``; a dangling ``bot_id`` never matches a new bot (ids are
    # never reused).
    account = models.ForeignKey(
        "exchanges.ExchangeAccount",
        on_delete=models.PROTECT,
        related_name="fills",
        db_index=False,
        db_constraint=False,
    )
    bot = models.ForeignKey(
        "bots.Bot",
        null=True,
        blank=True,
        on_delete=models.DO_NOTHING,
        related_name="fills",
        db_index=False,
        db_constraint=False,
    )
    order = models.ForeignKey(
        Order, null=True, blank=True, on_delete=models.SET_NULL, related_name="fills", db_constraint=False
    )
    client_order_id = models.CharField(max_length=64, blank=True, default="")
    venue_trade_id = models.CharField(max_length=128)
    side = models.CharField(max_length=4, choices=OrderSide.choices)
    price = models.DecimalField(**MONEY)
    quantity = models.DecimalField(**MONEY)
    fee = models.DecimalField(**MONEY, default=0)
    fee_currency = models.CharField(max_length=16, blank=True, default="")
    liquidity = models.CharField(max_length=5, choices=Liquidity.choices, default=Liquidity.MAKER)
    realized_pnl = models.DecimalField(
        **MONEY,
        null=True,
        blank=True,
        help_text="PnL the venue booked on this fill, in the settle currency (a liquidation's loss); "
        "null for ordinary fills",
    )
    markout_1s = models.DecimalField(**MONEY, null=True, blank=True)
    markout_10s = models.DecimalField(**MONEY, null=True, blank=True)
    markout_60s = models.DecimalField(**MONEY, null=True, blank=True)

    class Meta:
        ordering = ["-ts"]
        constraints = [
            models.UniqueConstraint(fields=["account", "venue_trade_id", "ts"], name="fill_account_trade_ts_uniq")
        ]
        indexes = [models.Index(fields=["bot", "ts"]), models.Index(fields=["account", "ts"])]

    def __str__(self) -> str:
        return f"{self.ts:%Y-%m-%d %H:%M:%S} {self.side} {self.quantity}@{self.price} ({self.venue_trade_id})"
