"""The pipeline's metrics: what the follower reports goes to the node's `Metrics`."""

from __future__ import annotations

from collections.abc import Callable

from ops_center.metrics import Metrics
from ops_center.pipeline.follower import Follower


def watch(follower: Follower, metrics: Metrics) -> Callable[[], None]:
    """Count the follower's steps, delays and failures into `metrics`; returns the
    function that copies its active state into the gauges (call it before a scrape and
    every few seconds in multiprocess mode)."""

    def stepped(events: int, seconds: float, delay: float | None) -> None:
        metrics.pipeline_step_events.observe(events)
        metrics.pipeline_step_seconds.observe(seconds)
        if delay is not None:
            metrics.pipeline_delay_seconds.observe(max(delay, 0.0))

    def failed(name: str) -> None:
        metrics.pipeline_failures.labels(name).inc()

    follower.on_step.append(stepped)
    follower.on_failure.append(failed)

    def publish() -> None:
        metrics.pipeline_active.set(1 if follower.state == "active" else 0)
        for name in follower.runners:
            metrics.projection_active.labels(name).set(1 if follower.is_active(name) else 0)

    return publish
