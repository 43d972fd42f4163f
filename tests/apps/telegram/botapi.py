"""A local server speaking the Telegram Bot API methods the poller uses: ``getUpdates`` (long
polling with ``offset``/``timeout``) and ``sendMessage``. Tests queue user messages with
:meth:`say` and read the bot's answers in :attr:`sent`."""

from __future__ import annotations

import json
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

TOKEN = "424242:control-bot-test-token"


class BotApiServer:
    def __init__(self) -> None:
        self.updates: list[dict] = []
        self.sent: list[dict] = []
        self.offsets: list[int] = []
        self._next_id = 1000
        self._cond = threading.Condition()
        outer = self

        class Handler(BaseHTTPRequestHandler):
            def log_message(self, *args):
                pass

            def do_POST(self):
                data = json.loads(self.rfile.read(int(self.headers.get("Content-Length", 0))) or b"{}")
                if self.path == f"/bot{TOKEN}/getUpdates":
                    self._answer(200, {"ok": True, "result": outer._get_updates(data)})
                elif self.path == f"/bot{TOKEN}/sendMessage":
                    ok = isinstance(data.get("chat_id"), int) and isinstance(data.get("text"), str)
                    if ok:
                        outer.sent.append(data)
                    self._answer(200 if ok else 400, {"ok": ok, "result": {"message_id": len(outer.sent)}})
                else:
                    self._answer(401, {"ok": False, "error_code": 401, "description": "Unauthorized"})

            def _answer(self, status, payload):
                body = json.dumps(payload).encode()
                self.send_response(status)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(body)))
                self.end_headers()
                self.wfile.write(body)

        self.httpd = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.base = f"http://127.0.0.1:{self.httpd.server_address[1]}"
        threading.Thread(target=self.httpd.serve_forever, daemon=True).start()

    def _get_updates(self, data: dict) -> list[dict]:
        offset = int(data.get("offset") or 0)
        self.offsets.append(offset)
        with self._cond:
            # Updates below the offset are confirmed: Telegram forgets them.
            self.updates = [u for u in self.updates if u["update_id"] >= offset]
            if not self.updates:
                self._cond.wait(min(float(data.get("timeout") or 0), 2.0))
            return list(self.updates)

    def say(self, chat_id: int, text: str, chat_type: str = "private") -> None:
        with self._cond:
            self._next_id += 1
            message = {"message_id": self._next_id, "chat": {"id": chat_id, "type": chat_type}, "text": text}
            self.updates.append({"update_id": self._next_id, "message": message})
            self._cond.notify_all()

    def close(self) -> None:
        self.httpd.shutdown()
        self.httpd.server_close()
