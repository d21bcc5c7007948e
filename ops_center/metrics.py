"""Prometheus text exposition (format 0.0.4), written here: counters, gauges, histograms.

Metrics are plain in-process objects updated on the event loop (no locks: aiohttp runs one
loop per process). `Registry.render` writes every family in the text format Prometheus
scrapes: ``# HELP``, ``# TYPE``, then one sample per line with escaped label values.
Histograms are cumulative (``_bucket{le=...}``, ``_sum``, ``_count``), as Prometheus expects.

Labels should have few values (routes, statuses, rejection codes, projection names):
every distinct label tuple is kept for the life of the process.
"""

from __future__ import annotations

import math
from bisect import bisect_left
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, field

Labels = tuple[str, ...]

CONTENT_TYPE = "text/plain; version=0.0.4; charset=utf-8"


def escape_label(value: str) -> str:
    """A label value as the text format wants it: backslash, quote and newline escaped."""
    return value.replace("\\", "\\\\").replace('"', '\\"').replace("\n", "\\n")


def format_value(value: float) -> str:
    if math.isinf(value):
        return "+Inf" if value > 0 else "-Inf"
    if math.isnan(value):
        return "NaN"
    if value == int(value) and abs(value) < 1e15:
        return str(int(value))
    return repr(float(value))


def _labels(names: Sequence[str], values: Sequence[str], extra: str = "") -> str:
    parts = [f'{n}="{escape_label(v)}"' for n, v in zip(names, values, strict=True)]
    if extra:
        parts.append(extra)
    return "{" + ",".join(parts) + "}" if parts else ""


@dataclass(slots=True)
class Family:
    """A metric family as rendered: name, help, type and its samples."""

    name: str
    help: str
    kind: str  # counter | gauge | histogram
    labelnames: tuple[str, ...] = ()
    samples: list[tuple[Labels, float]] = field(default_factory=list)

    def render(self) -> Iterable[str]:
        yield f"# HELP {self.name} {self.help}"
        yield f"# TYPE {self.name} {self.kind}"
        for labels, value in self.samples:
            yield f"{self.name}{_labels(self.labelnames, labels)} {format_value(value)}"


class Counter:
    """A monotonically increasing count per label tuple."""

    def __init__(self, name: str, help: str, labelnames: Sequence[str] = ()) -> None:
        self.name = name
        self.help = help
        self.labelnames = tuple(labelnames)
        self.values: dict[Labels, float] = {}

    def inc(self, *labels: str, amount: float = 1.0) -> None:
        self.values[labels] = self.values.get(labels, 0.0) + amount

    def value(self, *labels: str) -> float:
        return self.values.get(labels, 0.0)

    def render(self) -> Iterable[str]:
        family = Family(self.name, self.help, "counter", self.labelnames)
        family.samples = sorted(self.values.items())
        if not self.labelnames and not family.samples:
            family.samples = [((), 0.0)]
        return family.render()


class Histogram:
    """Observations counted into fixed upper bounds (``le``), with their sum and count."""

    def __init__(
        self,
        name: str,
        help: str,
        buckets: Sequence[float],
        labelnames: Sequence[str] = (),
    ) -> None:
        self.name = name
        self.help = help
        self.labelnames = tuple(labelnames)
        self.bounds = tuple(sorted(buckets))
        #: Per label tuple: counts per bucket (not cumulative; the last is +Inf), sum.
        self._counts: dict[Labels, list[int]] = {}
        self._sums: dict[Labels, float] = {}

    def observe(self, value: float, *labels: str) -> None:
        counts = self._counts.get(labels)
        if counts is None:
            counts = self._counts[labels] = [0] * (len(self.bounds) + 1)
            self._sums[labels] = 0.0
        counts[bisect_left(self.bounds, value)] += 1
        self._sums[labels] += value

    def count(self, *labels: str) -> int:
        return sum(self._counts.get(labels, ()))

    def render(self) -> Iterable[str]:
        yield f"# HELP {self.name} {self.help}"
        yield f"# TYPE {self.name} histogram"
        series = sorted(self._counts.items())
        if not series and not self.labelnames:
            series = [((), [0] * (len(self.bounds) + 1))]
        for labels, counts in series:
            running = 0
            for bound, n in zip((*self.bounds, math.inf), counts, strict=True):
                running += n
                le = f'le="{format_value(bound)}"'
                yield f"{self.name}_bucket{_labels(self.labelnames, labels, le)} {running}"
            total = self._sums.get(labels, 0.0)
            yield f"{self.name}_sum{_labels(self.labelnames, labels)} {format_value(total)}"
            yield f"{self.name}_count{_labels(self.labelnames, labels)} {running}"


Collector = Callable[[], Iterable[Family]]


class Registry:
    """Metrics updated as things happen, plus collectors read at scrape time (gauges of
    state that lives elsewhere: positions, open connections)."""

    def __init__(self) -> None:
        self.metrics: list[Counter | Histogram] = []
        self.collectors: list[Collector] = []

    def counter(self, name: str, help: str, labelnames: Sequence[str] = ()) -> Counter:
        metric = Counter(name, help, labelnames)
        self.metrics.append(metric)
        return metric

    def histogram(
        self, name: str, help: str, buckets: Sequence[float], labelnames: Sequence[str] = ()
    ) -> Histogram:
        metric = Histogram(name, help, buckets, labelnames)
        self.metrics.append(metric)
        return metric

    def render(self, extra: Iterable[Family] = ()) -> str:
        """The whole exposition: updated metrics, collected families, then `extra`."""
        lines: list[str] = []
        for metric in self.metrics:
            lines.extend(metric.render())
        for collect in self.collectors:
            for family in collect():
                lines.extend(family.render())
        for family in extra:
            lines.extend(family.render())
        return "\n".join(lines) + "\n"


#: Events per transaction of the group-commit writer.
BATCH_BUCKETS = (1, 2, 5, 10, 20, 50, 100, 200, 500, 1_000, 2_000, 5_000)
#: Seconds of a commit, of a request.
LATENCY_BUCKETS = (0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0)


class Metrics:
    """The product's own metrics (names in the module `web.metrics` docstring)."""

    def __init__(self) -> None:
        self.registry = registry = Registry()
        self.ingest_events = registry.counter(
            "ops_center_ingest_events_total",
            "Events answered by ingest, by outcome (accepted, duplicate, rejected).",
            ("outcome",),
        )
        self.ingest_rejections = registry.counter(
            "ops_center_ingest_rejections_total",
            "Events rejected by ingest, by rejection code.",
            ("code",),
        )
        self.commit_batch = registry.histogram(
            "ops_center_commit_batch_events",
            "Events per group-commit transaction.",
            BATCH_BUCKETS,
        )
        self.commit_seconds = registry.histogram(
            "ops_center_commit_seconds",
            "Duration of a group-commit transaction in seconds.",
            LATENCY_BUCKETS,
        )
        self.http_requests = registry.counter(
            "ops_center_http_requests_total",
            "HTTP requests answered, by method, route template and status.",
            ("method", "route", "status"),
        )
        self.http_seconds = registry.histogram(
            "ops_center_http_request_seconds",
            "HTTP request duration in seconds, by route template.",
            LATENCY_BUCKETS,
            ("route",),
        )
        #: Frames coalesced and dropped on WebSocket connections already closed (those
        #: of open connections are read from their outboxes at scrape time).
        self.ws_closed_coalesced = 0
        self.ws_closed_dropped = 0

    def count_results(self, results: Iterable[dict[str, object]]) -> None:
        """Count ingest's per-event results (``status``, and ``error.code`` if rejected)."""
        events = self.ingest_events
        for result in results:
            status = str(result["status"])
            events.inc(status)
            if status == "rejected":
                error = result.get("error")
                code = error.get("code") if isinstance(error, dict) else None
                self.ingest_rejections.inc(str(code or "unknown"))

    def observe_commit(self, events: int, seconds: float) -> None:
        """A committed group-commit transaction (the writer's commit hook)."""
        self.commit_batch.observe(events)
        self.commit_seconds.observe(seconds)
