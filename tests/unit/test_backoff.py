"""`ops_center.runtime.backoff.Backoff`: the pauses every retry loop takes."""

from __future__ import annotations

import pytest

from ops_center.runtime.backoff import Backoff


def test_pauses_double_up_to_the_largest_and_reset_starts_again() -> None:
    backoff = Backoff(0.5, 3.0)
    assert [backoff.next() for _ in range(5)] == [0.5, 1.0, 2.0, 3.0, 3.0]
    assert backoff.peek() == 3.0
    backoff.reset()
    assert backoff.next() == 0.5


def test_a_backoff_needs_a_positive_first_pause_not_above_the_largest() -> None:
    with pytest.raises(ValueError, match="first"):
        Backoff(0, 1)
    with pytest.raises(ValueError, match="first"):
        Backoff(2, 1)


async def test_sleep_takes_the_pause_capped() -> None:
    backoff = Backoff(0.02, 1.0)
    assert await backoff.sleep() == 0.02
    assert await backoff.sleep(cap=0.01) == 0.01
    assert backoff.peek() == 0.08
