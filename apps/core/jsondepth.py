"""JSON documents nested deeper than ``JSON_MAX_DEPTH`` are refused before they are parsed.

Python's ``json`` module parses arrays and objects recursively: about 1,000 levels (a 2 KB body
of ``[``) raise ``RecursionError``, which no view expects (a 500, with a traceback page under
``DEBUG``). The depth is measured here without recursion and without parsing: strings are
skipped by one regular expression (brackets inside them do not count), every ``[``/``{`` opens
a level and every ``]``/``}`` closes one. A document with fewer brackets in all than the limit
cannot exceed it, so the usual small body costs two ``count`` calls.

Used by the REST API's JSON parser (:class:`JSONParser`), by :class:`JSONDepthMiddleware` for
every other view that is sent a JSON body, by :func:`loads` for JSON typed into forms, and by
the websocket consumers (:mod:`apps.core.consumers`).
"""

from __future__ import annotations

import json
import re
from io import BytesIO
from typing import Any

from django.conf import settings
from django.http import JsonResponse
from rest_framework import parsers
from rest_framework.exceptions import ParseError

_TOKENS = {
    bytes: re.compile(rb'"[^"\\]*(?:\\.[^"\\]*)*"|[\[\]{}]', re.DOTALL),
    str: re.compile(r'"[^"\\]*(?:\\.[^"\\]*)*"|[\[\]{}]', re.DOTALL),
}
_OPEN = {bytes: (b"[", b"{"), str: ("[", "{")}


class JSONTooDeep(ValueError):
    """The document nests arrays/objects deeper than the limit (a ``ValueError``, as a JSON
    syntax error is)."""

    def __init__(self, limit: int, position: int) -> None:
        self.limit = limit
        self.position = position
        super().__init__(
            f"JSON nested deeper than {limit} levels (level {limit + 1} opens at character {position}); "
            f"accepted: at most {limit} levels of nested arrays and objects"
        )


def max_depth() -> int:
    return getattr(settings, "JSON_MAX_DEPTH", 64)


def check_depth(data: bytes | str, limit: int | None = None) -> None:
    """Raise :class:`JSONTooDeep` if ``data`` nests arrays/objects more than ``limit`` deep."""
    limit = max_depth() if limit is None else limit
    kind = bytes if isinstance(data, (bytes, bytearray, memoryview)) else str
    if kind is bytes and not isinstance(data, bytes):
        data = bytes(data)
    open_array, open_object = _OPEN[kind]
    if data.count(open_array) + data.count(open_object) <= limit:
        return
    depth = 0
    for match in _TOKENS[kind].finditer(data):
        token = match.group()
        if len(token) != 1:
            continue  # a string
        if token in (open_array, open_object):
            depth += 1
            if depth > limit:
                raise JSONTooDeep(limit, match.start())
        elif depth:
            depth -= 1


def loads(data: bytes | str, **kwargs: Any) -> Any:
    """``json.loads`` that refuses documents nested deeper than ``JSON_MAX_DEPTH`` (with
    :class:`JSONTooDeep`, a ``ValueError``)."""
    check_depth(data)
    return json.loads(data, **kwargs)


class JSONParser(parsers.JSONParser):
    """DRF's JSON parser, refusing too deeply nested documents with a 400 before parsing."""

    def parse(self, stream, media_type=None, parser_context=None):
        if stream is None:
            return super().parse(stream, media_type, parser_context)
        raw = stream.read()
        try:
            check_depth(raw)
        except JSONTooDeep as exc:
            raise ParseError(f"JSON parse error - {exc}") from None
        return super().parse(BytesIO(raw), media_type, parser_context)


def is_json(content_type: str) -> bool:
    media = content_type.split(";", 1)[0].strip().lower()
    return media == "application/json" or media.endswith("+json")


class JSONDepthMiddleware:
    """Answers 400 to any request whose JSON body nests too deeply, before a view parses it.

    Bodies above ``DATA_UPLOAD_MAX_MEMORY_SIZE`` are left to the view (reading them here would
    refuse them as too large): the API's parser checks those."""

    def __init__(self, get_response) -> None:
        self.get_response = get_response

    def __call__(self, request):
        if is_json(request.META.get("CONTENT_TYPE", "")):
            try:
                length = int(request.META.get("CONTENT_LENGTH") or 0)
            except ValueError:
                length = 0
            ceiling = settings.DATA_UPLOAD_MAX_MEMORY_SIZE
            if length > 0 and (ceiling is None or length <= ceiling):
                try:
                    check_depth(request.body)
                except JSONTooDeep as exc:
                    return JsonResponse({"detail": f"JSON parse error - {exc}", "code": "parse_error"}, status=400)
        return self.get_response(request)
