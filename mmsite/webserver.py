"""Gunicorn worker classes for the web server: ``mmsite.asgi:application`` under uvicorn.

The Procfile (and the Docker image) run gunicorn's own multi-process mode::

    gunicorn mmsite.asgi:application --worker-class mmsite.webserver.UvicornWorker \\
        --workers 2 --bind 127.0.0.1:8000 --reuse-port --no-control-socket ...

Gunicorn's master starts the worker processes, replaces one that dies and stops them on SIGTERM;
with ``--reuse-port`` each worker opens its *own* listening socket with ``SO_REUSEPORT``, so the
kernel spreads new connections over the processes (with one shared socket, asyncio accepts every
pending connection in one go and clients that connect together land on one process: docs/web.md).

The worker is uvicorn-worker's ``UvicornWorker`` (the maintained home of uvicorn's gunicorn
worker) with this project's uvicorn options: no lifespan, websockets without permessage-deflate
(docs/web.md), and ``X-Forwarded-*`` ignored unless the ``ProxiedUvicornWorker`` class is chosen
(behind the documented reverse proxy; it trusts ``--forwarded-allow-ips``, default the
``FORWARDED_ALLOW_IPS`` variable or 127.0.0.1). Before forking, the master reads every setting
and tries the address once, so a bad setting or a port in use is one line and exit 2 or 1
instead of workers failing over and over.
"""

from __future__ import annotations

import socket
import sys

from uvicorn_worker import UvicornWorker as _UvicornWorker


class UvicornWorker(_UvicornWorker):
    CONFIG_KWARGS = {
        "loop": "auto",
        "http": "auto",
        "lifespan": "off",
        "ws_per_message_deflate": False,
        "proxy_headers": False,
    }

    def init_process(self) -> None:
        """In the forked worker: die with the master. Gunicorn's uvicorn workers never look at
        their parent, so a kill -9 of the master left them serving the port (SO_REUSEPORT),
        beside the workers of a restarted master. ``PR_SET_PDEATHSIG`` has the kernel send
        SIGTERM (graceful) the moment the master is gone."""
        _die_with_parent(self.ppid)
        super().init_process()

    @classmethod
    def check_config(cls, cfg, log) -> None:
        """Runs once in gunicorn's master before any worker starts."""
        import os

        os.environ.setdefault("DJANGO_SETTINGS_MODULE", "mmsite.settings.local")
        from django.conf import settings

        from mmsite.env import ConfigurationError

        try:
            settings.INSTALLED_APPS  # noqa: B018 - reads (and checks) every setting once, here
        except ConfigurationError as exc:
            print(f"configuration error: {exc}", file=sys.stderr, flush=True)
            sys.exit(2)
        for address in cfg.address:
            if isinstance(address, tuple):
                _try_listen(address, reuse_port=cfg.reuse_port)


class ProxiedUvicornWorker(UvicornWorker):
    """``UvicornWorker`` that takes the client address and scheme from ``X-Forwarded-*`` sent by
    the proxies in ``--forwarded-allow-ips``."""

    CONFIG_KWARGS = {**UvicornWorker.CONFIG_KWARGS, "proxy_headers": True}


def _try_listen(address: tuple, reuse_port: bool) -> None:
    host, port = address[0], address[1]
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    with socket.socket(family, socket.SOCK_STREAM) as sock:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        if reuse_port:
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEPORT, 1)
        try:
            sock.bind((host, port))
        except OSError as exc:
            print(f"web server: cannot listen on {host}:{port}: {exc}", file=sys.stderr, flush=True)
            sys.exit(1)


def _die_with_parent(ppid: int) -> None:
    """Ask Linux for SIGTERM when the parent exits (``prctl(PR_SET_PDEATHSIG)``); where that is not
    available nothing changes. If the parent already died before the request, exit now."""
    import ctypes
    import os
    import signal

    try:
        libc = ctypes.CDLL(None, use_errno=True)
        libc.prctl(1, signal.SIGTERM, 0, 0, 0)  # PR_SET_PDEATHSIG = 1
    except (OSError, AttributeError):
        return
    if os.getppid() != ppid:
        sys.exit(0)
