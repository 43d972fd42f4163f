from django import forms
from django.contrib.auth import authenticate
from django.contrib.auth.forms import AuthenticationForm

from apps.accounts import throttle


class ThrottledLoginForm(AuthenticationForm):
    """Tells the user plainly when an attempt was refused by the sign-in throttle, and for how long."""

    def clean(self):
        username = self.cleaned_data.get("username")
        password = self.cleaned_data.get("password")
        if username is not None and password:
            self.user_cache = authenticate(self.request, username=username, password=password)
            if self.user_cache is None:
                refusal = throttle.refusal_of(self.request)
                if refusal is not None:
                    raise forms.ValidationError(refusal.message(), code="locked_out")
                raise self.get_invalid_login_error()
            self.confirm_login_allowed(self.user_cache)
        return self.cleaned_data
