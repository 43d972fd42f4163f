from django import forms
from django.contrib.auth.forms import AuthenticationForm

from apps.accounts import throttle


class ThrottledLoginForm(AuthenticationForm):
    """Tells the user plainly when attempts are locked out, and for how long."""

    def clean(self):
        username = self.cleaned_data.get("username") or ""
        remaining = throttle.lockout_remaining(username, throttle.client_address(self.request))
        if remaining:
            minutes = max(1, round(remaining / 60))
            raise forms.ValidationError(
                f"Too many failed sign-in attempts. Try again in about {minutes} minute{'s' if minutes != 1 else ''}.",
                code="locked_out",
            )
        return super().clean()
