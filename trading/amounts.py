"""Bounds of every number a trader gives: sizes, prices, limits and model parameters.

One place decides what a number may look like and how large it may be; the config parser
(:func:`trading.config.parse_config`, used by the REST API, the portal's forms and the bot
loop's config loader alike), the strategies and pre-trade risk all call it.

* **Text** must be a plain decimal: ASCII digits ``0-9``, at most one ``.``, an optional
  leading ``-``. No exponent (``1e30``), digit separators (``1_000``, ``1,000``), other
  numerals (``٣``), ``NaN`` or ``Infinity``.
* **JSON numbers** (already parsed: ``int``/``float``) must be finite; their size is bounded
  like text.
* **Representable**: every decimal fits the database's ``numeric(38,18)`` (at most 20 integer
  digits and 18 decimals); every amount is at most ``2**63 - 1`` lots and every price or
  quote amount at most ``2**63 - 1`` ticks or cash units of its instrument (Redis counters and
  the bot hosts' integer arithmetic are int64).
* **Model parameters** (floats) are at most ``1e15`` in size.

Errors name the field (the caller's key), the value and what is accepted.
"""

from __future__ import annotations

import dataclasses
import math
import re
from decimal import Decimal, InvalidOperation

INT64_MAX = 2**63 - 1
DB_INTEGER_DIGITS = 20  # numeric(38, 18): 38 digits, 18 of them after the point
DB_DECIMALS = 18
DB_MAX = Decimal(10) ** DB_INTEGER_DIGITS  # exclusive
FLOAT_MAX = 1e15

_PLAIN = re.compile(r"-?(?:[0-9]+(?:\.[0-9]*)?|\.[0-9]+)", re.ASCII)
_ACCEPTED = (
    "a plain decimal such as '0.5' or '1000' (digits 0-9 and one '.'; no exponent, separators or other numerals)"
)


class AmountError(ValueError):
    """A number that is malformed or out of range; the message names value and what is accepted."""


def _show(value: object) -> str:
    text = repr(value)
    return text if len(text) <= 40 else text[:37] + "..."


def plain_decimal(value: object, *, stored: bool = True) -> Decimal:
    """Parse a trader's number (text, int, float or Decimal) into a finite, representable Decimal.

    ``stored=False`` (model parameters kept as floats, never in a NUMERIC column) drops the
    18-decimals rule. Raises :class:`AmountError` naming the value and what is accepted."""
    if isinstance(value, bool):
        raise AmountError(f"{value!r} is a boolean; give a number, {_ACCEPTED}")
    if isinstance(value, str):
        text = value.strip()
        if text.lower().lstrip("+-") in ("nan", "snan", "inf", "infinity"):
            raise AmountError(f"{_show(value)} is not finite; accepted: {_ACCEPTED}")
        if not _PLAIN.fullmatch(text):
            raise AmountError(f"{_show(value)} is not a number written as a plain decimal; accepted: {_ACCEPTED}")
        if len(text) > 80:
            raise AmountError(f"{_show(value)} has {len(text)} characters; accepted: {_ACCEPTED} of at most 38 digits")
        result = Decimal(text)
    elif isinstance(value, float):
        if not math.isfinite(value):
            raise AmountError(f"{value!r} is not finite; accepted: {_ACCEPTED}")
        result = Decimal(repr(value))  # the shortest repr, never the binary expansion
    elif isinstance(value, int):
        if value.bit_length() > 80:  # far beyond numeric(38,18); never print 400 digits
            raise AmountError(f"a {len(str(abs(value)))}-digit integer is too large; accepted: {_range_text()}")
        result = Decimal(value)
    elif isinstance(value, Decimal):
        if not value.is_finite():
            raise AmountError(f"{value!r} is not finite; accepted: {_ACCEPTED}")
        result = value
    else:
        raise AmountError(f"{_show(value)} is a {type(value).__name__}; give a number, {_ACCEPTED}")
    return representable(result, value) if stored else _bounded(result, value)


def _range_text() -> str:
    return f"less than 1e{DB_INTEGER_DIGITS} in size, at most {DB_DECIMALS} decimals"


def representable(d: Decimal, shown: object = None) -> Decimal:
    """Check that ``d`` fits ``numeric(38,18)``; return it."""
    shown = d if shown is None else shown
    _bounded(d, shown)
    try:
        exponent = d.as_tuple().exponent
        if isinstance(exponent, int) and exponent < -DB_DECIMALS and d != d.quantize(Decimal(1).scaleb(-DB_DECIMALS)):
            raise AmountError(f"{_show(shown)} has more than {DB_DECIMALS} decimals; accepted: {_range_text()}")
    except InvalidOperation:
        raise AmountError(f"{_show(shown)} is out of range; accepted: {_range_text()}") from None
    return d


def _bounded(d: Decimal, shown: object) -> Decimal:
    if abs(d) >= DB_MAX:
        raise AmountError(f"{_show(shown)} is too large; accepted: {_range_text()}")
    return d


def plain_float(value: object) -> float:
    """Parse a model parameter (e.g. a volatility or a time): the rules of
    :func:`plain_decimal`, then at most ``1e15`` in size."""
    d = plain_decimal(value, stored=False)
    if abs(d) > Decimal(repr(FLOAT_MAX)):
        raise AmountError(f"{_show(value)} is too large; accepted: at most {FLOAT_MAX:.0e} in size")
    return float(d)


def plain_int(value: object) -> int:
    """An integer parameter: a JSON integer (never a boolean or a float) within int64."""
    if isinstance(value, bool) or not isinstance(value, int):
        raise AmountError(f"{_show(value)} is not an integer; give a whole number such as 3")
    if not -INT64_MAX - 1 <= value <= INT64_MAX:
        digits = len(str(abs(value))) if value.bit_length() < 4000 else "many"
        raise AmountError(f"a {digits}-digit integer is too large; accepted: at most {INT64_MAX}")
    return value


def _int64_count(value: Decimal, step: Decimal, unit_name: str, currency: str, what: str) -> None:
    count = abs(value) / step
    if count > INT64_MAX:
        top = (step * INT64_MAX).normalize()
        raise AmountError(
            f"{value} is {count:.3e} {unit_name}; accepted: at most {top:f} {currency} ({what} are 64-bit integers)"
        )


def check_base_amount(value: Decimal, instrument) -> None:
    """An amount in base currency: at most ``2**63 - 1`` lots of ``instrument``."""
    base = instrument.base
    _int64_count(value, instrument.lot_size, f"lots of {instrument.lot_size} {base}", base, "sizes in lots")


def check_quote_amount(value: Decimal, instrument) -> None:
    """A price or an amount of quote currency: at most ``2**63 - 1`` ticks, and at most
    ``2**63 - 1`` ticks x lots (the unit notionals are counted in)."""
    quote = instrument.quote
    _int64_count(value, instrument.tick_size, f"ticks of {instrument.tick_size} {quote}", quote, "prices in ticks")
    unit = instrument.tick_size * instrument.lot_size
    _int64_count(value, unit, f"units of {unit:f} {quote}", quote, "notionals in ticks x lots")


def instrument_errors(config, instrument) -> dict[str, str]:
    """Check every base and quote amount of a config dataclass (fields whose metadata ``unit``
    is ``"base"`` or ``"quote"``) against ``instrument``; return ``{field: message}``."""
    errors: dict[str, str] = {}
    for f in dataclasses.fields(config):
        unit = f.metadata.get("unit")
        value = getattr(config, f.name, None)
        if unit not in ("base", "quote") or value is None or isinstance(value, bool):
            continue
        if not isinstance(value, Decimal):
            if not isinstance(value, (int, float)):
                continue
            value = Decimal(repr(value)) if isinstance(value, float) else Decimal(value)
        try:
            (check_base_amount if unit == "base" else check_quote_amount)(value, instrument)
        except AmountError as exc:
            errors[f.name] = str(exc)
    return errors


__all__ = [
    "DB_DECIMALS",
    "DB_INTEGER_DIGITS",
    "INT64_MAX",
    "AmountError",
    "check_base_amount",
    "check_quote_amount",
    "instrument_errors",
    "plain_decimal",
    "plain_float",
    "plain_int",
    "representable",
]
