from channels.generic.websocket import AsyncJsonWebsocketConsumer


class PingConsumer(AsyncJsonWebsocketConsumer):
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
