"""Writes for markets: conversion to trading instruments and sync from ccxt for live venues."""

from __future__ import annotations

import asyncio
from decimal import Decimal
from typing import Any

import ccxt
from django.core.exceptions import ValidationError
from django.db import transaction

from apps.exchanges.models import Market
from trading.instruments import Instrument


def market_to_instrument(market: Market) -> Instrument:
    """The trading core's view of a market (integer ticks and lots, fees in 1e-8)."""
    return Instrument.create(
        symbol=market.symbol,
        base=market.base,
        quote=market.quote,
        tick_size=market.tick_size,
        lot_size=market.lot_size,
        min_notional=market.min_notional,
        maker_fee=market.maker_fee.normalize(),
        taker_fee=market.taker_fee.normalize(),
        venue=market.venue,
    )


async def _load_instruments(exchange: Any) -> dict[str, Instrument]:
    from connectors.markets import MarketCache

    try:
        return await MarketCache(exchange).instruments()
    finally:
        close = getattr(exchange, "close", None)
        if close is not None:
            await close()


@transaction.atomic
def market_sync(*, venue: str, exchange: Any = None) -> dict[str, int]:
    """Upsert the markets of a live venue from ccxt; markets that disappeared become inactive.

    ``exchange`` (a ccxt async exchange) is injectable for tests; by default a public one is made.
    """
    if venue not in ccxt.exchanges:
        raise ValidationError({"venue": f"{venue!r} is not a ccxt exchange id; replay/sim markets are seeded"})
    if exchange is None:
        from connectors.ccxt_venue import make_exchange

        exchange = make_exchange(venue, streaming=False)
    instruments = asyncio.run(_load_instruments(exchange))
    created = updated = 0
    for symbol, inst in instruments.items():
        _, was_created = Market.objects.update_or_create(
            venue=venue,
            symbol=symbol,
            defaults={
                "base": inst.base,
                "quote": inst.quote,
                "tick_size": inst.tick_size,
                "lot_size": inst.lot_size,
                "min_notional": inst.min_notional,
                "maker_fee": Decimal(inst.maker_fee_e8) / 10**8,
                "taker_fee": Decimal(inst.taker_fee_e8) / 10**8,
                "active": True,
            },
        )
        created += was_created
        updated += not was_created
    deactivated = (
        Market.objects.filter(venue=venue, active=True).exclude(symbol__in=list(instruments)).update(active=False)
    )
    return {"created": created, "updated": updated, "deactivated": deactivated}
