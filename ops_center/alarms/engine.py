"""The alarm rules on the event store: follow the log, decide, write alarm events.

`AlarmDesk` is an eventsourcing Application on the same events table as ingest
(``ops_events``): the rules and the operators' actions write `Alarm` events there, so
alarms have global positions like every other event and projections follow them.

Exactly once: `RulesEngine.step` reads the events after its position, folds them (and
the clock) through the pure `RuleBook`, and saves in ONE transaction the new alarm
events, the rules' own state (``alarm_rule_subjects``: facts per subject;
``alarm_rule_causes``: one record per cause and subject) and the new position in
``alarm_rules_position``. Why this rather than the library's ProcessRecorder tracking
table alone: the rules keep state besides the position (facts, pending grace periods and
due times) and act on the clock without any new event; that state must move with the
alarm events, so all of it shares the transaction (written by `RulesRecorder`'s hook in
the library's own insert transaction). The row's `revision` is bumped on every commit and
checked (compare-and-set), so two runners that ever overlap (an advisory lock elects one,
but a lock can be lost with its connection) cannot both apply a step: the second rolls
back and starts again from the committed state. A runner killed at any point restarts
from the last commit and raises nothing twice. As a second guard, alarm ids are derived
from cause, subject and occurrence, and the store refuses a second version 1 of an
aggregate.

Operators' actions load the alarm, decide and save (`AlarmDesk.act`); a concurrent change
by the rules makes one of the two transactions fail on the alarm's version; it is
retried after reloading.

The library is synchronous: call these methods from a thread.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any, ClassVar, Final, Literal
from uuid import UUID

import orjson
from eventsourcing.application import AggregateNotFoundError, Application
from eventsourcing.persistence import IntegrityError, StoredEvent, Transcoder
from eventsourcing.postgres import PostgresDatastore
from eventsourcing.utils import get_topic
from psycopg import Cursor
from psycopg.rows import DictRow
from psycopg.sql import SQL

from ops_center.alarms.rules.book import CauseRecord, RuleBook
from ops_center.alarms.rules.facts import EVENTS, Facts
from ops_center.alarms.rules.observe import CAUSES_BY_KIND, UnitOf
from ops_center.alarms.rules.thresholds import Thresholds
from ops_center.domain.alarm import Alarm
from ops_center.store.database import Database, as_database
from ops_center.store.log import Event, short_name, topics_of
from ops_center.store.recorder import IngestRecorder, OrjsonTranscoder

log = logging.getLogger(__name__)

#: The name of the rules' row in ``alarm_rules_position``.
RULES_NAME: Final = "alarm-rules"

# Limits
#: Most events applied in one transaction.
DEFAULT_BATCH: Final = 2_000
#: Most positions looked at in one transaction.
DEFAULT_WINDOW: Final = 100_000
#: Most subjects evaluated for the clock in one transaction.
DEFAULT_DUE: Final = 5_000
#: Attempts of an operator's action against concurrent changes of the alarm.
ACT_ATTEMPTS: Final = 5
#: Most seconds changes without alarm events wait in memory before they are saved.
DEFAULT_FLUSH: Final = 1.0
#: Most subjects whose facts the engine keeps in memory.
DEFAULT_CACHE: Final = 200_000

SCHEMA: Final = [
    """
    CREATE TABLE IF NOT EXISTS alarm_rules_position (
        name text PRIMARY KEY,
        position bigint NOT NULL DEFAULT 0,
        revision bigint NOT NULL DEFAULT 0,
        updated_at timestamptz NOT NULL DEFAULT now()
    )
    """,
    """
    CREATE TABLE IF NOT EXISTS alarm_rule_subjects (
        subject_id uuid PRIMARY KEY,
        facts jsonb NOT NULL
    )
    """,
    """
    CREATE TABLE IF NOT EXISTS alarm_rule_causes (
        subject_id uuid NOT NULL,
        cause text NOT NULL,
        subject_kind text NOT NULL,
        subject text NOT NULL,
        unit text,
        present boolean NOT NULL,
        severity text NOT NULL,
        summary text NOT NULL,
        detail jsonb NOT NULL,
        since timestamptz,
        starts_at timestamptz,
        ends_at timestamptz,
        occurrence integer NOT NULL,
        alarm_id uuid,
        PRIMARY KEY (subject_id, cause)
    )
    """,
    "CREATE INDEX IF NOT EXISTS alarm_rule_causes_starts ON alarm_rule_causes (starts_at) "
    "WHERE starts_at IS NOT NULL",
    "CREATE INDEX IF NOT EXISTS alarm_rule_causes_ends ON alarm_rule_causes (ends_at) "
    "WHERE ends_at IS NOT NULL",
]

_CAUSE_COLUMNS: Final = (
    ("subject_id", "uuid"),
    ("cause", "text"),
    ("subject_kind", "text"),
    ("subject", "text"),
    ("unit", "text"),
    ("present", "bool"),
    ("severity", "text"),
    ("summary", "text"),
    ("detail", "jsonb"),
    ("since", "timestamptz"),
    ("starts_at", "timestamptz"),
    ("ends_at", "timestamptz"),
    ("occurrence", "int4"),
    ("alarm_id", "uuid"),
)
# Statements in the library's insert pipeline are never prepared (see
# `ops_center.store.recorder.IngestRecorder._insert_stored_events`): one array per column.
_UPSERT_CAUSES: Final = (
    f"INSERT INTO alarm_rule_causes ({', '.join(c for c, _ in _CAUSE_COLUMNS)}) "
    "SELECT * FROM unnest("
    + ", ".join(f"%b::text[]::{t}[]" if t == "jsonb" else f"%b::{t}[]" for _, t in _CAUSE_COLUMNS)
    + ") ON CONFLICT (subject_id, cause) DO UPDATE SET "
    + ", ".join(f"{c} = excluded.{c}" for c, _ in _CAUSE_COLUMNS[2:])
)
#: Facts go as binary arrays: psycopg's text form of an array escapes every element with
#: a regular expression, which cost a fifth of a step's time (profiled).
_UPSERT_FACTS: Final = (
    "INSERT INTO alarm_rule_subjects (subject_id, facts) "
    "SELECT * FROM unnest(%b::uuid[], %b::text[]::jsonb[]) "
    "ON CONFLICT (subject_id) DO UPDATE SET facts = excluded.facts"
)
_ADVANCE: Final = (
    "UPDATE alarm_rules_position SET position = %s, revision = revision + 1, "
    "updated_at = now() WHERE name = %s AND revision = %s RETURNING revision"
)

_TOPICS: Final = topics_of(EVENTS)


class RulesMoved(Exception):
    """The rules' state changed since it was read (another runner committed a step)."""


@dataclass(frozen=True, slots=True)
class RulesWrite:
    """What a step saves beside the alarm events, in the same transaction."""

    revision: int
    position: int
    facts: Sequence[tuple[UUID, Facts]]
    causes: Sequence[CauseRecord]


class RulesRecorder(IngestRecorder):
    """The ingest recorder plus the rules' tables, written in the events' transaction."""

    def __init__(self, datastore: PostgresDatastore, *, events_table_name: str = "stored_events"):
        super().__init__(datastore, events_table_name=events_table_name)
        self.sql_create_statements.extend(SQL(s).format() for s in SCHEMA)

    def _insert_events(
        self,
        curs: Cursor[DictRow],
        stored_events: Sequence[StoredEvent],
        **kwargs: Any,
    ) -> None:
        write: RulesWrite | None = kwargs.get("rules")
        if write is not None:
            curs.execute(_ADVANCE, [write.position, RULES_NAME, write.revision], prepare=False)
            if curs.fetchone() is None:
                raise RulesMoved(f"the alarm rules moved past revision {write.revision}")
            if write.facts:
                curs.execute(
                    _UPSERT_FACTS,
                    [
                        [sid for sid, _ in write.facts],
                        [orjson.dumps(facts).decode() for _, facts in write.facts],
                    ],
                    prepare=False,
                )
            if write.causes:
                rows = [_cause_row(r) for r in write.causes]
                curs.execute(
                    _UPSERT_CAUSES, [list(c) for c in zip(*rows, strict=True)], prepare=False
                )
        super()._insert_events(curs, stored_events, **kwargs)


def _cause_row(r: CauseRecord) -> tuple[Any, ...]:
    return (
        r.subject_id,
        r.cause,
        r.subject_kind,
        r.subject,
        r.unit,
        r.present,
        r.severity,
        r.summary,
        orjson.dumps(r.detail).decode(),
        r.since,
        r.starts_at,
        r.ends_at,
        r.occurrence,
        r.alarm_id,
    )


def _cause_record(row: DictRow) -> CauseRecord:
    detail = row["detail"]
    return CauseRecord(
        subject_id=row["subject_id"],
        cause=row["cause"],
        subject_kind=row["subject_kind"],
        subject=row["subject"],
        unit=row["unit"],
        present=row["present"],
        severity=row["severity"],
        summary=row["summary"],
        detail=orjson.loads(detail) if isinstance(detail, (str, bytes)) else detail,
        since=row["since"],
        starts_at=row["starts_at"],
        ends_at=row["ends_at"],
        occurrence=row["occurrence"],
        alarm_id=row["alarm_id"],
    )


Action = Literal["ack", "resolve"]


class UnknownAlarm(Exception):
    """No alarm with this id."""


class AlarmDesk(Application[UUID]):
    """Alarms in the event store (table ``ops_events``): the rules' steps and the
    operators' actions. Synchronous: call from a thread."""

    name = "Ops"
    env: ClassVar[dict[str, str]] = {
        "APPLICATION_RECORDER_TOPIC": get_topic(RulesRecorder),
    }

    def __init__(self, database: Database | str) -> None:
        super().__init__(env=as_database(database).library_env(pool_size=3))
        # `record` stores events without Application.save, which would also snapshot
        # and cache aggregates: this application must have neither
        assert self.snapshots is None
        assert self.repository.cache is None
        with self.recorder_datastore.transaction(commit=True) as curs:
            curs.execute(
                "INSERT INTO alarm_rules_position (name) VALUES (%s) ON CONFLICT DO NOTHING",
                [RULES_NAME],
            )

    def construct_transcoder(self) -> Transcoder:
        return OrjsonTranscoder()

    @property
    def store(self) -> RulesRecorder:
        assert isinstance(self.recorder, RulesRecorder)
        return self.recorder

    @property
    def recorder_datastore(self) -> PostgresDatastore:
        return self.store.datastore

    def record(self, alarms: Sequence[Alarm], **kwargs: Any) -> None:
        """Store the pending events of `alarms` in one transaction with what `kwargs`
        give the recorder (the rules' `RulesWrite`). What `Application.save` does less
        the processing event (its protocol `isinstance` checks per aggregate were 4 % of
        the pipeline's CPU), the snapshots and the aggregate cache, which this application
        has none of (checked when it is made)."""
        self.events.put([e for alarm in alarms for e in alarm.collect_events()], **kwargs)

    def load_alarms(self, ids: Iterable[UUID]) -> dict[UUID, Alarm]:
        """The alarms with these ids, in one query (unknown ids are left out)."""
        found: dict[UUID, Alarm] = {}
        wanted = list(set(ids))
        if not wanted:
            return found
        for agg_id, stored in self.store.select_many(wanted).items():
            aggregate: Any = None
            for record in stored:
                aggregate = self.mapper.to_domain_event(record).mutate(aggregate)  # type: ignore[attr-defined]
            if isinstance(aggregate, Alarm):
                found[agg_id] = aggregate
        return found

    def act(
        self, alarm: UUID, action: Action, by: str, note: str | None, at: datetime
    ) -> tuple[Alarm, int]:
        """Acknowledge or resolve an alarm for an operator; the alarm and the position of
        the stored event. Raises `UnknownAlarm`, or `AlarmConflict` when its state does
        not allow the action."""
        for attempt in range(1, ACT_ATTEMPTS + 1):
            try:
                current: Any = self.repository.get(alarm)
            except AggregateNotFoundError:
                raise UnknownAlarm(str(alarm)) from None
            if not isinstance(current, Alarm):
                raise UnknownAlarm(str(alarm))
            if action == "ack":
                current.acknowledge(by, note, at.isoformat())
            else:
                current.resolve(by, note, at.isoformat())
            try:
                recordings = self.save(current)
            except IntegrityError:
                log.info("alarm %s changed concurrently (attempt %d); reloading", alarm, attempt)
                continue
            return current, recordings[-1].notification.id
        raise IntegrityError(f"alarm {alarm} keeps changing concurrently")


@dataclass(frozen=True, slots=True)
class Step:
    """The outcome of one step: position, events read, alarm events written, caught up."""

    position: int
    events: int
    alarm_events: int
    caught_up: bool


class RulesEngine:
    """Follows the log for the alarm rules (see the module docstring), keeping their state
    in memory between chunks.

    `apply` takes a chunk of decoded events (the pipeline's follower reads each chunk once
    for every consumer) and the clock. The facts and cause records of the subjects it has
    seen stay in memory (at most `cache_limit` subjects; clean ones are dropped past that),
    so a chunk reads only the subjects it has not seen yet, in one query per table. What a
    chunk changes is saved with the new position and revision in one transaction when it
    raises, repeats or resolves an alarm, and otherwise at most every `flush_seconds` (or
    when `flush` is asked): between two saves the rules' committed position lags behind
    the position they have applied, and a restart applies those events again (the folds are
    deterministic: nothing is lost, nothing is raised twice). After any failure to save,
    `reset` drops the memory: the engine starts again from its committed position.

    `step` reads the next chunk itself (tests and tools) and saves at once.
    """

    def __init__(
        self,
        desk: AlarmDesk,
        thresholds: Thresholds,
        unit_of: UnitOf,
        *,
        batch: int = DEFAULT_BATCH,
        window: int = DEFAULT_WINDOW,
        due_limit: int = DEFAULT_DUE,
        flush_seconds: float = DEFAULT_FLUSH,
        cache_limit: int = DEFAULT_CACHE,
    ) -> None:
        self.desk = desk
        self.thresholds = thresholds
        self.unit_of = unit_of
        self.batch = batch
        self.window = window
        self.due_limit = due_limit
        self.flush_seconds = flush_seconds
        self.cache_limit = cache_limit
        #: The committed position and revision (None: not read yet).
        self.committed: int | None = None
        self.revision = 0
        #: The position applied in memory (>= committed).
        self.applied = 0
        self._facts: dict[UUID, Facts] = {}
        self._records: dict[tuple[UUID, str], CauseRecord] = {}
        self._alarms: dict[UUID, Alarm] = {}
        self._known: set[UUID] = set()
        self._dirty_facts: set[UUID] = set()
        self._dirty_records: set[tuple[UUID, str]] = set()
        self._flushed_at = time.monotonic()

    def position(self) -> tuple[int, int]:
        """The committed ``(position, revision)``, read from the database."""
        with self.desk.recorder_datastore.get_connection() as conn, conn.cursor() as curs:
            curs.execute(
                "SELECT position, revision FROM alarm_rules_position WHERE name = %s",
                [RULES_NAME],
            )
            row = curs.fetchone()
        if row is None:
            raise LookupError("the alarm rules have no position row")
        return int(row["position"]), int(row["revision"])

    def reset(self) -> int:
        """Forget everything in memory and read the committed position again; returns it."""
        self._facts.clear()
        self._records.clear()
        self._alarms.clear()
        self._known.clear()
        self._dirty_facts.clear()
        self._dirty_records.clear()
        self.committed, self.revision = self.position()
        self.applied = self.committed
        self._flushed_at = time.monotonic()
        return self.committed

    @property
    def dirty(self) -> bool:
        """Whether applied changes wait to be saved."""
        return (
            bool(self._dirty_facts or self._dirty_records)
            or self.committed is None
            or self.applied > self.committed
        )

    def step(self, clock: datetime) -> Step:
        """Read the next chunk after the committed position, apply it and the clock, and
        save everything. Raises `RulesMoved` or `IntegrityError` on a concurrent change
        (nothing saved; the memory is dropped; call again)."""
        position = self.reset()
        store = self.desk.store
        head = store.max_notification_id() or 0
        upto = min(position + self.window, head)
        notes: Sequence[Any] = ()
        if upto > position:
            notes = store.select_notifications(
                position, self.batch, stop=upto, topics=_TOPICS, inclusive_of_start=False
            )
            if len(notes) >= self.batch:
                upto = notes[-1].id
        upto = max(upto, position)
        events = [
            Event(
                n.id,
                n.originator_id,
                n.originator_version,
                short_name(n.topic),
                orjson.loads(n.state),
            )
            for n in notes
        ]
        written = self.apply(events, upto, clock, tick=True, flush=True)
        return Step(self.applied, len(events), written, self.applied >= head)

    def apply(
        self,
        events: Sequence[Event],
        upto: int,
        clock: datetime,
        *,
        tick: bool = False,
        flush: bool = False,
    ) -> int:
        """Apply the events of positions ``(applied, upto]`` (those the rules follow; others
        may be given and are skipped) and the clock; returns the alarm events written.

        `tick`: also evaluate every subject with a start or end due by `clock` (the rules
        act on the clock without events). `flush`: save even without alarm events. On a
        failure the memory is dropped (`reset`) before the exception is raised."""
        if self.committed is None:
            self.reset()
        try:
            return self._apply(events, upto, clock, tick=tick, flush=flush)
        except BaseException:
            self.committed = None  # the next use reads the committed state again
            raise

    def _apply(
        self, events: Sequence[Event], upto: int, clock: datetime, *, tick: bool, flush: bool
    ) -> int:
        mine = [e for e in events if e.position > self.applied and e.name in EVENTS]
        for event in events:
            if event.name.startswith("Alarm."):
                cached = self._alarms.get(event.originator_id)
                if cached is not None and cached.version < event.version:
                    del self._alarms[event.originator_id]  # an operator's action: reload
        subjects = {e.originator_id for e in mine}
        due: set[UUID] = set()
        if tick:
            due = self._due(clock)
        self._load(subjects | due)
        book = RuleBook(self.thresholds, self.unit_of, self._facts, self._records, self._alarms)
        for event in mine:
            book.on_event(event.originator_id, event.name, event.state, event.time, clock)
        for subject in subjects | due:
            book.on_clock(subject, clock)
        self._dirty_facts |= book.changed_facts
        self._dirty_records |= book.changed_records
        self.applied = max(self.applied, upto)
        pending = list(book.touched.values())
        written = sum(len(a.pending_events) for a in pending)
        late = time.monotonic() - self._flushed_at >= self.flush_seconds
        if pending or ((flush or late) and self.dirty):
            self._save(pending)
        self._trim()
        return written

    def flush(self) -> None:
        """Save what waits to be saved (at shutdown)."""
        if self.committed is not None and self.dirty:
            self._save([])

    def _save(self, pending: list[Alarm]) -> None:
        assert self.committed is not None
        write = RulesWrite(
            self.revision,
            self.applied,
            [(sid, self._facts[sid]) for sid in self._dirty_facts],
            [self._records[key] for key in self._dirty_records],
        )
        self.desk.record(pending, rules=write)
        self.revision += 1
        self.committed = self.applied
        self._dirty_facts.clear()
        self._dirty_records.clear()
        self._flushed_at = time.monotonic()

    def _due(self, clock: datetime) -> set[UUID]:
        """Subjects with a start or end due by `clock`: committed ones, and changed ones
        in memory."""
        with self.desk.recorder_datastore.get_connection() as conn, conn.cursor() as curs:
            curs.execute(
                "SELECT DISTINCT subject_id FROM alarm_rule_causes "
                "WHERE starts_at <= %s OR ends_at <= %s LIMIT %s",
                [clock, clock, self.due_limit],
            )
            due = {row["subject_id"] for row in curs.fetchall()}
        for key in self._dirty_records:
            record = self._records[key]
            if (record.starts_at is not None and record.starts_at <= clock) or (
                record.ends_at is not None and record.ends_at <= clock
            ):
                due.add(key[0])
        return due

    def _load(self, subjects: set[UUID]) -> None:
        """Read the facts, cause records and latest alarms of subjects not in memory."""
        missing = [sid for sid in subjects if sid not in self._known]
        if missing:
            with (
                self.desk.recorder_datastore.get_connection() as conn,
                conn.cursor() as curs,
            ):
                curs.execute(
                    "SELECT subject_id, facts FROM alarm_rule_subjects "
                    "WHERE subject_id = ANY(%b::uuid[])",
                    [missing],
                )
                for row in curs.fetchall():
                    value = row["facts"]
                    self._facts[row["subject_id"]] = (
                        orjson.loads(value) if isinstance(value, (str, bytes)) else value
                    )
                curs.execute(
                    "SELECT * FROM alarm_rule_causes WHERE subject_id = ANY(%b::uuid[])",
                    [missing],
                )
                for row in curs.fetchall():
                    record = _cause_record(row)
                    self._records[record.key] = record
            self._known.update(missing)
        wanted: set[UUID] = set()
        for sid in subjects:
            kind = (self._facts.get(sid) or {}).get("kind", "")
            for cause in CAUSES_BY_KIND.get(kind, ()):
                known = self._records.get((sid, cause))
                if known is not None and known.alarm_id is not None:
                    wanted.add(known.alarm_id)
        wanted -= self._alarms.keys()
        if wanted:
            self._alarms.update(self.desk.load_alarms(wanted))

    def _trim(self) -> None:
        """Past `cache_limit` subjects, drop the clean ones (they are read again if needed)."""
        if len(self._known) <= self.cache_limit:
            return
        keep = self._dirty_facts | {sid for sid, _ in self._dirty_records}
        self._known &= keep
        self._facts = {sid: f for sid, f in self._facts.items() if sid in keep}
        self._records = {k: r for k, r in self._records.items() if k[0] in keep}
        self._alarms = {a: alarm for a, alarm in self._alarms.items() if alarm.is_open}
