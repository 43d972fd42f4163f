from django import template

from apps.telegram.models import TelegramLink

register = template.Library()


@register.inclusion_tag("telegram/_settings.html", takes_context=True)
def telegram_settings(context):
    """The Settings section: is a chat linked, and the buttons (include with ``{% telegram_settings %}``)."""
    request = context["request"]
    link = TelegramLink.objects.filter(user=request.user).first()
    return {"link": link, "csrf_token": context.get("csrf_token"), "request": request}
