"""kill -9 of the real server during concurrent ingest, repeated: every acknowledged event
is stored exactly once, at its acknowledged position (docs/DESIGN.md §5).

Each trial starts ``ops-center serve`` on the same embedded data folder, lets several
concurrent clients send new events (single ones and batches, with some already
acknowledged events resent among them), and sends SIGKILL after a random moment; every
other trial the embedded PostgreSQL (postmaster and backends) is SIGKILLed first, so
the next start runs its crash recovery from the WAL. After
the last trial the server is started once more and:

* every acknowledged event, sent again, answers ``duplicate`` with its original position;
* in the database, each acknowledged ``(source, id)`` has one receipt, pointing at the
  domain event at its acknowledged position, and its subject has exactly one domain event;
* no event that was sent but not acknowledged is stored more than once;
* once the projection runners (killed with the server each time) have caught up, every
  read model equals a rebuild from the log.

Trials: ``OPS_CENTER_FAULT_TRIALS`` (default 3, for CI). The long run:
``OPS_CENTER_FAULT_TRIALS=25 python -m pytest -m fault tests/fault/test_kill9.py -s``
(``-s`` prints the figures line).
"""

from __future__ import annotations

import asyncio
import os
import random
import time
from pathlib import Path

import pytest
from opsproc import (
    Ledger,
    Serve,
    load,
    projections_equal_a_rebuild,
    resend_all,
    stored,
    wait_ready,
)

from ops_center.embedded.postgres import EmbeddedPostgres, free_port

pytestmark = [pytest.mark.fault]

TRIALS = int(os.environ.get("OPS_CENTER_FAULT_TRIALS", "3"))
#: Concurrent clients and the sizes of their requests (1: a structured event).
SENDERS = 6
SIZES = (1, 1, 10, 50, 200)
#: The kill comes this many seconds after the load starts (uniformly drawn).
KILL_AFTER = (0.3, 1.5)


@pytest.mark.timeout(120 + 40 * TRIALS)
async def test_kill9_during_concurrent_ingest_loses_and_duplicates_no_acknowledged_event(
    server_dir: Path,
) -> None:
    seed = int(os.environ.get("OPS_CENTER_FAULT_SEED", str(random.randrange(1 << 30))))
    rng = random.Random(seed)
    serve = Serve(server_dir, free_port(), OPS_CENTER_READY_MAX_LAG="0")
    ledger = Ledger()
    started = time.monotonic()
    killed_in_flight = 0
    postgres_kills = 0
    try:
        serve.start()
        await serve.wait_healthy()
        key = await asyncio.to_thread(serve.key, "integration")
        for trial in range(TRIALS):
            if trial:
                serve.start()
                await serve.wait_healthy()
            stop = asyncio.Event()
            before = len(ledger.attempts)
            sending = asyncio.create_task(
                load(serve.base, key, ledger, senders=SENDERS, sizes=SIZES, rng=rng, stop=stop)
            )
            await asyncio.sleep(rng.uniform(*KILL_AFTER))
            if trial % 2:  # every other trial, the database dies first, then the server
                await asyncio.to_thread(serve.kill_postgres)
                postgres_kills += 1
                await asyncio.sleep(rng.uniform(0, 0.3))
            await asyncio.to_thread(serve.kill)
            stop.set()
            await asyncio.wait_for(sending, 60)
            attempts = ledger.attempts[before:]
            assert any(a.status == 200 for a in attempts), f"trial {trial}: no ack (seed {seed})"
            # every answer was an acknowledgement, a connection cut by the kill, or (the
            # database killed first) 503: unavailable, nothing stored
            assert {a.status for a in attempts} <= {200, 503, None}, (seed, attempts[-1])
            killed_in_flight += sum(1 for a in attempts if a.error is not None)

        serve.start()
        await serve.wait_healthy()
        if postgres_kills:  # the database really crashed, and recovered from its WAL
            assert "automatic recovery in progress" in serve.postgres_log()
        # Every acknowledged event, sent again: a duplicate at its acknowledged position.
        keys = list(ledger.acked)
        results = await resend_all(serve.base, key, (ledger.sent[k] for k in keys))
        assert [(r["status"], r["position"]) for r in results] == [
            ("duplicate", ledger.acked[k]) for k in keys
        ], f"seed {seed}"
        # In the database: one receipt and one domain event each, at that position.
        url = await asyncio.to_thread(serve.database_url)
        found = await asyncio.to_thread(stored, url, ledger.sent)
        for k in keys:
            assert found[k] == (ledger.acked[k], 1), (k, found.get(k), seed)
        unacked = set(ledger.sent) - set(ledger.acked)
        assert all(found[k][1] == 1 for k in unacked if k in found), seed
        # The projection runners were killed with the server, mid-chunk or not: once they
        # have caught up, the read models equal a rebuild from the log.
        await wait_ready(serve.base)
        assert serve.stop() == 0
        url = await asyncio.to_thread(serve.database_url)  # the embedded server, again
        rows = await projections_equal_a_rebuild(url)
        await asyncio.to_thread(EmbeddedPostgres(server_dir).stop)
    finally:
        serve.stop()
    elapsed = time.monotonic() - started
    print(
        f"\nkill -9 trials: {TRIALS} (PostgreSQL killed too in {postgres_kills}), "
        f"requests: {len(ledger.attempts)}, "
        f"cut by the kill: {killed_in_flight}, events sent: {len(ledger.sent)}, "
        f"acknowledged and checked: {len(ledger.acked)}, duplicates checked in flight: "
        f"{ledger.duplicates_checked}, unacknowledged but stored: "
        f"{len(set(found) - set(ledger.acked))}, read-model rows equal to a rebuild: {rows}, "
        f"seed: {seed}, {elapsed:.1f} s"
    )
