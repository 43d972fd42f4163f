"""A stateful fake of Binance spot's private REST API on top of :class:`FakeExchange`.

Replies are built from the real payloads in ``fixtures/ccxt/response/binance.json`` (same
fields, same string formats), with the order's own symbol, price, quantity and client id
filled in. ``faults`` scripts what the next create-order requests suffer:

- ``"timeout_after_accept"`` — the order IS created, but the reply comes too late (client timeout);
- ``"timeout_before_accept"`` — nothing is created and the reply is late;
- ``"503"`` / ``"502"`` / ``"429"`` / ``"418"`` — that HTTP status, nothing created;
- ``"auth"`` — 401 with Binance's -2015 "Invalid API-key" body;
- ``"insufficient"`` — 400 with Binance's -2010 insufficient balance body.

``created`` lists every order the venue accepted: tests assert no client id appears twice.
"""

from __future__ import annotations

import copy
import itertools
import time
from dataclasses import dataclass, field
from typing import Any

from tests.connectors.conftest import case
from tests.connectors.servers.fake_exchange import FakeExchange, Recorded, Reply


@dataclass
class FakeBinanceSpot:
    server: FakeExchange
    late_s: float = 0.6
    faults: list[str] = field(default_factory=list)
    lookup_faults: list[str] = field(default_factory=list)  # "503" etc. for GET /api/v3/order
    created: list[dict[str, Any]] = field(default_factory=list)
    orders: dict[str, dict[str, Any]] = field(default_factory=dict)  # by clientOrderId
    trades: list[dict[str, Any]] = field(default_factory=list)
    _ids: itertools.count = field(default_factory=lambda: itertools.count(9780331417))
    _trade_ids: itertools.count = field(default_factory=lambda: itertools.count(309520010))

    def install(self) -> FakeBinanceSpot:
        s = self.server
        self._install_orders("/api/v3", "myTrades")
        s.route("GET", "/api/v3/account", case("response", "binance", "fetchBalance", "Spot balance")["httpResponse"])
        return self

    def _install_orders(self, base: str, trades: str) -> None:
        """The order routes under ``base`` (``/api/v3`` spot, ``/fapi/v1`` USD-M)."""
        s = self.server
        s.route("POST", f"{base}/order", self._create)
        s.route("GET", f"{base}/order", self._fetch)
        s.route("DELETE", f"{base}/order", self._cancel)
        s.route("GET", f"{base}/openOrders", self._open_orders)
        s.route("GET", f"{base}/{trades}", lambda r: [t for t in self.trades if t["symbol"] == r.query["symbol"]])

    # --- venue actions tests can trigger ----------------------------------------------------
    def fill(self, client_order_id: str, qty: str, *, maker: bool = True) -> dict:
        """Fill part of an open order, recording a trade shaped like Binance's myTrades rows."""
        order = self.orders[client_order_id]
        trade = copy.deepcopy(case("response", "binance", "fetchMyTrades", "Spot private trade")["httpResponse"][0])
        executed = float(order["executedQty"]) + float(qty)
        order["executedQty"] = f"{executed:.8f}"
        order["status"] = "FILLED" if executed >= float(order["origQty"]) else "PARTIALLY_FILLED"
        price = order["price"]
        trade.update(
            symbol=order["symbol"],
            id=str(next(self._trade_ids)),
            orderId=order["orderId"],
            price=price,
            qty=qty,
            quoteQty=f"{float(price) * float(qty):.8f}",
            commission=f"{float(price) * float(qty) * 0.001:.8f}",
            commissionAsset="USDT",
            isBuyer=order["side"] == "BUY",
            isMaker=maker,
            time=str(int(time.time() * 1000)),
        )
        self.trades.append(trade)
        return trade

    # --- handlers ---------------------------------------------------------------------------
    def _create(self, req: Recorded) -> Reply:
        fault = self.faults.pop(0) if self.faults else ""
        if fault in ("503", "502", "429", "418"):
            return Reply(status=int(fault), raw="<html>busy</html>")
        if fault == "auth":
            return Reply(status=401, body={"code": -2015, "msg": "Invalid API-key, IP, or permissions for action."})
        if fault == "insufficient":
            return Reply(
                status=400, body={"code": -2010, "msg": "Account has insufficient balance for requested action."}
            )
        if fault == "timeout_before_accept":
            return Reply(body={}, delay_s=self.late_s)
        p = req.query or req.body
        cid = p["newClientOrderId"]
        if cid in self.orders:
            return Reply(status=400, body={"code": -2010, "msg": "Duplicate order sent."})
        order = copy.deepcopy(
            case("response", "binance", "createOrder", "spot +selfTradePrevention +iceberg")["httpResponse"]
        )
        order.update(
            symbol=p["symbol"],
            orderId=str(next(self._ids)),
            clientOrderId=cid,
            price=p["price"],
            origQty=p["quantity"],
            side=p["side"],
            type=p["type"],
            timeInForce=p.get("timeInForce", "GTC"),
            icebergQty="0.00000000",
        )
        self.orders[cid] = order
        self.created.append(order)
        return Reply(body=order, delay_s=self.late_s if fault == "timeout_after_accept" else 0.0)

    def _as_query_order(self, order: dict) -> dict:
        shaped = copy.deepcopy(case("response", "binance", "fetchOrder", "Fetch spot closed order")["httpResponse"])
        shaped.update(
            {
                k: order[k]
                for k in (
                    "symbol",
                    "orderId",
                    "clientOrderId",
                    "price",
                    "origQty",
                    "executedQty",
                    "status",
                    "timeInForce",
                    "type",
                    "side",
                )
            }
        )
        return shaped

    def _fetch(self, req: Recorded) -> Reply:
        fault = self.lookup_faults.pop(0) if self.lookup_faults else ""
        if fault:
            return Reply(status=int(fault), raw="<html>busy</html>")
        cid = req.query.get("origClientOrderId")
        order = self.orders.get(cid or "")
        if order is None:
            return Reply(status=400, body={"code": -2013, "msg": "Order does not exist."})
        return Reply(body=self._as_query_order(order))

    def _cancel(self, req: Recorded) -> Reply:
        q = req.query
        order = None
        if "origClientOrderId" in q:
            order = self.orders.get(q["origClientOrderId"])
        elif "orderId" in q:
            order = next((o for o in self.orders.values() if o["orderId"] == q["orderId"]), None)
        if order is None or order["status"] in ("FILLED", "CANCELED"):
            return Reply(status=400, body={"code": -2011, "msg": "Unknown order sent."})
        order["status"] = "CANCELED"
        return Reply(body=self._as_query_order(order))

    def _open_orders(self, req: Recorded) -> list[dict]:
        return [
            self._as_query_order(o)
            for o in self.orders.values()
            if o["symbol"] == req.query.get("symbol") and o["status"] in ("NEW", "PARTIALLY_FILLED")
        ]
