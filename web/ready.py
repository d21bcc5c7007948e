"""``GET /readyz``: may a load balancer send traffic here? (no key needed, like /healthz)

``/healthz`` says the process has started its resources (liveness). ``/readyz`` says it
can do its work now:

* ``started``: every resource has started and shutdown has not begun;
* ``store``: the event store's database answers within `CHECK_TIMEOUT` seconds;
* ``projections``: every projection is at most `Settings.ready_max_lag` events behind the
  head of the event log (positions as committed in the database, whichever node runs the
  projection), and so are the alarm rules (as ``alarm_rules``) when they are enabled.

200 with ``{"status": "ready", "checks": {...}}`` when all pass; otherwise 503
problem+json (``urn:ops-center:problem:not-ready``) with the same ``checks`` and the names
of the ``failing`` ones, and ``Retry-After``.
"""

from __future__ import annotations

import asyncio
from dataclasses import dataclass
from typing import Any, Final

import asyncpg
import orjson
from aiohttp import web

from ops_center.alarms.engine import RULES_NAME
from projections.projection import head_position, read_positions
from projections.registry import PROJECTIONS
from web.appkeys import DB_POOL, READY, SETTINGS
from web.problems import problem

#: Seconds the database may take to answer a readiness or metrics query.
CHECK_TIMEOUT: Final = 2.0
#: The alarm rules' entry among the positions (they follow the log like a projection).
RULES: Final = "alarm_rules"
#: The component set once every resource has started and cleared when shutdown begins.
SERVING: Final = "serving"


@dataclass(frozen=True, slots=True)
class LogState:
    """The head of the event log and every projection's committed position."""

    head: int
    positions: dict[str, int]

    def lag(self, name: str) -> int:
        return max(self.head - self.positions.get(name, 0), 0)


async def read_log_state(app: web.Application) -> LogState:
    """Read the log's head and the projections' positions in one round of queries.

    Raises `OSError`, `TimeoutError` or a database error when the store does not answer.
    """
    pool: asyncpg.Pool = app[DB_POOL]
    async with asyncio.timeout(CHECK_TIMEOUT), pool.acquire() as conn:
        head = await head_position(conn)
        positions = await read_positions(conn)
        if await conn.fetchval("SELECT to_regclass('alarm_rules_position') IS NOT NULL"):
            rules = await conn.fetchval(
                "SELECT position FROM alarm_rules_position WHERE name = $1", RULES_NAME
            )
            if rules is not None:
                positions[RULES] = int(rules)
    return LogState(head, positions)


async def get_readyz(request: web.Request) -> web.Response:
    app = request.app
    settings = app[SETTINGS]
    ready = app[READY]
    checks: dict[str, Any] = {}
    started = bool(ready) and all(ready.values()) and ready.get(SERVING, False)
    checks["started"] = {"ok": started, "components": ready}
    state: LogState | None = None
    if DB_POOL in app:
        try:
            state = await read_log_state(app)
            checks["store"] = {"ok": True, "head": state.head}
        except Exception as exc:
            checks["store"] = {"ok": False, "error": f"{type(exc).__name__}: {exc}"}
    else:
        checks["store"] = {"ok": False, "error": "not started"}
    if state is not None:
        names = list(PROJECTIONS)
        if settings.alarm_rules:
            names.append(RULES)
        lags = {name: state.lag(name) for name in names}
        behind = sorted(name for name, lag in lags.items() if lag > settings.ready_max_lag)
        checks["projections"] = {
            "ok": not behind,
            "max_lag": settings.ready_max_lag,
            "lag": lags,
            "behind": behind,
        }
    else:
        checks["projections"] = {"ok": False, "error": "unknown: the store or runners are down"}
    failing = [name for name, check in checks.items() if not check["ok"]]
    if not failing:
        body = {"status": "ready", "checks": checks}
        return web.Response(body=orjson.dumps(body), content_type="application/json")
    return problem(
        503,
        f"not ready: {', '.join(failing)}",
        slug="not-ready",
        headers={"Retry-After": str(settings.unavailable_retry_after)},
        failing=failing,
        checks=checks,
    )


async def _serving(app: web.Application) -> None:
    app[READY][SERVING] = True


async def _stopping(app: web.Application) -> None:
    app[READY][SERVING] = False


def add_ready_routes(app: web.Application) -> None:
    """Register ``GET /readyz`` and mark the node not ready when shutdown begins."""
    app.router.add_get("/readyz", get_readyz)
    app.on_startup.append(_serving)
    app.on_shutdown.insert(0, _stopping)
