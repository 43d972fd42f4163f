from channels.generic.websocket import AsyncJsonWebsocketConsumer

from apps.core import jsondepth


class SafeJsonWebsocketConsumer(AsyncJsonWebsocketConsumer):
    """A JSON websocket consumer that answers a bad message with ``{"type": "error", ...}`` and
    keeps the connection: not JSON, nested deeper than ``JSON_MAX_DEPTH`` (refused before it is
    parsed), or not an object. Channels' own consumer would raise and drop the socket."""

    async def receive(self, text_data=None, bytes_data=None, **kwargs):
        raw = text_data if text_data is not None else bytes_data
        try:
            if raw is None:
                raise ValueError("empty frame")
            content = jsondepth.loads(raw)
        except ValueError as exc:  # JSONDecodeError, JSONTooDeep, UnicodeDecodeError
            await self.send_json({"type": "error", "error": f"message: not accepted ({exc})"})
            return
        if not isinstance(content, dict):
            await self.send_json(
                {"type": "error", "error": f"message: a JSON object is accepted, not {type(content).__name__}"}
            )
            return
        await self.receive_json(content, **kwargs)


class PingConsumer(SafeJsonWebsocketConsumer):
    """Answers ``{"type": "ping"}`` with ``{"type": "pong", "user": ...}``; refuses anonymous users.

    Used by the health checks and tests to prove websockets, session auth and the channel layer work.
    """

    async def connect(self):
        user = self.scope.get("user")
        if user is None or not user.is_authenticated:
            await self.close(code=4401)
            return
        self.group = f"ping.{user.pk}"
        await self.channel_layer.group_add(self.group, self.channel_name)
        await self.accept()

    async def disconnect(self, code):
        if hasattr(self, "group"):
            await self.channel_layer.group_discard(self.group, self.channel_name)

    async def receive_json(self, content, **kwargs):
        if content.get("type") == "ping":
            await self.channel_layer.group_send(self.group, {"type": "pong.message"})
        else:
            await self.send_json({"type": "error", "error": "type: accepted values are 'ping'"})

    async def pong_message(self, event):
        await self.send_json({"type": "pong", "user": self.scope["user"].get_username()})
