from django.apps import AppConfig


class CoreConfig(AppConfig):
    name = "apps.core"
    label = "core"
    verbose_name = "Core infrastructure"

    def ready(self) -> None:
        from apps.core import strict_fields

        strict_fields.install()

        from apps.core import metrics  # noqa: F401 - metrics mode and Celery signal handlers, in every process
