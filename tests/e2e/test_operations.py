"""Operations: /readyz, /metrics (Prometheus exposition) and request logs with request ids."""

from __future__ import annotations

import asyncio
import logging
import re
from typing import Any

import orjson
import pytest
from prometheus_client.openmetrics.parser import (
    text_string_to_metric_families as openmetrics_families,
)
from prometheus_client.parser import text_string_to_metric_families

from ops_center.metrics import LATENCY_BUCKETS
from ops_center.pipeline.rebuild import format_status, status
from ops_center.runtime.logs import JsonFormatter, TextFormatter
from web.appkeys import PROJECTIONS

PROBLEM = "application/problem+json"
TIMEOUT = 20


def parse_exposition(text: str) -> dict[str, dict[str, float]]:
    """Samples by sample name, then by label string (``{a="x",b="y"}``, names sorted);
    prometheus-client's parser raises on anything it cannot read."""
    samples: dict[str, dict[str, float]] = {}
    for family in text_string_to_metric_families(text):
        for sample in family.samples:
            labels = ",".join(f'{k}="{v}"' for k, v in sorted(sample.labels.items()))
            samples.setdefault(sample.name, {})["{" + labels + "}" if labels else ""] = sample.value
    return samples


async def metrics(api: Any, key: Any) -> dict[str, dict[str, float]]:
    async with api.client.get("/metrics", headers=key.headers) as response:
        assert response.status == 200, await response.text()
        assert response.headers["Content-Type"].startswith("text/plain; version=0.0.4")
        return parse_exposition(await response.text())


async def test_readyz_answers_200_without_a_key_when_store_and_projections_are_current(
    make_api: Any, ce: Any
) -> None:
    api = await make_api()
    (position,) = await api.ingest(ce.event("camera.registered"))
    async with asyncio.timeout(TIMEOUT):
        await api.app[PROJECTIONS].wait_for(position)
    reply = await api.get("/readyz", key=None)
    assert reply.status == 200, reply.body
    assert reply.body["status"] == "ready"
    checks = reply.body["checks"]
    assert checks["store"] == {"ok": True, "head": checks["store"]["head"]}
    assert checks["store"]["head"] >= position
    assert checks["projections"]["ok"] is True
    assert set(checks["projections"]["lag"]) == set(api.app[PROJECTIONS].runners) - {"alarm_rules"}


async def test_readyz_answers_503_naming_a_projection_that_lags_behind(
    make_api: Any, ce: Any
) -> None:
    """A projection stopped while events arrive is behind by more than the threshold."""
    api = await make_api(ready_max_lag=1)
    api.app[PROJECTIONS].pause("devices")
    await api.ingest(*(ce.event("camera.registered") for _ in range(3)))
    reply = await api.get("/readyz", key=None)
    assert reply.status == 503, reply.body
    assert reply.content_type == PROBLEM
    assert reply.headers["Retry-After"]
    assert reply.body["type"] == "urn:ops-center:problem:not-ready"
    assert reply.body["failing"] == ["projections"]
    projections = reply.body["checks"]["projections"]
    assert "devices" in projections["behind"]
    assert projections["lag"]["devices"] >= 3
    assert reply.body["checks"]["store"]["ok"] is True


async def test_metrics_need_an_admin_key_or_the_metrics_token(
    make_api: Any, make_key: Any, admin_key: Any
) -> None:
    api = await make_api(metrics_token="scrape-secret-123")
    assert (await api.get("/metrics", key=None)).status == 401
    assert (await api.get("/metrics", key=make_key("viewer"))).status == 403
    assert (await api.get("/metrics", key=make_key("operator"))).status == 403
    assert (await api.get("/metrics")).status == 403  # integration
    async with api.client.get("/metrics", headers={"Authorization": "Bearer wrong"}) as r:
        assert r.status == 401
    async with api.client.get(
        "/metrics", headers={"Authorization": "Bearer scrape-secret-123"}
    ) as r:
        assert r.status == 200
        parse_exposition(await r.text())
    await metrics(api, admin_key)


async def test_metrics_count_ingest_commits_projections_http_and_websockets(
    make_api: Any, admin_key: Any, viewer_key: Any, ce: Any
) -> None:
    api = await make_api()
    before = await metrics(api, admin_key)
    code = ce.code("camera.registered")
    good = ce.event("camera.registered", code)
    bad = ce.event("camera.status", ce.code("camera.registered"), status="online")  # unknown
    invalid = ce.event("camera.status", code, status="exploded")
    reply = await api.batch([good, bad, invalid])
    assert [r["status"] for r in reply.results] == ["accepted", "rejected", "rejected"]
    again = await api.batch([good])
    assert again.results[0]["status"] == "duplicate"
    async with asyncio.timeout(TIMEOUT):
        await api.app[PROJECTIONS].wait_for(reply.results[0]["position"])
    ws = await api.client.ws_connect("/ws", headers=viewer_key.headers)
    await ws.send_str('{"op": "subscribe", "topic": "overview"}')
    await ws.receive(timeout=TIMEOUT)

    after = await metrics(api, admin_key)

    def delta(name: str, labels: str = "") -> float:
        return after.get(name, {}).get(labels, 0.0) - before.get(name, {}).get(labels, 0.0)

    assert delta("ops_center_ingest_events_total", '{outcome="accepted"}') == 1
    assert delta("ops_center_ingest_events_total", '{outcome="duplicate"}') == 1
    assert delta("ops_center_ingest_events_total", '{outcome="rejected"}') == 2
    assert delta("ops_center_ingest_rejections_total", '{code="unknown_subject"}') == 1
    assert delta("ops_center_ingest_rejections_total", '{code="invalid_data"}') == 1
    # two group commits at least (the batch, the duplicate), each observed once
    assert delta("ops_center_commit_batch_events_count") >= 2
    assert delta("ops_center_commit_seconds_count") == delta("ops_center_commit_batch_events_count")
    assert (
        after["ops_center_commit_batch_events_bucket"]['{le="+Inf"}']
        == (after["ops_center_commit_batch_events_count"][""])
    )
    assert after["ops_center_store_up"][""] == 1
    assert after["process_resident_memory_bytes"][""] > 10_000_000
    assert after["process_cpu_seconds_total"][""] > 0
    assert after["ops_center_event_log_head"][""] >= reply.results[0]["position"]
    positions = after["ops_center_projection_position"]
    assert positions['{projection="devices"}'] >= reply.results[0]["position"]
    assert set(after["ops_center_projection_lag_events"]) == set(positions)
    assert after["ops_center_ws_clients"][""] == 1
    assert after["ops_center_ws_subscriptions"][""] == 1
    assert "ops_center_ws_coalesced_total" in after
    assert "ops_center_ws_dropped_frames_total" in after
    label = '{method="POST",route="/api/v1/events",status="200"}'
    assert delta("ops_center_http_requests_total", label) == 2
    assert after["ops_center_http_request_seconds_count"]['{route="/api/v1/events"}'] >= 2
    await ws.close()


#: Every family the hand-written exposition had (before prometheus-client), as the parser
#: names them (counters without ``_total``), with its type and label names: dashboards
#: are built on these.
DASHBOARD_FAMILIES: dict[str, tuple[str, frozenset[str]]] = {
    "ops_center_ingest_events": ("counter", frozenset({"outcome"})),
    "ops_center_ingest_rejections": ("counter", frozenset({"code"})),
    "ops_center_commit_batch_events": ("histogram", frozenset()),
    "ops_center_commit_seconds": ("histogram", frozenset()),
    "ops_center_commit_failures": ("counter", frozenset()),
    "ops_center_http_requests": ("counter", frozenset({"method", "route", "status"})),
    "ops_center_http_request_seconds": ("histogram", frozenset({"route"})),
    "ops_center_store_up": ("gauge", frozenset()),
    "ops_center_event_log_head": ("gauge", frozenset()),
    "ops_center_projection_position": ("gauge", frozenset({"projection"})),
    "ops_center_projection_lag_events": ("gauge", frozenset({"projection"})),
    "ops_center_projection_active": ("gauge", frozenset({"projection"})),
    "ops_center_ws_clients": ("gauge", frozenset()),
    "ops_center_ws_subscriptions": ("gauge", frozenset()),
    "ops_center_ws_coalesced": ("counter", frozenset()),
    "ops_center_ws_dropped_frames": ("counter", frozenset()),
    "ops_center_stream_resyncs": ("counter", frozenset()),
    "process_cpu_seconds": ("counter", frozenset()),
    "process_start_time_seconds": ("gauge", frozenset()),
    "process_resident_memory_bytes": ("gauge", frozenset()),
    "process_open_fds": ("gauge", frozenset()),
}


async def test_metrics_keep_every_family_name_type_and_label_after_traffic(
    make_api: Any, admin_key: Any, viewer_key: Any, ce: Any
) -> None:
    api = await make_api()
    good = ce.event("camera.registered")
    invalid = ce.event("camera.status", ce.code("camera.registered"), status="online")
    reply = await api.batch([good, invalid])
    async with asyncio.timeout(TIMEOUT):
        await api.app[PROJECTIONS].wait_for(reply.results[0]["position"])
    ws = await api.client.ws_connect("/ws", headers=viewer_key.headers)
    await ws.send_str('{"op": "subscribe", "topic": "overview"}')
    await ws.receive(timeout=TIMEOUT)
    await api.get("/api/v1/units", key=viewer_key)

    async with api.client.get("/metrics", headers=admin_key.headers) as response:
        assert response.status == 200
        text = await response.text()
    families = {f.name: f for f in text_string_to_metric_families(text)}
    for name, (kind, labels) in DASHBOARD_FAMILIES.items():
        assert name in families, f"{name} is missing from /metrics"
        family = families[name]
        assert family.type == kind, name
        assert family.samples, f"{name} has no sample"
        for sample in family.samples:
            assert set(sample.labels) - {"le"} == labels, (name, sample)
    # the library's own process and runtime collectors are there too
    assert {"process_virtual_memory_bytes", "python_info"} <= set(families)
    assert not any(name.endswith("_created") for name in families)

    # a histogram has its cumulative buckets, ending with +Inf == count
    seconds = [
        s
        for s in families["ops_center_http_request_seconds"].samples
        if s.labels.get("route") == "/api/v1/units"
    ]
    buckets = [(s.labels["le"], s.value) for s in seconds if s.name.endswith("_bucket")]
    assert [le for le, _ in buckets] == [*(str(b) for b in LATENCY_BUCKETS), "+Inf"]
    counts = [value for _, value in buckets]
    assert counts == sorted(counts)
    (count,) = (s.value for s in seconds if s.name.endswith("_count"))
    assert counts[-1] == count >= 1
    await ws.close()


async def test_metrics_answer_openmetrics_when_the_scraper_asks_for_it(
    make_api: Any, admin_key: Any, ce: Any
) -> None:
    """Prometheus asks for OpenMetrics first; the library's negotiation answers it."""
    api = await make_api()
    await api.ingest(ce.event("camera.registered"))
    accept = "application/openmetrics-text;version=1.0.0;q=0.5,text/plain;version=0.0.4;q=0.2"
    headers = {**admin_key.headers, "Accept": accept}
    async with api.client.get("/metrics", headers=headers) as response:
        assert response.status == 200
        assert response.headers["Content-Type"].startswith(
            "application/openmetrics-text; version=1.0.0"
        )
        text = await response.text()
    assert text.endswith("# EOF\n")
    families = {f.name: f for f in openmetrics_families(text)}
    accepted = [
        s.value
        for s in families["ops_center_ingest_events"].samples
        if s.name == "ops_center_ingest_events_total" and s.labels == {"outcome": "accepted"}
    ]
    assert accepted == [1.0]


async def test_every_request_is_logged_once_with_its_request_id_and_no_secret(
    make_api: Any, viewer_key: Any, caplog: pytest.LogCaptureFixture
) -> None:
    api = await make_api()
    caplog.set_level(logging.INFO, logger="ops_center.requests")
    async with api.client.get(
        f"/api/v1/units?token={viewer_key.secret}", headers={"X-Request-Id": "req-abc.123"}
    ) as response:
        assert response.status == 200
        assert response.headers["X-Request-Id"] == "req-abc.123"
    async with api.client.get(
        "/api/v1/agencies",
        headers={**viewer_key.headers, "X-Request-Id": "bad id <script>" + "x" * 200},
    ) as response:
        assert response.status == 200
        made_up = response.headers["X-Request-Id"]
        assert re.fullmatch(r"[0-9a-f]{32}", made_up)
    ws = await api.client.ws_connect(
        "/ws", headers={**viewer_key.headers, "X-Request-Id": "ws-req-1"}
    )
    assert ws._response.headers["X-Request-Id"] == "ws-req-1"
    await ws.close()

    for _ in range(TIMEOUT * 20):  # the WebSocket's line is written when it has closed
        if any(r.fields["route"] == "/ws" for r in caplog.records):
            break
        await asyncio.sleep(0.05)
    records = [r for r in caplog.records if r.name == "ops_center.requests"]
    assert [r.fields["request_id"] for r in records] == ["req-abc.123", made_up, "ws-req-1"]
    units = records[0].fields
    assert units["method"] == "GET"
    assert units["route"] == "/api/v1/units"
    assert units["status"] == 200
    assert units["duration_ms"] >= 0
    assert units["path"] == "/api/v1/units?token=REDACTED"
    assert units["key"] == viewer_key.name
    assert records[2].fields["status"] == 101
    for formatter in (JsonFormatter(), TextFormatter()):
        for record in records:
            line = formatter.format(record)
            assert viewer_key.secret not in line
            assert "Bearer" not in line
    entry = orjson.loads(JsonFormatter().format(records[0]))
    assert entry["request_id"] == "req-abc.123"
    assert entry["level"] == "INFO"
    assert entry["logger"] == "ops_center.requests"
    assert entry["path"] == "/api/v1/units?token=REDACTED"


async def test_unknown_paths_are_counted_under_one_route_label(
    make_api: Any, admin_key: Any
) -> None:
    """Scanners probing random paths cannot blow up the metrics' label sets."""
    api = await make_api()
    for n in range(5):
        assert (await api.get(f"/no/such/path/{n}", key=admin_key)).status == 404
    after = await metrics(api, admin_key)
    routes = after["ops_center_http_requests_total"]
    assert routes['{method="GET",route="unmatched",status="404"}'] == 5
    assert not any("/no/such" in labels for labels in routes)


async def test_readyz_answers_503_once_shutdown_has_begun(make_api: Any) -> None:
    """The shutdown hook marks the node not ready before connections are closed."""
    api = await make_api()
    assert (await api.get("/readyz", key=None)).status == 200
    for hook in api.app.on_shutdown:
        if hook.__module__ == "web.ready":
            await hook(api.app)
    reply = await api.get("/readyz", key=None)
    assert reply.status == 503
    assert reply.body["failing"] == ["started"]
    assert reply.body["checks"]["started"]["components"]["serving"] is False


async def test_readyz_and_projections_status_show_the_alarm_rules_lag(
    empty_database_url: str, make_api: Any, ce: Any
) -> None:
    # the database first: it is dropped after the app has stopped
    api = await make_api(database_url=empty_database_url, alarm_rules=True)
    (position,) = await api.ingest(ce.event("camera.registered"))
    async with asyncio.timeout(TIMEOUT):
        await api.app[PROJECTIONS].wait_for(position)
    reply = await api.get("/readyz", key=None)
    assert reply.status == 200, reply.body
    lags = reply.body["checks"]["projections"]["lag"]
    assert set(lags) == {*api.app[PROJECTIONS].runners, "alarm_rules"}
    assert lags["alarm_rules"] == 0

    rows = {r["name"]: r for r in await status(empty_database_url)}
    rules = rows["alarm_rules"]
    assert rules["position"] >= position
    assert rules["lag"] == rules["head"] - rules["position"]
    assert "alarm_rules" in format_status(list(rows.values()))


async def test_queries_of_a_projection_being_rebuilt_answer_503_with_retry_after(
    empty_database_url: str, make_api: Any, viewer_key: Any, ce: Any, make_key: Any
) -> None:
    """While the devices projection is rebuilt, its queries answer 503 ``rebuilding``;
    the other projections' queries answer as usual; afterwards devices answers again."""
    import asyncpg

    from projections.projection import reset
    from projections.registry import PROJECTIONS as REGISTRY

    api = await make_api(database_url=empty_database_url)
    viewer = make_key("viewer", url=empty_database_url)
    (position,) = await api.ingest(ce.event("camera.registered"))
    follower = api.app[PROJECTIONS]
    async with asyncio.timeout(TIMEOUT):
        await follower.wait_for(position)
    follower.pause("devices")  # so that the rebuild waits for us
    conn = await asyncpg.connect(empty_database_url)
    try:
        await reset(conn, REGISTRY["devices"]())
    finally:
        await conn.close()
    async with asyncio.timeout(TIMEOUT):
        while True:
            reply = await api.get("/api/v1/devices?kind=camera", key=viewer)
            if reply.status == 503:
                break
            await asyncio.sleep(0.1)
    assert reply.content_type == PROBLEM
    assert reply.body["type"] == "urn:ops-center:problem:rebuilding"
    assert reply.body["rebuilding"] == ["devices"]
    assert int(reply.headers["Retry-After"]) > 0
    assert (await api.get("/api/v1/overview", key=viewer)).status == 503  # reads devices too
    assert (await api.get("/api/v1/feed", key=viewer)).status == 200
    follower.resume("devices")
    async with asyncio.timeout(TIMEOUT):
        while True:
            reply = await api.get("/api/v1/devices?kind=camera", key=viewer)
            if reply.status == 200:
                break
            await asyncio.sleep(0.1)
    assert reply.body["position"] >= position
    assert len(reply.body["items"]) == 1  # rebuilt from the log
