"""The OpenAPI schema lists the error responses every operation really gives.

drf-spectacular documents the success response only, so clients (and schemathesis) met 400,
401, 403, 404 and 429 answers the schema never mentioned. :class:`AutoSchema` adds them from
what the view does, with the body DRF sends (``{"detail": ..., "code": ...}``, or a field ->
messages object for a 400):

- **400** when the operation takes a request body or query parameters (validation, filters,
  pagination) or is a POST/PUT/PATCH;
- **401** when the view authenticates (a missing, unknown or expired token);
- **403** when its permissions are more than ``AllowAny`` (role, object permission, CSRF for
  session auth);
- **404** when the path names an object (``{id}``): unknown, or not the caller's;
- **429** when the view is throttled (``Retry-After`` says for how long).

Request fields are described as the API reads them: a JSON field takes an object (every
JSON input of this API is one: strategy params, risk limits, data-source params, channel
config, paper balances), a list that may not be empty has ``minItems: 1``, a decimal is a
string with at least one digit or a JSON number, and free strings carry no NUL character (:func:`postprocess`).

Views whose own answers differ add them with ``@extend_schema(responses=...)``; an explicitly
documented code is never replaced.
"""

from __future__ import annotations

import re

from drf_spectacular import openapi
from drf_spectacular.plumbing import ResolvedComponent
from rest_framework import serializers
from rest_framework.permissions import AllowAny

ERROR = ResolvedComponent(
    name="Error",
    type=ResolvedComponent.SCHEMA,
    object="Error",
    schema={
        "type": "object",
        "description": "An error: `detail` (and often `code`) for the request as a whole, or for a 400 "
        "also one entry per field naming what was wrong and what is accepted.",
        "properties": {"detail": {"type": "string"}, "code": {"type": "string"}},
        "additionalProperties": {},
    },
)

_DESCRIPTIONS = {
    "400": "The request is not accepted: the body names each field (or parameter) and what is accepted.",
    "401": "Not signed in: no, an unknown or an inactive user's token (`Authorization: Token <key>`).",
    "403": "Signed in, but not allowed to do this (role or object permission, or CSRF for session auth).",
    "404": "No such object, or not one of yours.",
    "429": "Too many requests; `Retry-After` gives the seconds to wait.",
}


_DECIMAL = re.compile(r"^\^-\?\\d\{0,(\d+)\}\(\?:\\\.\\d\{0,(\d+)\}\)\?\$$")


class AutoSchema(openapi.AutoSchema):
    def _map_serializer_field(self, field, direction, bypass_extensions=False):
        schema = super()._map_serializer_field(field, direction, bypass_extensions)
        if direction != "request" or not isinstance(schema, dict):
            return schema
        if isinstance(field, serializers.JSONField) and not schema.get("type"):
            schema = {**schema, "type": "object", "additionalProperties": {}}
        elif isinstance(field, (serializers.ManyRelatedField, serializers.ListField)) and not field.allow_empty:
            schema = {**schema, "minItems": max(1, schema.get("minItems", 0))}
        elif schema.get("format") == "decimal" and (match := _DECIMAL.match(schema.get("pattern", ""))):
            # drf-spectacular's pattern also matches "" and "-": at least one digit is needed.
            whole, places = match.groups()
            if int(whole) >= 1 and int(places) >= 1:
                pattern = rf"^-?(?:\d{{1,{whole}}}(?:\.\d{{0,{places}}})?|\.\d{{1,{places}}})$"
                schema = {**schema, "pattern": pattern}
            if not schema.get("nullable"):
                # DRF's DecimalField also takes a JSON number (read through its text).
                outer = {key: schema.pop(key) for key in ("description", "readOnly", "writeOnly") if key in schema}
                schema = {"oneOf": [schema, {"type": "number"}], **outer}
        return schema

    def _error_codes(self, operation: dict) -> list[str]:
        view = self.view
        codes = []
        takes_input = "requestBody" in operation or any(p.get("in") == "query" for p in operation.get("parameters", []))
        if takes_input or self.method in ("POST", "PUT", "PATCH"):
            codes.append("400")
        if getattr(view, "authentication_classes", None):
            codes.append("401")
        if any(not isinstance(p, AllowAny) for p in view.get_permissions()):
            codes.append("403")
        if "{" in self.path:
            codes.append("404")
        if view.get_throttles():
            codes.append("429")
        return codes

    def get_operation(self, path, path_regex, path_prefix, method, registry):
        operation = super().get_operation(path, path_regex, path_prefix, method, registry)
        if operation is None:
            return None
        registry.register_on_missing(ERROR)
        responses = operation["responses"]
        for code in self._error_codes(operation):
            if code not in responses:
                responses[code] = {
                    "description": _DESCRIPTIONS[code],
                    "content": {"application/json": {"schema": ERROR.ref}},
                }
        return operation


# DRF's CharField (and Django's form fields behind the filters) refuse NUL characters; say so.
NO_NUL = r"^[^\x00]*$"
_FREE_STRING_EXCLUDES = ("enum", "pattern", "format", "readOnly", "const")


def _forbid_nul(schema) -> None:
    if isinstance(schema, list):
        for item in schema:
            _forbid_nul(item)
        return
    if not isinstance(schema, dict):
        return
    if schema.get("type") == "string" and not any(key in schema for key in _FREE_STRING_EXCLUDES):
        schema["pattern"] = NO_NUL
    for value in schema.values():
        _forbid_nul(value)


def postprocess(result, generator, request, public):
    """Request strings: no NUL characters. Optional query parameters: an empty value is the same
    as leaving the parameter out (as the filters, pagination and query serializers read it)."""
    for name, component in result.get("components", {}).get("schemas", {}).items():
        if name.endswith("Request"):
            _forbid_nul(component)
    for operations in result.get("paths", {}).values():
        for operation in operations.values():
            for parameter in operation.get("parameters", ()):
                if parameter.get("in") != "query":
                    continue
                _forbid_nul(parameter.get("schema"))
                if not parameter.get("required"):
                    parameter["allowEmptyValue"] = True
    return result
