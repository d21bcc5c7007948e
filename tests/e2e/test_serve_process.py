"""The real `ops-center` command: serve on the embedded default, keys beside it, crash recovery."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
import urllib.error
import urllib.request
import uuid
from pathlib import Path

import pytest

from ops_center.embedded.postgres import free_port

OPS = [sys.executable, "-m", "ops_center.cli"]


def _env() -> dict[str, str]:
    env = dict(os.environ)
    env.pop("DATABASE_URL", None)
    env.pop("REDIS_URL", None)
    return env


def _keys_create(data_dir: Path, name: str, role: str, *scopes: str) -> str:
    args = [*OPS, "keys", "create", name, "--role", role, "--data-dir", str(data_dir)]
    for scope in scopes:
        args += ["--scope", scope]
    done = subprocess.run(args, env=_env(), capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, done.stderr
    return done.stdout.strip().splitlines()[-1]


def _request(url: str, *, key: str | None = None, body: dict | None = None) -> tuple[int, dict]:
    headers = {"Content-Type": "application/cloudevents+json"}
    if key:
        headers["Authorization"] = f"Bearer {key}"
    data = json.dumps(body).encode() if body is not None else None
    request = urllib.request.Request(url, data=data, headers=headers)
    try:
        with urllib.request.urlopen(request, timeout=30) as response:
            return response.status, json.loads(response.read())
    except urllib.error.HTTPError as exc:
        return exc.code, json.loads(exc.read())


def _wait_healthy(base: str, proc: subprocess.Popen[bytes], timeout: float = 90) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        assert proc.poll() is None, "the server exited during start-up"
        try:
            status, _ = _request(f"{base}/healthz")
            if status == 200:
                return
        except OSError:
            pass
        time.sleep(0.2)
    raise AssertionError("the server did not become healthy")


def _serve(data_dir: Path, port: int) -> subprocess.Popen[bytes]:
    args = [*OPS, "serve", "--port", str(port), "--data-dir", str(data_dir)]
    return subprocess.Popen(args, env=_env(), stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)


@pytest.fixture
def data_dir(server_dir: Path) -> Path:
    return server_dir


def _camera(code: str, event_id: str) -> dict:
    return {
        "specversion": "1.0",
        "id": event_id,
        "source": "/test/serve",
        "type": "camera.registered",
        "time": "2026-11-22T09:00:00+07:00",
        "subject": code,
        "data": {"name": "Cổng UBND", "unit": "MS-D01-C01", "kind": "security"},
    }


@pytest.mark.timeout(300)
def test_serve_on_embedded_default_survives_sigkill_and_keeps_acknowledged_events(
    data_dir: Path,
) -> None:
    """Keys work beside a running server; after kill -9 a new start recovers every ack."""
    port = free_port()
    base = f"http://127.0.0.1:{port}"
    key = _keys_create(data_dir, "it-cameras", "integration", "camera.*")
    proc = _serve(data_dir, port)
    try:
        _wait_healthy(base, proc)
        # a key created while the server runs works at once, and the CLI leaves the
        # server's embedded database running
        admin = _keys_create(data_dir, "admin", "admin")
        sent: list[tuple[dict, int]] = []
        for i in range(20):
            event = _camera(f"CAM-{uuid.uuid4().hex[:8]}", f"ev-{i}")
            sender = key if i % 2 else admin
            status, body = _request(f"{base}/api/v1/events", key=sender, body=event)
            assert status == 200, body
            sent.append((event, body["results"][0]["position"]))
        proc.send_signal(signal.SIGKILL)
        proc.wait(30)

        proc = _serve(data_dir, port)
        _wait_healthy(base, proc)
        for event, position in sent:
            status, body = _request(f"{base}/api/v1/events", key=key, body=event)
            assert status == 200, body
            assert body["results"][0] == {
                "id": event["id"],
                "source": event["source"],
                "status": "duplicate",
                "position": position,
            }
        changed = {**sent[0][0], "subject": "CAM-OTHER"}
        status, body = _request(f"{base}/api/v1/events", key=key, body=changed)
        assert status == 422
        assert body["results"][0]["error"]["code"] == "conflict"
    finally:
        proc.send_signal(signal.SIGTERM)
        try:
            proc.wait(30)
        except subprocess.TimeoutExpired:
            proc.kill()
    assert proc.returncode == 0


@pytest.mark.timeout(300)
def test_repeat_of_acknowledged_event_after_restart_answers_original_position(
    data_dir: Path,
) -> None:
    """A clean stop and start keep idempotency: the same event is a duplicate at its position."""
    port = free_port()
    base = f"http://127.0.0.1:{port}"
    key = _keys_create(data_dir, "it", "integration", "camera.*")
    event = _camera("CAM-RESTART", "ev-restart")
    proc = _serve(data_dir, port)
    try:
        _wait_healthy(base, proc)
        status, first = _request(f"{base}/api/v1/events", key=key, body=event)
        assert status == 200
        assert first["results"][0]["status"] == "accepted"
        proc.send_signal(signal.SIGTERM)
        assert proc.wait(60) == 0
        proc = _serve(data_dir, port)
        _wait_healthy(base, proc)
        status, again = _request(f"{base}/api/v1/events", key=key, body=event)
        assert status == 200
        assert again["results"][0]["status"] == "duplicate"
        assert again["results"][0]["position"] == first["results"][0]["position"]
    finally:
        proc.send_signal(signal.SIGTERM)
        try:
            proc.wait(30)
        except subprocess.TimeoutExpired:
            proc.kill()
