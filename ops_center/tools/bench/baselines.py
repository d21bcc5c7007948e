"""The baselines of ``ops-center bench ingest``: the library used naively, and raw COPY.

* **eventsourcing, naive**: an `Application` subclass with a small aggregate, loaded,
  changed and saved once per event (the library's documented pattern, no cache, no
  snapshots), in the same database under its own table (``naivebench_events``);
* **PostgreSQL COPY**: the very rows the batched phase stored (id, version, topic, state
  bytes), copied with psycopg's binary ``COPY`` into a table with the events table's
  columns and indexes, in one transaction.

Both run in this process, after the HTTP phases, with the server stopped.
"""

from __future__ import annotations

import random
import sys
import time
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Final
from uuid import UUID

import psycopg
from eventsourcing.application import Application
from eventsourcing.domain import Aggregate, event
from psycopg import sql

from ops_center.province.calendar import TZ
from ops_center.runtime.progress import Progress
from ops_center.store.database import Database
from ops_center.tools.bench.harness import BenchError
from ops_center.tools.bench.meters import ALARM_TOPICS, EVENTS_TABLE, CpuReading, CpuUse, Monitor

COPY_TABLE: Final = "bench_copy"
#: The naive baseline's event sources (its metadata looks like an integration's).
NAIVE_SOURCES: Final = tuple(f"https://vms.minhson.gov.vn/gateways/{n}" for n in range(1, 5))


@dataclass(frozen=True, slots=True)
class BaselineResult:
    label: str
    count: int
    seconds: float
    per_s: float
    mean_bytes: float
    cpu: CpuUse


class BenchDevice(Aggregate):
    """The naive baseline's aggregate: a device with a status."""

    @event("Registered")
    def __init__(self, code: str, unit: str, meta: dict[str, str]) -> None:
        self.code = code
        self.unit = unit
        self.status: str | None = None

    @event("StatusReported")
    def report_status(self, status: str, meta: dict[str, str]) -> None:
        self.status = status


class NaiveBench(Application[UUID]):
    """The library used the obvious way (events table ``naivebench_events``)."""

    name = "NaiveBench"


def naive_env(database_url: str) -> dict[str, str]:
    """The library's PostgreSQL settings for this URL, everything else left at defaults."""
    database = Database.parse(database_url)
    return {
        "PERSISTENCE_MODULE": "eventsourcing.postgres",
        "POSTGRES_DBNAME": database.dbname,
        "POSTGRES_HOST": database.get("host") or "127.0.0.1",
        "POSTGRES_PORT": database.get("port") or "5432",
        "POSTGRES_USER": database.get("user") or "postgres",
        "POSTGRES_PASSWORD": database.get("password") or "",
    }


def run_naive(
    database_url: str, count: int, monitor: Monitor, seed: int, key: str
) -> BaselineResult:
    """Load, change and save one aggregate per event; a tenth of the events create one."""
    rng = random.Random(seed)
    devices = max(1, count // 10)
    clock = datetime.now(TZ)
    metas = [
        {
            "source": rng.choice(NAIVE_SOURCES),
            "id": str(UUID(int=rng.getrandbits(128), version=4)),
            "time": (clock + timedelta(milliseconds=i)).isoformat(timespec="milliseconds"),
            "received_at": clock.isoformat(),
            "key": key,
        }
        for i in range(count)
    ]
    statuses = [rng.choice(("online", "offline", "degraded")) for _ in range(count)]
    app = NaiveBench(env=naive_env(database_url))
    try:
        ids: list[UUID] = []
        progress = Progress(count, sys.stderr, label="  eventsourcing naive")
        before = CpuReading.take(None, monitor)
        started = time.perf_counter()
        for i in range(count):
            if i < devices:
                device = BenchDevice(code=f"CAM-{i:05d}", unit="MS", meta=metas[i])
                ids.append(device.id)
            else:
                device = app.repository.get(ids[i % devices])
                device.report_status(statuses[i], metas[i])
            app.save(device)
            progress.show(i + 1)
        seconds = time.perf_counter() - started
        cpu = CpuReading.take(None, monitor).since(before)
        progress.show(count, final=True)
    finally:
        app.close()
    mean_bytes = float(
        monitor.scalar("SELECT coalesce(avg(length(state)), 0) FROM naivebench_events")
    )
    return BaselineResult("eventsourcing naive", count, seconds, count / seconds, mean_bytes, cpu)


def run_copy(monitor: Monitor, first: int, last: int) -> BaselineResult:
    """COPY the events stored between two positions into a table shaped like the log."""
    events = sql.Identifier(EVENTS_TABLE)
    table = sql.Identifier(COPY_TABLE)
    sequence = sql.Identifier(f"{COPY_TABLE}_notification_id_seq")
    with psycopg.connect(Database.parse(monitor.database_url).conninfo) as conn:
        rows = conn.execute(
            sql.SQL(
                "SELECT originator_id, originator_version, topic, state FROM {} "
                "WHERE notification_id > %s AND notification_id <= %s AND topic NOT LIKE %s "
                "ORDER BY notification_id"
            ).format(events),
            (first, last, ALARM_TOPICS),
            binary=True,
        ).fetchall()
        conn.execute(sql.SQL("CREATE TABLE {} (LIKE {} INCLUDING ALL)").format(table, events))
        conn.execute(
            sql.SQL("CREATE SEQUENCE {} OWNED BY {}.notification_id").format(sequence, table)
        )
        conn.execute(
            sql.SQL("ALTER TABLE {} ALTER COLUMN notification_id SET DEFAULT nextval({})").format(
                table, sql.Literal(f"{COPY_TABLE}_notification_id_seq")
            )
        )
        conn.commit()
        progress = Progress(len(rows), sys.stderr, label="  PostgreSQL COPY", unit="rows")
        before = CpuReading.take(None, monitor)
        started = time.perf_counter()
        statement = sql.SQL(
            "COPY {} (originator_id, originator_version, topic, state) FROM STDIN (FORMAT BINARY)"
        ).format(table)
        with conn.cursor() as cursor, cursor.copy(statement) as copy:
            copy.set_types(["uuid", "int8", "text", "bytea"])
            for i, row in enumerate(rows, start=1):
                copy.write_row(row)
                if not i % 1024:
                    progress.show(i)
        conn.commit()
        seconds = time.perf_counter() - started
        cpu = CpuReading.take(None, monitor).since(before)
        progress.show(len(rows), final=True)
    copied = monitor.count(COPY_TABLE)
    if copied != len(rows):
        raise BenchError(f"COPY stored {copied} rows of {len(rows)}")
    mean_bytes = sum(len(r[3]) for r in rows) / len(rows) if rows else 0.0
    return BaselineResult(
        "PostgreSQL COPY", len(rows), seconds, len(rows) / seconds, mean_bytes, cpu
    )
