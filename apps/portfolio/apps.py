from django.apps import AppConfig


class PortfolioConfig(AppConfig):
    name = "apps.portfolio"
    label = "portfolio"

    def ready(self) -> None:
        from apps.portfolio import signals  # noqa: F401  (connects the bot pre_delete receiver)
