"""The single-event phase again, sent by Debian's ``wrk`` (a C client): the cross-check.

The benchmark's own client is Python on the same two cores as the server, so its figures
can be the client's limits rather than the server's. ``wrk`` costs a fraction of that CPU;
when it reports about the same requests per second and latencies, the Python client was
not the bottleneck.

`WrkRun` writes the events (one CloudEvent JSON per line, each sent once, in time order)
and a Lua script that hands each request the next one (``wrk`` runs for a fixed time,
so the phase is given fewer seconds than the events last); `run` starts ``wrk --latency``
and `parse` reads its report. Every answer must be a 200; ``wrk`` counts the others
(``Non-2xx or 3xx responses``), and such a count fails the phase.
"""

from __future__ import annotations

import re
import shutil
import subprocess
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Final

import orjson

#: Seconds a ``wrk`` run lasts at most (it runs for the time it is given).
WRK_MAX_SECONDS: Final = 60
#: The script: events from a file, one per request, each sent once.
_SCRIPT: Final = """
local bodies = {}
for line in io.lines("%(events)s") do bodies[#bodies + 1] = line end
local headers = {
  ["Content-Type"] = "application/cloudevents+json",
  ["Authorization"] = "Bearer %(token)s",
}
local next_event = 0

function request()
  next_event = next_event + 1
  -- past the last event, the last one again (stored once: idempotent; the report says)
  local body = bodies[next_event] or bodies[#bodies]
  return wrk.format("POST", "/api/v1/events", headers, body)
end
"""
_UNITS: Final = {"us": 1e-3, "ms": 1.0, "s": 1e3, "m": 6e4}


class WrkError(Exception):
    """``wrk`` failed, or the server refused some of its requests."""


def wrk_executable() -> str | None:
    return shutil.which("wrk")


@dataclass(frozen=True, slots=True)
class WrkReport:
    requests: int
    seconds: float
    requests_per_s: float
    p50_ms: float
    p90_ms: float
    p99_ms: float
    errors: int


def _ms(text: str) -> float:
    match = re.fullmatch(r"([\d.]+)(us|ms|s|m)", text)
    if match is None:
        raise WrkError(f"wrk: cannot read the latency {text!r}")
    return float(match[1]) * _UNITS[match[2]]


def parse(output: str) -> WrkReport:
    """The figures of a ``wrk --latency`` report."""
    total = re.search(r"(\d+) requests in ([\d.]+)(us|ms|s|m)", output)
    rate = re.search(r"Requests/sec:\s+([\d.]+)", output)
    # wrk pads a latency in seconds with a space ("1.31s "), not one in ms
    percentiles = dict(
        re.findall(r"^\s+(50|90|99)(?:\.000)?%\s+(\S+)[ \t]*$", output, re.MULTILINE)
    )
    if total is None or rate is None or set(percentiles) != {"50", "90", "99"}:
        raise WrkError(f"wrk: unexpected report:\n{output}")
    refused = re.findall(r"Non-2xx or 3xx responses:\s*(\d+)", output)
    sockets = re.findall(r"Socket errors:(.*)$", output, re.MULTILINE)
    errors = sum(int(n) for n in refused)
    errors += sum(int(n) for line in sockets for n in re.findall(r"\d+", line))
    return WrkReport(
        requests=int(total[1]),
        seconds=_ms(total[2] + total[3]) / 1000,
        requests_per_s=float(rate[1]),
        p50_ms=_ms(percentiles["50"]),
        p90_ms=_ms(percentiles["90"]),
        p99_ms=_ms(percentiles["99"]),
        errors=errors,
    )


class WrkRun:
    """One run of the ``wrk`` at `executable` (`wrk_executable`) sending `events` once
    each over `connections` connections."""

    def __init__(
        self,
        executable: str,
        directory: Path,
        events: Sequence[dict[str, Any]],
        token: str,
        *,
        connections: int,
    ) -> None:
        self.executable = executable
        self.connections = connections
        self._events = directory / "wrk-events.jsonl"
        self._events.write_bytes(b"\n".join(orjson.dumps(e) for e in events) + b"\n")
        self._script = directory / "wrk-single.lua"
        self._script.write_text(_SCRIPT % {"events": self._events, "token": token})

    def argv(self, url: str, seconds: int) -> list[str]:
        return [
            self.executable,
            # one thread: one ordered walk through the events (and the leanest client)
            *("-t", "1", "-c", str(self.connections)),
            *("-d", f"{seconds}s", "--latency", "-s", str(self._script), url),
        ]

    def run(self, url: str, seconds: int) -> WrkReport:
        """Send for `seconds`: each event once, in order, then the last one again if the
        events run out before the time (`WrkReport.requests` beyond them)."""
        done = subprocess.run(
            self.argv(url, seconds), capture_output=True, text=True, timeout=seconds + 60
        )
        if done.returncode != 0:
            raise WrkError(f"wrk exited with status {done.returncode}: {done.stderr.strip()}")
        report = parse(done.stdout)
        if report.errors:
            raise WrkError(f"wrk: {report.errors} requests failed or were refused:\n{done.stdout}")
        return report
