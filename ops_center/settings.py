"""Configuration: every setting has a default, an environment variable and a CLI flag.

Limits are named settings (body size, batch sizes, queue lengths) so that operators can
see and change them in one place. `Settings.from_env` reads the environment; the
command line overrides what it names.
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from dataclasses import dataclass, field, fields, replace
from pathlib import Path
from typing import Any


@dataclass(frozen=True, slots=True)
class Settings:
    """How one server node runs. Environment variable names are in `ENV`."""

    host: str = "127.0.0.1"
    port: int = 8080
    #: Where the embedded PostgreSQL keeps its data when `database_url` is not set.
    data_dir: Path = Path(".ops-center")
    #: ``postgresql://`` URL of an external PostgreSQL; None starts the embedded one.
    database_url: str | None = None
    #: ``redis://`` URL for fan-out across nodes; None uses the in-process bus.
    redis_url: str | None = None
    #: Province profile file; None loads the shipped demo profile.
    profile: Path | None = None

    # Limits
    #: Largest request body accepted by ingest, in bytes (413 above).
    max_body_bytes: int = 8 * 1024 * 1024
    #: Most events in one ingest request (413 above).
    max_request_events: int = 5_000
    #: Most events the writer puts in one transaction.
    commit_max_events: int = 1_000
    #: How long the writer gathers events before committing, in milliseconds.
    commit_max_wait_ms: float = 2.0
    #: Most requests waiting for the writer before submitters wait (backpressure).
    commit_max_queue: int = 10_000
    #: Aggregates kept in memory by the writer.
    aggregate_cache_size: int = 100_000
    #: How long a key lookup is trusted before the keys table is read again (revocation lag).
    key_cache_seconds: float = 5.0
    #: ``Retry-After`` sent with 503 when the event store is unavailable.
    unavailable_retry_after: int = 5
    #: How long startup waits for an external PostgreSQL that is not reachable yet, in
    #: seconds (it retries with a pause and logs each attempt); 0 fails at once.
    startup_wait_seconds: float = 60.0
    #: Seconds of a key's rate a bucket may hold (burst).
    rate_burst_seconds: float = 2.0
    #: Largest message a WebSocket client may send, in bytes (the connection closes above).
    ws_max_message_bytes: int = 64 * 1024
    #: Seconds between pings on a WebSocket; a client that does not answer is closed.
    ws_heartbeat_seconds: float = 30.0
    #: Frames waiting per WebSocket connection before they are coalesced (slow clients).
    ws_queue_frames: int = 64
    #: Origins (``https://wall.example.vn``) allowed to open /ws besides the server's own;
    #: ``*`` allows any. Requests without an Origin header (not browsers) are allowed.
    ws_origins: tuple[str, ...] = ()
    #: Changes of the devices topic kept per node for clients that resume with ``since``.
    stream_resume_changes: int = 1_000
    #: States kept per state topic and scope for clients that resume with ``since``.
    stream_resume_states: int = 64
    #: Fewest milliseconds between two publications of a topic (changes are batched).
    stream_interval_ms: float = 20.0
    #: Seconds between readings of the clock-dependent topics without any new event.
    stream_refresh_seconds: float = 30.0
    #: Seconds Redis may be unreachable before screens are told their data may be stale.
    stream_grace_seconds: float = 2.0
    #: Prefix of the Redis keys of the stream bus (several deployments may share a Redis).
    redis_namespace: str = "ops-center"

    # Alarms
    #: Whether this node runs the alarm rules (one node at a time runs them, elected by an
    #: advisory lock; the others stand by).
    alarm_rules: bool = True
    #: Seconds a camera must stay offline/degraded, or a station offline, before it raises.
    alarm_offline_grace_seconds: float = 300.0
    #: Seconds a critical camera alert keeps its alarm open after the camera's latest one.
    alarm_alert_hold_seconds: float = 1800.0
    #: Seconds after its due time an open dossier raises.
    alarm_dossier_grace_seconds: float = 0.0
    #: Seconds between evaluations of the clock without new events (due times, grace).
    alarm_tick_seconds: float = 5.0

    # Processes
    #: Where the event pipeline (projections, alarm rules, stream publisher) runs for an
    #: HTTP process: ``inline`` (inside it: tests, development) or ``off`` (elsewhere:
    #: ``ops-center serve`` runs it as a process of its own, ``ops-center pipeline`` alone).
    pipeline: str = "inline"
    #: Milliseconds the pipeline lets the log fill after a step that read everything there
    #: was, so that a trickle of single-event commits is applied a few at a time.
    pipeline_gather_ms: float = 20.0
    #: HTTP processes of ``ops-center serve`` (they share the port with ``SO_REUSEPORT``);
    #: by default one per core.
    workers: int = field(default_factory=lambda: os.cpu_count() or 1)

    # Operations
    #: ``/readyz`` answers 503 when a projection is more than this many events behind the log.
    ready_max_lag: int = 10_000
    #: Log lines as ``json`` (one object per line, for collectors) or ``text`` (people).
    log_format: str = "text"
    #: A secret that also opens ``/metrics`` (for Prometheus' ``authorization``), besides
    #: admin keys; None: admin keys only.
    metrics_token: str | None = None

    def replace(self, **changes: Any) -> Settings:
        """A copy with the given fields changed; None values are ignored."""
        return replace(self, **{k: v for k, v in changes.items() if v is not None})

    @classmethod
    def from_env(cls, environ: Mapping[str, str] | None = None) -> Settings:
        """Settings from environment variables (see `ENV`); unset ones keep defaults."""
        environ = os.environ if environ is None else environ
        values: dict[str, Any] = {}
        types = {f.name: f.type for f in fields(cls)}
        for name, variable in ENV.items():
            raw = environ.get(variable)
            if raw is None or raw == "":
                continue
            kind = types[name]
            if kind in ("int",):
                values[name] = int(raw)
            elif kind in ("float",):
                values[name] = float(raw)
            elif kind in ("Path", "Path | None"):
                values[name] = Path(raw)
            elif kind == "bool":
                values[name] = raw.strip().lower() in ("1", "true", "yes", "on")
            elif kind == "tuple[str, ...]":
                values[name] = tuple(part.strip() for part in raw.split(",") if part.strip())
            else:
                values[name] = raw
        return cls(**values)


#: Setting name -> environment variable.
ENV: dict[str, str] = {
    "host": "OPS_CENTER_HOST",
    "port": "OPS_CENTER_PORT",
    "data_dir": "OPS_CENTER_DATA_DIR",
    "database_url": "DATABASE_URL",
    "redis_url": "REDIS_URL",
    "profile": "OPS_CENTER_PROFILE",
    "max_body_bytes": "OPS_CENTER_MAX_BODY_BYTES",
    "max_request_events": "OPS_CENTER_MAX_REQUEST_EVENTS",
    "commit_max_events": "OPS_CENTER_COMMIT_MAX_EVENTS",
    "commit_max_wait_ms": "OPS_CENTER_COMMIT_MAX_WAIT_MS",
    "commit_max_queue": "OPS_CENTER_COMMIT_MAX_QUEUE",
    "aggregate_cache_size": "OPS_CENTER_AGGREGATE_CACHE_SIZE",
    "key_cache_seconds": "OPS_CENTER_KEY_CACHE_SECONDS",
    "unavailable_retry_after": "OPS_CENTER_UNAVAILABLE_RETRY_AFTER",
    "startup_wait_seconds": "OPS_CENTER_STARTUP_WAIT_SECONDS",
    "rate_burst_seconds": "OPS_CENTER_RATE_BURST_SECONDS",
    "ws_max_message_bytes": "OPS_CENTER_WS_MAX_MESSAGE_BYTES",
    "ws_heartbeat_seconds": "OPS_CENTER_WS_HEARTBEAT_SECONDS",
    "ws_queue_frames": "OPS_CENTER_WS_QUEUE_FRAMES",
    "ws_origins": "OPS_CENTER_WS_ORIGINS",
    "stream_resume_changes": "OPS_CENTER_STREAM_RESUME_CHANGES",
    "stream_resume_states": "OPS_CENTER_STREAM_RESUME_STATES",
    "stream_interval_ms": "OPS_CENTER_STREAM_INTERVAL_MS",
    "stream_refresh_seconds": "OPS_CENTER_STREAM_REFRESH_SECONDS",
    "stream_grace_seconds": "OPS_CENTER_STREAM_GRACE_SECONDS",
    "redis_namespace": "OPS_CENTER_REDIS_NAMESPACE",
    "alarm_rules": "OPS_CENTER_ALARM_RULES",
    "alarm_offline_grace_seconds": "OPS_CENTER_ALARM_OFFLINE_GRACE_SECONDS",
    "alarm_alert_hold_seconds": "OPS_CENTER_ALARM_ALERT_HOLD_SECONDS",
    "alarm_dossier_grace_seconds": "OPS_CENTER_ALARM_DOSSIER_GRACE_SECONDS",
    "alarm_tick_seconds": "OPS_CENTER_ALARM_TICK_SECONDS",
    "pipeline": "OPS_CENTER_PIPELINE",
    "pipeline_gather_ms": "OPS_CENTER_PIPELINE_GATHER_MS",
    "workers": "OPS_CENTER_WORKERS",
    "ready_max_lag": "OPS_CENTER_READY_MAX_LAG",
    "log_format": "OPS_CENTER_LOG_FORMAT",
    "metrics_token": "OPS_CENTER_METRICS_TOKEN",
}
