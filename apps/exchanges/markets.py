"""Writes for markets: conversion to trading instruments and sync from ccxt for live venues."""

from __future__ import annotations

import asyncio
from decimal import Decimal
from typing import Any

import ccxt
from django.core.exceptions import ValidationError
from django.db import transaction

from apps.exchanges.models import ContractKind, Market
from trading.contracts import SPOT, ContractSpec
from trading.instruments import Instrument, InstrumentError

# The field each of ContractSpec.create's messages names (they start with "<field>: ").
_CONTRACT_FIELDS = ("kind", "contract_size", "settle", "max_leverage")


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


def contract_errors(kind: object, contract_size: object, settle: object, max_leverage: object) -> dict[str, str]:
    """The errors of a market's contract fields (``{}`` when fine), each naming the value and what
    is accepted: the bounds of :meth:`trading.contracts.ContractSpec.create` (contract size above 0
    up to 1e9, maximum leverage a whole number from 1 to 1000, a settle currency for a
    perpetual)."""
    if isinstance(max_leverage, Decimal) and max_leverage == max_leverage.to_integral_value():
        max_leverage = int(max_leverage)
    try:
        ContractSpec.create(kind=kind, contract_size=contract_size, settle=str(settle or ""), max_leverage=max_leverage)
    except InstrumentError as exc:
        text = str(exc)
        field = text.split(":", 1)[0]
        return {field if field in _CONTRACT_FIELDS else "kind": text}
    return {}


def market_contract(market: Market) -> ContractSpec:
    """The contract of a market row (spot: :data:`trading.contracts.SPOT`). A row the database
    holds passed its CHECK constraints; one that still fails raises ``InstrumentError``."""
    if market.kind == ContractKind.SPOT:
        return SPOT
    return ContractSpec.create(
        kind=market.kind,
        contract_size=market.contract_size,
        settle=market.settle,
        max_leverage=int(market.max_leverage),
    )


def contract_fields(spec: ContractSpec) -> dict[str, Any]:
    """A contract as the market row's fields."""
    return {
        "kind": spec.kind.value,
        "contract_size": spec.contract_size if spec.is_perpetual else Decimal(1),
        "settle": spec.settle,
        "max_leverage": Decimal(spec.max_leverage if spec.is_perpetual else 1),
    }


async def _load_instruments(exchange: Any) -> tuple[dict[str, Instrument], dict[str, ContractSpec]]:
    from connectors.markets import MarketCache

    try:
        cache = MarketCache(exchange)
        instruments = await cache.instruments()
        return instruments, cache.contracts
    finally:
        close = getattr(exchange, "close", None)
        if close is not None:
            await close()


@transaction.atomic
def market_sync(*, venue: str, exchange: Any = None) -> dict[str, int]:
    """Upsert the markets of a live venue from ccxt; markets that disappeared become inactive.

    A derivative market's contract (kind, contract size, settle currency, maximum leverage) comes
    from the same ccxt market (:func:`connectors.ccxt_perp.contract_spec_from_market`); a market
    whose contract metadata is unreadable is skipped like one without a fixed step.

    ``exchange`` (a ccxt async exchange) is injectable for tests; by default a public one is made.
    """
    if venue not in ccxt.exchanges:
        raise ValidationError({"venue": f"{venue!r} is not a ccxt exchange id; replay/sim markets are seeded"})
    if exchange is None:
        from connectors.ccxt_venue import make_exchange

        exchange = make_exchange(venue, streaming=False)
    instruments, contracts = asyncio.run(_load_instruments(exchange))
    created = updated = 0
    for symbol, inst in instruments.items():
        if symbol not in contracts:
            continue
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
                **contract_fields(contracts[symbol]),
                "active": True,
            },
        )
        created += was_created
        updated += not was_created
    deactivated = (
        Market.objects.filter(venue=venue, active=True)
        .exclude(symbol__in=[s for s in instruments if s in contracts])
        .update(active=False)
    )
    return {"created": created, "updated": updated, "deactivated": deactivated}
