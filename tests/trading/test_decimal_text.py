"""Figures shown to a trader are plain decimals: never ``0E-12`` or ``1E+2``."""

from __future__ import annotations

from fractions import Fraction

import pytest

from trading.contracts import decimal_text


@pytest.mark.parametrize(
    ("value", "places", "text"),
    [
        (Fraction(0), 12, "0"),
        (Fraction(100), 8, "100"),
        (Fraction(-1, 2), 8, "-0.5"),
        (Fraction(1, 3), 4, "0.3333"),
        (Fraction(5, 10**13), 12, "0"),  # half-even rounding of 0.5e-12 at 12 places
        (Fraction(12345, 10**4), 2, "1.23"),
    ],
)
def test_decimal_text_is_plain(value, places, text) -> None:
    assert decimal_text(value, places) == text
