"""Websocket routes. Each consumer authenticates and checks object permission before joining a group."""

from django.urls import path

from apps.core.consumers import PingConsumer

websocket_urlpatterns = [
    path("ws/ping/", PingConsumer.as_asgi()),
]
