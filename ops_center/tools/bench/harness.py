"""What every benchmark stands on: a scratch database, the server process, the profiler.

* `scratch_database`: a new database ``ops_bench_<hex>`` on the configured server,
  dropped at the end (``WITH (FORCE)``), whatever happens;
* `BenchServer`: ``python -m ops_center.tools.bench.server`` (``ops-center serve`` plus the
  writer's statistics) on a free port, in a process of its own so that the load
  generator does not share its event loop; its log goes to a file, its tail into errors;
* `Profiler`: py-spy recording the server during one phase at a time (optional);
* `bench_settings`: the settings of a run (the benchmarks' own embedded data folder unless
  ``DATABASE_URL`` is set) and the words that say where it ran.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import secrets
import shutil
import signal
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from pathlib import Path
from typing import Final

import psutil  # type: ignore[import-untyped]
import psycopg
from psycopg import sql

from ops_center.embedded.postgres import free_port
from ops_center.settings import Settings
from ops_center.store.database import Database, DatabaseConfigError
from ops_center.tools.bench import DEFAULT_DATA_DIR
from ops_center.tools.bench.client import Connection, HttpError, build_request
from ops_center.tools.bench.report import note

HOST: Final = "127.0.0.1"
#: The module the node's children run as (``python -m ops_center.node.child ROLE``).
CHILD_MODULE: Final = "ops_center.node.child"
SERVER_START_TIMEOUT: Final = 90.0


class BenchError(Exception):
    """The benchmark cannot go on (an event was refused, the server failed, ...)."""


def redact(url: str) -> str:
    """Where the URL connects, without its password."""
    return Database.parse(url).describe()


def bench_settings(args: argparse.Namespace, settings: Settings) -> tuple[Settings, str]:
    """The settings of a run (``--data-dir``, else `DEFAULT_DATA_DIR`; never the server's
    own data folder) and where it runs, for the report."""
    data_dir: Path = getattr(args, "data_dir", None) or DEFAULT_DATA_DIR
    settings = settings.replace(data_dir=data_dir)
    where = (
        f"DATABASE_URL {redact(settings.database_url)}"
        if settings.database_url
        else f"embedded in {data_dir}"
    )
    return settings, where


@contextmanager
def scratch_database(server_url: str, template: str | None = None) -> Iterator[str]:
    """A new database ``ops_bench_<hex>`` on the server of `server_url`, dropped after;
    a copy of the database `template` (its URL, on the same server, with nobody connected
    to it) when one is given."""
    try:
        server = Database.parse(server_url)
    except DatabaseConfigError as exc:
        raise BenchError(str(exc)) from None
    name = f"ops_bench_{secrets.token_hex(6)}"
    create = sql.SQL("CREATE DATABASE {}").format(sql.Identifier(name))
    if template is not None:
        create += sql.SQL(" TEMPLATE {}").format(sql.Identifier(Database.parse(template).dbname))
    with psycopg.connect(server.conninfo, autocommit=True) as conn:
        conn.execute(create)
    try:
        yield server.with_dbname(name).url
    finally:
        with psycopg.connect(server.conninfo, autocommit=True) as conn:
            conn.execute(
                sql.SQL("DROP DATABASE IF EXISTS {} WITH (FORCE)").format(sql.Identifier(name))
            )


class BenchServer:
    """``python -m ops_center.tools.bench.server`` on a free port, logging to a file.

    `env` is added to this process's environment; a None value removes the variable.
    """

    def __init__(
        self,
        database_url: str,
        log_path: Path,
        env: Mapping[str, str | None] | None = None,
        *,
        workers: int = 0,
    ) -> None:
        self.log_path = log_path
        self.port = free_port()
        #: 0: the one-process bench server; N: ``ops-center serve --workers N``.
        self.workers = workers
        self._env = {**os.environ, "DATABASE_URL": database_url}
        if workers:
            # the node's own embedded Redis carries the pipeline's changes to its hubs
            self._env.pop("REDIS_URL", None)
        for name, value in (env or {}).items():
            if value is None:
                self._env.pop(name, None)
            else:
                self._env[name] = value
        self._process: subprocess.Popen[bytes] | None = None

    @property
    def pid(self) -> int:
        assert self._process is not None
        return self._process.pid

    def start(self) -> None:
        if self.workers:
            argv = [
                *(sys.executable, "-m", "ops_center.cli", "serve", "--host", HOST),
                *("--port", str(self.port), "--workers", str(self.workers)),
                *("--data-dir", str(self.log_path.parent / "node")),
            ]
        else:
            argv = [sys.executable, "-m", "ops_center.tools.bench.server", "--port", str(self.port)]
        with self.log_path.open("ab") as log:
            self._process = subprocess.Popen(
                argv,
                stdin=subprocess.DEVNULL,
                stdout=log,
                stderr=subprocess.STDOUT,
                env=self._env,
            )

    async def wait_ready(self) -> None:
        """Wait until ``/healthz`` answers 200; raise `BenchError` if the server died."""
        assert self._process is not None
        request = build_request("GET", HOST, self.port, "/healthz")
        deadline = time.monotonic() + SERVER_START_TIMEOUT
        while time.monotonic() < deadline:
            if self._process.poll() is not None:
                raise BenchError(
                    f"the server exited with status {self._process.returncode}:\n{self.log_tail()}"
                )
            connection = Connection(HOST, self.port)
            try:
                reply = await connection.send(request)
            except HttpError:
                reply = None
            finally:
                await connection.close()
            if reply is not None and reply.status == 200:
                return
            await asyncio.sleep(0.1)
        raise BenchError(f"the server did not start in {SERVER_START_TIMEOUT:.0f} s")

    def roles(self) -> dict[str, list[int]]:
        """The node's processes by role: ``http`` (the HTTP workers), ``pipeline``,
        ``supervisor`` (with the node's embedded Redis); the one-process server is
        ``server``."""
        if not self.workers:
            return {"server": [self.pid]}
        found: dict[str, list[int]] = {"http": [], "pipeline": [], "supervisor": [self.pid]}
        try:
            children = psutil.Process(self.pid).children(recursive=True)
        except psutil.NoSuchProcess:
            return found
        for child in children:
            try:
                argv = child.cmdline()
            except (psutil.NoSuchProcess, psutil.AccessDenied, psutil.ZombieProcess):
                continue
            role = argv[argv.index(CHILD_MODULE) + 1] if CHILD_MODULE in argv[:-1] else None
            found[role if role in found else "supervisor"].append(child.pid)
        return found

    def stop(self) -> None:
        """Graceful stop (SIGTERM: the writer commits what it holds), then SIGKILL."""
        process, self._process = self._process, None
        if process is None:
            return
        if process.poll() is None:
            process.send_signal(signal.SIGTERM)
            try:
                process.wait(timeout=30)
            except subprocess.TimeoutExpired:
                process.kill()
                process.wait()

    def log_tail(self, lines: int = 40) -> str:
        try:
            text = self.log_path.read_text(errors="replace")
        except OSError:
            return "(no server log)"
        return "\n".join(text.splitlines()[-lines:])


@contextmanager
def running_server(
    database_url: str,
    prefix: str,
    profiler: Profiler,
    env: Mapping[str, str | None] | None = None,
    *,
    workers: int,
) -> Iterator[BenchServer]:
    """A started `BenchServer` logging into a new temporary folder (`prefix`). At the end
    the profiler and the server are stopped; the folder is removed after a run that went
    through, and kept, with the log's tail shown, after one that raised."""
    log_dir = Path(tempfile.mkdtemp(prefix=prefix))
    server = BenchServer(database_url, log_dir / "server.log", env, workers=workers)
    server.start()
    note(f"  server pid {server.pid} on port {server.port}, log {server.log_path}")
    failed = True
    try:
        yield server
        failed = False
    finally:
        profiler.stop()
        server.stop()
        if failed:
            note(f"\n  the server's log is kept in {server.log_path}; its tail:")
            note(server.log_tail())
        else:
            shutil.rmtree(log_dir, ignore_errors=True)


class Profiler:
    """py-spy recording the server process during one phase at a time (optional)."""

    SUFFIXES: Final = {"flamegraph": "svg", "speedscope": "json", "raw": "txt"}

    def __init__(self, directory: Path | None, fmt: str) -> None:
        self.directory = directory
        self.format = fmt
        self._process: subprocess.Popen[bytes] | None = None
        self._output: Path | None = None
        self.executable: str | None = None
        if directory is not None:
            beside = Path(sys.executable).parent / "py-spy"
            self.executable = shutil.which("py-spy") or (str(beside) if beside.exists() else None)
            if self.executable is None:
                raise BenchError("--profile needs py-spy on PATH (pip install py-spy)")
            directory.mkdir(parents=True, exist_ok=True)

    def start(self, pid: int, phase: str, *, subprocesses: bool = False, gil: bool = False) -> bool:
        """Start recording `pid` (and its children: a node's processes, each under its
        pid in the profile); False when profiling is off. `gil`: only the thread holding
        the GIL, busy samples only (where one process's CPU goes), instead of every
        thread, idle ones included."""
        if self.directory is None or self.executable is None:
            return False
        self._output = self.directory / f"server-{phase}.{self.SUFFIXES[self.format]}"
        self._process = subprocess.Popen(
            [
                self.executable,
                "record",
                "--pid",
                str(pid),
                "--output",
                str(self._output),
                "--format",
                self.format,
                "--rate",
                "250",
                "--threads",
                *(["--gil"] if gil else ["--idle"]),
                "--nonblocking",
                *(["--subprocesses"] if subprocesses else []),
            ],
            stdin=subprocess.DEVNULL,
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )
        return True

    def stop(self) -> str | None:
        process, self._process = self._process, None
        if process is None:
            return None
        process.send_signal(signal.SIGINT)
        try:
            process.wait(timeout=60)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()
        return str(self._output) if self._output and self._output.exists() else None
