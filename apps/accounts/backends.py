from django.contrib.auth.backends import ModelBackend
from django.core.exceptions import PermissionDenied

from apps.accounts import throttle


class ThrottledModelBackend(ModelBackend):
    """The model backend behind the sign-in throttle (:mod:`apps.accounts.throttle`): an attempt
    the throttle refuses is not checked (admin, API token endpoint, sign-in page alike)."""

    def authenticate(self, request, username=None, password=None, **kwargs):
        if username is not None:
            refusal = throttle.gate(str(username), throttle.client_address(request), request)
            if refusal is not None:
                # PermissionDenied stops Django trying other backends; the failure it then
                # signals is not counted (the receiver sees the refusal on the request).
                raise PermissionDenied(refusal.message())
        return super().authenticate(request, username=username, password=password, **kwargs)
