"""HTTP requests of the ASGI server run through Django's WSGI handler on a fixed thread pool.

Why: Django's ASGI handler runs every request's (sync) view in a *new* thread, so each request
also opens a new PostgreSQL connection (``CONN_MAX_AGE`` must be 0 there, or every finished
thread leaves an idle connection behind until PostgreSQL runs out) and a new Redis connection;
with the thread hand-offs that was 30-40 % of a request's CPU (``docs/web.md``). Here a pool of
``WEB_THREADS`` long-lived threads serves requests like a threaded WSGI server would: each
thread keeps its database connection (``DB_CONN_MAX_AGE``, health-checked) and the process
shares one Redis pool, so connections are bounded by threads x processes.

Why it is kept although gunicorn + uvicorn now run the processes: the REST target (>= 500
authenticated list requests a second on the 2-core box, ``bench/bench_web.py``) needs it. Served
by the Procfile's gunicorn command, a list request cost 5.0-5.3 ms of server CPU through this
pool against 7.8-8.6 ms through Django's own ASGI handler (``bench/asgi_django.py``; five
alternating runs each, 2026-12-07, on a machine loaded by parallel work, bench/README.md): at
the ~1.5 cores the web tier gets on a quiet box, that is the difference between ~540 req/s
measured with this pool (2.6-2.7 ms a request then) and ~340 req/s by the same ratio without it.
Delete this module if a quiet-machine run of ``bench_web --app bench.asgi_django:application``
shows Django's handler meeting the target.

The request body is read on the event loop (at most ``DATA_UPLOAD_MAX_MEMORY_SIZE`` plus
``FILE_UPLOAD_MAX_MEMORY_SIZE``, else 413), the view runs on a pool thread, and the response
is collected there and sent from the loop in one go (no cross-thread hop per chunk). Every view
of this project is synchronous and no response is streamed, so nothing is lost by that;
websockets still go through Channels.
"""

from __future__ import annotations

import asyncio
import io
import sys
from concurrent.futures import ThreadPoolExecutor


def _environ(scope: dict, body: bytes) -> dict:
    script_name = scope.get("root_path", "").encode("utf8").decode("latin1")
    path_info = scope["path"].encode("utf8").decode("latin1")
    if script_name and path_info.startswith(script_name):
        path_info = path_info[len(script_name) :]
    server = scope.get("server") or ("localhost", 80)
    environ = {
        "REQUEST_METHOD": scope["method"],
        "SCRIPT_NAME": script_name,
        "PATH_INFO": path_info,
        "QUERY_STRING": scope.get("query_string", b"").decode("latin1"),
        "SERVER_PROTOCOL": f"HTTP/{scope.get('http_version', '1.1')}",
        "SERVER_NAME": server[0],
        "SERVER_PORT": str(server[1] if server[1] is not None else 0),
        "wsgi.version": (1, 0),
        "wsgi.url_scheme": scope.get("scheme", "http"),
        "wsgi.input": io.BytesIO(body),
        "wsgi.errors": sys.stderr,
        "wsgi.multithread": True,
        "wsgi.multiprocess": True,
        "wsgi.run_once": False,
    }
    if scope.get("client"):
        environ["REMOTE_ADDR"] = scope["client"][0]
    for raw_name, raw_value in scope.get("headers", ()):
        name = raw_name.decode("latin1").upper()
        if "_" in name:
            # "X_Auth" and "X-Auth" would both become HTTP_X_AUTH: drop the ambiguous form, as
            # Django's runserver and gunicorn do, so a client cannot spoof a proxy's header.
            continue
        name = name.replace("-", "_")
        key = name if name in ("CONTENT_LENGTH", "CONTENT_TYPE") else "HTTP_" + name
        value = raw_value.decode("latin1")
        environ[key] = f"{environ[key]},{value}" if key in environ else value
    return environ


class PooledWsgi:
    """ASGI application serving ``http`` scopes with a WSGI application on a thread pool."""

    def __init__(self, wsgi_application, threads: int, max_body: int) -> None:
        self.wsgi_application = wsgi_application
        self.max_body = max_body
        self.executor = ThreadPoolExecutor(max_workers=threads, thread_name_prefix="http")

    def _run(self, environ: dict) -> tuple[int, list, bytes]:
        started: list = []

        def start_response(status, headers, exc_info=None):
            started[:] = [int(status.split(" ", 1)[0]), headers]

        result = self.wsgi_application(environ, start_response)
        try:
            body = b"".join(result)
        finally:
            close = getattr(result, "close", None)
            if close is not None:
                close()  # request_finished: Django returns or closes the thread's DB connection
        status, headers = started
        return status, [(k.lower().encode("latin1"), v.encode("latin1")) for k, v in headers], body

    async def __call__(self, scope, receive, send) -> None:
        chunks = []
        size = 0
        while True:
            message = await receive()
            if message["type"] == "http.disconnect":
                return
            chunk = message.get("body", b"")
            size += len(chunk)
            if size > self.max_body:
                await _plain(send, 413, b"Request body too large.")
                return
            chunks.append(chunk)
            if not message.get("more_body"):
                break
        environ = _environ(scope, b"".join(chunks))
        loop = asyncio.get_running_loop()
        status, headers, body = await loop.run_in_executor(self.executor, self._run, environ)
        await send({"type": "http.response.start", "status": status, "headers": headers})
        await send({"type": "http.response.body", "body": body if scope["method"] != "HEAD" else b""})


async def _plain(send, status: int, text: bytes) -> None:
    await send(
        {"type": "http.response.start", "status": status, "headers": [(b"content-type", b"text/plain; charset=utf-8")]}
    )
    await send({"type": "http.response.body", "body": text})
