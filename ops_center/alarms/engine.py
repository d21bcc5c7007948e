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
from ops_center.alarms.rules.observe import UnitOf
from ops_center.alarms.rules.thresholds import Thresholds
from ops_center.domain.alarm import Alarm
from ops_center.store.database import Database, as_database
from ops_center.store.log import short_name, topics_of
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
    """Follows the log for the alarm rules (see the module docstring)."""

    def __init__(
        self,
        desk: AlarmDesk,
        thresholds: Thresholds,
        unit_of: UnitOf,
        *,
        batch: int = DEFAULT_BATCH,
        window: int = DEFAULT_WINDOW,
        due_limit: int = DEFAULT_DUE,
    ) -> None:
        self.desk = desk
        self.thresholds = thresholds
        self.unit_of = unit_of
        self.batch = batch
        self.window = window
        self.due_limit = due_limit

    def position(self) -> tuple[int, int]:
        """The committed ``(position, revision)``."""
        with self.desk.recorder_datastore.get_connection() as conn, conn.cursor() as curs:
            curs.execute(
                "SELECT position, revision FROM alarm_rules_position WHERE name = %s",
                [RULES_NAME],
            )
            row = curs.fetchone()
        if row is None:
            raise LookupError("the alarm rules have no position row")
        return int(row["position"]), int(row["revision"])

    def step(self, clock: datetime) -> Step:
        """Apply the next chunk of events and the clock; save everything in one
        transaction. Raises `RulesMoved` or `IntegrityError` on a concurrent change
        (nothing saved; call again)."""
        store = self.desk.store
        position, revision = self.position()
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
        with self.desk.recorder_datastore.get_connection() as conn, conn.cursor() as curs:
            curs.execute(
                "SELECT DISTINCT subject_id FROM alarm_rule_causes "
                "WHERE starts_at <= %s OR ends_at <= %s LIMIT %s",
                [clock, clock, self.due_limit],
            )
            due = {row["subject_id"] for row in curs.fetchall()}
            subjects = list(due | {n.originator_id for n in notes})
            facts: dict[UUID, Facts] = {}
            records: dict[tuple[UUID, str], CauseRecord] = {}
            if subjects:
                curs.execute(
                    "SELECT subject_id, facts FROM alarm_rule_subjects "
                    "WHERE subject_id = ANY(%b::uuid[])",
                    [subjects],
                )
                for row in curs.fetchall():
                    value = row["facts"]
                    facts[row["subject_id"]] = (
                        orjson.loads(value) if isinstance(value, (str, bytes)) else value
                    )
                curs.execute(
                    "SELECT * FROM alarm_rule_causes WHERE subject_id = ANY(%b::uuid[])", [subjects]
                )
                for row in curs.fetchall():
                    record = _cause_record(row)
                    records[record.key] = record
        alarms = self.desk.load_alarms(r.alarm_id for r in records.values() if r.alarm_id)
        book = RuleBook(self.thresholds, self.unit_of, facts, records, alarms)
        for note in notes:
            state = orjson.loads(note.state)
            meta = state.get("meta") or {}
            moment = datetime.fromisoformat(meta.get("time") or state["timestamp"])
            book.on_event(note.originator_id, short_name(note.topic), state, moment, clock)
        for subject in subjects:
            book.on_clock(subject, clock)
        if upto == position and not book.changed_facts and not book.changed_records:
            return Step(position, 0, 0, True)
        write = RulesWrite(
            revision,
            upto,
            [(sid, book.facts[sid]) for sid in book.changed_facts],
            [book.records[key] for key in book.changed_records],
        )
        pending = list(book.touched.values())
        written = sum(len(a.pending_events) for a in pending)
        self.desk.save(*pending, rules=write)
        return Step(upto, len(notes), written, upto >= head)
