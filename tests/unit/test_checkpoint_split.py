"""Where checkpoints fall (`projections.checkpoints.split`): a function of the log only."""

from __future__ import annotations

from uuid import uuid4

from hypothesis import given
from hypothesis import strategies as st

from ops_center.store.log import Event
from projections.checkpoints import checkpoint_below, split

OID = uuid4()


def _event(position: int) -> Event:
    return Event(position, OID, position, "t", {})


def _checkpoints(positions: list[int], cuts: list[int], interval: int) -> list[tuple[int, int]]:
    """(checkpoint, events applied before it) of the positions applied in chunks."""
    out: list[tuple[int, int]] = []
    last = applied = 0
    chunks = [positions[a:b] for a, b in zip([0, *cuts], [*cuts, len(positions)], strict=True)]
    for chunk in chunks:
        if not chunk:
            continue
        for due, part in split([_event(p) for p in chunk], last, interval):
            if due is not None:
                assert all(p <= due for p in positions[:applied])
                assert all(p > due for p in positions[applied:])
                out.append((due, applied))
                last = due
            applied += len(part)
    return out


@given(
    st.lists(st.integers(1, 400), unique=True, max_size=80).map(sorted),
    st.lists(st.integers(0, 80), max_size=10).map(sorted),
    st.integers(1, 30),
)
def test_checkpoints_fall_where_the_log_says_whatever_the_chunks(
    positions: list[int], cuts: list[int], interval: int
) -> None:
    cuts = [min(c, len(positions)) for c in cuts]
    assert _checkpoints(positions, cuts, interval) == _checkpoints(positions, [], interval)
    written = [c for c, _ in _checkpoints(positions, [], interval)]
    # one before the first event past each multiple (positions between without events: none)
    expected = sorted({checkpoint_below(p, interval) for p in positions} - {0})
    assert written == expected


def test_no_checkpoints_without_an_interval() -> None:
    assert split([_event(5), _event(9)], 0, 0) == [(None, [_event(5), _event(9)])]
