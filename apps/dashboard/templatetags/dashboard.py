"""Template helpers: Plotly chart placeholders, decimals without trailing zeros, state badges."""

from __future__ import annotations

from decimal import Decimal, InvalidOperation

from django import template
from django.utils.html import format_html, json_script

register = template.Library()


@register.simple_tag
def chart(figure, name: str, css: str = ""):
    """A ``<div>`` that ``static/js/charts.js`` fills with ``Plotly.react`` from the embedded JSON."""
    if figure is None:
        return format_html('<div class="chart empty {}" id="chart-{}">no data yet</div>', css, name)
    return format_html(
        '<div class="chart {}" id="chart-{}" data-fig="fig-{}"></div>{}',
        css,
        name,
        name,
        json_script(figure, f"fig-{name}"),
    )


@register.filter
def num(value, places: int | None = None):
    """A decimal for display: no exponent, no trailing zeros (``places`` rounds first)."""
    if value is None or value == "":
        return "—"
    try:
        d = Decimal(str(value))
    except (InvalidOperation, ValueError):
        return value
    if places is not None:
        d = d.quantize(Decimal(1).scaleb(-int(places)))
    text = format(d, "f")
    if "." in text:
        text = text.rstrip("0").rstrip(".")
    return "0" if text in ("-0", "") else text


@register.filter
def signed(value, places: int = 2):
    """``+1.5`` / ``-2`` / ``0`` with a sign class for colouring (rounded to ``places``)."""
    text = num(value, places)
    if text in ("—", "0"):
        return format_html('<span class="muted">{}</span>', text)
    cls = "pos" if not text.startswith("-") else "neg"
    return format_html('<span class="{}">{}{}</span>', cls, "+" if cls == "pos" else "", text)


@register.filter
def public(text):
    """Text safe to show: no signed URL, key or signature (``apps.dashboard.redaction``)."""
    from apps.dashboard.redaction import public_text

    return public_text(text)


@register.filter
def state_badge(state: str):
    return format_html('<span class="badge state-{}">{}</span>', state or "unknown", state or "unknown")


@register.filter
def bar_width(pct):
    """CSS width for a usage bar (0..100)."""
    try:
        return f"{max(0.0, min(float(pct), 100.0)):.0f}%"
    except (TypeError, ValueError):
        return "0%"
