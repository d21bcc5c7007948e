"""The event store: the `eventsourcing` PostgreSQL recorder, extended with ingest receipts.

A receipt remembers which CloudEvent ``(source, id)`` produced which stored domain event,
with a digest of the event's content. Receipts are inserted in the same transaction as
the events they guard, so an event is either stored with its receipt or not at all.
The stored events' global `notification_id` is the position reported to clients.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from datetime import datetime
from typing import Any, Final, NamedTuple
from uuid import UUID

import orjson
from eventsourcing.persistence import StoredEvent, Transcoder
from eventsourcing.postgres import PostgresApplicationRecorder, PostgresDatastore
from eventsourcing.utils import retry
from psycopg import Cursor, InterfaceError, OperationalError
from psycopg.rows import DictRow
from psycopg.sql import SQL, Identifier

RECEIPTS_TABLE = "ingest_receipts"


class Receipt(NamedTuple):
    """Links a CloudEvent's ``(source, id)`` and content digest to the domain event it made."""

    source: str
    event_id: str
    digest: bytes
    originator_id: UUID
    originator_version: int


class Known(NamedTuple):
    """A receipt found in the store: the digest of what was stored and its position."""

    digest: bytes
    position: int


class OrjsonTranscoder(Transcoder):
    """Encodes domain-event state with orjson.

    Our events carry only JSON-native values plus the library's own `timestamp`, which is
    restored as a `datetime` on decoding. Stored state is plain JSON that projections read
    without the library.
    """

    def encode(self, obj: Any) -> bytes:
        return orjson.dumps(obj)

    def decode(self, data: bytes) -> Any:
        state = orjson.loads(data)
        stamp = state.get("timestamp")
        if isinstance(stamp, str):
            state["timestamp"] = datetime.fromisoformat(stamp)
        return state


#: Attempts of one insert that fails to connect or loses its connection. The first retry
#: replaces a pooled connection that a database restart broke. The library's own default
#: (10 attempts, each waiting up to the connect timeout for a connection) held every
#: request queued behind the writer for about 30 s when the database was down, where the
#: contract (docs/CONTRACT.md §2) wants a prompt 503.
INSERT_ATTEMPTS: Final = 3


class IngestRecorder(PostgresApplicationRecorder):
    """The library's application recorder plus the ingest receipts table."""

    insert_events = retry(
        (InterfaceError, OperationalError), max_attempts=INSERT_ATTEMPTS, wait=0.1
    )(PostgresApplicationRecorder.insert_events.__wrapped__)

    def __init__(self, datastore: PostgresDatastore, *, events_table_name: str = "stored_events"):
        super().__init__(datastore, events_table_name=events_table_name)
        schema = Identifier(self.datastore.schema)
        receipts = Identifier(RECEIPTS_TABLE)
        self.sql_create_statements.append(
            SQL(
                "CREATE TABLE IF NOT EXISTS {schema}.{receipts} ("
                "source text NOT NULL, "
                "event_id text NOT NULL, "
                "digest bytea NOT NULL, "
                "originator_id uuid NOT NULL, "
                "originator_version bigint NOT NULL, "
                "PRIMARY KEY (source, event_id))"
            ).format(schema=schema, receipts=receipts)
        )
        self._insert_receipts = SQL(
            "INSERT INTO {schema}.{receipts} "
            "(source, event_id, digest, originator_id, originator_version) "
            "SELECT * FROM unnest(%b::text[], %b::text[], %b::bytea[], %b::uuid[], %b::bigint[])"
        ).format(schema=schema, receipts=receipts)
        self._insert_columns = SQL(
            "INSERT INTO {schema}.{events} (originator_id, originator_version, topic, state) "
            "SELECT * FROM unnest(%b::uuid[], %b::bigint[], %b::text[], %b::bytea[]) "
            "RETURNING notification_id"
        ).format(schema=schema, events=Identifier(self.events_table_name))
        self._select_many = SQL(
            "SELECT originator_id, originator_version, topic, state FROM {schema}.{events} "
            "WHERE originator_id = ANY(%b::uuid[]) ORDER BY originator_id, originator_version"
        ).format(schema=schema, events=Identifier(self.events_table_name))
        self._select_receipts = SQL(
            "SELECT r.source, r.event_id, r.digest, e.notification_id "
            "FROM unnest(%b::text[], %b::text[]) AS k(source, event_id) "
            "JOIN {schema}.{receipts} AS r USING (source, event_id) "
            "JOIN {schema}.{events} AS e "
            "ON e.originator_id = r.originator_id AND e.originator_version = r.originator_version"
        ).format(schema=schema, receipts=receipts, events=Identifier(self.events_table_name))

    def _insert_stored_events(
        self,
        curs: Cursor[DictRow],
        stored_events: Sequence[StoredEvent],
        **kwargs: Any,
    ) -> None:
        # Same statement shape as the library's, but with one array per column sent in
        # binary: the library's array of composite values is dumped as text with regex
        # escaping of every bytea, which costs more than the insert itself (profiled).
        #
        # The receipts go last, on their own cursor, and neither insert is a prepared
        # statement: these run in a pipeline, and when a statement fails there (a
        # concurrent node stored the same event: unique violation), the server skips
        # what follows while psycopg still records a statement prepared in that pipeline
        # as existing, so the connection's next use of it fails with "prepared statement
        # does not exist" (found by tests/integration/test_idempotency_machine.py). The
        # library's lock statement, which it prepares, therefore runs first.
        self._lock_table(curs)
        self._notify_channel(curs)
        curs.execute(
            self._insert_columns,
            [
                [e.originator_id for e in stored_events],
                [e.originator_version for e in stored_events],
                [e.topic for e in stored_events],
                [e.state for e in stored_events],
            ],
            binary=True,
            prepare=False,
        )
        receipts: Sequence[Receipt] | None = kwargs.get("receipts")
        if receipts:
            columns = list(zip(*receipts, strict=True))
            with curs.connection.cursor() as receipts_cursor:
                receipts_cursor.execute(
                    self._insert_receipts, [list(c) for c in columns], binary=True, prepare=False
                )

    def select_many(self, originator_ids: Sequence[UUID]) -> dict[UUID, list[StoredEvent]]:
        """The stored events of several aggregates in one query, in version order."""
        if not originator_ids:
            return {}
        found: dict[UUID, list[StoredEvent]] = {}
        with self.datastore.get_connection() as conn, conn.cursor() as curs:
            curs.execute(self._select_many, [list(originator_ids)], binary=True)
            for row in curs.fetchall():
                found.setdefault(row["originator_id"], []).append(
                    StoredEvent(
                        originator_id=row["originator_id"],
                        originator_version=row["originator_version"],
                        topic=row["topic"],
                        state=bytes(row["state"]),
                    )
                )
        return found

    def find_receipts(self, keys: Iterable[tuple[str, str]]) -> dict[tuple[str, str], Known]:
        """The stored receipts among the given ``(source, id)`` keys, with their positions."""
        sources: list[str] = []
        ids: list[str] = []
        for source, event_id in keys:
            sources.append(source)
            ids.append(event_id)
        if not sources:
            return {}
        with self.datastore.get_connection() as conn, conn.cursor() as curs:
            curs.execute(self._select_receipts, [sources, ids], binary=True)
            return {
                (row["source"], row["event_id"]): Known(
                    bytes(row["digest"]), row["notification_id"]
                )
                for row in curs.fetchall()
            }
