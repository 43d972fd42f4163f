"""Service-layer errors that carry per-field messages (possibly nested, e.g. ``params.spread``)."""

from __future__ import annotations

from typing import Any


class FieldErrors(ValueError):
    """Invalid input: ``errors`` maps each field to a list of messages or to nested field errors,
    e.g. ``{"params": {"spread_bps": ["-1 is below 0; accepted: 0 or more"]}}``."""

    def __init__(self, errors: dict[str, Any]) -> None:
        self.errors = errors
        super().__init__(_flatten(errors))


def _flatten(errors: dict[str, Any], prefix: str = "") -> str:
    parts = []
    for key, value in errors.items():
        name = f"{prefix}{key}"
        if isinstance(value, dict):
            parts.append(_flatten(value, f"{name}."))
        else:
            messages = value if isinstance(value, list) else [value]
            parts.append(f"{name}: {'; '.join(str(m) for m in messages)}")
    return "; ".join(parts)
