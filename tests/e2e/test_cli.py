"""The real ``ops-center`` command: options wherever written, one-line failures, exit status."""

from __future__ import annotations

import asyncio
import os
import socket
import subprocess
import sys
from collections.abc import Iterator
from importlib import metadata
from pathlib import Path
from typing import Any

import pytest

from ops_center.embedded.postgres import free_port

OPS = [sys.executable, "-m", "ops_center.cli"]


def _env(**changes: str) -> dict[str, str]:
    env = dict(os.environ)
    for name in ("DATABASE_URL", "REDIS_URL", "OPS_CENTER_DATA_DIR", "OPS_CENTER_DEBUG"):
        env.pop(name, None)
    env.pop("OPS_CENTER_TOKEN", None)
    env.update(changes)
    return env


def _ops(*argv: str, **env: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [*OPS, *argv], env=_env(**env), capture_output=True, text=True, timeout=120
    )


def _one_line(err: str) -> str:
    """The only line of `err` (no traceback, no log lines)."""
    lines = err.splitlines()
    assert len(lines) == 1, err
    assert "Traceback" not in err
    return lines[0]


@pytest.fixture
def busy_port() -> Iterator[int]:
    with socket.create_server(("127.0.0.1", 0)) as listener:
        yield listener.getsockname()[1]


def test_version() -> None:
    done = _ops("--version")
    assert done.returncode == 0, done.stderr
    assert done.stdout.strip() == f"ops-center {metadata.version('ops-center')}"


@pytest.mark.timeout(300)
def test_keys_and_projections_take_data_dir_before_or_after_the_sub_command(
    server_dir: Path,
) -> None:
    data = str(server_dir)
    created = _ops("keys", "create", "wall-screen", "--role", "viewer", "--data-dir", data)
    assert created.returncode == 0, created.stderr
    after = _ops("keys", "list", "--data-dir", data)
    before = _ops("keys", "--data-dir", data, "list")
    assert after.returncode == before.returncode == 0, (after.stderr, before.stderr)
    assert "wall-screen" in after.stdout
    assert after.stdout == before.stdout
    revoked = _ops("keys", "--data-dir", data, "revoke", "wall-screen")
    assert revoked.returncode == 0, revoked.stderr
    assert "revoked" in _ops("keys", "list", "--data-dir", data).stdout

    rebuilt = _ops("projections", "rebuild", "--data-dir", data)
    assert rebuilt.returncode == 0, rebuilt.stderr
    assert "feed: rebuilt here" in rebuilt.stdout
    after = _ops("projections", "status", "--data-dir", data)
    before = _ops("projections", "--data-dir", data, "status")
    assert after.returncode == before.returncode == 0, (after.stderr, before.stderr)
    assert after.stdout.splitlines()[0].startswith("PROJECTION")
    assert "feed" in after.stdout
    assert [line.split()[:4] for line in after.stdout.splitlines()] == [
        line.split()[:4] for line in before.stdout.splitlines()
    ]


def test_keys_list_against_a_refused_connection_is_one_line_and_status_1() -> None:
    port = free_port()  # nothing listens there
    url = f"postgresql://postgres:hunter2@127.0.0.1:{port}/postgres"
    for argv in (["keys", "list"], ["projections", "status"]):
        done = _ops(*argv, DATABASE_URL=url)
        assert done.returncode == 1, done.stderr
        line = _one_line(done.stderr)
        assert line.startswith(f"ops-center {argv[0]}: database: ")
        assert str(port) in line
        assert "hunter2" not in line

    debug = _ops("keys", "list", "--debug", DATABASE_URL=url)
    assert debug.returncode == 1
    assert "Traceback" in debug.stderr


def test_a_value_refused_before_any_work_is_a_usage_error(tmp_path: Path) -> None:
    port = free_port()
    url = f"postgresql://postgres@127.0.0.1:{port}/postgres"  # never reached
    done = _ops("keys", "create", "it", "--role", "integration", DATABASE_URL=url)
    assert done.returncode == 2
    assert "--scope" in _one_line(done.stderr)
    done = _ops("projections", "rebuild", "nothing", "--data-dir", str(tmp_path))
    assert done.returncode == 2
    assert "invalid choice: 'nothing'" in done.stderr
    assert not (tmp_path / "pgdata").exists()  # nothing was started


def test_serve_on_a_busy_port_is_one_line_and_status_1(database_url: str, busy_port: int) -> None:
    done = _ops("serve", "--port", str(busy_port), DATABASE_URL=database_url)
    assert done.returncode == 1, done.stderr
    line = _one_line(done.stderr)
    assert line.startswith(f"ops-center serve: 127.0.0.1:{busy_port} is already in use")


def test_demo_on_a_busy_port_is_one_line_and_status_1(tmp_path: Path, busy_port: int) -> None:
    done = _ops("demo", "--port", str(busy_port), "--data-dir", str(tmp_path / "data"))
    assert done.returncode == 1, done.stderr
    assert "already in use" in _one_line(done.stderr)
    assert not (tmp_path / "data").exists()  # checked before the database starts


def test_watch_without_a_key_is_a_usage_error() -> None:
    done = _ops("watch", "overview", "--url", f"http://127.0.0.1:{free_port()}")
    assert done.returncode == 2
    assert "--key" in _one_line(done.stderr)


async def _watch(*argv: str) -> tuple[int, str, str]:
    proc = await asyncio.create_subprocess_exec(
        *OPS,
        "watch",
        *argv,
        "--no-clear",
        env=_env(),
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.PIPE,
    )
    assert proc.stdout is not None
    shown = b""
    ended = False
    try:
        async with asyncio.timeout(60):
            while b"at position" not in shown:
                line = await proc.stdout.readline()
                if not line:
                    ended = True  # the process is exiting by itself
                    break
                shown += line
    finally:
        # Never signal a process that may have exited: Popen.send_signal polls first and
        # reaps it, and asyncio's child watcher then reports 255 instead of its status.
        if not ended and proc.returncode is None:
            proc.terminate()
    rest, err = await proc.communicate()
    assert proc.returncode is not None
    return proc.returncode, (shown + rest).decode(), err.decode()


async def test_watch_takes_the_server_address_and_the_old_spellings(
    make_api: Any, viewer_key: Any
) -> None:
    api = await make_api()
    server = api.client.server
    base = f"http://{server.host}:{server.port}"
    code, out, err = await _watch("overview", "--url", base, "--key", viewer_key.secret)
    assert out.startswith("overview at position"), (out, err)
    ws = f"ws://{server.host}:{server.port}/ws"
    code, out, err = await _watch("feed", "--url", ws, "--token", viewer_key.secret)
    assert out.startswith("feed at position"), (out, err)

    code, out, err = await _watch("overview", "--url", base, "--key", "not-a-key")
    assert code == 1
    assert f"ops-center watch: {ws} refused (401)" in err
