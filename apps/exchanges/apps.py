from django.apps import AppConfig


class ExchangesConfig(AppConfig):
    name = "apps.exchanges"
    label = "exchanges"

    def ready(self) -> None:
        from apps.exchanges import log_redaction

        log_redaction.install()
