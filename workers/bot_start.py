"""How a :class:`workers.botloop.BotRunner` starts: load the bot, build its engine and venue, and
reconcile with the venue before quoting (take-over).

A new owner adopts the venue's open orders with the bot's prefix that the database knows (a paper
order whose row the previous owner had not written yet gets it now), cancels the others, records
once the trades it missed while no one owned the bot, rebuilds position and PnL from the recorded
fills, and continues the client-id sequence past every id the database, the venue, its trades or
the bot's last-place mark hold.
"""

from __future__ import annotations

import time
from decimal import Decimal

from apps.bots.hedged import STRATEGY as HEDGED_STRATEGY
from apps.derivatives.hosting import live_perp
from connectors.errors import RetryBudgetExhausted
from trading.engine import Engine
from trading.events import Liquidity, OrderFilled, PlaceOrder, TimeInForce
from trading.oms import OrderState
from trading.risk import RiskLimits
from trading.strategies import build_strategy
from workers import keys, liquidation_fills, paper_perp, perp_hosting, records
from workers.bot_control import StopLoop
from workers.paper_venue import PaperVenue


def engine_for(setup: records.BotSetup, book, *, external_book: bool = True) -> Engine:
    """The bot's engine as its loop runs it (a backtest of the bot builds the same one): strategy
    and risk limits from its configuration (refused with the reason), the account's paper
    balances, its client-id prefix and sequence. ``book``: the host's book of the feed, which the
    host keeps (``external_book``) and engine and paper matching read."""
    inst = setup.instrument
    strategy = build_strategy(setup.strategy, setup.params, inst)
    risk = RiskLimits.from_dict(perp_hosting.split_risk(setup.risk)[0], inst)
    perp = perp_hosting.perp_risk(setup)  # a perpetual market: margin, contracts, funding
    balances = {} if perp is not None else setup.paper_balances
    return Engine(
        strategy,
        inst,
        book=book,
        external_book=external_book,
        bot_id=str(setup.bot_id),
        risk=risk,
        initial_base=inst.lots(Decimal(str(balances.get(inst.base, "0"))), round_down=True),
        initial_quote=inst.cash_units(Decimal(str(balances.get(inst.quote, "0")))),
        client_id_prefix=setup.prefix,
        client_id_start=setup.client_id_start,
        # Settled markouts are summed by the portfolio (its status reads the sums); the list of
        # the last ones is for backtest reports: 10,000 per bot made millions of objects in a
        # host, for every garbage collection to walk.
        max_markouts=64,
        # A paper account's balances are known: an order it cannot pay for is refused before it
        # leaves (spot). A live account's come from the exchange, which refuses.
        balance_check=setup.account_kind == "paper" and bool(balances),
        perp=perp,
    )


class BotStart:
    async def _start(self) -> None:
        host = self.host
        try:
            setup = await host.db_setup.call(records.bot_setup, self.bot_id)
            await host.db_setup.call(perp_hosting.load, setup)
        except Exception as exc:  # database trouble: try again shortly (any host)
            host.retry_later(self.bot_id, 5.0)
            raise StopLoop(f"cannot load the bot, retrying: {exc}") from exc
        self.setup = setup
        if setup.strategy == HEDGED_STRATEGY:  # two legs: workers.hedged_loop runs it
            from workers.hedged_loop import HedgedLoop

            self.hedged = HedgedLoop(self)
            await self.hedged.start()
            return
        book = host.book(setup.venue, setup.symbol)  # the host's book of the feed, for all its bots
        try:
            self.engine = engine_for(setup, book)
        except Exception as exc:
            errors = getattr(exc, "errors", None) or str(exc)
            reason = f"configuration refused: {errors}"
            await host.db.call(records.bot_state_set, self.bot_id, "error", reason)
            await host.release_bot(self.bot_id)
            raise StopLoop(reason) from exc
        balances = setup.paper_balances
        inst = setup.instrument
        perp_side = None  # a live perpetual's workers.perp_live.LivePerp
        if setup.account_kind == "paper":
            self.venue = PaperVenue(
                host.redis,
                account_id=setup.account_id,
                instrument=inst,
                bot_id=self.bot_id,
                prefix=setup.prefix,
                lease_key=self.lease.key,
                lease_value=self.lease.value,
                token=self.lease.token,
                book=book,
                defer_fills=True,
                balances={currency: Decimal(str(amount)) for currency, amount in balances.items()},
                clock=self.clock,
                **self.fill_model,
            )
        else:
            perp_side = await self._start_live(setup)
        self._make_runner()
        await self._take_over()
        if perp_side is not None:  # its reads compare the exchange's position with the one take-over booked
            perp_side.after_take_over()
        self.stream = (setup.venue, setup.symbol)
        host.subscribe(self, setup.venue, setup.symbol)
        desired = setup.desired_state
        await self._read_portfolio_block()
        risk_reason = setup.risk_paused_reason  # the risk sweep's pause, read with the bot's row
        if desired == "paused" or risk_reason:
            reason = "desired state is paused" if desired == "paused" else f"risk: {risk_reason}"
            self.engine.pause(time.time_ns(), reason)
            self.state = "paused"
        else:
            self.state = "running"
        await host.db.call(
            records.bot_state_set, self.bot_id, self.state, f"risk: {risk_reason}" if risk_reason else ""
        )
        self._event("lifecycle", "owner", f"loop started on {host.host_id} with fencing token {self.lease.token}")

    async def _start_live(self, setup: records.BotSetup):
        """A live exchange account: a fenced :class:`LiveVenue` on the account's ccxt gateway;
        on a perpetual market also its :class:`workers.perp_live.LivePerp` (returned; it starts
        reading the exchange once take-over has booked the position from the fills)."""
        from workers import live_venue

        host = self.host
        try:
            exchange_id, credentials = await host.db_setup.call(live_venue.account_credentials, setup.account_id)
            options = await host.db_setup.call(live_venue.account_options, setup.account_id)
            gateway = live_venue.build_gateway(
                exchange_id, credentials, account_id=setup.account_id, redis_url=host.redis_url, options=options
            )
        except Exception as exc:  # undecryptable key, unknown exchange id, refused test address
            reason = f"live account cannot be used: {type(exc).__name__}: {exc}"
            await host.db.call(records.bot_state_set, self.bot_id, "error", reason)
            await host.release_bot(self.bot_id)
            raise StopLoop(reason) from exc
        venue = live_venue.LiveVenue(
            host.redis,
            gateway,
            instrument=setup.instrument,
            bot_id=self.bot_id,
            prefix=setup.prefix,
            lease_key=self.lease.key,
            lease_value=self.lease.value,
            token=self.lease.token,
            deliver=self.push_order_event,
            secrets=tuple(credentials),
        )
        self.venue = venue
        try:
            await venue.start()
        except RetryBudgetExhausted as exc:  # the exchange is unreachable for now: try again later
            host.retry_later(self.bot_id, 10.0)
            raise StopLoop(f"exchange unreachable, retrying: {exc}") from exc
        except ValueError as exc:  # the exchange's market differs from the bot's
            reason = f"configuration refused: {exc}"
            await host.db.call(records.bot_state_set, self.bot_id, "error", reason)
            await host.release_bot(self.bot_id)
            raise StopLoop(reason) from exc
        if live_perp(setup.venue, setup.symbol):  # leverage, margin mode, positions, funding
            from workers import perp_live

            try:
                perp = await perp_live.start(self, venue)
            except perp_live.PerpStartRefused as exc:  # nothing was changed on the exchange
                reason = f"configuration refused: {exc}"
                self._event("error", "perp_refused", reason)
                await host.db.call(records.bot_state_set, self.bot_id, "error", reason)
                await host.release_bot(self.bot_id)
                raise StopLoop(reason) from exc
            return perp
        return None

    async def _take_over(self) -> None:
        """Reconcile with the venue before quoting (see the module docstring)."""
        setup, engine, venue = self.setup, self.engine, self.venue
        ts = time.time_ns()
        # The latest id the bot placed under any owner (set with each fenced place): an order
        # cancelled before its row was written leaves no row, venue order or trade to skip past.
        last_place = await venue.redis.get(keys.bot_last_place(setup.bot_id))
        if last_place:
            engine.ids.skip_past(last_place.decode() if isinstance(last_place, bytes) else last_place)
        on_venue = await venue.restore()
        if venue.holds_orders:  # rows follow such a venue: some may not be written yet
            await self._rows_for_paper_orders(on_venue)
        adopted, cancelled = [], []
        for rep in on_venue:
            # The id sequence resumes after the bot's order rows; paper rows are written behind
            # the venue, so the venue may hold later ids: never reuse one (it would overwrite
            # that order at the venue).
            engine.ids.skip_past(rep.client_order_id)
            if rep.client_order_id in setup.open_orders:  # known: its row was written before the place
                cmd = PlaceOrder(rep.client_order_id, rep.side, rep.price, rep.qty, TimeInForce.GTC)
                wo = engine.orders.on_place_sent(cmd, ts)
                wo.status = OrderState.OPEN
                wo.accepted = True
                wo.filled = rep.filled_qty
                wo.venue_order_id = rep.venue_order_id
                adopted.append(rep.client_order_id)
                self.filled[rep.client_order_id] = rep.filled_qty
            else:
                for ev in await venue.cancel(rep.client_order_id, "unknown at take-over"):
                    await self._order_event_db(ev)
                cancelled.append(rep.client_order_id)
        # Trades the venue made for us that the database does not have yet: record them once.
        since = setup.fills[-1][0] if setup.fills else 0
        missing = await self._record_venue_trades(since)
        for f in missing:  # an order that traded and left the venue before its row was written
            engine.ids.skip_past(f.client_order_id)
        if missing:
            for f in missing:
                setup.fills.append(
                    (
                        f.ts,
                        f.client_order_id,
                        f.side,
                        f.price,
                        f.qty,
                        setup.instrument.cash(int(f.fee)),
                        f.maker,
                        f.trade_id,
                    )
                )
        # Rebuild position and PnL (and a perpetual's position) from the recorded fills; a paper
        # perpetual's position is restored from the venue's state and takes the fills after it.
        perp_state = await paper_perp.load(self.host.redis, setup) if engine.perp is not None else None
        perp_fills = set()
        if perp_state is not None:
            paper_perp.restore(engine.perp, perp_state)
            perp_fills = {f[-1] for f in paper_perp.after(setup.fills, perp_state.get("last_fill"))}
        if engine.perp is not None and setup.account_kind == "paper":
            self.paper_perp = paper_perp.PaperPerp(self, perp_state)
        lost = liquidation_fills.missing_rows(setup, perp_state)
        if lost:  # liquidations whose Fill row the previous owner's writer had not committed
            await self.host.db.call(records.fills_record, lost)
        for ts_f, cid, side, price, qty, fee, maker, trade_id in sorted(setup.fills, key=lambda f: f[0]):
            if perp_state is not None and liquidation_fills.is_liquidation(trade_id):
                continue  # in the restored position; its close is replayed below
            if engine.perp is None or perp_state is None:
                rebuild = engine.portfolio.on_fill if engine.perp is None else perp_hosting.both(engine)
            else:
                rebuild = perp_hosting.both(engine) if trade_id in perp_fills else engine.portfolio.on_fill
            rebuild(
                OrderFilled(
                    ts_f,
                    cid,
                    side,
                    price,
                    qty,
                    0,
                    setup.instrument.cash_units(fee),
                    Liquidity.MAKER if maker else Liquidity.TAKER,
                    trade_id,
                )
            )
        paper_perp.replay_closes(engine, perp_state)
        closed = await self.host.db.call(
            records.open_orders_close, self.bot_id, set(adopted), "cancelled", "not open on the venue at take-over"
        )
        self._event(
            "reconcile",
            "take_over",
            f"take-over: {len(adopted)} open orders adopted, {len(cancelled)} unknown cancelled, "
            f"{len(missing)} missed fills recorded, {closed} stale order rows closed, "
            f"position {setup.instrument.quantity(engine.portfolio.position)} {setup.instrument.base}",
            {"adopted": adopted, "cancelled": cancelled, "missed_fills": [f.trade_id for f in missing]},
        )

    async def _rows_for_paper_orders(self, on_venue: list) -> None:
        """Paper order rows are written behind the venue (``_send``): an order the previous owner
        placed just before it died may have none yet. Its row is written now from the venue's
        record (a paper venue only holds orders a fenced owner of this bot placed), so it is
        adopted like any other; an order whose row is closed is left to be cancelled."""
        setup = self.setup
        unknown = [rep for rep in on_venue if rep.client_order_id not in setup.open_orders]
        if not unknown:
            return
        known = await self.host.db.call(records.order_ids_known, [rep.client_order_id for rep in unknown])
        rows = []
        for rep in unknown:
            if rep.client_order_id in known:
                continue
            cmd = PlaceOrder(rep.client_order_id, rep.side, rep.price, rep.qty, TimeInForce.GTC, reason="quote")
            rows.append(
                (self.bot_id, setup.account_id, setup.market_id, setup.instrument, cmd, rep.venue_order_id, rep.ts)
            )
            setup.open_orders[rep.client_order_id] = (rep.side, rep.price, rep.qty, rep.filled_qty)
        if rows:
            await self.host.db.call(records.orders_create, rows)
            self._event(
                "reconcile",
                "order_rows_written",
                f"{len(rows)} open orders on the venue had no row yet (written behind the venue when the "
                "previous owner stopped); recorded from the venue and adopted",
                {"orders": [r[4].client_order_id for r in rows]},
            )

    async def _rows_for_traded_orders(self, trades: list) -> None:
        """An order that traded and left the paper venue before its row was written (its owner
        died within the writer's few ms): its row is written from its trades, as filled."""
        setup = self.setup
        by_cid: dict[str, list] = {}
        for f in trades:
            if f.client_order_id not in setup.open_orders:
                by_cid.setdefault(f.client_order_id, []).append(f)
        if not by_cid:
            return
        known = await self.host.db.call(records.order_ids_known, list(by_cid))
        rows, updates = [], []
        for cid, fills in by_cid.items():
            if cid in known:
                continue
            qty = sum(f.qty for f in fills)
            first = min(fills, key=lambda f: f.ts)
            cmd = PlaceOrder(cid, first.side, first.price, qty, TimeInForce.GTC, reason="quote")
            rows.append((self.bot_id, setup.account_id, setup.market_id, setup.instrument, cmd, "", first.ts))
            updates.append((cid, "filled", "", qty, "recorded at take-over from the venue's trades", setup.instrument))
        if rows:
            await self.host.db.call(records.orders_create, rows)
            await self.host.db.call(records.orders_update, updates)

    async def _record_venue_trades(self, since: int) -> list:
        """Record (once) the venue's trades for us since ``since`` (ns) that the database lacks:
        the take-over's missed fills and the fills of orders that traded while a stop cancelled
        them. Stored fills are unique on (account, venue trade id, ts), so a repeat is harmless."""
        setup = self.setup
        trades = await self.venue.fetch_my_trades(since)
        known = {f[7] for f in setup.fills} | self.recorded_trade_ids
        if trades:  # stored by the event pump (its fills carry our clock's ts, not the venue's)
            known |= await self.host.db.call(records.stored_trade_ids, setup.account_id, [f.trade_id for f in trades])
        missing = [f for f in trades if f.trade_id not in known]
        self.recorded_trade_ids.update(f.trade_id for f in missing)
        if missing and self.venue.holds_orders:
            await self._rows_for_traded_orders(missing)
        if missing:
            rows = [
                records.fill_row(
                    setup, f.ts, f.client_order_id, f.side, f.price, f.qty, int(f.fee), f.maker, f.trade_id
                )
                for f in missing
            ]
            await self.host.db.call(records.fills_record, rows)
        return missing
