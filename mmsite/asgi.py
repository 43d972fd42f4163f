"""ASGI entry point: HTTP goes to Django's WSGI handler on a fixed thread pool
(:mod:`mmsite.http`, why there), websockets through origin and session-auth checks to the
consumers routed in ``mmsite.routing``."""

import os

from django.core.asgi import get_asgi_application

os.environ.setdefault("DJANGO_SETTINGS_MODULE", "mmsite.settings.local")
get_asgi_application()  # sets up Django before consumers are imported

from channels.auth import AuthMiddlewareStack  # noqa: E402
from channels.routing import ProtocolTypeRouter, URLRouter  # noqa: E402
from channels.security.websocket import AllowedHostsOriginValidator  # noqa: E402
from django.conf import settings  # noqa: E402
from django.core.wsgi import get_wsgi_application  # noqa: E402

from mmsite.http import PooledWsgi  # noqa: E402
from mmsite.routing import websocket_urlpatterns  # noqa: E402

http_app = PooledWsgi(get_wsgi_application(), settings.WEB_THREADS, settings.WEB_MAX_BODY_BYTES)

application = ProtocolTypeRouter(
    {
        "http": http_app,
        "websocket": AllowedHostsOriginValidator(AuthMiddlewareStack(URLRouter(websocket_urlpatterns))),
    }
)
