"""Building ccxt exchange objects and the per-exchange details order entry needs.

- :func:`make_exchange` creates a ``ccxt.pro`` (websockets + REST) or ``ccxt.async_support``
  (REST only) exchange for any ccxt id, with credentials and optional URL overrides (tests
  point it at a local server; sandbox/testnet via ``sandbox=True``).
- :class:`ClientIdCodec` maps our string ``client_order_id`` to what the exchange accepts:

  * Binance: sent as ``newClientOrderId`` (ccxt's ``clientOrderId`` param), string, at most 36
    characters of ``[.A-Z:/a-z0-9_-]``; passed through unchanged, refused otherwise.
  * Backpack: ``clientId`` is an unsigned 32-bit **integer**. We send
    ``int.from_bytes(sha256(client_order_id)[:4], 'big')`` — deterministic, so a retry or a
    restarted process computes the same number and can look the order up by it. The codec
    remembers the ids it encoded to map exchange reports back to our strings. Two of our ids
    colliding on 32 bits is possible in principle (about 1 in 4 billion per pair); the
    gateway only compares ids of the same bot's working orders, a few dozen at a time.
  * Any other exchange: ccxt's generic ``clientOrderId`` param, passed through.
"""

from __future__ import annotations

import hashlib
import re
from collections import OrderedDict
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import urlsplit, urlunsplit

import ccxt.async_support as ccxt_async
import ccxt.pro as ccxt_pro


def _rewrite(value: Any, http_base: str, ws_base: str) -> Any:
    if isinstance(value, str):
        parts = urlsplit(value)
        if parts.scheme in ("http", "https"):
            base = urlsplit(http_base)
        elif parts.scheme in ("ws", "wss"):
            # Keep the original host in the path: some ccxt classes tell streams apart by it
            # (Binance's is_spot_url looks for '/stream' in the url).
            base = urlsplit(ws_base)
            path = "/" + (parts.hostname or "") + parts.path
            return urlunsplit((base.scheme, base.netloc, path, parts.query, parts.fragment))
        else:
            return value
        return urlunsplit((base.scheme, base.netloc, parts.path, parts.query, parts.fragment))
    if isinstance(value, Mapping):
        return {k: _rewrite(v, http_base, ws_base) for k, v in value.items()}
    return value


def point_urls_at(exchange: Any, http_base: str, ws_base: str | None = None) -> None:
    """Send all of an exchange's REST and websocket traffic to another host, keeping paths.

    ``point_urls_at(ex, 'http://127.0.0.1:8080')`` turns ``https://api.binance.com/api/v3``
    into ``http://127.0.0.1:8080/api/v3`` and ``wss://stream.binance.com:9443/ws`` into
    ``ws://127.0.0.1:8080/stream.binance.com/ws``."""
    if ws_base is None:
        ws_base = http_base.replace("http://", "ws://").replace("https://", "wss://")
    exchange.urls["api"] = _rewrite(exchange.urls["api"], http_base, ws_base)


def make_exchange(
    exchange_id: str,
    *,
    api_key: str | None = None,
    secret: str | None = None,
    password: str | None = None,
    streaming: bool = True,
    sandbox: bool = False,
    options: Mapping[str, Any] | None = None,
    markets: Mapping[str, Any] | None = None,
    http_base: str | None = None,
    ws_base: str | None = None,
    timeout_ms: int = 10_000,
    enable_rate_limit: bool = True,
) -> Any:
    """Create a ccxt exchange object (``ccxt.pro`` when ``streaming`` and available)."""
    module = ccxt_pro if streaming and exchange_id in ccxt_pro.exchanges else ccxt_async
    if exchange_id not in module.exchanges:
        raise ValueError(f"exchange_id: {exchange_id!r} is not a ccxt exchange; e.g. 'binance', 'backpack'")
    config: dict[str, Any] = {"enableRateLimit": enable_rate_limit, "timeout": timeout_ms}
    if api_key:
        config["apiKey"] = api_key
    if secret:
        config["secret"] = secret
    if password:
        config["password"] = password
    if options:
        config["options"] = dict(options)
    exchange = getattr(module, exchange_id)(config)
    if sandbox:
        exchange.set_sandbox_mode(True)
    if http_base:
        point_urls_at(exchange, http_base, ws_base)
    if markets is not None:
        exchange.set_markets(list(markets.values()) if isinstance(markets, Mapping) else markets)
    return exchange


_BINANCE_ID = re.compile(r"^[.A-Z:/a-z0-9_-]{1,36}$")


@dataclass
class ClientIdCodec:
    """Maps our client order ids to the exchange's and back (see the module docstring)."""

    exchange_id: str
    keep: int = 100_000  # ids remembered for decoding; the oldest are forgotten first
    _decoded: OrderedDict[str, str] = field(default_factory=OrderedDict)

    def _remember(self, key: str, client_order_id: str) -> None:
        self._decoded[key] = client_order_id
        self._decoded.move_to_end(key)
        while len(self._decoded) > self.keep:
            self._decoded.popitem(last=False)

    @property
    def order_param(self) -> str:
        """The ccxt ``params`` key carrying the client id on create/fetch/cancel."""
        return "clientOrderId"

    def encode(self, client_order_id: str) -> str | int:
        """The exchange form of a client order id; ValueError names what is accepted."""
        if not client_order_id:
            raise ValueError("client_order_id: empty; every order needs one")
        if self.exchange_id == "backpack":
            value = int.from_bytes(hashlib.sha256(client_order_id.encode()).digest()[:4], "big")
            self._remember(str(value), client_order_id)
            return value
        if self.exchange_id.startswith("binance") and not _BINANCE_ID.match(client_order_id):
            raise ValueError(
                f"client_order_id: {client_order_id!r} is not accepted by Binance; use 1-36 characters "
                "from A-Z a-z 0-9 . : / _ -"
            )
        self._remember(client_order_id, client_order_id)
        return client_order_id

    def decode(self, value: object) -> str:
        """Our client order id for an exchange value ('' when none; unknown ints as text)."""
        if value is None or value == "":
            return ""
        text = str(value)
        return self._decoded.get(text, text)


def guard_ws_messages(exchange: Any, on_bad_message: Any) -> None:
    """Make one bad websocket frame cost one frame, not the connection.

    ccxt.pro decodes JSON and runs the exchange's handler inside the socket's receive loop; an
    exception there (a malformed frame, a handler choking on garbage) ends that loop silently
    and every later watch call hangs. Wrap each client the exchange creates so such an
    exception is reported to ``on_bad_message(exc, frame)`` and the loop goes on."""
    if getattr(exchange, "_mms_guarded", False):
        return
    original = exchange.client

    def client(url: str) -> Any:
        ws_client = original(url)
        if not getattr(ws_client, "_mms_guarded", False):
            handle = ws_client.handle_text_or_binary_message

            def guarded(data: Any) -> None:
                try:
                    handle(data)
                except Exception as exc:
                    on_bad_message(exc, data)

            ws_client.handle_text_or_binary_message = guarded
            ws_client._mms_guarded = True
        return ws_client

    exchange.client = client
    exchange._mms_guarded = True
