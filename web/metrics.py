"""``GET /metrics``: this node's metrics in a Prometheus exposition format.

Who may read it: an ``admin`` key, or the secret of `Settings.metrics_token`
(``OPS_CENTER_METRICS_TOKEN``) when one is set, both as ``Authorization: Bearer``
(Prometheus' ``authorization: {credentials: ...}``). Metrics name keys, routes, rates and
volumes, which is operational intelligence: they are not public. The dedicated token
lets a scraper read metrics without holding a key that may ingest or act.

The format is the one prometheus-client chooses from the ``Accept`` header: OpenMetrics
when the scraper asks for it (Prometheus does), else the text format 0.0.4, with the
matching ``Content-Type``. The families, their labels and how they merge across the
processes of a node are listed in `ops_center.metrics`; this module adds the values that
live elsewhere:

* read from the database at each scrape, by the process that answers it:
  ``ops_center_store_up`` (the database answered), ``ops_center_event_log_head``,
  ``ops_center_projection_position{projection}`` and
  ``ops_center_projection_lag_events{projection}`` (events of the log not applied yet,
  whichever node runs the projection);
* this process's state, copied into its metrics by `publish_process_state` just before
  each exposition (and, in multiprocess mode, every `PUBLISH_SECONDS`, since a scrape is
  answered by one process only: the other processes' values are at most that old): open
  WebSockets and subscriptions, coalesced and dropped frames, the hub's resyncs, the
  writer's failed transactions, which projections this process runs.
"""

from __future__ import annotations

import asyncio
import contextlib
import hmac
import logging
import os
from collections.abc import AsyncIterator
from typing import Final

from aiohttp import hdrs, web
from prometheus_client.metrics_core import GaugeMetricFamily, Metric
from prometheus_client.multiprocess import mark_process_dead

from ops_center.metrics import Metrics
from streams.outbox import Outbox
from web.appkeys import METRICS, PRINCIPAL, PROJECTIONS, SETTINGS, STREAM_HUB, WRITER
from web.problems import problem
from web.ready import read_log_state

log = logging.getLogger(__name__)

#: Seconds between two copies of a process's state into the shared files (multiprocess).
PUBLISH_SECONDS: Final = 5.0


def metrics_token_accepted(request: web.Request, token: str) -> bool:
    """Whether `token` is the configured metrics secret (constant-time comparison)."""
    expected = request.app[SETTINGS].metrics_token
    return bool(expected) and hmac.compare_digest(token.encode(), str(expected).encode())


def session_closed(app: web.Application, outbox: Outbox) -> None:
    """Keep the counters of a WebSocket connection that is going away."""
    metrics = app[METRICS]
    metrics.ws_closed_coalesced += outbox.coalesced
    metrics.ws_closed_dropped += outbox.dropped


def publish_process_state(app: web.Application) -> None:
    """Copy this process's WebSocket, stream, writer and projection state into its metrics."""
    metrics = app[METRICS]
    if PROJECTIONS in app:
        follower = app[PROJECTIONS]
        for name in follower.runners:
            metrics.projection_active.labels(name).set(1 if follower.is_active(name) else 0)
    if WRITER in app:
        metrics.commit_failures.update(app[WRITER].stats.failed_batches)
    clients = subscriptions = 0
    coalesced, dropped = metrics.ws_closed_coalesced, metrics.ws_closed_dropped
    hub = app.get(STREAM_HUB)
    if hub is not None:
        for session in hub.sessions:
            clients += 1
            subscriptions += len(session.subscriptions)
            coalesced += session.outbox.coalesced
            dropped += session.outbox.dropped
        metrics.stream_resyncs.update(hub.resyncs)
    metrics.ws_clients.set(clients)
    metrics.ws_subscriptions.set(subscriptions)
    metrics.ws_coalesced.update(coalesced)
    metrics.ws_dropped.update(dropped)


async def database_families(app: web.Application) -> list[Metric]:
    """The gauges read from the database for this scrape (``store_up`` 0 and nothing
    else when it does not answer)."""
    up = GaugeMetricFamily("ops_center_store_up", "1 when the database answered this scrape.")
    try:
        state = await read_log_state(app)
    except Exception as exc:
        log.warning("metrics: the database did not answer: %s", exc)
        up.add_metric([], 0)
        return [up]
    up.add_metric([], 1)
    runners = app[PROJECTIONS].runners if PROJECTIONS in app else {}
    names = sorted(set(runners) | set(state.positions))
    position = GaugeMetricFamily(
        "ops_center_projection_position",
        "Last position each projection has committed.",
        labels=["projection"],
    )
    lag = GaugeMetricFamily(
        "ops_center_projection_lag_events",
        "Events of the log each projection has not applied yet.",
        labels=["projection"],
    )
    for name in names:
        position.add_metric([name], state.positions.get(name, 0))
        lag.add_metric([name], state.lag(name))
    head = GaugeMetricFamily(
        "ops_center_event_log_head", "Last position of the event log.", value=state.head
    )
    return [up, head, position, lag]


async def get_metrics(request: web.Request) -> web.Response:
    """The exposition; 403 for keys other than admin (the metrics token needs none)."""
    principal = request.get(PRINCIPAL)
    if principal is not None and principal.role != "admin":
        return problem(403, f"key {principal.name!r} ({principal.role}) may not read metrics")
    app = request.app
    families = await database_families(app)
    publish_process_state(app)
    accept = ",".join(request.headers.getall(hdrs.ACCEPT, []))
    body, content_type = app[METRICS].exposition(accept, families)
    return web.Response(body=body, headers={hdrs.CONTENT_TYPE: content_type})


async def _hook_writer(app: web.Application) -> None:
    if WRITER in app:
        app[WRITER].on_commit.append(app[METRICS].observe_commit)


async def process_publisher(app: web.Application) -> AsyncIterator[None]:
    """In multiprocess mode: publish this process's state every `PUBLISH_SECONDS`; when
    the application stops, drop this process's gauges from the shared files."""
    if not app[METRICS].multiprocess:
        yield
        return

    async def publish() -> None:
        while True:
            await asyncio.sleep(PUBLISH_SECONDS)
            try:
                publish_process_state(app)
            except Exception:
                log.exception("metrics: publishing this process's state failed")

    task = asyncio.create_task(publish(), name="metrics:publisher")
    try:
        yield
    finally:
        task.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await task
        mark_process_dead(os.getpid())  # type: ignore[no-untyped-call]


def add_metrics_routes(app: web.Application) -> None:
    """Create the node's `Metrics` (its own registry), register ``GET /metrics``, the
    writer's hook and the multiprocess publisher."""
    app[METRICS] = Metrics()
    app.router.add_get("/metrics", get_metrics)
    app.on_startup.append(_hook_writer)
    app.cleanup_ctx.append(process_publisher)
