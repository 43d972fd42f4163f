from django.contrib.auth.backends import ModelBackend
from django.core.exceptions import PermissionDenied

from apps.accounts import throttle


class ThrottledModelBackend(ModelBackend):
    """The model backend, refusing every attempt while a lock-out is in force (admin, API, site)."""

    def authenticate(self, request, username=None, password=None, **kwargs):
        if username is not None and throttle.lockout_remaining(str(username), throttle.client_address(request)):
            # PermissionDenied stops Django trying other backends and counts as a failure.
            raise PermissionDenied("locked out")
        return super().authenticate(request, username=username, password=password, **kwargs)
