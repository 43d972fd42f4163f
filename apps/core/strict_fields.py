"""API fields take the JSON type the schema documents.

DRF's ``CharField`` turns a JSON number into its text (``"venues": [0]`` became ``["0"]``) and
its ``BooleanField`` reads ``0``, ``1``, ``"yes"`` or ``"on"`` as booleans, so a client sending
the wrong type never hears of it, and the OpenAPI schema (``type: string`` / ``boolean``) does
not describe what the API accepts. :func:`install` (called once when the apps load) makes them
strict, with DRF's own messages:

- ``CharField`` and its subclasses (email, URL, slug, regex, IP address) take strings only;
- ``BooleanField`` takes ``true``/``false`` (and ``null`` where the field allows it); read from
  a query string or a form, whose values are text, it takes ``"true"``/``"false"``.
"""

from __future__ import annotations

from rest_framework import fields
from rest_framework.utils import html

_installed = False


def _from_text(field) -> bool:
    """Whether the field's input is a query string or a form (values are text)."""
    root = field.root if field.parent is not None else field
    return html.is_html_input(getattr(root, "initial_data", None))


def _char_to_internal_value(original):
    def to_internal_value(self, data):
        if not isinstance(data, str):
            self.fail("invalid")
        return original(self, data)

    return to_internal_value


def _boolean_to_internal_value(self, data):
    if isinstance(data, bool):
        return data
    if isinstance(data, str) and _from_text(self):
        if data in ("true", "false"):
            return data == "true"
        if self.allow_null and data in ("", "null"):
            return None
    self.fail("invalid", input=data)


def install() -> None:
    global _installed
    if _installed:
        return
    fields.CharField.to_internal_value = _char_to_internal_value(fields.CharField.to_internal_value)
    fields.BooleanField.to_internal_value = _boolean_to_internal_value
    _installed = True
