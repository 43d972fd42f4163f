"""``mmsite.asgi`` with Django's own ASGI handler for HTTP instead of ``mmsite.http``'s thread
pool: the standard path the REST benchmark compares against (bench/README.md, web section).

    DB_CONN_MAX_AGE=0 DATABASE_URL=... .venv/bin/python -m bench.bench_web --skip-ws \\
        --app bench.asgi_django:application

``DB_CONN_MAX_AGE=0`` because Django's ASGI handler runs each request's view in a thread of its
own: a persistent connection per finished thread would be left open until PostgreSQL runs out.
Websockets are served exactly as in ``mmsite.asgi``.
"""

from channels.routing import ProtocolTypeRouter
from django.core.asgi import get_asgi_application

from mmsite.asgi import application as _project

application = ProtocolTypeRouter(
    {"http": get_asgi_application(), "websocket": _project.application_mapping["websocket"]}
)
