"""``GET /metrics``: this node's metrics in the Prometheus text format (0.0.4).

Who may read it: an ``admin`` key, or the secret of `Settings.metrics_token`
(``OPS_CENTER_METRICS_TOKEN``) when one is set, both as ``Authorization: Bearer``
(Prometheus' ``authorization: {credentials: ...}``). Metrics name keys, routes, rates and
volumes, which is operational intelligence: they are not public. The dedicated token
lets a scraper read metrics without holding a key that may ingest or act.

Families (all prefixed ``ops_center_``):

* ``ingest_events_total{outcome}``, ``ingest_rejections_total{code}``: per-event results;
  the ingest rate is ``rate(ops_center_ingest_events_total[1m])``;
* ``commit_batch_events`` and ``commit_seconds``: histograms of the group-commit
  transactions (events per transaction, duration); ``commit_failures_total``;
* ``event_log_head``, ``projection_position{projection}``,
  ``projection_lag_events{projection}``, ``projection_active{projection}`` (this node runs
  it), ``store_up`` (the database answered the scrape's query);
* ``ws_clients``, ``ws_subscriptions``, ``ws_coalesced_total`` (times a slow client's
  queue was coalesced), ``ws_dropped_frames_total`` (error frames dropped while
  coalescing), ``stream_resyncs_total``;
* ``http_requests_total{method,route,status}``, ``http_request_seconds{route}``: every
  request by route template (``/api/v1/devices/{code}``; ``unmatched`` for unknown paths).

And, unprefixed as Prometheus clients name them: ``process_cpu_seconds_total``,
``process_start_time_seconds``, ``process_resident_memory_bytes``, ``process_open_fds``.
"""

from __future__ import annotations

import hmac
import logging
import os
import time

from aiohttp import web

from ops_center.metrics import CONTENT_TYPE, Family, Metrics
from streams.outbox import Outbox
from web.appkeys import METRICS, PRINCIPAL, PROJECTIONS, SETTINGS, STREAM_HUB, WRITER
from web.problems import problem
from web.ready import read_log_state

log = logging.getLogger(__name__)

PREFIX = "ops_center_"
#: When this process started (seconds since the epoch), for ``process_start_time_seconds``.
_STARTED = time.time()


def metrics_token_accepted(request: web.Request, token: str) -> bool:
    """Whether `token` is the configured metrics secret (constant-time comparison)."""
    expected = request.app[SETTINGS].metrics_token
    return bool(expected) and hmac.compare_digest(token.encode(), str(expected).encode())


def session_closed(app: web.Application, outbox: Outbox) -> None:
    """Keep the counters of a WebSocket connection that is going away."""
    metrics = app[METRICS]
    metrics.ws_closed_coalesced += outbox.coalesced
    metrics.ws_closed_dropped += outbox.dropped


def _gauge(name: str, help: str, value: float) -> Family:
    return Family(PREFIX + name, help, "gauge", samples=[((), value)])


def _counter(name: str, help: str, value: float) -> Family:
    return Family(PREFIX + name, help, "counter", samples=[((), value)])


def _process_families() -> list[Family]:
    """The usual ``process_*`` metrics of Prometheus clients (Linux ``/proc``)."""
    families = [
        Family(
            "process_cpu_seconds_total",
            "User and system CPU time spent in seconds.",
            "counter",
            samples=[((), time.process_time())],
        ),
        Family(
            "process_start_time_seconds",
            "Start time of the process since the Unix epoch in seconds.",
            "gauge",
            samples=[((), _STARTED)],
        ),
    ]
    try:
        with open("/proc/self/statm") as statm:
            resident_pages = int(statm.read().split()[1])
        open_fds = len(os.listdir("/proc/self/fd"))
    except OSError:  # not Linux
        return families
    families += [
        Family(
            "process_resident_memory_bytes",
            "Resident memory size in bytes.",
            "gauge",
            samples=[((), resident_pages * os.sysconf("SC_PAGE_SIZE"))],
        ),
        Family(
            "process_open_fds",
            "Number of open file descriptors.",
            "gauge",
            samples=[((), open_fds)],
        ),
    ]
    return families


async def _state_families(app: web.Application) -> list[Family]:
    """Gauges read at scrape time: the log, projections, writer and WebSockets."""
    families: list[Family] = _process_families()
    runners = app[PROJECTIONS].runners if PROJECTIONS in app else {}
    try:
        state = await read_log_state(app)
    except Exception as exc:
        log.warning("metrics: the database did not answer: %s", exc)
        families.append(_gauge("store_up", "1 when the database answered this scrape.", 0))
    else:
        families.append(_gauge("store_up", "1 when the database answered this scrape.", 1))
        families.append(_gauge("event_log_head", "Last position of the event log.", state.head))
        names = sorted(set(runners) | set(state.positions))
        families.append(
            Family(
                PREFIX + "projection_position",
                "Last position each projection has committed.",
                "gauge",
                ("projection",),
                [((n,), state.positions.get(n, 0)) for n in names],
            )
        )
        families.append(
            Family(
                PREFIX + "projection_lag_events",
                "Events of the log each projection has not applied yet.",
                "gauge",
                ("projection",),
                [((n,), state.lag(n)) for n in names],
            )
        )
    families.append(
        Family(
            PREFIX + "projection_active",
            "1 when this node runs the projection (holds its lock).",
            "gauge",
            ("projection",),
            [((n,), 1 if r.state == "active" else 0) for n, r in sorted(runners.items())],
        )
    )
    if WRITER in app:
        failed = app[WRITER].stats.failed_batches
        families.append(
            _counter("commit_failures_total", "Group-commit transactions that failed.", failed)
        )
    metrics = app[METRICS]
    coalesced, dropped, clients, subscriptions, resyncs = (
        metrics.ws_closed_coalesced,
        metrics.ws_closed_dropped,
        0,
        0,
        0,
    )
    hub = app.get(STREAM_HUB)
    if hub is not None:
        for session in hub.sessions:
            clients += 1
            subscriptions += len(session.subscriptions)
            coalesced += session.outbox.coalesced
            dropped += session.outbox.dropped
        resyncs = hub.resyncs
    families += [
        _gauge("ws_clients", "Open WebSocket connections.", clients),
        _gauge("ws_subscriptions", "Topic subscriptions of the open connections.", subscriptions),
        _counter(
            "ws_coalesced_total", "Times a slow client's queue of frames was coalesced.", coalesced
        ),
        _counter(
            "ws_dropped_frames_total", "Error frames dropped from slow clients' queues.", dropped
        ),
        _counter("stream_resyncs_total", "Fresh snapshots sent instead of deltas.", resyncs),
    ]
    return families


async def get_metrics(request: web.Request) -> web.Response:
    """The exposition; 403 for keys other than admin (the metrics token needs none)."""
    principal = request.get(PRINCIPAL)
    if principal is not None and principal.role != "admin":
        return problem(403, f"key {principal.name!r} ({principal.role}) may not read metrics")
    app = request.app
    text = app[METRICS].registry.render(await _state_families(app))
    response = web.Response(text=text)
    response.headers["Content-Type"] = CONTENT_TYPE
    return response


async def _hook_writer(app: web.Application) -> None:
    if WRITER in app:
        app[WRITER].on_commit.append(app[METRICS].observe_commit)


def add_metrics_routes(app: web.Application) -> None:
    """Create the node's `Metrics`, register ``GET /metrics`` and the writer's hook."""
    app[METRICS] = Metrics()
    app.router.add_get("/metrics", get_metrics)
    app.on_startup.append(_hook_writer)
