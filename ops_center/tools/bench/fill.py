"""The log of ``ops-center bench projections``, recorded fast as ingest would record it.

`fill_log` takes a sized simulated province (`ops_center.tools.simulator.traffic.Traffic`:
`CAMERAS` cameras and `STATIONS` radio stations, fewer in a log too small for them, with
the province's dossiers and indicators) whose events end about now, and records exactly
`count` of them with `LogFiller`: the same validation
(`ops_center.tools.simulator.recording.submissions`), the same decisions
(`ops_center.ingest.decisions.decide`) and the application's own mapper make the stored
events, which are then COPYed into ``ops_events`` and ``ingest_receipts`` in position
order (tests compare it with `OpsCenter.ingest`).
"""

from __future__ import annotations

import sys
import time
from collections import Counter, OrderedDict
from collections.abc import Iterable
from dataclasses import dataclass, field
from typing import Any, Final
from uuid import UUID

import psycopg
from eventsourcing.application import AggregateNotFoundError
from eventsourcing.domain import Aggregate
from psycopg import sql

from ops_center.domain.errors import Rejection
from ops_center.ingest.decisions import aggregate_id, decide
from ops_center.province.profile import Profile, load_profile
from ops_center.runtime.progress import Progress
from ops_center.store.application import OpsCenter
from ops_center.store.database import Database
from ops_center.store.recorder import RECEIPTS_TABLE, Receipt
from ops_center.tools.bench.meters import EVENTS_TABLE
from ops_center.tools.simulator.recording import submissions
from ops_center.tools.simulator.traffic import Traffic

#: The size of the simulated province whose events fill the log; a log of fewer than
#: 30 events per camera (60 per station) has fewer, so that registering the devices and
#: their first statuses take at most a tenth of it (see `province_size`).
CAMERAS: Final = 2_000
STATIONS: Final = 1_000
#: Events validated and decided per COPY.
FILL_BATCH: Final = 5_000
#: Aggregates kept in memory while filling (others are loaded from the store again).
FILL_CACHE: Final = 300_000


class LogFiller:
    """Records CloudEvents as `OpsCenter.ingest` does, in bulk, into an empty store.

    Every event goes through the same validation, decision and mapping as ingest, so the
    stored rows are those ingest would store (bar the recording times); they are written
    with binary COPY, one COPY per `FILL_BATCH` events, instead of one transaction per
    batch with receipt look-ups. Events that ingest would reject are left out and
    counted. Aggregates stay in memory (bounded, like the application's cache); one that
    fell out is reloaded from the store after the pending rows are written.
    """

    def __init__(
        self, database_url: str, profile: Profile | None = None, *, key: str = "bench"
    ) -> None:
        self.app = OpsCenter(database_url)  # creates the events and receipts tables
        self.profile = profile or load_profile()
        self.key = key
        self.conn = psycopg.connect(Database.parse(database_url).conninfo)
        self.cache: OrderedDict[UUID, Aggregate] = OrderedDict()
        self.known: set[UUID] = set()
        self.events: list[tuple[Any, int, str, bytes]] = []
        self.receipts: list[Receipt] = []
        self.stored = 0
        self.rejected = 0

    def close(self) -> None:
        self.conn.close()
        self.app.close()

    def __enter__(self) -> LogFiller:
        return self

    def __exit__(self, *_: object) -> None:
        self.close()

    def record(self, raws: Iterable[dict[str, Any]]) -> int:
        """Validate, decide and buffer these CloudEvents; write when enough are pending.
        Returns how many were accepted."""
        accepted = 0
        mapper = self.app.mapper
        for sub in submissions(list(raws), self.profile, key=self.key):
            agg_id = aggregate_id(sub.kind, sub.event.subject)
            current = self._load(agg_id)
            try:
                aggregate = decide(sub.kind, current, sub.event.subject, sub.data, sub.meta)
            except Rejection:
                self.rejected += 1
                continue
            (new_event,) = aggregate.collect_events()
            stored = mapper.to_stored_event(new_event)
            self.events.append(
                (stored.originator_id, stored.originator_version, stored.topic, stored.state)
            )
            self.receipts.append(
                Receipt(
                    sub.event.source,
                    sub.event.id,
                    sub.event.digest,
                    aggregate.id,
                    new_event.originator_version,
                )
            )
            self._remember(aggregate)
            accepted += 1
        if len(self.events) >= FILL_BATCH:
            self.flush()
        return accepted

    def flush(self) -> None:
        """COPY the pending events (in decision order: their positions) and receipts."""
        if not self.events:
            return
        with self.conn.cursor() as cursor:
            statement = sql.SQL(
                "COPY {} (originator_id, originator_version, topic, state) "
                "FROM STDIN (FORMAT BINARY)"
            ).format(sql.Identifier(EVENTS_TABLE))
            with cursor.copy(statement) as copy:
                copy.set_types(["uuid", "int8", "text", "bytea"])
                for row in self.events:
                    copy.write_row(row)
            statement = sql.SQL(
                "COPY {} (source, event_id, digest, originator_id, originator_version) "
                "FROM STDIN (FORMAT BINARY)"
            ).format(sql.Identifier(RECEIPTS_TABLE))
            with cursor.copy(statement) as copy:
                copy.set_types(["text", "text", "bytea", "uuid", "int8"])
                for receipt in self.receipts:
                    copy.write_row(receipt)
        self.conn.commit()
        self.stored += len(self.events)
        self.events.clear()
        self.receipts.clear()

    def _load(self, agg_id: UUID) -> Aggregate | None:
        cached = self.cache.get(agg_id)
        if cached is not None:
            self.cache.move_to_end(agg_id)
            return cached
        if agg_id not in self.known:
            return None
        self.flush()  # the store must hold everything decided so far
        try:
            aggregate: Aggregate = self.app.repository.get(agg_id)
        except AggregateNotFoundError:  # pragma: no cover - known ids are stored
            return None
        return aggregate

    def _remember(self, aggregate: Aggregate) -> None:
        self.known.add(aggregate.id)
        self.cache[aggregate.id] = aggregate
        self.cache.move_to_end(aggregate.id)
        while len(self.cache) > FILL_CACHE:
            self.cache.popitem(last=False)


@dataclass(frozen=True, slots=True)
class Filled:
    """What `fill_log` recorded."""

    stored: int
    rejected: int
    seconds: float
    cameras: int
    stations: int
    #: A camera and an indicator of the province, for the queries about one of them.
    camera: str
    indicator: str
    #: Events of each type recorded.
    mix: dict[str, int] = field(default_factory=dict)


def province_size(count: int) -> tuple[int, int]:
    """The cameras and stations of the province whose `count` events fill the log."""
    return max(1, min(CAMERAS, count // 30)), max(1, min(STATIONS, count // 60))


def fill_log(database_url: str, count: int, *, seed: int, progress: bool = True) -> Filled:
    """Record exactly `count` events of the sized province into the (empty) store at
    `database_url`; CloudEvent times end about now."""
    cameras_count, stations_count = province_size(count)
    # the opening (a registration and a first status per device, the indicators) is
    # part of the log: the events after it are about that many fewer
    after = max(1, count - 2 * (cameras_count + stations_count))
    traffic = Traffic(cameras=cameras_count, stations=stations_count, events=after, seed=seed)
    cameras = traffic.province.cameras.cameras
    camera = cameras[min(42, len(cameras) - 1)].code
    indicator = traffic.province.kpis.indicators[0].code
    shown = Progress(count, sys.stderr, label="  filling the log") if progress else None
    mix: Counter[str] = Counter()
    started = time.perf_counter()
    with LogFiller(database_url, traffic.profile) as filler:
        accepted = 0
        while accepted < count:
            # the province's events are all accepted; one that were not would be left out
            chunk = traffic.take(min(FILL_BATCH, count - accepted))
            accepted += filler.record(chunk)
            mix.update(e["type"] for e in chunk)
            if shown is not None:
                shown.show(accepted)
        filler.flush()
        stored, rejected = filler.stored, filler.rejected
    seconds = time.perf_counter() - started
    if shown is not None:
        shown.show(stored, final=True)
    return Filled(
        stored,
        rejected,
        seconds,
        cameras_count,
        stations_count,
        camera,
        indicator,
        dict(sorted(mix.items())),
    )
