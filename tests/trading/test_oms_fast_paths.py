"""OMS hot-path shortcuts give exactly what the plain definitions give."""

from __future__ import annotations

from hypothesis import given, settings
from hypothesis import strategies as st

from trading.oms import ClientOrderIds, to_base36


@settings(max_examples=100, deadline=None)
@given(start=st.one_of(st.integers(0, 5000), st.integers(0, 36**8)), count=st.integers(1, 3000))
def test_client_order_ids_are_prefix_and_base36_sequence_across_digit_boundaries(start, count) -> None:
    ids = ClientOrderIds("mm7", start)
    got = [ids.next() for _ in range(count)]
    assert got == [f"mm7-{to_base36(n)}" for n in range(start, start + count)]
    assert ids.sequence == start + count


def test_ids_around_the_two_digit_block_boundaries_are_unique_and_ordered() -> None:
    for start in (1290, 1296 * 36 - 3, 1296**2 - 3, 36**6 - 2):
        ids = ClientOrderIds("b", start)
        got = [ids.next() for _ in range(8)]
        assert got == [f"b-{to_base36(n)}" for n in range(start, start + 8)]
        assert len(set(got)) == 8
