"""Shared helpers for the workers tests: demo-like paper bots and waiting."""

from __future__ import annotations

import time


def wait_until(predicate, timeout: float, interval: float = 0.2):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        value = predicate()
        if value:
            return value
        time.sleep(interval)
    return predicate()


# The contract fields of the seeded replay perpetuals (migration exchanges.0003): transactional
# tests flush the seeded rows, so fixtures that put them back give these too.
PERP_CONTRACTS = {
    ("replay:binance-usdm", "BTC/USDT:USDT"): {"kind": "linear", "contract_size": "1", "settle": "USDT",
                                              "max_leverage": 125},
    ("replay:binance-coinm", "BTC/USD:BTC"): {"kind": "inverse", "contract_size": "100", "settle": "BTC",
                                             "max_leverage": 125},
}  # fmt: skip


def contract_fields(venue: str, symbol: str) -> dict:
    """A market row's contract fields for a seeded replay perpetual (``{}``: spot)."""
    return dict(PERP_CONTRACTS.get((venue, symbol), {}))


def ensure_market(venue: str):
    """The venue's BTC/USDT market (transactional tests flush the seeded markets: put it back)."""
    from apps.exchanges.models import Market

    market, _ = Market.objects.get_or_create(
        venue=venue,
        symbol="BTC/USDT",
        defaults={
            "base": "BTC",
            "quote": "USDT",
            "tick_size": "0.01",
            "lot_size": "0.0001",
            "min_notional": "0",
            "maker_fee": "0.0001",
            "taker_fee": "0.0005",
        },
    )
    market.refresh_from_db()  # decimals, not the strings given
    return market


def make_paper_bots(
    n: int, *, venue: str = "sim:alpha", username: str = "trader", spread: str = "0.0001", start: bool = True
):
    """Create a user, a paper account on ``venue`` and ``n`` fixed-spread bots (started)."""
    from apps.accounts.models import User
    from apps.bots.services import bot_create, bot_start
    from apps.exchanges.services import exchange_account_create

    user = User.objects.filter(username=username).first() or User.objects.create_user(
        username=username, password="pw-12345678"
    )
    account = exchange_account_create(
        owner=user,
        label=f"paper {venue} {time.time_ns()}",
        venue=venue,
        paper_balances={"BTC": "10", "USDT": "1000000"},
    )
    market = ensure_market(venue)
    bots = []
    for i in range(n):
        bot = bot_create(
            owner=user,
            name=f"bot {venue} {i} {time.time_ns()}",
            exchange_account=account,
            market=market,
            strategy="fixed_spread",
            params={
                "order_amount": "0.01",
                "bid_spread": spread,
                "ask_spread": spread,
                "order_levels": 2,
                "refresh_time": "1",
            },
            risk={"max_position_base": "5"},
        )
        if start:
            bot_start(bot=bot, actor=user)
        bots.append(bot)
    return user, account, bots


def venue_fills_recorded(redis_client, account, symbol: str = "BTC/USDT") -> bool:
    """Whether the paper venue's trade log of ``account`` has at least two fills and the
    database holds exactly those (no fill missing, none recorded that the venue lacks)."""
    import json

    from apps.orders.models import Fill
    from workers import keys

    k_trades = keys.paper(account.pk, symbol, "trades")
    venue = sorted(json.loads(b)["id"] for b in redis_client.lrange(k_trades, 0, -1))
    stored = sorted(Fill.objects.filter(account=account).values_list("venue_trade_id", flat=True))
    return len(venue) >= 2 and venue == stored


async def paper_venue(client, inst, book, **extra):
    """Bot 999's paper venue (account 7, prefix t9) holding the bot's lease (token 1)."""
    from workers import keys
    from workers.paper_venue import PaperVenue

    lease = keys.bot_lease(999)
    await client.set(lease, "me:1")
    venue = PaperVenue(client, account_id=7, instrument=inst, bot_id=999, prefix="t9", lease_key=lease,
                       lease_value="me:1", token=1, book=book, **extra)  # fmt: skip
    await venue.restore()
    return venue
