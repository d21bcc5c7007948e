"""Typed keys for everything the application shares, gathered in one place."""

from __future__ import annotations

import asyncio
import weakref
from typing import Any

from aiohttp import web

from ops_center.access.keys import Principal
from ops_center.access.keystore import Keyring
from ops_center.access.ratelimit import Limits
from ops_center.alarms.engine import AlarmDesk
from ops_center.metrics import Metrics
from ops_center.pipeline.follower import Follower
from ops_center.province.profile import Profile
from ops_center.settings import Settings
from ops_center.store.application import OpsCenter
from ops_center.store.database import Database
from ops_center.store.writer import GroupCommitWriter
from streams.bus import Bus
from streams.hub import Hub
from streams.publisher import Publisher
from streams.sources import Source

SETTINGS = web.AppKey("settings", Settings)
PROFILE = web.AppKey("profile", Profile)
#: The PostgreSQL server in use (external, or the embedded server), for every driver.
DATABASE = web.AppKey("database", Database)
#: The asyncpg pool for reads (keys, projections, queries).
DB_POOL = web.AppKey("db_pool", Any)
EVENT_STORE = web.AppKey("event_store", OpsCenter)
WRITER = web.AppKey("writer", GroupCommitWriter)
KEYRING = web.AppKey("keyring", Keyring)
#: Per-key rate limits: shared through Redis when `Settings.redis_url` is set.
RATE_LIMITER = web.AppKey("rate_limiter", Limits)
#: Set once every resource has started; /healthz answers 200 only then.
READY = web.AppKey("ready", dict[str, bool])
#: The Prometheus metrics of this node and their own registry (``GET /metrics``, `web.metrics`).
METRICS = web.AppKey("metrics", Metrics)
#: The pipeline's follower when it runs inside this process (``Settings.pipeline`` is
#: ``inline``): projections and alarm rules, one active follower across nodes.
PROJECTIONS = web.AppKey("projections", Follower)
#: The projections being rebuilt now (read from the database every second).
REBUILDING = web.AppKey("rebuilding", set[str])
#: Alarms in the event store (operators' actions; the rules' own desk when inline).
ALARM_DESK = web.AppKey("alarm_desk", AlarmDesk)
#: The stream bus, this process's hub (WebSocket subscriptions) and, when the pipeline runs
#: inside this process, the publisher of changes.
STREAM_BUS = web.AppKey("stream_bus", Bus)
STREAM_HUB = web.AppKey("stream_hub", Hub)
STREAM_PUBLISHER = web.AppKey("stream_publisher", Publisher)
#: What the streams read from the database; replays read the past through it.
STREAM_SOURCE = web.AppKey("stream_source", Source)
#: The open WebSockets and their transports, closed with 1001 (going away) on shutdown.
WEBSOCKETS: web.AppKey[
    weakref.WeakKeyDictionary[web.WebSocketResponse, asyncio.Transport | None]
] = web.AppKey("websockets")

PRINCIPAL = web.RequestKey("principal", Principal)
#: The request id (``X-Request-Id``, accepted or made up) of the request log (`web.logs`).
REQUEST_ID = web.RequestKey("request_id", str)
