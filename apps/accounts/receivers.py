from django.contrib.auth.signals import user_logged_in, user_login_failed
from django.dispatch import receiver

from apps.accounts import throttle
from apps.accounts.models import AuditAction
from apps.accounts.services import audit_record
from apps.core.clientaddr import audit_address


@receiver(user_login_failed)
def _count_failure(sender, credentials, request=None, **kwargs):
    username = str(credentials.get("username", ""))
    refusal = throttle.refusal_of(request)
    if refusal is None:  # an attempt the throttle refused was not checked: it is no new failure
        throttle.record_failure(username, throttle.client_address(request))
    audit_record(
        action=AuditAction.LOGIN_FAILED,
        actor_name=username[:150],
        object_type="accounts.user",
        ip=audit_address(request),
        message="sign-in failed" if refusal is None else f"sign-in refused ({refusal.reason}, {refusal.seconds} s)",
    )


@receiver(user_logged_in)
def _clear_failures(sender, request, user, **kwargs):
    throttle.record_success(user.get_username(), throttle.client_address(request))
    audit_record(action=AuditAction.LOGIN, actor=user, owner=user, obj=user, ip=audit_address(request))
