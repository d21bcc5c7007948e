"""End-to-end fixtures: the real app over a socket, on a real PostgreSQL, with real keys.

Nothing is mocked: `make_api` builds ``create_app(Settings(database_url=..., ...))`` and
serves it with pytest-aiohttp's ``aiohttp_client`` (real HTTP on 127.0.0.1); keys are
created with `ops_center.access.keystore.create_key`, as the command line does.

* ``make_key(role, scopes=..., sources=..., rate=..., url=...)``: a key under a unique name.
* ``make_api(key=..., **settings)``: an `Api` (client + key) on a freshly started app.
* ``api``: the app with default settings and an integration key allowed everything.
* ``ce``: the `CloudEvents` builders (valid data for every catalogue type).

Tests never reset tables: every test uses fresh uuid4-based event ids, subject codes and
key names, so what other tests stored cannot collide with what it sends.
"""

from __future__ import annotations

import asyncio
import dataclasses
from collections.abc import Awaitable, Callable, Iterator, Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta, timezone
from typing import Any
from uuid import UUID, uuid4

import orjson
import pytest
from aiohttp.test_utils import TestClient

from ops_center.access.keystore import create_key
from ops_center.domain import subject_id
from ops_center.province.profile import load_profile
from ops_center.settings import Settings
from web.app import create_app
from web.appkeys import EVENT_STORE

STRUCTURED = "application/cloudevents+json"
BATCH = "application/cloudevents-batch+json"
NDJSON = "application/x-ndjson"
PROBLEM = "application/problem+json"


def uid() -> str:
    return uuid4().hex


class CloudEvents:
    """Builders of valid CloudEvents for every type of the catalogue (docs/CONTRACT.md §3).

    Unit and agency codes come from the shipped demo profile; ids and subject codes are
    fresh uuid4 hex strings, so no two tests ever share an event or a subject.
    """

    PROFILE = load_profile()
    UNIT = next(u.code for u in PROFILE.units.values() if u.level in ("commune", "ward"))
    DISTRICT = next(u.code for u in PROFILE.units.values() if u.level == "district")
    PROVINCE = PROFILE.root.code
    AGENCY, OTHER_AGENCY = list(PROFILE.agencies)[:2]
    SOURCE = "urn:ops-center:e2e"
    VN = timezone(timedelta(hours=7))
    #: Event times are offsets from this fixed moment (Vietnam time).
    BASE_TIME = datetime(2026, 11, 22, 9, 0, 0, tzinfo=VN)
    #: The registration type a subject needs before each type (None: it registers).
    REGISTRATION: Mapping[str, str | None] = {
        "radio.station.registered": None,
        "radio.station.status": "radio.station.registered",
        "radio.broadcast.started": "radio.station.registered",
        "radio.broadcast.ended": "radio.station.registered",
        "radio.cluster.fault": "radio.station.registered",
        "radio.cluster.restored": "radio.station.registered",
        "camera.registered": None,
        "camera.status": "camera.registered",
        "camera.alert": "camera.registered",
        "dossier.received": None,
        "dossier.supplement_requested": "dossier.received",
        "dossier.completed": "dossier.received",
        "dossier.withdrawn": "dossier.received",
        "dossier.rated": "dossier.completed",
        "kpi.defined": None,
        "kpi.reported": "kpi.defined",
        "kpi.target_revised": "kpi.defined",
        "report.received": None,
        "report.assigned": "report.received",
        "report.reassigned": "report.received",
        "report.resolved": "report.received",
        "report.rejected": "report.received",
        "report.rated": "report.resolved",
    }
    #: Events a subject needs after its registration before each type (a rating needs
    #: a resolved report).
    #: Aggregate kind (for `subject_id`) and code prefix by the type's first word.
    KINDS: Mapping[str, tuple[str, str]] = {
        "radio": ("station", "st"),
        "camera": ("camera", "cam"),
        "dossier": ("dossier", "dos"),
        "kpi": ("indicator", "kpi"),
        "report": ("report", "rep"),
    }

    @classmethod
    def at(cls, minutes: float = 0) -> str:
        """An RFC 3339 time with the +07:00 offset, `minutes` after `BASE_TIME`."""
        return (cls.BASE_TIME + timedelta(minutes=minutes)).isoformat()

    @classmethod
    def code(cls, event_type: str) -> str:
        """A fresh subject code for the subject of `event_type`, e.g. ``cam-3f2a...``."""
        return f"{cls.KINDS[event_type.split('.', 1)[0]][1]}-{uid()}"

    @classmethod
    def aggregate_id(cls, event_type: str, code: str) -> UUID:
        return subject_id(cls.KINDS[event_type.split(".", 1)[0]][0], code)

    @classmethod
    def data(cls, event_type: str) -> dict[str, Any]:
        """Valid `data` for `event_type` (optional fields included)."""
        examples: dict[str, dict[str, Any]] = {
            "radio.station.registered": {
                "name": "Đài truyền thanh xã Đồng Tâm",
                "unit": cls.UNIT,
                "clusters": 4,
                "lat": 21.2256,
                "lon": 106.21,
            },
            "radio.station.status": {"status": "online"},
            "radio.broadcast.started": {
                "broadcast_id": uid(),
                "program": "Bản tin sáng",
                "kind": "normal",
            },
            "radio.broadcast.ended": {"broadcast_id": uid()},
            "radio.cluster.fault": {"cluster": 1, "fault": "power"},
            "radio.cluster.restored": {"cluster": 1},
            "camera.registered": {
                "name": "Camera ngã tư Trần Phú",
                "unit": cls.UNIT,
                "kind": "security",
                "lat": 21.2374,
                "lon": 106.2514,
            },
            "camera.status": {"status": "online"},
            "camera.alert": {
                "alert_id": uid(),
                "category": "intrusion",
                "severity": "warning",
                "plate": "98A-123.45",
                "snapshot_url": "https://cameras.example.vn/snap/1.jpg",
            },
            "dossier.received": {
                "procedure_code": "1.001234",
                "procedure_name": "Cấp giấy phép xây dựng",
                "level": "full_online",
                "channel": "online",
                "agency": cls.AGENCY,
                "unit": cls.UNIT,
                "due_at": cls.at(60 * 24 * 5),
                "digitised": True,
                "fee": True,
            },
            "dossier.supplement_requested": {"reason": "thiếu bản sao giấy tờ"},
            "dossier.completed": {"result": "approved", "e_result": True, "paid_online": False},
            "dossier.withdrawn": {"reason": "người nộp rút hồ sơ"},
            "dossier.rated": {"rating": "very_satisfied"},
            "kpi.defined": {
                "name": "Tỷ lệ hồ sơ trực tuyến toàn trình",
                "measure": "%",
                "owner": cls.AGENCY,
                "pillar": "digital_government",
                "direction": "increase",
                "target": 80,
                "deadline": "2026-12-31",
                "reference": "NQ 57-NQ/TW",
            },
            "kpi.reported": {"period": "2026-10", "value": 71.5},
            "kpi.target_revised": {"target": 85, "deadline": "2027-06-30"},
            "report.received": {
                "category": "environment",
                "title": "Cống thoát nước bị tắc",
                "description": "Nước ngập sau mưa, bốc mùi",
                "unit": cls.UNIT,
                "channel": "app",
                "lat": 21.2374,
                "lon": 106.2514,
                "photo_url": "https://phananh.example.vn/anh/1.jpg",
            },
            "report.assigned": {"agency": cls.AGENCY, "due_at": cls.at(60 * 24)},
            "report.reassigned": {
                "agency": cls.UNIT,
                "due_at": cls.at(60 * 48),
                "reason": "thuộc thẩm quyền xã",
            },
            "report.resolved": {"result": "Đã nạo vét cống"},
            "report.rejected": {"reason": "Trùng phản ánh khác", "duplicate_of": "rep-0"},
            "report.rated": {"rating": "satisfied"},
        }
        return examples[event_type]

    @classmethod
    def event(
        cls,
        event_type: str,
        subject: str | None = None,
        *,
        data: Any = None,
        event_id: str | None = None,
        source: str | None = None,
        time: str | None = None,
        **fields: Any,
    ) -> dict[str, Any]:
        """A structured CloudEvent of `event_type` with valid data and a fresh id.

        `data` replaces the data entirely; keyword `fields` update the valid example.
        """
        body = cls.data(event_type) if data is None else data
        if fields:
            body = {**body, **fields}
        return {
            "specversion": "1.0",
            "id": event_id or uid(),
            "source": source or cls.SOURCE,
            "type": event_type,
            "time": time or cls.at(),
            "subject": subject or cls.code(event_type),
            "datacontenttype": "application/json",
            "data": body,
        }

    @classmethod
    def prerequisites(cls, event_type: str, subject: str) -> list[dict[str, Any]]:
        """Every event `event_type` needs stored first, oldest first (a rating needs a
        completion, which needs a reception), an hour apart before `BASE_TIME`."""
        chain: list[str] = []
        kind = cls.REGISTRATION[event_type]
        while kind is not None:
            chain.insert(0, kind)
            kind = cls.REGISTRATION[kind]
        return [
            cls.event(kind, subject, time=cls.at(-60 * (len(chain) - i)))
            for i, kind in enumerate(chain)
        ]

    @classmethod
    def registration(cls, event_type: str, subject: str) -> dict[str, Any] | None:
        """The event registering the subject `event_type` needs (an hour earlier), or None."""
        kind = cls.REGISTRATION[event_type]
        if kind is None:
            return None
        return cls.event(kind, subject, time=cls.at(-60))


@dataclass(frozen=True, slots=True)
class Key:
    """A key created in the database: its name (for revocation) and its secret."""

    name: str
    secret: str

    @property
    def headers(self) -> dict[str, str]:
        return {"Authorization": f"Bearer {self.secret}"}


@dataclass(frozen=True, slots=True)
class Reply:
    """An HTTP answer: status, headers, media type and the decoded JSON body (or None)."""

    status: int
    headers: Mapping[str, str]
    content_type: str
    body: Any

    @property
    def results(self) -> list[dict[str, Any]]:
        results: list[dict[str, Any]] = self.body["results"]
        return results

    def positions(self) -> list[int]:
        """The positions of an answer whose events were all accepted (asserts so)."""
        assert self.status == 200, (self.status, self.body)
        assert [r["status"] for r in self.results] == ["accepted"] * len(self.results), self.body
        return [r["position"] for r in self.results]

    def error(self) -> dict[str, str]:
        """The error of the only result, which must be rejected."""
        assert len(self.results) == 1, self.body
        assert self.results[0]["status"] == "rejected", self.body
        error: dict[str, str] = self.results[0]["error"]
        return error


def binary_headers(event: Mapping[str, Any]) -> dict[str, str]:
    """The ``ce-*`` headers of a structured event (all attributes but data/datacontenttype)."""
    return {
        f"ce-{name}": str(value)
        for name, value in event.items()
        if name not in ("data", "datacontenttype")
    }


class Api:
    """A client of the running app that sends with `key` unless told otherwise."""

    def __init__(self, client: TestClient, key: Key | None) -> None:
        self.client = client
        self.key = key

    @property
    def app(self) -> Any:
        return self.client.server.app

    async def request(
        self,
        method: str,
        path: str,
        *,
        key: Key | bool | None = True,
        headers: Mapping[str, str] | None = None,
        data: bytes | None = None,
    ) -> Reply:
        """`key` True: this Api's key; None or False: no Authorization header."""
        chosen = self.key if key is True else key or None
        all_headers = dict(chosen.headers) if isinstance(chosen, Key) else {}
        all_headers.update(headers or {})
        async with self.client.request(method, path, headers=all_headers, data=data) as response:
            raw = await response.read()
            body = orjson.loads(raw) if raw and "json" in response.content_type else None
            return Reply(response.status, response.headers, response.content_type, body)

    async def get(self, path: str, *, key: Key | bool | None = True) -> Reply:
        return await self.request("GET", path, key=key)

    async def post(
        self,
        content_type: str,
        body: bytes,
        *,
        key: Key | bool | None = True,
        headers: Mapping[str, str] | None = None,
    ) -> Reply:
        """POST `body` to /api/v1/events as `content_type`."""
        all_headers = {"Content-Type": content_type, **(headers or {})}
        return await self.request("POST", "/api/v1/events", key=key, headers=all_headers, data=body)

    async def structured(self, event: Any, *, key: Key | bool | None = True) -> Reply:
        return await self.post(STRUCTURED, orjson.dumps(event), key=key)

    async def batch(self, events: Sequence[Any], *, key: Key | bool | None = True) -> Reply:
        return await self.post(BATCH, orjson.dumps(list(events)), key=key)

    async def binary(self, event: Mapping[str, Any], *, key: Key | bool | None = True) -> Reply:
        """Send `event` in binary mode: ``ce-*`` headers, the data as application/json."""
        return await self.post(
            "application/json",
            orjson.dumps(event["data"]),
            key=key,
            headers=binary_headers(event),
        )

    async def ndjson(self, lines: Sequence[Any], *, key: Key | bool | None = True) -> Reply:
        """One line per item: dicts as JSON, strings (bad lines) sent as they are."""
        body = b"\n".join(
            line.encode() if isinstance(line, str) else orjson.dumps(line) for line in lines
        )
        return await self.post(NDJSON, body + b"\n", key=key)

    async def ingest(self, *events: Mapping[str, Any]) -> list[int]:
        """Send events as a batch, asserting they are all accepted; their positions."""
        return (await self.batch(events)).positions()

    async def aggregate(self, event_type: str, code: str) -> Any:
        """The stored aggregate of a subject, loaded from the event store (in a thread)."""
        store = self.app[EVENT_STORE]
        agg_id = CloudEvents.aggregate_id(event_type, code)
        return await asyncio.to_thread(store.repository.get, agg_id)

    async def stored_events(self, event_type: str, code: str) -> list[Any]:
        """The domain events stored for a subject, oldest first (read in a thread)."""
        store = self.app[EVENT_STORE]
        agg_id = CloudEvents.aggregate_id(event_type, code)
        return await asyncio.to_thread(lambda: list(store.events.get(agg_id)))


MakeKey = Callable[..., Key]
MakeApi = Callable[..., Awaitable[Api]]


def app_settings(database_url: str, **overrides: Any) -> Settings:
    """Settings for a test app: the test database, a short commit wait, then `overrides`.

    The alarm rules are off unless a test turns them on (``alarm_rules=True``): they
    write alarm events into the log, which would move the exact positions and figures
    other tests assert (tests/e2e/test_alarms.py runs them on databases of its own).
    """
    base = Settings(database_url=database_url, commit_max_wait_ms=1.0, alarm_rules=False)
    return dataclasses.replace(base, **overrides)


@pytest.fixture
def ce() -> type[CloudEvents]:
    """The CloudEvent builders."""
    return CloudEvents


@pytest.fixture
def make_key(database_url: str) -> MakeKey:
    """Create a key of `role` under a unique random name, as ``ops-center keys create``.

    An integration key without `scopes` gets ``*``. `url` creates it in another database.
    """

    def make(
        role: str,
        *,
        scopes: Sequence[str] = (),
        sources: Sequence[str] = (),
        rate: float | None = None,
        url: str | None = None,
    ) -> Key:
        if role == "integration" and not scopes:
            scopes = ("*",)
        name = f"e2e-{role}-{uid()[:16]}"
        secret = create_key(
            url or database_url, name, role, scopes=scopes, sources=sources, rate=rate
        )
        return Key(name, secret)

    return make


@pytest.fixture
def integration_key(make_key: MakeKey) -> Key:
    """An integration key allowed every type from every source."""
    return make_key("integration", scopes=("*",))


@pytest.fixture
def viewer_key(make_key: MakeKey) -> Key:
    return make_key("viewer")


@pytest.fixture
def admin_key(make_key: MakeKey) -> Key:
    return make_key("admin")


@pytest.fixture
async def make_api(database_url: str, aiohttp_client: Any, make_key: MakeKey) -> MakeApi:
    """Start the real app with these settings overrides and return an `Api` on it.

    The key is a fresh integration key allowed everything unless `key` is given.
    ``database_url=`` points the app at another server (and creates the key there).
    """

    async def make(*, key: Key | None = None, **overrides: Any) -> Api:
        url = overrides.pop("database_url", database_url)
        if key is None:
            key = make_key("integration", scopes=("*",), url=url)
        app = create_app(app_settings(url, **overrides))
        client = await aiohttp_client(app)
        return Api(client, key)

    return make


@pytest.fixture
async def api(make_api: MakeApi, integration_key: Key) -> Api:
    """The app with default settings; sends with an integration key allowed everything."""
    return await make_api(key=integration_key)


@pytest.fixture(scope="module")
def refusals_url(new_database: Any) -> Iterator[str]:
    """A database a module's bad-parameter tests share: they only ask, and are refused
    (no test of theirs writes an event, so none sees another's)."""
    with new_database() as url:
        yield url


@pytest.fixture
async def refusing_api(refusals_url: str, make_api: MakeApi, make_key: MakeKey) -> Api:
    """For the bad-parameter tests: a new app with an admin key on the module's
    `refusals_url`."""
    return await make_api(key=make_key("admin", url=refusals_url), database_url=refusals_url)
