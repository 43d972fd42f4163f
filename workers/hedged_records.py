"""Database side of a hosted hedged bot (:mod:`workers.hedged_loop`): its two legs' setups, the
per-fill attribution rows (:class:`apps.bots.models.HedgeFillAttribution`) and the incident a
safety stop raises. Each runs on the host's database writer threads."""

from __future__ import annotations

from dataclasses import replace
from decimal import Decimal
from fractions import Fraction

from trading.contracts import to_decimal
from trading.hedge_attribution import MakerFillRecord
from trading.instruments import Side
from workers import records


def hedged_setup(bot_id: int) -> tuple[records.BotSetup, records.BotSetup, dict]:
    """(maker leg setup, hedge leg setup, hedger settings) of a hedged bot. Each leg's ``prefix``
    is its client-id family (``<bot prefix>m`` / ``<bot prefix>h``), its fills and open orders are
    those of its market, its id sequence resumes after every id of that family. A perpetual leg
    also carries its contract, settings and funding (:func:`workers.hedged_legs.load_perp`), its
    liquidations' rows among its fills (``liquidation_closes``: trade id -> loss) and the maker
    setup the leg whose liquidation still holds quoting (``liquidated_leg``,
    :func:`workers.hedged_liquidation.held_leg`)."""
    from django.db.models import Q

    from apps.bots import hedged
    from apps.bots.models import Bot
    from apps.exchanges.models import ExchangeAccount, Market
    from apps.orders.models import CLOSED_STATUSES, Fill, Order
    from workers import hedged_liquidation
    from workers.hedged_legs import load_perp

    base = records.bot_setup(bot_id)
    bot = Bot.objects.get(pk=bot_id)
    params = dict(bot.params or {})
    hedge_market = Market.objects.get(pk=params["hedge_market"])
    hedge_account = ExchangeAccount.objects.get(pk=params["hedge_account"], owner_id=bot.owner_id)
    legs, liquidations = [], {}
    for suffix, account, market in (
        ("m", bot.exchange_account, bot.market),
        ("h", hedge_account, hedge_market),
    ):
        leg = "maker" if suffix == "m" else "hedge"
        inst = records.market_instrument(market)
        prefix = base.prefix + suffix
        seq = -1
        for cid in Order.objects.filter(bot_id=bot_id, client_order_id__startswith=prefix + "-").values_list(
            "client_order_id", flat=True
        ):
            seq = max(seq, records._seq_of(cid, prefix))
        # the leg's fills and its liquidations (workers.hedged_liquidation: no client order id)
        rows = list(
            Fill.objects.filter(bot_id=bot_id)
            .filter(Q(client_order_id__startswith=prefix + "-") | hedged_liquidation.fills_filter(account.pk, leg))
            .order_by("ts", "id")
        )
        liquidations[leg] = [f for f in rows if not f.client_order_id]
        fills = []
        for f in rows:
            side = Side.BUY if f.side == "buy" else Side.SELL
            fills.append((records.dt_to_ns(f.ts), f.client_order_id, side, inst.ticks(f.price, side=side),
                          inst.lots(f.quantity), f.fee, f.liquidity == "maker", f.venue_trade_id))  # fmt: skip
        open_orders = {
            o.client_order_id: (
                Side.BUY if o.side == "buy" else Side.SELL,
                inst.ticks(o.price),
                inst.lots(o.quantity),
                0,
            )
            for o in Order.objects.filter(bot_id=bot_id, market=market).exclude(status__in=CLOSED_STATUSES)
        }
        legs.append(
            replace(
                base,
                account_id=account.pk,
                account_kind=account.kind,
                venue=market.venue,
                market_id=market.pk,
                symbol=market.symbol,
                instrument=inst,
                prefix=prefix,
                client_id_start=seq + 1,
                paper_balances=dict(account.paper_balances or {}),
                kill_switch=account.kill_switch,
                fills=fills,
                open_orders=open_orders,
            )
        )
        legs[-1].liquidation_closes = {f.venue_trade_id: f.realized_pnl for f in liquidations[leg]}
    legs[0].liquidated_leg = hedged_liquidation.held_leg(bot_id, liquidations)
    for name, setup in zip(("maker", "hedge"), legs, strict=True):
        load_perp(setup, name, params.get(hedged.PERP_FIELDS[name]))
    return legs[0], legs[1], {**hedged.hedge_settings(params), "requote_ticks": hedged.requote_ticks(params)}


def paper_legs(bot) -> list[tuple[int, str, str]]:
    """(account id, symbol, client-id prefix) of each PAPER venue a bot's orders rest on: one
    for a single-venue bot, the maker and hedge legs of a hedged one that are paper accounts."""
    from apps.bots.hedged import STRATEGY
    from apps.exchanges.models import ExchangeAccount, Market

    prefix = records.bot_prefix(bot)
    if bot.strategy != STRATEGY:
        return [] if bot.exchange_account.kind == "live" else [(bot.exchange_account_id, bot.market.symbol, prefix)]
    params = bot.params or {}
    hedge = Market.objects.filter(pk=params.get("hedge_market")).first()
    legs = [] if bot.exchange_account.kind == "live" else [(bot.exchange_account_id, bot.market.symbol, prefix + "m")]
    hedge_account = params.get("hedge_account")
    if hedge is not None and isinstance(hedge_account, int):
        kind = ExchangeAccount.objects.filter(pk=hedge_account).values_list("kind", flat=True).first()
        if kind is not None and kind != "live":
            legs.append((hedge_account, hedge.symbol, prefix + "h"))
    return legs


def live_legs(bot) -> list[records.BotSetup]:
    """The setup of each LIVE leg of a bot (its account, market and client-id family): the bot's
    own when it is a live single-venue bot, the maker and/or hedge leg of a hedged one."""
    from apps.bots.hedged import STRATEGY
    from apps.exchanges.models import ExchangeAccount

    if bot.strategy != STRATEGY:
        return [records.bot_setup(bot.pk)] if bot.exchange_account.kind == "live" else []
    hedge_account = (bot.params or {}).get("hedge_account")
    hedge_live = ExchangeAccount.objects.filter(pk=hedge_account, kind="live").exists()
    if bot.exchange_account.kind != "live" and not hedge_live:
        return []
    maker, hedge, _settings = hedged_setup(bot.pk)
    return [leg for leg in (maker, hedge) if leg.account_kind == "live"]


def _dec(value: Fraction | None, places: int = 18) -> Decimal | None:
    return None if value is None else to_decimal(value, places)


def attribution_row(bot_id: int, trade_id: str, r: MakerFillRecord) -> dict:
    """One attribution row (exact decimals; bps and ms to 6 places)."""
    first, done = r.latency_ns()
    slip = r.slippage_bps()
    return {
        "bot_id": bot_id,
        "maker_trade_id": trade_id,
        "ts": records.ns_to_dt(r.ts),
        "side": "buy" if r.side > 0 else "sell",
        "price": _dec(r.price),
        "quantity": _dec(r.base),
        "expected_hedge_price": _dec(r.expected_hedge),
        "hedge_vwap": _dec(r.hedge_vwap()),
        "hedged_quantity": _dec(sum((c.base for c in r.covers if not c.netted), Fraction(0))),
        "netted_quantity": _dec(sum((c.base for c in r.covers if c.netted), Fraction(0))),
        "open_quantity": _dec(r.open),
        "expected_edge": _dec(r.expected_edge()),
        "realized_edge": _dec(r.realized_edge()),
        "slippage_bps": None if slip is None else Decimal(str(round(slip, 6))),
        "hedge_latency_ms": None if first is None else Decimal(first) / 1_000_000,
        "covered_latency_ms": None if done is None else Decimal(done) / 1_000_000,
    }


UPDATED = (
    "hedge_vwap",
    "hedged_quantity",
    "netted_quantity",
    "open_quantity",
    "realized_edge",
    "slippage_bps",
    "hedge_latency_ms",
    "covered_latency_ms",
)


def attributions_record(rows: list[dict]) -> None:
    """Insert the rows, or update the coverage of rows already stored (unique per maker trade)."""
    from apps.bots.models import HedgeFillAttribution

    if rows:
        HedgeFillAttribution.objects.bulk_create(
            [HedgeFillAttribution(**row) for row in rows],
            update_conflicts=True,
            unique_fields=["bot", "maker_trade_id"],
            update_fields=list(UPDATED),
        )


def hedge_incident(bot_id: int, code: str, message: str, data: dict) -> None:
    """A hedged bot stopped quoting (stale hedge book, failed hedge, budget spent...): an incident
    for its owner naming the exposure left. The bot event with it (kind ``risk``) is what the
    notifications' event scan turns into a ``risk_breach`` notification."""
    from apps.bots.models import Bot
    from apps.core.models import Incident, IncidentKind

    bot = Bot.objects.filter(pk=bot_id).first()
    if bot is None:
        return
    Incident.objects.create(
        owner_id=bot.owner_id,
        bot=bot,
        account_id=bot.exchange_account_id,
        kind=IncidentKind.HEDGE,
        message=f"{bot.name}: {message}",
        data={"code": code, **data},
    )


def funding_event(leg: str, perp, entry: tuple) -> tuple[str, str, str, dict]:
    """(kind, code, message, data) of the bot event for one funding payment a perpetual leg
    booked, ``entry`` = (funding ts, rate, mark, amount, position lots). ``data["leg"]`` and
    ``data["amount"]`` let a new owner sum what the leg booked
    (:func:`workers.hedged_legs.load_perp`)."""
    from workers.perp_hosting import _iso

    when, rate, mark, amount, lots = entry
    paid = amount < 0
    money = f"{to_decimal(abs(amount), perp.places):f} {perp.spec.settle}"
    return (
        "funding",
        "funding_paid" if paid else "funding_received",
        f"{leg} leg funding at {_iso(when)}: rate {to_decimal(rate, 8).normalize():f}, mark "
        f"{to_decimal(mark, 8).normalize():f}: {'paid' if paid else 'received'} {money} on {perp._contracts(lots)}",
        {
            "leg": leg,
            "funding_ts": when,
            "rate": f"{to_decimal(rate, 10):f}",
            "mark": f"{to_decimal(mark, 8):f}",
            "amount": f"{to_decimal(amount, 18):f}",
            "settle": perp.spec.settle,
            "position_contracts": f"{to_decimal(perp.position.contracts(lots), 8).normalize():f}",
        },
    )
