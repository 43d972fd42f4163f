from django.apps import AppConfig


class DerivativesConfig(AppConfig):
    default_auto_field = "django.db.models.BigAutoField"
    name = "apps.derivatives"
    verbose_name = "Derivatives (funding rates)"
