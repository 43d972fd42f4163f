from django.contrib.auth.signals import user_logged_in, user_login_failed
from django.dispatch import receiver

from apps.accounts import throttle


@receiver(user_login_failed)
def _count_failure(sender, credentials, request=None, **kwargs):
    throttle.record_failure(str(credentials.get("username", "")), throttle.client_address(request))


@receiver(user_logged_in)
def _clear_failures(sender, request, user, **kwargs):
    throttle.record_success(user.get_username(), throttle.client_address(request))
