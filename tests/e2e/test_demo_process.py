"""The real ``ops-center demo``: serves on the embedded default, fills itself, stops cleanly."""

from __future__ import annotations

import json
import os
import queue
import re
import signal
import subprocess
import sys
import threading
import time
import urllib.error
import urllib.request
from pathlib import Path
from typing import IO

import pytest

from ops_center.embedded.postgres import free_port

ADDRESS = re.compile(r"(http://[^/\s]+)/\?token=(\S+)")


def _env() -> dict[str, str]:
    env = dict(os.environ)
    env.pop("DATABASE_URL", None)
    env.pop("REDIS_URL", None)
    return env


def _lines(stream: IO[str]) -> tuple[queue.Queue[str], threading.Thread]:
    """The lines of `stream` as they come, read by a thread (which ends at end of file)."""
    lines: queue.Queue[str] = queue.Queue()

    def read() -> None:
        for line in stream:
            lines.put(line)

    reader = threading.Thread(target=read, daemon=True)
    reader.start()
    return lines, reader


def _wait_for(lines: queue.Queue[str], pattern: re.Pattern[str], timeout: float) -> re.Match[str]:
    deadline = time.monotonic() + timeout
    seen = []
    while time.monotonic() < deadline:
        try:
            line = lines.get(timeout=0.2)
        except queue.Empty:
            continue
        seen.append(line)
        if match := pattern.search(line):
            return match
    raise AssertionError(f"{pattern.pattern!r} not printed; got:\n{''.join(seen)}")


def _get(url: str, token: str | None = None) -> tuple[int, dict]:
    headers = {"Authorization": f"Bearer {token}"} if token else {}
    request = urllib.request.Request(url, headers=headers)
    try:
        with urllib.request.urlopen(request, timeout=10) as response:
            return response.status, json.loads(response.read() or b"{}")
    except urllib.error.HTTPError as exc:
        return exc.code, {}


def _position(base: str, token: str) -> int:
    status, body = _get(f"{base}/api/v1/overview", token)
    assert status == 200, status
    return int(body["position"])


def _grows(base: str, token: str, above: int, timeout: float = 30) -> int:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        position = _position(base, token)
        if position > above:
            return position
        time.sleep(0.2)
    raise AssertionError(f"the overview stayed at position {above}")


def _demo(data_dir: Path, port: int, log: IO[str]) -> subprocess.Popen[str]:
    args = [
        *(sys.executable, "-m", "ops_center.cli", "demo"),
        *("--port", str(port), "--data-dir", str(data_dir)),
        *("--history", "3", "--speed", "600", "--seed", "5"),
    ]
    return subprocess.Popen(args, env=_env(), stdout=subprocess.PIPE, stderr=log, text=True)


def _run(data_dir: Path, log_path: Path, signum: signal.Signals) -> tuple[bool, int]:
    """Start the demo, check it serves and moves, stop it with `signum`.

    Returns whether it sent a history first, and how many events it sent in all.
    """
    port = free_port()
    with log_path.open("w+") as log:
        proc = _demo(data_dir, port, log)
        assert proc.stdout is not None
        lines, reader = _lines(proc.stdout)
        try:
            match = _wait_for(lines, ADDRESS, timeout=120)
            base, token = match.group(1), match.group(2)
            assert base == f"http://127.0.0.1:{port}"
            assert _get(f"{base}/healthz")[0] == 200
            assert _get(f"{base}/api/v1/overview")[0] == 401  # the page needs its token
            first = _grows(base, token, 0)
            _grows(base, token, first)  # live: the province keeps moving
            live = _wait_for(lines, re.compile(r"(of history|live from)"), timeout=30)
            proc.send_signal(signum)
            summary = _wait_for(lines, re.compile(r"sent ([\d,]+) events .* (\d+) rejected"), 30)
            assert proc.wait(30) == 0
        finally:
            if proc.poll() is None:
                proc.kill()
                proc.wait(10)
            reader.join(10)
            proc.stdout.close()
    assert summary.group(2) == "0"
    with pytest.raises(urllib.error.URLError):  # nothing listens any more
        _get(f"{base}/healthz")
    log_text = log_path.read_text()
    assert "Traceback" not in log_text
    assert "Unclosed" not in log_text
    return live.group(1) == "of history", int(summary.group(1).replace(",", ""))


@pytest.mark.timeout(240)
def test_demo_serves_fills_the_overview_stops_cleanly_and_continues_where_it_was(
    server_dir: Path, tmp_path: Path
) -> None:
    """First run: history, then live, stopped by SIGINT; a second run goes on live (SIGTERM)."""
    with_history, sent = _run(server_dir, tmp_path / "first.log", signal.SIGINT)
    assert with_history
    assert sent > 500
    with_history, sent = _run(server_dir, tmp_path / "second.log", signal.SIGTERM)
    assert not with_history
    assert sent > 0
