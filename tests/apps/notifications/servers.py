"""Local servers that speak each notification protocol: SMTP (aiosmtpd) and one HTTP server
standing in for the Telegram Bot API, Discord webhooks and an HMAC-verifying webhook receiver."""

from __future__ import annotations

import json
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

from apps.notifications.transports import SIGNATURE_HEADER, TIMESTAMP_HEADER, verify

WEBHOOK_SECRET = "whsec-test-1234"
TELEGRAM_TOKEN = "123456:ABC-test-token"


class SmtpInbox:
    """aiosmtpd handler keeping every message received."""

    def __init__(self) -> None:
        self.messages: list[dict] = []

    async def handle_DATA(self, server, session, envelope):
        self.messages.append(
            {
                "from": envelope.mail_from,
                "to": list(envelope.rcpt_tos),
                "data": envelope.content.decode("utf8", "replace"),
            }
        )
        return "250 Message accepted for delivery"


class ProtocolServer:
    """Telegram (``/bot<token>/sendMessage``), Discord (``/discord/<id>``), webhook receiver
        (``/hook``, verifies the HMAC signature), ``/redirect`` (307 to ``/discord/redirected``) and
    ``/fail`` (always 500). Records every request."""

    def __init__(self) -> None:
        self.requests: list[dict] = []
        outer = self

        class Handler(BaseHTTPRequestHandler):
            def log_message(self, *args):  # quiet
                pass

            def do_POST(self):
                body = self.rfile.read(int(self.headers.get("Content-Length", 0)))
                record = {"path": self.path, "headers": self.headers, "body": body, "at": time.monotonic()}
                outer.requests.append(record)
                if self.path == f"/bot{TELEGRAM_TOKEN}/sendMessage":
                    data = json.loads(body)
                    ok = "chat_id" in data and "text" in data
                    self._answer(200 if ok else 400, {"ok": ok, "result": {"message_id": len(outer.requests)}})
                elif self.path.startswith("/bot"):
                    self._answer(401, {"ok": False, "error_code": 401, "description": "Unauthorized"})
                elif self.path.startswith("/discord/"):
                    data = json.loads(body)
                    self._answer(204 if isinstance(data.get("content"), str) else 400, None)
                elif self.path == "/redirect":
                    self.send_response(307)
                    self.send_header("Location", "/discord/redirected")
                    self.send_header("Content-Length", "0")
                    self.end_headers()
                elif self.path == "/hook":
                    good = verify(
                        WEBHOOK_SECRET,
                        self.headers.get(TIMESTAMP_HEADER, ""),
                        body,
                        self.headers.get(SIGNATURE_HEADER, ""),
                    )
                    record["verified"] = good
                    self._answer(200 if good else 401, {"verified": good})
                else:
                    self._answer(500, {"error": "down"})

            def _answer(self, status, data):
                payload = b"" if data is None else json.dumps(data).encode()
                self.send_response(status)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(payload)))
                self.end_headers()
                if payload:
                    self.wfile.write(payload)

        self.httpd = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.port = self.httpd.server_address[1]
        self.base = f"http://127.0.0.1:{self.port}"
        self.thread = threading.Thread(target=self.httpd.serve_forever, daemon=True)
        self.thread.start()

    def close(self) -> None:
        self.httpd.shutdown()
        self.httpd.server_close()

    def to(self, prefix: str) -> list[dict]:
        return [r for r in self.requests if r["path"].startswith(prefix)]
