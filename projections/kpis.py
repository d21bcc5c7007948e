"""KPIs: the indicators of the province's digital-transformation resolutions.

Tables (documented in docs/READ_MODELS.md): ``rm_kpis`` (definition, target, first and
latest reported values), ``rm_kpi_history`` (the value of every reported period) and
``rm_kpi_log`` (every indicator event, for `as_of` answers: the state at a position is
that of the log up to it). The view ``rm_kpi_status`` adds today's status.

Late events follow the aggregate's rule: a definition, target revision or report for a
period that is older (by CloudEvent `time`) than the one applied is history only.

Status: `ops_center.domain.kpi_status` (the rule of on and off track).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from datetime import date, datetime
from typing import Any, ClassVar, Final
from uuid import UUID

import orjson

from ops_center.domain.events import names_of
from ops_center.domain.indicator import Indicator
from ops_center.domain.kpi_status import Status, kpi_status
from ops_center.province.calendar import period_bounds, period_key
from ops_center.store.log import Event
from projections.projection import Connection, Projection

SCHEMA: Final = """
CREATE TABLE IF NOT EXISTS rm_kpis (
    originator_id uuid PRIMARY KEY,
    code text NOT NULL UNIQUE,
    name text NOT NULL,
    measure text NOT NULL,
    owner text NOT NULL,
    pillar text NOT NULL,
    direction text NOT NULL,
    reference text,
    defined_at timestamptz NOT NULL,
    target double precision NOT NULL,
    deadline date NOT NULL,
    target_at timestamptz NOT NULL,
    first_period text,
    first_period_end date,
    first_value double precision,
    latest_period text,
    latest_period_end date,
    latest_value double precision,
    periods integer NOT NULL DEFAULT 0,
    created_position bigint NOT NULL,
    updated_position bigint NOT NULL
);
CREATE INDEX IF NOT EXISTS rm_kpis_owner ON rm_kpis (owner);

CREATE TABLE IF NOT EXISTS rm_kpi_history (
    originator_id uuid NOT NULL,
    code text NOT NULL,
    period text NOT NULL,
    period_start date NOT NULL,
    period_end date NOT NULL,
    value double precision NOT NULL,
    reported_at timestamptz NOT NULL,
    updated_position bigint NOT NULL,
    PRIMARY KEY (originator_id, period)
);

CREATE TABLE IF NOT EXISTS rm_kpi_log (
    position bigint PRIMARY KEY,
    originator_id uuid NOT NULL,
    event text NOT NULL,
    time timestamptz NOT NULL,
    data jsonb NOT NULL
);

CREATE OR REPLACE VIEW rm_kpi_status AS
SELECT k.*,
    CASE
        WHEN k.latest_value IS NOT NULL AND (
            (k.direction = 'increase' AND k.latest_value >= k.target)
            OR (k.direction = 'decrease' AND k.latest_value <= k.target)) THEN 'met'
        WHEN (now() AT TIME ZONE 'Asia/Ho_Chi_Minh')::date > k.deadline THEN 'off_track'
        WHEN k.latest_period_end > k.first_period_end AND NOT (
            CASE WHEN k.direction = 'increase'
                THEN k.latest_value + (k.latest_value - k.first_value)
                    * greatest(k.deadline - k.latest_period_end, 0)
                    / (k.latest_period_end - k.first_period_end) >= k.target
                ELSE k.latest_value + (k.latest_value - k.first_value)
                    * greatest(k.deadline - k.latest_period_end, 0)
                    / (k.latest_period_end - k.first_period_end) <= k.target
            END) THEN 'off_track'
        ELSE 'on_track'
    END AS status
FROM rm_kpis k;
"""

_KPI_COLUMNS: Final = (
    ("originator_id", "uuid"),
    ("code", "text"),
    ("name", "text"),
    ("measure", "text"),
    ("owner", "text"),
    ("pillar", "text"),
    ("direction", "text"),
    ("reference", "text"),
    ("defined_at", "timestamptz"),
    ("target", "float8"),
    ("deadline", "date"),
    ("target_at", "timestamptz"),
    ("first_period", "text"),
    ("first_period_end", "date"),
    ("first_value", "float8"),
    ("latest_period", "text"),
    ("latest_period_end", "date"),
    ("latest_value", "float8"),
    ("periods", "int4"),
    ("created_position", "int8"),
    ("updated_position", "int8"),
)
_KPI_NAMES: Final = ", ".join(c for c, _ in _KPI_COLUMNS)
_UPSERT_KPIS: Final = (
    f"INSERT INTO rm_kpis ({_KPI_NAMES}) SELECT * FROM unnest("
    + ", ".join(f"${i}::{t}[]" for i, (_, t) in enumerate(_KPI_COLUMNS, start=1))
    + ") ON CONFLICT (originator_id) DO UPDATE SET "
    + ", ".join(f"{c} = excluded.{c}" for c, _ in _KPI_COLUMNS[1:])
)
_SELECT_KPIS: Final = (
    "SELECT originator_id, code, name, measure, owner, pillar, direction, reference, "
    "defined_at, target, deadline, target_at, created_position, updated_position "
    "FROM rm_kpis WHERE originator_id = ANY($1::uuid[])"
)
_SELECT_VALUES: Final = (
    "SELECT originator_id, period, value, reported_at, updated_position FROM rm_kpi_history "
    "WHERE originator_id = ANY($1::uuid[])"
)
_UPSERT_VALUES: Final = """
INSERT INTO rm_kpi_history (originator_id, code, period, period_start, period_end, value,
                            reported_at, updated_position)
SELECT * FROM unnest($1::uuid[], $2::text[], $3::text[], $4::date[], $5::date[], $6::float8[],
                     $7::timestamptz[], $8::int8[])
ON CONFLICT (originator_id, period) DO UPDATE SET code = excluded.code,
    value = excluded.value, reported_at = excluded.reported_at,
    updated_position = excluded.updated_position
"""
_INSERT_LOG: Final = """
INSERT INTO rm_kpi_log (position, originator_id, event, time, data)
SELECT * FROM unnest($1::int8[], $2::uuid[], $3::text[], $4::timestamptz[], $5::jsonb[])
"""


@dataclass(slots=True)
class Value:
    value: float
    reported_at: datetime
    position: int


@dataclass(slots=True)
class Kpi:
    """One indicator's state; `apply` folds its events in position order."""

    originator_id: UUID
    code: str
    name: str
    measure: str
    owner: str
    pillar: str
    direction: str
    reference: str | None
    defined_at: datetime
    target: float
    deadline: date
    target_at: datetime
    created_position: int
    updated_position: int
    values: dict[str, Value] = field(default_factory=dict)

    @classmethod
    def defined(
        cls, originator_id: UUID, data: Mapping[str, Any], moment: datetime, position: int
    ) -> Kpi:
        return cls(
            originator_id=originator_id,
            code=data["code"],
            name=data["name"],
            measure=data["measure"],
            owner=data["owner"],
            pillar=data["pillar"],
            direction=data["direction"],
            reference=data.get("reference"),
            defined_at=moment,
            target=float(data["target"]),
            deadline=date.fromisoformat(data["deadline"]),
            target_at=moment,
            created_position=position,
            updated_position=position,
        )

    def apply(self, what: str, data: Mapping[str, Any], moment: datetime, position: int) -> bool:
        """Fold one event (``Redefined``, ``Reported``, ``TargetRevised``); True if the
        state changed."""
        changed = False
        if what == "Redefined":
            if moment >= self.defined_at:
                self.name, self.measure = data["name"], data["measure"]
                self.owner, self.pillar = data["owner"], data["pillar"]
                self.direction, self.reference = data["direction"], data.get("reference")
                self.defined_at = moment
                changed = True
            if moment >= self.target_at:
                self._retarget(data, moment)
                changed = True
        elif what == "TargetRevised":
            if moment >= self.target_at:
                self._retarget(data, moment)
                changed = True
        elif what == "Reported":
            period = data["period"]
            current = self.values.get(period)
            if current is None or moment >= current.reported_at:
                self.values[period] = Value(float(data["value"]), moment, position)
                changed = True
        if changed:
            self.updated_position = position
        return changed

    def _retarget(self, data: Mapping[str, Any], moment: datetime) -> None:
        self.target = float(data["target"])
        self.deadline = date.fromisoformat(data["deadline"])
        self.target_at = moment

    def first(self) -> tuple[str, float] | None:
        """The earliest reported period and its value."""
        if not self.values:
            return None
        period = min(self.values, key=period_key)
        return period, self.values[period].value

    def latest(self) -> tuple[str, float] | None:
        """The latest reported period (ends last; on a tie the shorter) and its value."""
        if not self.values:
            return None
        period = max(self.values, key=period_key)
        return period, self.values[period].value

    def status(self, today: date) -> Status:
        return kpi_status(
            self.direction, self.target, self.deadline, self.first(), self.latest(), today
        )

    def row(self) -> tuple[Any, ...]:
        first, latest = self.first(), self.latest()
        return (
            self.originator_id,
            self.code,
            self.name,
            self.measure,
            self.owner,
            self.pillar,
            self.direction,
            self.reference,
            self.defined_at,
            self.target,
            self.deadline,
            self.target_at,
            first[0] if first else None,
            period_bounds(first[0])[1] if first else None,
            first[1] if first else None,
            latest[0] if latest else None,
            period_bounds(latest[0])[1] if latest else None,
            latest[1] if latest else None,
            len(self.values),
            self.created_position,
            self.updated_position,
        )


class KpisProjection(Projection):
    """Indicators (see the module docstring)."""

    name: ClassVar[str] = "kpis"
    tables: ClassVar[tuple[str, ...]] = ("rm_kpis", "rm_kpi_history", "rm_kpi_log")
    events: ClassVar[frozenset[str] | None] = names_of(
        Indicator, "Defined", "Redefined", "Reported", "TargetRevised"
    )

    async def setup(self, conn: Connection) -> None:
        await conn.execute(SCHEMA)

    async def apply(self, conn: Connection, events: Sequence[Event]) -> None:
        ids = list({e.originator_id for e in events})
        kpis: dict[UUID, Kpi] = {}
        for row in await conn.fetch(_SELECT_KPIS, ids):
            kpis[row[0]] = Kpi(*row)
        for row in await conn.fetch(_SELECT_VALUES, ids):
            kpi = kpis.get(row[0])
            if kpi is not None:
                kpi.values[row[1]] = Value(row[2], row[3], row[4])
        dirty: set[UUID] = set()
        dirty_values: set[tuple[UUID, str]] = set()
        log: list[tuple[int, UUID, str, datetime, str]] = []
        for event in events:
            what = event.name.partition(".")[2]
            data = event.data()
            moment = event.time
            oid = event.originator_id
            log.append((event.position, oid, event.name, moment, orjson.dumps(data).decode()))
            if what == "Defined":
                kpis[oid] = Kpi.defined(oid, data, moment, event.position)
                dirty.add(oid)
                continue
            kpi = kpis.get(oid)
            if kpi is None:
                continue
            if kpi.apply(what, data, moment, event.position):
                dirty.add(oid)
                if what == "Reported":
                    dirty_values.add((oid, data["period"]))
        if dirty:
            rows = [kpis[oid].row() for oid in dirty]
            await conn.execute(_UPSERT_KPIS, *[list(c) for c in zip(*rows, strict=True)])
        if dirty_values:
            value_rows = []
            for oid, period in dirty_values:
                value = kpis[oid].values[period]
                start, end = period_bounds(period)
                value_rows.append(
                    (
                        oid,
                        kpis[oid].code,
                        period,
                        start,
                        end,
                        value.value,
                        value.reported_at,
                        value.position,
                    )
                )
            await conn.execute(_UPSERT_VALUES, *[list(c) for c in zip(*value_rows, strict=True)])
        await conn.execute(_INSERT_LOG, *[list(c) for c in zip(*log, strict=True)])
