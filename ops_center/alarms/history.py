"""Reading the log for the what-if (`ops_center.alarms.whatif`): the thin I/O around it.

`replay` reads the events the rules follow, and the operators' resolutions, in log order
and in chunks from an asyncpg connection (inside the caller's read-only transaction, so
the whole run sees one snapshot), and folds each chunk in a thread: a month of history
takes seconds of CPU, which must not stall the server's event loop. Nothing is written.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from datetime import datetime
from typing import Any, Final

from ops_center.alarms.rules.facts import EVENTS
from ops_center.alarms.rules.observe import UnitOf
from ops_center.alarms.rules.thresholds import Thresholds
from ops_center.alarms.whatif import RESOLVED, Outcome, WhatIf
from ops_center.store.log import EVENTS_TABLE, decode, topics_of

#: Events read per query.
CHUNK: Final = 20_000

_TOPICS: Final = topics_of([*EVENTS, RESOLVED])
_SELECT: Final = (
    "SELECT notification_id, originator_id, originator_version, topic, state "
    f"FROM {EVENTS_TABLE} WHERE notification_id > $1 AND notification_id <= $2 "
    "AND topic = ANY($3::text[]) ORDER BY notification_id LIMIT $4"
)


def _fold(run: WhatIf, rows: list[Any]) -> None:
    run.feed(decode(row) for row in rows)


async def replay(
    conn: Any,
    thresholds: Thresholds,
    unit_of: UnitOf,
    start: datetime,
    end: datetime,
    *,
    now: datetime | None = None,
    progress: Callable[[int, int], None] | None = None,
    chunk: int = CHUNK,
) -> list[Outcome]:
    """The alarms the rules would raise in ``[start, end)`` with `thresholds`, judged at
    `end` or `now` if earlier. `progress(position, head)` is called after each chunk."""
    head: int = await conn.fetchval(f"SELECT coalesce(max(notification_id), 0) FROM {EVENTS_TABLE}")
    run = WhatIf(thresholds, unit_of, start, end, now)
    position = 0
    while position < head:
        rows = await conn.fetch(_SELECT, position, head, _TOPICS, chunk)
        if not rows:
            position = head
        else:
            position = rows[-1][0]
            await asyncio.to_thread(_fold, run, rows)
            if len(rows) < chunk:
                position = head
        if progress is not None:
            progress(position, head)
    return await asyncio.to_thread(run.finish)
