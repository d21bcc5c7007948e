"""Checkpoints: the overview's counts kept at regular positions of the log, for `as_of`.

A projection that keeps checkpoints (`Checkpointed`) writes, in the transaction that
applies its events, the counts it can answer for as they stand at every `interval`-th
position of the log that its events pass: before applying an event at position e, when
the last multiple C of the interval below e (``(e - 1) // interval * interval``) is above
its last checkpoint, the tables hold exactly the state after the events at or before C
(every event applied so far is at or before C, see `split`), and that state is copied into
its checkpoint table at position C. Which checkpoints exist, and what they hold, depends
only on the log, never on how it was cut into chunks (rebuild equals incremental).

A checkpoint table has a marker row per checkpoint (unit ``''``), so that a checkpoint of
nothing (no open dossier) is still one. Positions without events of the projection write
no checkpoint: the nearest one before them is then at most one interval of the
projection's events away all the same. A checkpoint table is one of its projection's
tables: truncated by a reset, refilled by the rebuild. A database whose projection ran
before checkpoints existed simply has none before the position they started at; readers
then apply the history since the last checkpoint at or before the position (or since 0),
which is exact, only slower (`projections.read.checkpoints`).
"""

from __future__ import annotations

from abc import abstractmethod
from collections.abc import Mapping, Sequence
from typing import Final

from ops_center.store.log import Event
from projections.projection import Connection, Projection

#: Positions between two checkpoints. Each costs one copy of the counts (a few hundred
#: rows per projection) and cuts the chunk being applied in two; `as_of` applies at most
#: this many positions of history. 2,000 made the rebuild 22 % slower (over the 10 %
#: budget); 10,000 cost less than the run's noise (docs/BENCHMARKS.md, 2026-12-04).
CHECKPOINT_INTERVAL: Final = 10_000

#: The unit of a checkpoint's marker row.
MARKER: Final = ""


def checkpoint_below(position: int, interval: int) -> int:
    """The last multiple of `interval` strictly below `position` (0 without checkpoints)."""
    if interval <= 0 or position <= 0:
        return 0
    return (position - 1) // interval * interval


def split(
    events: Sequence[Event], last: int, interval: int
) -> list[tuple[int | None, list[Event]]]:
    """The events cut where a checkpoint falls due: (checkpoint to write first, or None;
    the events to apply after it), in order. `last` is the last checkpoint written."""
    parts: list[tuple[int | None, list[Event]]] = []
    due: int | None = None
    current: list[Event] = []
    for event in events:
        below = checkpoint_below(event.position, interval)
        if below > last:
            if current or due is not None:
                parts.append((due, current))
            due, current, last = below, [], below
        current.append(event)
    if current or due is not None:
        parts.append((due, current))
    return parts


class Checkpointed(Projection):
    """A projection that keeps checkpoints: it applies its events in `apply_events` and
    copies its counts into `checkpoint_table` in `write_checkpoint`."""

    checkpoint_table: str
    #: Positions between checkpoints (0: none are written; the benchmark's comparison).
    checkpoint_interval: int = CHECKPOINT_INTERVAL

    async def apply(self, conn: Connection, events: Sequence[Event]) -> None:
        if self.checkpoint_interval <= 0:
            await self.apply_events(conn, events)
            return
        if checkpoint_below(events[-1].position, self.checkpoint_interval) > 0:
            last = await last_checkpoint(conn, self.checkpoint_table)
        else:
            last = 0
        for due, part in split(events, last, self.checkpoint_interval):
            if due is not None:
                await self.write_checkpoint(conn, due)
            if part:
                await self.apply_events(conn, part)

    @abstractmethod
    async def apply_events(self, conn: Connection, events: Sequence[Event]) -> None:
        """Apply a chunk of events (position order) to the read-model tables."""

    @abstractmethod
    async def write_checkpoint(self, conn: Connection, position: int) -> None:
        """Copy the counts of the tables as they stand into a checkpoint at `position`."""


async def last_checkpoint(conn: Connection, table: str, upto: int | None = None) -> int:
    """The last checkpoint of `table` (at or before `upto`); 0 when there is none."""
    if upto is None:
        found = await conn.fetchval(f"SELECT max(position) FROM {table}")
    else:
        found = await conn.fetchval(f"SELECT max(position) FROM {table} WHERE position <= $1", upto)
    return int(found or 0)


async def create_indexes(conn: Connection, indexes: Mapping[str, str], interval: int) -> None:
    """Create the indexes the readers of checkpoints need (`indexes`: name -> definition
    after the name), unless checkpoints are off (`interval` 0)."""
    if interval > 0:
        for name, definition in indexes.items():
            await conn.execute(f"CREATE INDEX IF NOT EXISTS {name} {definition}")
