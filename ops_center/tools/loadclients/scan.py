"""Fields found by a byte search instead of a JSON parse.

A screen that decoded every frame would spend its CPU on snapshots and deltas it does
not look at; a measuring client needs only a frame's ``op`` and ``position`` and an
ingest client only the ``position``s of an answer. The server writes ``op``, ``topic``
and ``position`` first in every frame (compact JSON), so they are looked for in the first
`HEAD_BYTES` bytes, and in the whole message only if not found there.

Safe against look-alikes inside strings: JSON escapes a quote inside a string as ``\\"``,
so ``"position":`` can only match a real key.
"""

from __future__ import annotations

import re
from typing import Final

#: Bytes at the start of a frame where ``op`` and ``position`` are looked for first.
HEAD_BYTES: Final = 256

OP: Final = re.compile(rb'"op"\s*:\s*"([a-z_]*)"')
POSITION: Final = re.compile(rb'"position"\s*:\s*(\d+)')


def op_and_position(
    data: bytes | bytearray, start: int = 0, end: int | None = None
) -> tuple[bytes | None, int | None]:
    """The ``op`` and the first ``position`` after it in ``data[start:end]``."""
    stop = len(data) if end is None else end
    head = min(stop, start + HEAD_BYTES)
    op = OP.search(data, start, head) or OP.search(data, start, stop)
    if op is None:
        return None, None
    at = op.end()
    position = POSITION.search(data, at, head) or POSITION.search(data, at, stop)
    return op.group(1), (int(position.group(1)) if position is not None else None)


def positions(body: bytes | bytearray) -> list[int]:
    """Every ``"position": N`` of an answer, in order."""
    return [int(m.group(1)) for m in POSITION.finditer(body)]
