"""The real `ops-center serve` as a child process, and a load generator that keeps score.

Used by the process-level tests of this folder: the server runs on the embedded
PostgreSQL in a test folder exactly as an operator would start it; the test talks to it
over HTTP and WebSocket only, and reads the database afterwards to check what was stored.
"""

from __future__ import annotations

import asyncio
import os
import random
import signal
import subprocess
import sys
import time
import uuid
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import aiohttp
import orjson
import psycopg

from ops_center.access.keystore import create_key
from ops_center.embedded.postgres import EmbeddedPostgres

OPS = [sys.executable, "-m", "ops_center.cli"]
BATCH = "application/cloudevents-batch+json"
STRUCTURED = "application/cloudevents+json"
SOURCE = "urn:ops-center:fault"
UNIT = "MS-D01-C01"


def server_env(**extra: str) -> dict[str, str]:
    env = dict(os.environ)
    env.pop("DATABASE_URL", None)
    env.pop("REDIS_URL", None)
    env.update(extra)
    return env


class Serve:
    """``ops-center serve --port P --data-dir D``, its output in ``D/../serve-N.log``."""

    def __init__(self, data_dir: Path, port: int, **env: str) -> None:
        self.data_dir = data_dir
        self.port = port
        self.env = server_env(**env)
        self.base = f"http://127.0.0.1:{port}"
        self.proc: subprocess.Popen[bytes] | None = None
        self.starts = 0

    def start(self) -> None:
        self.starts += 1
        log = (self.data_dir.parent / f"serve-{self.starts}.log").open("wb")
        args = [*OPS, "serve", "--port", str(self.port), "--data-dir", str(self.data_dir)]
        self.proc = subprocess.Popen(args, env=self.env, stdout=log, stderr=subprocess.STDOUT)
        log.close()

    @property
    def pid(self) -> int:
        assert self.proc is not None
        return self.proc.pid

    async def wait_healthy(self, within: float = 120) -> float:
        """Seconds until ``/healthz`` answers 200 (asserts the process stays up)."""
        started = time.monotonic()
        async with aiohttp.ClientSession() as session:
            while time.monotonic() - started < within:
                assert self.proc is not None
                assert self.proc.poll() is None, f"serve exited early: {self.output()}"
                try:
                    async with session.get(f"{self.base}/healthz") as response:
                        if response.status == 200:
                            return time.monotonic() - started
                except aiohttp.ClientError:
                    pass
                await asyncio.sleep(0.1)
        raise AssertionError(f"serve did not become healthy: {self.output()}")

    def output(self, *, whole: bool = False) -> str:
        """What the last start printed (its end only, unless `whole`)."""
        path = self.data_dir.parent / f"serve-{self.starts}.log"
        text = path.read_text(errors="replace") if path.exists() else ""
        return text if whole else text[-4000:]

    def kill(self) -> None:
        assert self.proc is not None
        self.proc.kill()
        self.proc.wait(30)

    def postgres_log(self) -> str:
        """The embedded PostgreSQL's log (with its rotated part)."""
        return "".join(
            path.read_text(errors="replace") for path in sorted(self.data_dir.glob("server.log*"))
        )

    def kill_postgres(self) -> None:
        """SIGKILL the embedded PostgreSQL: its postmaster and every backend (its process
        group, as pg_ctl started it in a session of its own), like a power cut of the
        database without losing the OS's write cache."""
        pid = int((self.data_dir / "pgdata" / "postmaster.pid").read_text().split()[0])
        os.killpg(os.getpgid(pid), signal.SIGKILL)

    def stop(self) -> int | None:
        """SIGTERM and wait (kill after 60 s); the exit code."""
        if self.proc is None or self.proc.poll() is not None:
            return None if self.proc is None else self.proc.returncode
        self.proc.terminate()
        try:
            return self.proc.wait(60)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait(30)
            raise

    def database_url(self) -> str:
        """The URL of the embedded PostgreSQL that serve started (reused, left running)."""
        return EmbeddedPostgres(self.data_dir).start()

    def key(self, role: str) -> str:
        url = self.database_url()
        scopes = ("*",) if role == "integration" else ()
        return create_key(url, f"fault-{role}-{uuid.uuid4().hex[:8]}", role, scopes=scopes)


def camera(code: str | None = None, event_id: str | None = None) -> dict[str, Any]:
    """A valid ``camera.registered`` for a fresh subject: one stored domain event each."""
    return {
        "specversion": "1.0",
        "id": event_id or uuid.uuid4().hex,
        "source": SOURCE,
        "type": "camera.registered",
        "time": "2026-11-22T09:00:00+07:00",
        "subject": code or f"CAM-{uuid.uuid4().hex}",
        "data": {"name": "Camera", "unit": UNIT, "kind": "security"},
    }


@dataclass(slots=True)
class Attempt:
    """One request: when it started and ended (monotonic), and what came back."""

    events: list[dict[str, Any]]
    started: float
    ended: float = 0.0
    status: int | None = None
    results: list[dict[str, Any]] = field(default_factory=list)
    error: str | None = None


@dataclass(slots=True)
class Ledger:
    """Every event sent and every acknowledgement received: ``(source, id)`` -> position."""

    sent: dict[tuple[str, str], dict[str, Any]] = field(default_factory=dict)
    acked: dict[tuple[str, str], int] = field(default_factory=dict)
    attempts: list[Attempt] = field(default_factory=list)
    duplicates_checked: int = 0

    def record(self, attempt: Attempt) -> None:
        """Keep the attempt; an acknowledged event must keep the position it had."""
        self.attempts.append(attempt)
        if attempt.status != 200:
            return
        assert len(attempt.results) == len(attempt.events)
        for event, result in zip(attempt.events, attempt.results, strict=True):
            key = (event["source"], event["id"])
            assert result["status"] in ("accepted", "duplicate"), result
            known = self.acked.get(key)
            if known is not None:
                assert result == {**result, "status": "duplicate", "position": known}, result
                self.duplicates_checked += 1
            self.acked[key] = result["position"]


async def send(
    session: aiohttp.ClientSession, base: str, key: str, events: Sequence[dict[str, Any]]
) -> Attempt:
    """POST `events` (structured when there is one, else a batch); never raises."""
    attempt = Attempt(list(events), time.monotonic())
    if len(events) == 1:
        content_type, body = STRUCTURED, orjson.dumps(events[0])
    else:
        content_type, body = BATCH, orjson.dumps(list(events))
    headers = {"Authorization": f"Bearer {key}", "Content-Type": content_type}
    try:
        async with session.post(f"{base}/api/v1/events", data=body, headers=headers) as resp:
            attempt.status = resp.status
            payload = orjson.loads(await resp.read())
            if resp.status in (200, 422):
                attempt.results = payload["results"]
    except (TimeoutError, aiohttp.ClientError, OSError) as exc:
        attempt.error = type(exc).__name__
    attempt.ended = time.monotonic()
    return attempt


async def load(
    base: str,
    key: str,
    ledger: Ledger,
    *,
    senders: int,
    sizes: Sequence[int],
    rng: random.Random,
    stop: asyncio.Event,
    resend_share: float = 0.05,
    keep_going: bool = False,
) -> None:
    """`senders` concurrent clients sending new events (and some already acknowledged ones
    again) until `stop` is set or the server goes away (with `keep_going`, a client whose
    request failed tries again, as an integration does, until `stop`)."""

    async def client(session: aiohttp.ClientSession) -> None:
        while not stop.is_set():
            size = rng.choice(sizes)
            events = [camera() for _ in range(size)]
            if ledger.acked and size > 1:
                for _ in range(int(size * resend_share)):
                    source, event_id = rng.choice(list(ledger.acked))
                    events.append(ledger.sent[(source, event_id)])
            for event in events:
                ledger.sent.setdefault((event["source"], event["id"]), event)
            attempt = await send(session, base, key, events)
            ledger.record(attempt)
            if attempt.error is not None:
                if not keep_going:
                    return
                await asyncio.sleep(0.05)

    timeout = aiohttp.ClientTimeout(total=60)
    async with aiohttp.ClientSession(timeout=timeout) as session:
        await asyncio.gather(*(client(session) for _ in range(senders)))


async def resend_all(
    base: str, key: str, events: Iterable[dict[str, Any]], chunk: int = 1000
) -> list[dict[str, Any]]:
    """Send `events` again in batches; the results, in order (asserts 200s)."""
    results: list[dict[str, Any]] = []
    pending = list(events)
    async with aiohttp.ClientSession() as session:
        for start in range(0, len(pending), chunk):
            attempt = await send(session, base, key, pending[start : start + chunk])
            if len(attempt.events) == 1:  # structured: one event
                assert attempt.status in (200, 422), attempt
            else:
                assert attempt.status == 200, attempt
            results += attempt.results
    return results


def stored(
    database_url: str, keys: Iterable[tuple[str, str]]
) -> dict[tuple[str, str], tuple[int, int]]:
    """For each ``(source, id)`` with a receipt: the position of its domain event and how
    many domain events its subject has in the log."""
    keys = list(keys)
    with psycopg.connect(database_url) as conn:
        rows = conn.execute(
            "SELECT r.source, r.event_id, e.notification_id, "
            "(SELECT count(*) FROM ops_events x WHERE x.originator_id = r.originator_id) "
            "FROM unnest(%s::text[], %s::text[]) AS k(source, event_id) "
            "JOIN ingest_receipts r USING (source, event_id) "
            "JOIN ops_events e ON e.originator_id = r.originator_id "
            "AND e.originator_version = r.originator_version",
            ([k[0] for k in keys], [k[1] for k in keys]),
        ).fetchall()
    return {(row[0], row[1]): (row[2], row[3]) for row in rows}


async def projections_equal_a_rebuild(database_url: str) -> int:
    """Dump every projection's tables as the runners left them, rebuild every projection
    from position 0 in large chunks, dump again; assert both equal. The rows compared."""
    import asyncpg

    from projections.projection import reset, step
    from projections.registry import create_projections

    async def dump(conn: Any, projections: Sequence[Any]) -> dict[str, list[Any]]:
        out: dict[str, list[Any]] = {}
        for projection in projections:
            for table in projection.tables:
                rows = await conn.fetch(f"SELECT * FROM {table}")
                out[table] = sorted(tuple(str(v) for v in row.values()) for row in rows)
        return out

    conn = await asyncpg.connect(database_url)
    try:
        projections = create_projections()
        live = await dump(conn, projections)
        for projection in projections:
            await reset(conn, projection)
            while not (await step(conn, projection, batch=10_000, window=30_000)).caught_up:
                pass
        rebuilt = await dump(conn, projections)
    finally:
        await conn.close()
    for table in live:
        assert live[table] == rebuilt[table], f"{table}: the live read model differs from a rebuild"
    return sum(len(rows) for rows in live.values())


async def wait_ready(base: str, within: float = 120) -> None:
    """Until ``/readyz`` answers 200 (with OPS_CENTER_READY_MAX_LAG=0: caught up)."""
    deadline = time.monotonic() + within
    async with aiohttp.ClientSession() as session:
        for _ in range(int(within * 10)):
            async with session.get(f"{base}/readyz") as response:
                body = await response.read()
                if response.status == 200:
                    return
            assert time.monotonic() < deadline, body
            await asyncio.sleep(0.1)
    raise AssertionError(f"not ready within {within} s")
