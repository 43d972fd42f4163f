from django.apps import AppConfig


class DashboardConfig(AppConfig):
    name = "apps.dashboard"
    label = "dashboard"

    def ready(self) -> None:
        # redis-py 8 reads with a 5 s socket timeout by default, while channels_redis blocks in
        # BZPOPMIN for up to ``brpop_timeout`` = 5 s: an idle websocket consumer then dies with
        # "Timeout reading from 127.0.0.1:6379" after 5 quiet seconds. Block for less than the
        # socket timeout. (The cleaner fix is ``socket_timeout`` in the CHANNEL_LAYERS hosts.)
        try:
            from channels_redis.core import RedisChannelLayer
        except ImportError:  # another channel layer backend
            return
        RedisChannelLayer.brpop_timeout = min(RedisChannelLayer.brpop_timeout, 4)
