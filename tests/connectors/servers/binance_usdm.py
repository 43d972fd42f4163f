"""A fake of Binance USD-M futures' private REST API: the spot fake's order book-keeping on the
``/fapi`` paths, plus the dead man's switch ``POST /fapi/v1/countdownCancelAll``
(``symbol``, ``countdownTime`` ms; 0 disarms): when a symbol's countdown runs out before it is
sent again, every open order of that symbol is cancelled by the venue, as Binance does.
``countdowns`` records each call as ``(monotonic time, symbol, countdown ms)``; ``fired`` each
expiry as ``(monotonic time, symbol, orders cancelled)``."""

from __future__ import annotations

import asyncio
import time
from dataclasses import dataclass, field
from typing import Any

from tests.connectors.servers.binance_spot import FakeBinanceSpot
from tests.connectors.servers.fake_exchange import Recorded, Reply


@dataclass
class FakeBinanceUsdm(FakeBinanceSpot):
    countdowns: list[tuple[float, str, int]] = field(default_factory=list)
    fired: list[tuple[float, str, int]] = field(default_factory=list)
    _timers: dict[str, Any] = field(default_factory=dict)

    def install(self) -> FakeBinanceUsdm:
        self._install_orders("/fapi/v1", "userTrades")
        self.server.route("POST", "/fapi/v1/countdownCancelAll", self._countdown)
        return self

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
