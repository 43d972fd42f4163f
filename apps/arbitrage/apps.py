from django.apps import AppConfig


class ArbitrageConfig(AppConfig):
    name = "apps.arbitrage"
    label = "arbitrage"
