"""Frozen, typed configs for strategies and risk, parsed from plain mappings (JSON, forms, API).

A config is a frozen dataclass with type hints. Per-field rules live in the field's metadata::

    @dataclass(frozen=True)
    class MyConfig:
        order_amount: Decimal = field(metadata={"min": Decimal("0"), "exclusive_min": True,
                                                "help": "size per order, base currency"})
        levels: int = field(default=1, metadata={"min": 1, "max": 20, "help": "orders per side"})

        def validate(self) -> dict[str, str]:  # optional cross-field rules
            return {}

:func:`parse_config` checks every field and raises one :class:`ConfigError` listing *all* bad
fields, each with a message naming the value and what is accepted. Supported annotations: ``int``,
``float``, ``Decimal``, ``bool``, ``str``, ``Literal[...]``, ``enum.Enum`` subclasses, ``dict``
(a nested mapping, checked by ``validate``) and ``X | None``. Numbers follow
:mod:`trading.amounts`: ``bool`` is never a number; text must be a plain decimal (ASCII digits,
one ``.``; no exponent, separators or other numerals); every value must be finite and
representable (``numeric(38,18)``, int64, floats up to 1e15).
Metadata keys: ``min``, ``max``, ``exclusive_min``, ``exclusive_max`` (bools), ``help``, ``unit``,
and ``schema`` (for a ``dict`` field holding a nested config: its class, shown by :func:`describe`).
"""

from __future__ import annotations

import dataclasses
import enum
import math
import types
from collections.abc import Mapping
from decimal import Decimal
from typing import Any, Literal, TypeVar, Union, get_args, get_origin, get_type_hints

from trading.amounts import AmountError, plain_decimal, plain_float, plain_int

C = TypeVar("C")

_MISSING = dataclasses.MISSING


class ConfigError(ValueError):
    """Invalid configuration. ``errors`` maps each bad field to a message naming value and accepted."""

    def __init__(self, errors: Mapping[str, str]) -> None:
        self.errors: dict[str, str] = dict(errors)
        super().__init__("; ".join(f"{k}: {v}" for k, v in self.errors.items()) or "invalid config")


class _FieldError(Exception):
    def __init__(self, message: str) -> None:
        super().__init__(message)
        self.message = message


# --------------------------------------------------------------------------------------------
# Type handling
# --------------------------------------------------------------------------------------------
def _unwrap_optional(tp: Any) -> tuple[Any, bool]:
    origin = get_origin(tp)
    if origin in (Union, types.UnionType):
        args = [a for a in get_args(tp) if a is not type(None)]
        if len(args) == 1 and len(get_args(tp)) == 2:
            return args[0], True
    return tp, False


def _type_name(tp: Any) -> str:
    inner, optional = _unwrap_optional(tp)
    if get_origin(inner) is Literal:
        name = "one of " + ", ".join(repr(a) for a in get_args(inner))
    elif isinstance(inner, type) and issubclass(inner, enum.Enum):
        name = "one of " + ", ".join(repr(m.value) for m in inner)
    elif inner is Decimal:
        name = "decimal"
    elif inner in (dict, Mapping) or get_origin(inner) in (dict, Mapping):
        name = "object"
    else:
        name = getattr(inner, "__name__", str(inner))
    return f"{name} or null" if optional else name


def _as_number(value: Any) -> Decimal:
    """Parse a number for Decimal fields by the shared rules of :mod:`trading.amounts`
    (plain decimal text or a finite JSON number, representable in ``numeric(38,18)``)."""
    try:
        return plain_decimal(value)
    except AmountError as exc:
        raise _FieldError(str(exc)) from None


def _coerce(value: Any, tp: Any) -> Any:
    inner, optional = _unwrap_optional(tp)
    if value is None:
        if optional:
            return None
        raise _FieldError(f"null is not accepted; give a {_type_name(inner)}")
    if get_origin(inner) is Literal:
        choices = get_args(inner)
        if value in choices and type(value) in {type(c) for c in choices}:
            return value
        raise _FieldError(f"{value!r} is not accepted; accepted: {', '.join(repr(c) for c in choices)}")
    if isinstance(inner, type) and issubclass(inner, enum.Enum):
        if isinstance(value, inner):
            return value
        for member in inner:
            if value == member.value or (isinstance(value, str) and value == member.name):
                return member
        accepted = ", ".join(repr(m.value) for m in inner)
        raise _FieldError(f"{value!r} is not accepted; accepted: {accepted}")
    if inner is bool:
        if isinstance(value, bool):
            return value
        raise _FieldError(f"{value!r} is not a boolean; give true or false")
    if inner is int:
        try:
            return plain_int(value)
        except AmountError as exc:
            raise _FieldError(str(exc)) from None
    if inner is Decimal:
        return _as_number(value)
    if inner is float:
        try:
            return plain_float(value)
        except AmountError as exc:
            raise _FieldError(str(exc)) from None
    if inner is str:
        if isinstance(value, str):
            return value
        raise _FieldError(f"{value!r} is not text; give a string")
    if inner in (dict, Mapping) or get_origin(inner) in (dict, Mapping):
        if isinstance(value, Mapping):
            return dict(value)
        raise _FieldError(f"{value!r} is not an object; give a mapping of parameter names to values")
    raise TypeError(f"unsupported config annotation {tp!r}")  # programming error, not user input


def _check_bounds(value: Any, meta: Mapping[str, Any]) -> None:
    if value is None or isinstance(value, (bool, str, enum.Enum, dict)):
        return
    lo, hi = meta.get("min"), meta.get("max")
    if lo is not None:
        if meta.get("exclusive_min") and not value > lo:
            raise _FieldError(f"{value} is too small; accepted: greater than {lo}")
        if not meta.get("exclusive_min") and not value >= lo:
            raise _FieldError(f"{value} is too small; accepted: {lo} or more")
    if hi is not None:
        if meta.get("exclusive_max") and not value < hi:
            raise _FieldError(f"{value} is too large; accepted: less than {hi}")
        if not meta.get("exclusive_max") and not value <= hi:
            raise _FieldError(f"{value} is too large; accepted: {hi} or less")
    if isinstance(value, float) and not math.isfinite(value):
        raise _FieldError(f"{value} is not finite; give a finite number")


# --------------------------------------------------------------------------------------------
# Public API
# --------------------------------------------------------------------------------------------
def _hints(cls: type) -> dict[str, Any]:
    if not dataclasses.is_dataclass(cls):
        raise TypeError(f"{cls!r} is not a dataclass")
    return get_type_hints(cls)


def parse_config(cls: type[C], data: Mapping[str, Any]) -> C:
    """Build ``cls`` from ``data``, or raise :class:`ConfigError` listing every bad field."""
    if not isinstance(data, Mapping):
        raise ConfigError({"__all__": f"{data!r} is not an object; give a mapping of field names to values"})
    hints = _hints(cls)
    fields = [f for f in dataclasses.fields(cls) if f.init]
    names = [f.name for f in fields]
    errors: dict[str, str] = {}
    for key in data:
        if key not in names:
            errors[str(key)] = f"unknown field; accepted: {', '.join(names)}"
    values: dict[str, Any] = {}
    for f in fields:
        if f.name not in data:
            if f.default is _MISSING and f.default_factory is _MISSING:
                errors[f.name] = f"required; give a {_type_name(hints[f.name])}"
            continue
        try:
            value = _coerce(data[f.name], hints[f.name])
            _check_bounds(value, f.metadata)
        except _FieldError as exc:
            errors[f.name] = exc.message
            continue
        values[f.name] = value
    if errors:
        raise ConfigError(errors)
    cfg = cls(**values)
    validate = getattr(cfg, "validate", None)
    if callable(validate):
        try:
            extra = validate()
        except ConfigError as exc:
            extra = exc.errors
        if extra:
            raise ConfigError(extra)
    return cfg


def _json_safe(value: Any) -> Any:
    if isinstance(value, Decimal):
        return str(value)
    if isinstance(value, enum.Enum):
        return _json_safe(value.value)
    if isinstance(value, Mapping):
        return {str(k): _json_safe(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [_json_safe(v) for v in value]
    if dataclasses.is_dataclass(value) and not isinstance(value, type):
        return config_to_dict(value)
    return value


def config_to_dict(cfg: Any) -> dict[str, Any]:
    """Return the config as a JSON-safe dict (Decimal as str, enums as values) that
    :func:`parse_config` turns back into an equal config."""
    return {f.name: _json_safe(getattr(cfg, f.name)) for f in dataclasses.fields(cfg) if f.init}


def _json_type(tp: Any) -> dict[str, Any]:
    inner, optional = _unwrap_optional(tp)
    schema: dict[str, Any]
    if get_origin(inner) is Literal:
        schema = {"type": "string", "enum": list(get_args(inner))}
    elif isinstance(inner, type) and issubclass(inner, enum.Enum):
        schema = {"type": "string", "enum": [m.value for m in inner]}
    elif inner is bool:
        schema = {"type": "boolean"}
    elif inner is int:
        schema = {"type": "integer"}
    elif inner is float:
        schema = {"type": "number"}
    elif inner is Decimal:
        schema = {"type": "string", "format": "decimal"}
    elif inner is str:
        schema = {"type": "string"}
    else:
        schema = {"type": "object"}
    if optional:
        schema["nullable"] = True
    return schema


def describe(cls: type) -> dict[str, Any]:
    """Describe a config class as a JSON-schema-like dict for forms and API docs.

    ``properties`` keeps the declaration order; each property carries ``type``, ``default``,
    ``minimum``/``maximum`` (with ``exclusiveMinimum``/``exclusiveMaximum`` flags), ``enum``,
    ``description`` (the field's help) and ``unit`` where declared.
    """
    hints = _hints(cls)
    properties: dict[str, dict[str, Any]] = {}
    required: list[str] = []
    for f in dataclasses.fields(cls):
        if not f.init:
            continue
        prop = _json_type(hints[f.name])
        prop["title"] = f.name.replace("_", " ")
        if f.default is not _MISSING:
            prop["default"] = _json_safe(f.default)
        elif f.default_factory is not _MISSING:
            prop["default"] = _json_safe(f.default_factory())
        else:
            required.append(f.name)
        meta = f.metadata
        if meta.get("min") is not None:
            prop["minimum"] = _json_safe(meta["min"])
            if meta.get("exclusive_min"):
                prop["exclusiveMinimum"] = True
        if meta.get("max") is not None:
            prop["maximum"] = _json_safe(meta["max"])
            if meta.get("exclusive_max"):
                prop["exclusiveMaximum"] = True
        if meta.get("help"):
            prop["description"] = meta["help"]
        if meta.get("unit"):
            prop["unit"] = meta["unit"]
        if meta.get("schema") is not None:  # a nested config given as a mapping
            nested = describe(meta["schema"])
            prop["properties"] = nested["properties"]
            prop["additionalProperties"] = False
        properties[f.name] = prop
    doc = (cls.__doc__ or "").strip().split("\n\n")[0]
    return {
        "title": cls.__name__,
        "description": " ".join(doc.split()),
        "type": "object",
        "properties": properties,
        "required": required,
        "additionalProperties": False,
    }


class ConfigBase:
    """Optional base for config dataclasses: ``from_dict`` / ``to_dict`` shortcuts."""

    @classmethod
    def from_dict(cls: type[C], data: Mapping[str, Any]) -> C:
        """Parse and validate ``data``; raises :class:`ConfigError` naming every bad field."""
        return parse_config(cls, data)

    def to_dict(self) -> dict[str, Any]:
        """JSON-safe dict that :meth:`from_dict` turns back into an equal config."""
        return config_to_dict(self)


def prefixed(prefix: str, errors: Mapping[str, str]) -> dict[str, str]:
    """Prefix nested field names (``grid`` + ``levels`` -> ``grid.levels``) for nested configs."""
    return {f"{prefix}.{k}": v for k, v in errors.items()}


__all__ = ["ConfigBase", "ConfigError", "config_to_dict", "describe", "parse_config", "prefixed"]
