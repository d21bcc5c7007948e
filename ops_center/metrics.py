"""The node's Prometheus metrics, kept by ``prometheus-client``.

`Metrics` holds the product's counters, gauges and histograms and the `CollectorRegistry`
that ``GET /metrics`` renders (`web.metrics`). Every `Metrics` has its own registry, never
the library's global one, so several applications can live in one process (the tests).
The registry also holds the library's process collector (``process_*``: CPU, memory, open
files, start time), platform collector (``python_info``) and garbage-collector collector
(``python_gc_*``). No ``*_created`` series are exported (`disable_created_metrics`, called
on import): they would double the series of every counter and histogram.

Families, with their types and labels (all kept since the exposition was written by hand,
so dashboards keep working; histogram bounds are now written ``le="1.0"`` where they were
``le="1"``, and values ``1.0`` where they were ``1``):

* counters ``ops_center_ingest_events_total{outcome}``,
  ``ops_center_ingest_rejections_total{code}``, ``ops_center_commit_failures_total``,
  ``ops_center_ws_coalesced_total``, ``ops_center_ws_dropped_frames_total``,
  ``ops_center_stream_resyncs_total``, ``ops_center_http_requests_total{method,route,status}``;
* histograms ``ops_center_commit_batch_events``, ``ops_center_commit_seconds``,
  ``ops_center_http_request_seconds{route}``;
* gauges ``ops_center_ws_clients``, ``ops_center_ws_subscriptions``,
  ``ops_center_projection_active{projection}``;
* the pipeline's: gauge ``ops_center_pipeline_active``, histograms
  ``ops_center_pipeline_step_events``, ``ops_center_pipeline_step_seconds``,
  ``ops_center_pipeline_delay_seconds``, counter
  ``ops_center_pipeline_failures_total{consumer}``;
* gauges read from the database at scrape time (`web.metrics`, not kept here):
  ``ops_center_store_up``, ``ops_center_event_log_head``,
  ``ops_center_projection_position{projection}``,
  ``ops_center_projection_lag_events{projection}``.

Several processes per node: when ``PROMETHEUS_MULTIPROC_DIR`` names a directory in the
environment of every process of the node *when the process starts* (prometheus-client
0.26 chooses how values are stored when it is first imported, `prometheus_client.values`),
each process writes its values to files there and the registry renders every process's
files merged by `MultiProcessCollector`: counters and histograms are summed over the
processes, dead ones included (a count does not go back because a process ended). The
gauges kept here are per process and say how they merge:

* ``ws_clients`` and ``ws_subscriptions``: ``livesum``, the node's open connections and
  subscriptions are the sum over its live processes;
* ``projection_active`` and ``pipeline_active``: ``livemax``, 1 when any live process of
  the node runs the projection (follows the log).

"Live" means the library drops a process's gauge files on
`prometheus_client.multiprocess.mark_process_dead`: a process calls it for itself when its
application stops (`web.metrics`), and whatever starts the processes calls it for one that
died and empties the directory before the node starts (counters of an earlier run would
otherwise be added to the new ones). The database gauges are the same for every process
and are read by the process answering the scrape; so are the ``process_*`` families,
which describe that process only. Without the variable every value lives in the process.
Multiprocess mode expects one `Metrics` per process: two in one process would write the
same entries of the same files.

Labels should have few values (routes, statuses, rejection codes, projection names):
every distinct label tuple is kept for the life of the process.
"""

from __future__ import annotations

import os
from collections.abc import Iterable, Iterator
from typing import Final

from prometheus_client import (
    CollectorRegistry,
    Counter,
    Gauge,
    GCCollector,
    Histogram,
    PlatformCollector,
    ProcessCollector,
    disable_created_metrics,
    values,
)
from prometheus_client.exposition import choose_encoder
from prometheus_client.metrics_core import Metric
from prometheus_client.multiprocess import MultiProcessCollector
from prometheus_client.registry import Collector

disable_created_metrics()  # type: ignore[no-untyped-call]

#: The environment variable that turns on multiprocess mode (the library's name).
MULTIPROC_ENV: Final = "PROMETHEUS_MULTIPROC_DIR"
#: Events per transaction of the group-commit writer.
BATCH_BUCKETS: Final = (1, 2, 5, 10, 20, 50, 100, 200, 500, 1_000, 2_000, 5_000)
#: Seconds of a commit, of a request.
LATENCY_BUCKETS: Final = (
    0.001,
    0.0025,
    0.005,
    0.01,
    0.025,
    0.05,
    0.1,
    0.25,
    0.5,
    1.0,
    2.5,
    5.0,
    10.0,
)


def multiprocess_dir() -> str | None:
    """The directory of multiprocess mode, or None for single-process metrics.

    Raises `RuntimeError` when the variable and the library disagree (it was set or
    removed after prometheus-client was imported) or when it is not a directory.
    """
    directory = os.environ.get(MULTIPROC_ENV)
    stored_in_files = bool(getattr(values.ValueClass, "_multiprocess", False))
    if stored_in_files != (directory is not None):
        raise RuntimeError(
            f"{MULTIPROC_ENV} must be set (or unset) before the process starts: "
            "prometheus-client reads it when it is first imported"
        )
    if directory is not None and not os.path.isdir(directory):
        raise RuntimeError(f"{MULTIPROC_ENV}={directory!r} is not a directory")
    return directory


class _Scrape(Collector):
    """One scrape: the registry's families, then families computed for this scrape."""

    def __init__(self, registry: CollectorRegistry, extra: Iterable[Metric]) -> None:
        self._registry = registry
        self._extra = extra

    def collect(self) -> Iterator[Metric]:
        yield from self._registry.collect()
        yield from self._extra


class Total:
    """Feeds a `Counter` from a running total kept elsewhere (a hub's resyncs, a
    writer's failures): `update` adds what the total grew by since the last update."""

    def __init__(self, counter: Counter) -> None:
        self.counter = counter
        self.seen = 0.0

    def update(self, total: float) -> None:
        if total > self.seen:
            self.counter.inc(total - self.seen)
        self.seen = total


class Metrics:
    """The product's metrics and the registry that renders them (see the module)."""

    def __init__(self) -> None:
        directory = multiprocess_dir()
        #: Values are written to files shared by the node's processes.
        self.multiprocess = directory is not None
        self.registry = registry = CollectorRegistry()
        if directory is not None:
            MultiProcessCollector(registry, path=directory)  # type: ignore[no-untyped-call]
        ProcessCollector(registry=registry)
        PlatformCollector(registry=registry)
        GCCollector(registry=registry)
        # In multiprocess mode the metrics are read back from the files, not from here.
        own = None if self.multiprocess else registry

        self.ingest_events = Counter(
            "ops_center_ingest_events_total",
            "Events answered by ingest, by outcome (accepted, duplicate, rejected).",
            ("outcome",),
            registry=own,
        )
        self.ingest_rejections = Counter(
            "ops_center_ingest_rejections_total",
            "Events rejected by ingest, by rejection code.",
            ("code",),
            registry=own,
        )
        self.commit_batch = Histogram(
            "ops_center_commit_batch_events",
            "Events per group-commit transaction.",
            buckets=BATCH_BUCKETS,
            registry=own,
        )
        self.commit_seconds = Histogram(
            "ops_center_commit_seconds",
            "Duration of a group-commit transaction in seconds.",
            buckets=LATENCY_BUCKETS,
            registry=own,
        )
        self.commit_failures = Total(
            Counter(
                "ops_center_commit_failures_total",
                "Group-commit transactions that failed.",
                registry=own,
            )
        )
        self.http_requests = Counter(
            "ops_center_http_requests_total",
            "HTTP requests answered, by method, route template and status.",
            ("method", "route", "status"),
            registry=own,
        )
        self.http_seconds = Histogram(
            "ops_center_http_request_seconds",
            "HTTP request duration in seconds, by route template.",
            ("route",),
            buckets=LATENCY_BUCKETS,
            registry=own,
        )
        self.projection_active = Gauge(
            "ops_center_projection_active",
            "1 when this node runs the projection (holds its lock).",
            ("projection",),
            multiprocess_mode="livemax",
            registry=own,
        )
        self.ws_clients = Gauge(
            "ops_center_ws_clients",
            "Open WebSocket connections.",
            multiprocess_mode="livesum",
            registry=own,
        )
        self.ws_subscriptions = Gauge(
            "ops_center_ws_subscriptions",
            "Topic subscriptions of the open connections.",
            multiprocess_mode="livesum",
            registry=own,
        )
        self.ws_coalesced = Total(
            Counter(
                "ops_center_ws_coalesced_total",
                "Times a slow client's queue of frames was coalesced.",
                registry=own,
            )
        )
        self.ws_dropped = Total(
            Counter(
                "ops_center_ws_dropped_frames_total",
                "Error frames dropped from slow clients' queues.",
                registry=own,
            )
        )
        self.stream_resyncs = Total(
            Counter(
                "ops_center_stream_resyncs_total",
                "Fresh snapshots sent instead of deltas.",
                registry=own,
            )
        )
        self.pipeline_active = Gauge(
            "ops_center_pipeline_active",
            "1 when a process of this node is the active follower of the event log.",
            multiprocess_mode="livemax",
            registry=own,
        )
        self.pipeline_step_events = Histogram(
            "ops_center_pipeline_step_events",
            "Events read in one step of the pipeline's follower.",
            buckets=BATCH_BUCKETS,
            registry=own,
        )
        self.pipeline_step_seconds = Histogram(
            "ops_center_pipeline_step_seconds",
            "Duration of one step of the pipeline's follower, in seconds.",
            buckets=LATENCY_BUCKETS,
            registry=own,
        )
        self.pipeline_delay_seconds = Histogram(
            "ops_center_pipeline_delay_seconds",
            "Seconds from the recording of the oldest event of a step to the step's end.",
            buckets=LATENCY_BUCKETS,
            registry=own,
        )
        self.pipeline_failures = Counter(
            "ops_center_pipeline_failures_total",
            "Steps a projection or the alarm rules failed (rolled back, retried later).",
            ("consumer",),
            registry=own,
        )
        #: Frames coalesced and dropped on WebSocket connections already closed (those
        #: of open connections are read from their outboxes, `web.metrics`).
        self.ws_closed_coalesced = 0
        self.ws_closed_dropped = 0

    def count_results(self, results: Iterable[dict[str, object]]) -> None:
        """Count ingest's per-event results (``status``, and ``error.code`` if rejected)."""
        for result in results:
            status = str(result["status"])
            self.ingest_events.labels(status).inc()
            if status == "rejected":
                error = result.get("error")
                code = error.get("code") if isinstance(error, dict) else None
                self.ingest_rejections.labels(str(code or "unknown")).inc()

    def observe_commit(self, events: int, seconds: float) -> None:
        """A committed group-commit transaction (the writer's commit hook)."""
        self.commit_batch.observe(events)
        self.commit_seconds.observe(seconds)

    def exposition(self, accept: str = "", extra: Iterable[Metric] = ()) -> tuple[bytes, str]:
        """The registry's families and `extra`, in the format the ``Accept`` header asks
        for (the library's choice: OpenMetrics when asked, else the text format 0.0.4),
        and its content type."""
        encode, content_type = choose_encoder(accept)
        return encode(_Scrape(self.registry, extra)), content_type
