"""SIGTERM to the real server under load: it stops taking new connections, commits and
acknowledges the requests in flight, closes WebSockets with 1001 (going away), stops the
embedded PostgreSQL cleanly and exits 0."""

from __future__ import annotations

import asyncio
import json
import random
import signal
import time
from pathlib import Path

import aiohttp
import pytest
from opsproc import Ledger, Serve, load, resend_all, stored

from ops_center.embedded.postgres import free_port

pytestmark = [pytest.mark.fault]

SENDERS = 4
#: Large batches: each takes long enough to be in flight when the signal arrives.
SIZES = (500, 1000)


@pytest.mark.timeout(240)
async def test_sigterm_acknowledges_what_is_in_flight_and_closes_websockets_going_away(
    server_dir: Path,
) -> None:
    serve = Serve(server_dir, free_port(), OPS_CENTER_LOG_FORMAT="json")
    ledger = Ledger()
    try:
        serve.start()
        await serve.wait_healthy()
        key = await asyncio.to_thread(serve.key, "integration")
        viewer = await asyncio.to_thread(serve.key, "viewer")
        async with aiohttp.ClientSession() as session:
            ws = await session.ws_connect(f"{serve.base}/ws?token={viewer}")
            await ws.send_str('{"op": "subscribe", "topic": "overview"}')
            snapshot = await ws.receive_json(timeout=20)
            assert snapshot["op"] == "snapshot"

            stop = asyncio.Event()
            sending = asyncio.create_task(
                load(
                    serve.base,
                    key,
                    ledger,
                    senders=SENDERS,
                    sizes=SIZES,
                    rng=random.Random(8),
                    stop=stop,
                    resend_share=0,
                )
            )
            for _ in range(600):  # load is flowing: a few requests acknowledged
                if sum(1 for a in ledger.attempts if a.status == 200) >= 4:
                    break
                await asyncio.sleep(0.05)
            signalled = time.monotonic()
            serve.proc.send_signal(signal.SIGTERM)  # type: ignore[union-attr]

            # the WebSocket is closed with 1001 (going away)
            while True:
                message = await ws.receive(timeout=30)
                if message.type in (aiohttp.WSMsgType.CLOSE, aiohttp.WSMsgType.CLOSED):
                    break
            assert ws.close_code == aiohttp.WSCloseCode.GOING_AWAY
            # shutdown has begun: new connections are refused
            refused = None
            try:
                async with session.get(f"{serve.base}/healthz") as response:
                    refused = response.status
            except aiohttp.ClientConnectionError as exc:
                refused = type(exc).__name__
            assert refused == "ClientConnectorError", refused
            stop.set()
            await asyncio.wait_for(sending, 60)

        exit_code = await asyncio.to_thread(serve.proc.wait, 60)  # type: ignore[union-attr]
        assert exit_code == 0, serve.output()
        # the embedded PostgreSQL was shut down cleanly
        assert (server_dir / "pgdata" / "PG_VERSION").exists()
        assert not (server_dir / "pgdata" / "postmaster.pid").exists()
        assert "database system is shut down" in (server_dir / "server.log").read_text()
        # the logs were JSON lines: one per request, with ids, and no secret in them
        output = serve.output(whole=True)
        lines = [ln for ln in output.splitlines() if not ln.startswith("ops-center: starting")]
        entries = [json.loads(line) for line in lines]
        requests = [e for e in entries if e["logger"] == "ops_center.requests"]
        ingests = [e for e in requests if e["route"] == "/api/v1/events" and e["status"] == 200]
        assert len(ingests) == sum(1 for a in ledger.attempts if a.status == 200)
        assert all(len(e["request_id"]) == 32 for e in requests)
        assert any(e["route"] == "/ws" and "token=REDACTED" in e["path"] for e in requests)
        assert key not in output
        assert viewer not in output
        # requests sent before the signal and answered after it: acknowledged in flight
        in_flight = [a for a in ledger.attempts if a.started < signalled < a.ended]
        assert any(a.status == 200 for a in in_flight), [(a.status, a.error) for a in in_flight]
        # nothing answered but 200 (committed) or 503 (writer closed: nothing stored), or cut
        assert {a.status for a in ledger.attempts} <= {200, 503, None}

        serve.start()
        await serve.wait_healthy()
        keys = list(ledger.acked)
        results = await resend_all(serve.base, key, (ledger.sent[k] for k in keys))
        assert [(r["status"], r["position"]) for r in results] == [
            ("duplicate", ledger.acked[k]) for k in keys
        ]
        url = await asyncio.to_thread(serve.database_url)
        found = await asyncio.to_thread(stored, url, ledger.acked)
        assert all(found[k] == (ledger.acked[k], 1) for k in keys)
        print(
            f"\nSIGTERM: {len(in_flight)} requests in flight "
            f"({sum(1 for a in in_flight if a.status == 200)} acknowledged, "
            f"{sum(len(a.events) for a in in_flight if a.status == 200)} events), "
            f"{len(keys)} acknowledged events checked"
        )
    finally:
        serve.stop()
