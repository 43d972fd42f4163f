"""A fake of Binance USD-M futures' private REST API: the spot fake's order book-keeping on the
``/fapi`` paths, plus what a perpetual account needs:

- the dead man's switch ``POST /fapi/v1/countdownCancelAll`` (``symbol``, ``countdownTime`` ms;
  0 disarms): when a symbol's countdown runs out before it is sent again, every open order of
  that symbol is cancelled by the venue, as Binance does. ``countdowns`` records each call as
  ``(monotonic time, symbol, countdown ms)``; ``fired`` each expiry as ``(monotonic time,
  symbol, orders cancelled)``;
- positions: :meth:`fill` moves the symbol's one-way position (size and average entry) and
  ``GET /fapi/v2|v3/positionRisk`` answers with the recorded real positionRisk row
  (``fetchPositions`` "Fetch linear positions with symbols") carrying the fake's figures;
- ``POST /fapi/v1/leverage`` (1 to 125, else Binance's -4028) and ``POST /fapi/v1/marginType``
  (refused with Binance's -4048 while a position is open, -4046 when already set);
- ``reduceOnly`` orders that would not reduce the position refused with Binance's -2022;
- the position mode (``GET`` / ``POST /fapi/v1/positionSide/dual``, ``dualSidePosition``): a
  switch is refused with Binance's -4059 when already set, -4067 while an order is open and -4068
  while a position is open (any symbol). In hedge mode (``dual``) an order must name its leg
  (``positionSide`` LONG / SHORT, else -4061, as must a one-way order be BOTH), ``reduceOnly`` is
  refused (-1106), and a close (SELL LONG, BUY SHORT) larger than its leg is refused with -2022;
  :meth:`fill` moves the order's leg (``hedge_positions[(symbol, "LONG" | "SHORT")]``) and
  ``positionRisk`` answers a LONG and a SHORT row per symbol;
- ``GET /fapi/v1/premiumIndex`` (mark price, last funding rate, next funding time) and
  ``GET /fapi/v1/leverageBracket`` (ccxt reads it before parsing positions, and
  ``fetchLeverageTiers`` is it);
- ``GET /fapi/v2|v3/account`` (ccxt ``fetchBalance`` of a swap account): the recorded real reply
  ("Linear swap balance", fixtures/ccxt/response/binance.json, copied from
  ../shared/data/ccxt) with the fake's ``wallet`` per asset and the positions' unrealized PnL;
- order queries (``GET /fapi/v1/order`` by ``origClientOrderId`` or ``orderId``,
  ``/fapi/v1/openOrders``, the cancel reply) in the USD-M order shape: the recorded real
  ``fetchOpenOrders`` "open portfolio margin orders" row (Binance's UM order: ``positionSide``,
  ``cumQuote``, ``reduceOnly``, ...) carrying the fake's order. The spot shape made ccxt read a
  futures order as a spot market's (``BTC/USDT``), so a new owner found none of the bot's open
  orders;
- hedge-mode legs report their own ``liquidationPrice`` and ``isolatedWallet`` in ``positionRisk``
  (:meth:`set_leg_figures`), and the user-data stream's ``ACCOUNT_UPDATE`` carries both legs
  (``ps`` LONG / SHORT); a funding payment is one income row per symbol with no position side,
  as Binance's ``FUNDING_FEE`` rows;
- ``GET /fapi/v1/income`` (ccxt ``fetchFundingHistory``): the funding payments :meth:`pay_funding`
  booked, each a copy of the recorded real ``FUNDING_FEE`` row (fixtures/ccxt/response/binance.json,
  ``fetchFundingHistory`` "fetch portfolio margin funding history": Binance's income row, the same
  fields ``/fapi/v1/income`` answers with) carrying the fake's symbol, amount, time and id, filtered
  by ``symbol``, ``incomeType``, ``startTime`` / ``endTime`` (inclusive) and ``limit`` (default 100,
  at most 1000), oldest first;
- the user-data stream (listen key and websocket, :mod:`tests.connectors.servers.binance_usdm_stream`):
  an ``ACCOUNT_UPDATE`` with the position after every :meth:`fill` and :meth:`move_position`, and
  with the balance (and an isolated position) after every :meth:`pay_funding`;
- the public mark price stream (``<symbol>@markPrice@1s``, ``markPriceUpdate`` frames with the
  fake's mark and funding, :class:`~tests.connectors.servers.binance_usdm_stream.MarkPriceStream`):
  :meth:`set_mark` moves the mark (REST and stream) and publishes it at once.

The recorded files hold no leverage, marginType, premiumIndex or leverageBracket replies, so those
four are built in the shapes Binance's API documentation gives (the same fields and string/number
types); the brackets are the shipped BTCUSDT table (``trading.margin.BINANCE_USDM_BTCUSDT``).
"""

from __future__ import annotations

import asyncio
import copy
import time
from dataclasses import dataclass, field
from decimal import Decimal
from typing import Any

from tests.connectors.conftest import case
from tests.connectors.servers.binance_spot import FakeBinanceSpot
from tests.connectors.servers.binance_usdm_stream import MarkPriceStream, UserDataStream, balance_row, position_row
from tests.connectors.servers.fake_exchange import Recorded, Reply
from trading.margin import BINANCE_USDM_BTCUSDT


@dataclass
class FakePosition:
    amount: Decimal = Decimal(0)  # signed, base units (contracts of 1)
    entry: Decimal = Decimal(0)
    leverage: int = 20
    margin_type: str = "cross"  # cross / isolated
    liquidation_price: str = "0"
    isolated_wallet: str = "0"  # Binance's isolatedWallet of an isolated position (tests set it)


@dataclass
class FakeBinanceUsdm(FakeBinanceSpot):
    countdowns: list[tuple[float, str, int]] = field(default_factory=list)
    fired: list[tuple[float, str, int]] = field(default_factory=list)
    positions: dict[str, FakePosition] = field(default_factory=dict)
    mark_prices: dict[str, str] = field(default_factory=dict)
    funding: dict[str, tuple[str, int]] = field(default_factory=dict)  # symbol -> (rate, next funding ms)
    wallet: dict[str, Decimal] = field(default_factory=lambda: {"USDT": Decimal("10000")})
    income: list[dict] = field(default_factory=list)  # income rows, oldest first
    funding_history: dict[str, list[tuple[int, str]]] = field(default_factory=dict)  # symbol -> (ms, rate), in order
    dual: bool = False  # hedge position mode (Binance dualSidePosition)
    hedge_positions: dict[tuple[str, str], FakePosition] = field(default_factory=dict)
    _timers: dict[str, Any] = field(default_factory=dict)
    stream: UserDataStream | None = None
    marks: MarkPriceStream | None = None

    def install(self) -> FakeBinanceUsdm:
        s = self.server
        self.stream = UserDataStream(s).install()
        self.marks = MarkPriceStream(self).install()
        self._install_orders("/fapi/v1", "userTrades")
        s.route("POST", "/fapi/v1/countdownCancelAll", self._countdown)
        s.route("POST", "/fapi/v1/order", self._create_perp)
        s.route("POST", "/fapi/v1/leverage", self._leverage)
        s.route("POST", "/fapi/v1/marginType", self._margin_type)
        s.route("GET", "/fapi/v1/leverageBracket", self._brackets)
        s.route("GET", "/fapi/v2/positionRisk", self._position_risk)
        s.route("GET", "/fapi/v3/positionRisk", self._position_risk)
        s.route("GET", "/fapi/v1/premiumIndex", self._premium_index)
        s.route("GET", "/fapi/v2/account", self._account)
        s.route("GET", "/fapi/v3/account", self._account)
        s.route("GET", "/fapi/v1/income", self._income)
        s.route("GET", "/fapi/v1/fundingRate", self._funding_rate_history)
        s.route("GET", "/fapi/v1/positionSide/dual", self._get_dual)
        s.route("POST", "/fapi/v1/positionSide/dual", self._set_dual)
        return self

    def leg(self, symbol: str, side: str) -> FakePosition:
        """A hedge-mode leg (``side`` LONG or SHORT); its leverage and margin type are the symbol's."""
        base = self.position(symbol)
        return self.hedge_positions.setdefault(
            (symbol, side), FakePosition(leverage=base.leverage, margin_type=base.margin_type)
        )

    def position(self, symbol: str) -> FakePosition:
        return self.positions.setdefault(symbol, FakePosition())

    # --- venue actions tests can trigger ----------------------------------------------------
    def fill(self, client_order_id: str, qty: str, *, maker: bool = True) -> dict:
        """Fill part of an open order: a userTrades row in the recorded USD-M shape ("Swap private
        trade": ``side``, ``buyer``, ``maker``, ``positionSide``, fees at 0.02 % maker / 0.05 %
        taker) and the position moved."""
        spot = super().fill(client_order_id, qty, maker=maker)
        order = self.orders[client_order_id]
        trade = copy.deepcopy(case("response", "binance", "fetchMyTrades", "Swap private trade")["httpResponse"][0])
        rate = Decimal("0.0002") if maker else Decimal("0.0005")
        quote = Decimal(order["price"]) * Decimal(qty)
        trade.update(
            symbol=spot["symbol"],
            id=spot["id"],
            orderId=spot["orderId"],
            side=order["side"],
            price=order["price"],
            qty=qty,
            quoteQty=f"{quote:f}",
            commission=f"{quote * rate:.8f}",
            commissionAsset="USDT",
            time=spot["time"],
            maker=maker,
            buyer=order["side"] == "BUY",
        )
        leg_side = order.get("positionSide", "BOTH")
        trade["positionSide"] = leg_side
        self.trades[-1] = trade
        pos = self.leg(order["symbol"], leg_side) if leg_side != "BOTH" else self.position(order["symbol"])
        signed = Decimal(qty) * (1 if order["side"] == "BUY" else -1)
        price = Decimal(order["price"])
        if pos.amount == 0 or (pos.amount > 0) == (signed > 0):
            total = pos.amount + signed
            pos.entry = (pos.entry * abs(pos.amount) + price * abs(signed)) / abs(total)
            pos.amount = total
        else:
            pos.amount += signed
            if pos.amount == 0:
                pos.entry = Decimal(0)
            elif (pos.amount > 0) == (signed > 0):  # crossed through zero: the rest opened at the price
                pos.entry = price
        self._push_position(order["symbol"], "ORDER")
        return trade

    def move_position(self, symbol: str, amount: str, entry: str | None = None) -> None:
        """Change the position behind the bot's back (e.g. closed by hand on the website): the
        position set and its ``ACCOUNT_UPDATE`` pushed."""
        pos = self.position(symbol)
        pos.amount = Decimal(amount)
        if entry is not None:
            pos.entry = Decimal(entry)
        elif pos.amount == 0:
            pos.entry = Decimal(0)
        self._push_position(symbol, "ORDER")

    async def set_mark(self, symbol: str, mark: str, funding: tuple[str, int] | None = None) -> None:
        """Move ``symbol``'s mark (and optionally its funding rate and next funding ms): what
        ``premiumIndex`` and ``positionRisk`` answer from now on, published on the mark stream."""
        self.mark_prices[symbol] = mark
        if funding is not None:
            self.funding[symbol] = funding
        if self.marks is not None:
            await self.marks.publish(symbol)

    def _position_rows(self, symbol: str, isolated_only: bool = False) -> list[dict]:
        """``P`` rows of ``symbol``: the one-way position, or in hedge mode both legs."""
        held = [(s, self.leg(symbol, s)) for s in ("LONG", "SHORT")] if self.dual else [("BOTH", self.position(symbol))]
        return [
            position_row(symbol, pos, Decimal(self.mark_prices.get(symbol, pos.entry or "0")), side)
            for side, pos in held
            if not isolated_only or pos.margin_type == "isolated"
        ]

    def _push_position(self, symbol: str, reason: str) -> None:
        if self.stream is None:
            return
        wallet = [balance_row(a, w) for a, w in self.wallet.items() if a == "USDT"]
        self.stream.push(self.stream.account_update(reason, wallet, self._position_rows(symbol)))

    def set_leg_figures(self, symbol: str, side: str, liquidation_price: str, isolated_wallet: str = "0") -> None:
        """What ``positionRisk`` reports as a hedge leg's (``side`` LONG / SHORT) liquidation price
        and isolated wallet from now on (Binance computes them; the fake is told them)."""
        leg = self.leg(symbol, side)
        leg.liquidation_price, leg.isolated_wallet = liquidation_price, isolated_wallet

    def pay_funding(self, symbol: str, amount: str, time_ms: int | None = None, asset: str = "USDT") -> dict:
        """Book a funding payment on the account (``amount`` signed: + received, - paid) as Binance
        does at a funding time: an income row (the recorded shape) and the wallet moved."""
        row = copy.deepcopy(case("response", "binance", "fetchFundingHistory")["httpResponse"][0])
        when = int(time.time() * 1000) if time_ms is None else time_ms
        tran = 8082457372019390060 + len(self.income) + 1
        row.update(symbol=symbol, income=f"{Decimal(amount):.8f}", asset=asset, time=str(when), tranId=str(tran))
        self.income.append(row)
        self.wallet[asset] = self.wallet.get(asset, Decimal(0)) + Decimal(amount)
        if self.stream is not None:  # Binance: the balance, and the position only when isolated
            rows = self._position_rows(symbol, isolated_only=True) if symbol in self.positions else []
            balances = [balance_row(asset, self.wallet[asset], Decimal(amount))]
            self.stream.push(self.stream.account_update("FUNDING_FEE", balances, rows))
        return row

    # --- handlers ---------------------------------------------------------------------------
    def _as_query_order(self, order: dict) -> dict:
        shaped = copy.deepcopy(
            case("response", "binance", "fetchOpenOrders", "open portfolio margin orders")["httpResponse"][0]
        )
        executed = Decimal(order["executedQty"])
        shaped.update(
            {
                k: order[k]
                for k in ("symbol", "orderId", "clientOrderId", "price", "origQty", "status", "timeInForce", "side")
            },
            type=order["type"],
            origType=order["type"],
            executedQty=f"{executed:f}",
            cumQuote=f"{executed * Decimal(order['price']):f}",
            avgPrice=order["price"] if executed else "0",
            reduceOnly=bool(order.get("reduceOnly", False)),
            positionSide=order.get("positionSide", "BOTH"),
            time=order["transactTime"],
            updateTime=str(int(time.time() * 1000)),
        )
        return shaped

    def _fetch(self, req: Recorded) -> Reply:
        """By ``origClientOrderId`` (the spot fake's lookup) or by ``orderId``, as Binance answers."""
        order_id = req.query.get("orderId")
        if order_id and not req.query.get("origClientOrderId"):
            order = next((o for o in self.orders.values() if o["orderId"] == order_id), None)
            if order is None:
                return Reply(status=400, body={"code": -2013, "msg": "Order does not exist."})
            return Reply(body=self._as_query_order(order))
        return super()._fetch(req)

    def _income(self, req: Recorded) -> Reply:
        q = req.query
        limit = q.get("limit", "100")
        if not str(limit).isdigit() or not 1 <= int(limit) <= 1000:
            return Reply(status=400, body={"code": -1130, "msg": "Data sent for paramter 'limit' is not valid."})
        rows = [
            r
            for r in self.income
            if (not q.get("symbol") or r["symbol"] == q["symbol"])
            and (not q.get("incomeType") or r["incomeType"] == q["incomeType"])
            and int(r["time"]) >= int(q.get("startTime") or 0)
            and int(r["time"]) <= int(q.get("endTime") or 1 << 62)
        ]
        return Reply(body=rows[: int(limit)])

    def _funding_rate_history(self, req: Recorded) -> Reply:
        """``GET /fapi/v1/fundingRate`` in Binance's documented shape (symbol, fundingTime,
        fundingRate, markPrice), oldest first from ``startTime``, at most ``limit`` (max 1000)."""
        q = req.query
        limit = q.get("limit", "100")
        if not str(limit).isdigit() or not 1 <= int(limit) <= 1000:
            return Reply(status=400, body={"code": -1130, "msg": "Data sent for paramter 'limit' is not valid."})
        symbol = q.get("symbol", "")
        rows = [
            {"symbol": symbol, "fundingTime": ms, "fundingRate": rate, "markPrice": self.mark_prices.get(symbol, "")}
            for ms, rate in self.funding_history.get(symbol, [])
            if int(q.get("startTime") or 0) <= ms <= int(q.get("endTime") or 1 << 62)
        ]
        return Reply(body=rows[: int(limit)])

    def _create_perp(self, req: Recorded) -> Reply:
        p = {**req.query, **req.body}
        leg_side = str(p.get("positionSide", "BOTH")).upper()
        if (leg_side in ("LONG", "SHORT")) != self.dual or leg_side not in ("LONG", "SHORT", "BOTH"):
            return Reply(
                status=400, body={"code": -4061, "msg": "Order's position side does not match user's setting."}
            )
        if self.dual:
            if "reduceOnly" in p:
                return Reply(status=400, body={"code": -1106, "msg": "Parameter 'reduceOnly' sent when not required."})
            closing = (leg_side == "LONG") != (p.get("side") == "BUY")
            if closing and Decimal(p.get("quantity", "0")) > abs(self.leg(p.get("symbol", ""), leg_side).amount):
                return Reply(status=400, body={"code": -2022, "msg": "ReduceOnly Order is rejected."})
        elif str(p.get("reduceOnly", "")).lower() == "true":
            pos = self.position(p.get("symbol", ""))
            buying = p.get("side") == "BUY"
            if pos.amount == 0 or (pos.amount > 0) == buying:
                return Reply(status=400, body={"code": -2022, "msg": "ReduceOnly Order is rejected."})
        reply = self._create(req)
        if reply.status == 200 and isinstance(reply.body, dict) and "clientOrderId" in reply.body:
            reply.body["reduceOnly"] = str(p.get("reduceOnly", "")).lower() == "true"
            reply.body["positionSide"] = leg_side
            self.orders[reply.body["clientOrderId"]]["positionSide"] = leg_side
        return reply

    def _get_dual(self, req: Recorded) -> dict:
        return {"dualSidePosition": self.dual}

    def _set_dual(self, req: Recorded) -> Reply:
        p = {**req.query, **req.body}
        raw = str(p.get("dualSidePosition", "")).lower()
        if raw not in ("true", "false"):
            return Reply(
                status=400, body={"code": -1102, "msg": "Mandatory parameter 'dualSidePosition' was not sent."}
            )
        wanted = raw == "true"
        if wanted == self.dual:
            return Reply(status=400, body={"code": -4059, "msg": "No need to change position side."})
        if any(o["status"] in ("NEW", "PARTIALLY_FILLED") for o in self.orders.values()):
            return Reply(
                status=400, body={"code": -4067, "msg": "Position side cannot be changed if there exists open orders."}
            )
        if any(pos.amount for pos in [*self.positions.values(), *self.hedge_positions.values()]):
            return Reply(
                status=400, body={"code": -4068, "msg": "Position side cannot be changed if there exists position."}
            )
        self.dual = wanted
        return Reply(body={"code": 200, "msg": "success"})

    def _leverage(self, req: Recorded) -> Reply:
        p = {**req.query, **req.body}
        symbol, raw = p.get("symbol", ""), str(p.get("leverage", ""))
        if not raw.isdigit() or not 1 <= int(raw) <= 125:
            return Reply(status=400, body={"code": -4028, "msg": f"Leverage {raw} is not valid"})
        self.position(symbol).leverage = int(raw)
        for (s, _side), leg in self.hedge_positions.items():
            if s == symbol:
                leg.leverage = int(raw)
        cap = BINANCE_USDM_BTCUSDT.brackets[0]
        for b in BINANCE_USDM_BTCUSDT.brackets:
            if b.max_leverage >= int(raw):
                cap = b
        return Reply(body={"leverage": int(raw), "maxNotionalValue": str(int(cap.cap or 0)), "symbol": symbol})

    def _margin_type(self, req: Recorded) -> Reply:
        p = {**req.query, **req.body}
        symbol, wanted = p.get("symbol", ""), str(p.get("marginType", "")).upper()
        if wanted not in ("ISOLATED", "CROSSED"):
            return Reply(status=400, body={"code": -1116, "msg": "Invalid marginType."})
        pos = self.position(symbol)
        mode = "isolated" if wanted == "ISOLATED" else "cross"
        if mode == pos.margin_type:
            return Reply(status=400, body={"code": -4046, "msg": "No need to change margin type."})
        if pos.amount != 0:
            return Reply(
                status=400, body={"code": -4048, "msg": "Margin type cannot be changed if there exists position."}
            )
        if any(leg.amount for (s, _side), leg in self.hedge_positions.items() if s == symbol):
            return Reply(
                status=400, body={"code": -4048, "msg": "Margin type cannot be changed if there exists position."}
            )
        pos.margin_type = mode
        for (s, _side), leg in self.hedge_positions.items():  # the symbol's setting, both legs
            if s == symbol:
                leg.margin_type = mode
        return Reply(body={"code": 200, "msg": "success"})

    def _brackets(self, req: Recorded) -> list[dict]:
        rows = []
        for n, b in enumerate(BINANCE_USDM_BTCUSDT.brackets, 1):
            rows.append(
                {
                    "bracket": n,
                    "initialLeverage": b.max_leverage,
                    "notionalCap": int(b.cap) if b.cap is not None else 9_223_372_036_854_775_807,
                    "notionalFloor": int(b.floor),
                    "maintMarginRatio": float(b.mmr),
                    "cum": float(b.cum),
                }
            )
        return [{"symbol": "BTCUSDT", "brackets": rows}]

    def _position_risk(self, req: Recorded) -> list[dict]:
        wanted = req.query.get("symbol")
        out = []
        if self.dual:
            rows = [
                ((symbol, side), self.leg(symbol, side))
                for symbol in list(self.positions)
                for side in ("LONG", "SHORT")
            ]
        else:
            rows = [((symbol, "BOTH"), pos) for symbol, pos in self.positions.items()]
        for (symbol, leg_side), pos in rows:
            if wanted and symbol != wanted:
                continue
            row = copy.deepcopy(
                case("response", "binance", "fetchPositions", "Fetch linear positions with symbols")["httpResponse"][0]
            )
            mark = Decimal(self.mark_prices.get(symbol, pos.entry or "0"))
            upnl = pos.amount * (mark - pos.entry) if pos.amount else Decimal(0)
            row.update(
                symbol=symbol,
                positionAmt=f"{pos.amount:f}",
                entryPrice=f"{pos.entry:f}",
                breakEvenPrice=f"{pos.entry:f}",
                markPrice=f"{mark:.8f}",
                unRealizedProfit=f"{upnl:.8f}",
                liquidationPrice=pos.liquidation_price,
                isolatedWallet=pos.isolated_wallet,
                notional=f"{pos.amount * mark:.8f}",
                leverage=str(pos.leverage),
                marginType=pos.margin_type,
                positionSide=leg_side,
                updateTime=str(int(time.time() * 1000)),
            )
            out.append(row)
        return out

    def _account(self, req: Recorded) -> dict:
        reply = copy.deepcopy(case("response", "binance", "fetchBalance", "Linear swap balance")["httpResponse"])
        template = reply["assets"][0]
        held = [*self.positions.items(), *((s, p) for (s, _side), p in self.hedge_positions.items())]
        upnl = sum(
            (p.amount * (Decimal(self.mark_prices.get(s, p.entry or "0")) - p.entry) for s, p in held),
            Decimal(0),
        )
        assets = []
        for asset, amount in self.wallet.items():
            row = dict(template, asset=asset, updateTime=str(int(time.time() * 1000)))
            for key in ("walletBalance", "crossWalletBalance", "availableBalance", "maxWithdrawAmount"):
                row[key] = f"{amount:.8f}"
            row["marginBalance"] = f"{amount + upnl:.8f}" if asset == "USDT" else f"{amount:.8f}"
            row["unrealizedProfit"] = row["crossUnPnl"] = f"{upnl:.8f}" if asset == "USDT" else "0.00000000"
            assets.append(row)
        usdt = self.wallet.get("USDT", Decimal(0))
        for key in ("totalWalletBalance", "totalCrossWalletBalance", "availableBalance", "maxWithdrawAmount"):
            reply[key] = f"{usdt:.8f}"
        reply["totalMarginBalance"] = f"{usdt + upnl:.8f}"
        reply["totalUnrealizedProfit"] = reply["totalCrossUnPnl"] = f"{upnl:.8f}"
        reply["assets"] = assets
        return reply

    def _premium_index(self, req: Recorded) -> Reply:
        symbol = req.query.get("symbol", "")
        if symbol not in self.mark_prices:
            return Reply(status=400, body={"code": -1121, "msg": "Invalid symbol."})
        rate, next_ms = self.funding.get(symbol, ("0.00010000", 0))
        return Reply(
            body={
                "symbol": symbol,
                "markPrice": self.mark_prices[symbol],
                "indexPrice": self.mark_prices[symbol],
                "estimatedSettlePrice": self.mark_prices[symbol],
                "lastFundingRate": rate,
                "interestRate": "0.00010000",
                "nextFundingTime": next_ms,
                "time": int(time.time() * 1000),
            }
        )

    def _countdown(self, req: Recorded) -> Reply:
        p = {**req.query, **req.body}
        symbol, ms = p.get("symbol", ""), p.get("countdownTime", "")
        if not symbol or not str(ms).isdigit():
            return Reply(status=400, body={"code": -1102, "msg": "Mandatory parameter was not sent or malformed."})
        ms = int(ms)
        self.countdowns.append((time.monotonic(), symbol, ms))
        old = self._timers.pop(symbol, None)
        if old is not None:
            old.cancel()
        if ms > 0:
            self._timers[symbol] = asyncio.get_running_loop().call_later(ms / 1000, self._fire, symbol)
        return Reply(body={"symbol": symbol, "countdownTime": str(ms)})

    def _fire(self, symbol: str) -> None:
        self._timers.pop(symbol, None)
        cancelled = 0
        for order in self.orders.values():
            if order["symbol"] == symbol and order["status"] in ("NEW", "PARTIALLY_FILLED"):
                order["status"] = "CANCELED"
                cancelled += 1
        self.fired.append((time.monotonic(), symbol, cancelled))
