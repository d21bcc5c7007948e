"""Worker processes of the load clients: start, control pipe, own resource usage.

Workers are started with the ``spawn`` context (a fresh interpreter: nothing of the
parent's threads, event loop or sockets is inherited) as daemon processes, so they end
with the parent. Each has a duplex pipe to the parent carrying small tuples
(``("ready", ...)``, ``("stop",)``...) and, at the end, its result. A worker that raises
sends ``("error", traceback)`` and the parent raises `LoadClientError` with it; a worker
that dies silently is reported the same way.

Inside a worker, `Control` turns the pipe into an asyncio queue (the pipe's descriptor is
watched by the event loop, so the worker never blocks on it); the parent's end of the
pipe closing is read as ``("stop",)``.
"""

from __future__ import annotations

import asyncio
import contextlib
import multiprocessing
import resource
import time
import traceback
from collections.abc import Callable, Coroutine
from dataclasses import dataclass
from multiprocessing.connection import Connection
from typing import Any, Final

#: The start method of every worker.
CONTEXT: Final = multiprocessing.get_context("spawn")
#: Seconds a worker may take to exit once told to stop, before it is terminated.
EXIT_TIMEOUT: Final = 10.0

Message = tuple[Any, ...]


class LoadClientError(Exception):
    """A load client could not do what it was asked (a worker failed, a server refused)."""


@dataclass(frozen=True, slots=True)
class ProcessUsage:
    """What one process used over its life: CPU seconds and peak resident memory."""

    pid: int
    cpu_user_s: float
    cpu_system_s: float
    max_rss_mb: float

    @property
    def cpu_s(self) -> float:
        return self.cpu_user_s + self.cpu_system_s

    @classmethod
    def own(cls) -> ProcessUsage:
        """This process's usage so far (``getrusage(RUSAGE_SELF)``; Linux gives kB)."""
        import os

        usage = resource.getrusage(resource.RUSAGE_SELF)
        return cls(os.getpid(), usage.ru_utime, usage.ru_stime, usage.ru_maxrss / 1024)

    def as_json(self) -> dict[str, float]:
        return {
            "pid": self.pid,
            "cpu_user_s": self.cpu_user_s,
            "cpu_system_s": self.cpu_system_s,
            "max_rss_mb": self.max_rss_mb,
        }

    @classmethod
    def from_json(cls, body: dict[str, Any]) -> ProcessUsage:
        return cls(
            int(body["pid"]),
            float(body["cpu_user_s"]),
            float(body["cpu_system_s"]),
            float(body["max_rss_mb"]),
        )


class Worker:
    """One worker process and the parent's end of its pipe.

    `target` is called in the new process as ``target(pipe, *args)``; it must be a
    module-level function and `args` picklable.
    """

    def __init__(self, target: Callable[..., None], args: tuple[Any, ...], name: str) -> None:
        self.name = name
        self.conn, child = CONTEXT.Pipe(duplex=True)
        self.process = CONTEXT.Process(target=target, args=(child, *args), name=name, daemon=True)
        self.process.start()
        child.close()

    @property
    def pid(self) -> int:
        pid = self.process.pid
        assert pid is not None
        return pid

    def send(self, *message: Any) -> None:
        try:
            self.conn.send(message)
        except (BrokenPipeError, ConnectionError, OSError) as exc:
            raise LoadClientError(f"{self.name} is gone ({exc})") from None

    def recv(self, timeout: float) -> Message:
        """The worker's next message; LoadClientError when it failed, died or said
        nothing for `timeout` seconds."""
        deadline = time.monotonic() + timeout
        while True:
            remaining = deadline - time.monotonic()
            if remaining <= 0:
                raise LoadClientError(f"{self.name} did not answer in {timeout:g} s")
            try:
                if self.conn.poll(min(remaining, 0.2)):
                    message: Message = self.conn.recv()
                    if message and message[0] == "error":
                        raise LoadClientError(f"{self.name} failed:\n{message[1]}")
                    return message
            except (EOFError, ConnectionError, OSError):
                self.process.join(1.0)
                code = self.process.exitcode
                raise LoadClientError(f"{self.name} exited (code {code})") from None
            if not self.process.is_alive() and not self.conn.poll():
                raise LoadClientError(f"{self.name} exited (code {self.process.exitcode})")

    def close(self, timeout: float = EXIT_TIMEOUT) -> None:
        """Wait for the process to exit (terminate, then kill, if it does not)."""
        self.process.join(timeout)
        if self.process.is_alive():
            self.process.terminate()
            self.process.join(2.0)
        if self.process.is_alive():
            self.process.kill()
            self.process.join()
        self.conn.close()


def raise_file_limit(needed: int) -> None:
    """Raise this process's soft limit of open files to `needed` (at most the hard
    limit); its children inherit it."""
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    if soft < needed:
        target = needed if hard == resource.RLIM_INFINITY else min(needed, hard)
        resource.setrlimit(resource.RLIMIT_NOFILE, (target, hard))


def run_worker(
    conn: Connection, main: Callable[[Connection], Coroutine[Any, Any, None] | None]
) -> None:
    """Run `main(conn)` (a coroutine function runs in a new event loop); an exception
    goes to the parent as ``("error", traceback)``."""
    try:
        outcome = main(conn)
        if outcome is not None:
            asyncio.run(outcome)
    except BaseException:
        with contextlib.suppress(BrokenPipeError, ConnectionError, OSError):
            conn.send(("error", traceback.format_exc()))
        raise SystemExit(1) from None
    finally:
        conn.close()


class Control:
    """The worker's end of the pipe, read by the event loop into a queue."""

    def __init__(self, conn: Connection) -> None:
        self.conn = conn
        self.queue: asyncio.Queue[Message] = asyncio.Queue()
        self._loop = asyncio.get_running_loop()
        self._loop.add_reader(conn.fileno(), self._readable)

    def _readable(self) -> None:
        try:
            while self.conn.poll():
                self.queue.put_nowait(self.conn.recv())
        except (EOFError, ConnectionError, OSError):
            self._loop.remove_reader(self.conn.fileno())
            self.queue.put_nowait(("stop",))

    async def get(self) -> Message:
        return await self.queue.get()

    def send(self, *message: Any) -> None:
        self.conn.send(message)

    def close(self) -> None:
        self._loop.remove_reader(self.conn.fileno())
