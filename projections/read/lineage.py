"""Lineage: the events that made a figure (``GET /api/v1/lineage``).

A figure is a dotted path into a query's answer. For each path the reader knows which
subjects contribute and which event of each put it where it counts (docs/CONTRACT.md
§5, *Lineage*, lists the paths):

* ``overview.<...>``: the overview's counts (devices by status: the event that put each
  device in that status; broadcasts on air: their start; dossiers received, completed,
  overdue: their reception or completion; indicators on or off track: their latest
  event; active alarms: their raising);
* ``kpis.<code>.value`` and ``kpis.<code>.target``: the report (or definition, revision)
  in effect, and the earlier ones it replaced;
* ``services.index`` (or ``services.index.total``), ``services.index.<group>`` and
  ``services.index.<group>.<part>``: the events in the denominators of the index's parts
  (receptions, completions, ratings, status events of the period, dossiers in progress).

Every figure is read at one position: the position of the query's own answer (now, or
``as_of``), so the items agree with the value. Items are ordered by position and paged
by it (`after`); each carries the stored event's provenance (CloudEvent source, id, time,
when the center received it and with which key) read from the event log.
"""

from __future__ import annotations

from collections.abc import Collection, Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any, Final

import orjson

from ops_center.domain import subject_id
from ops_center.province.calendar import iso, local_date, local_day, period_key
from ops_center.store.log import CLOUDEVENT_TYPES, EVENTS_TABLE, short_name
from projections import service_index as idx
from projections.projection import Connection
from projections.read import service_index as index_read
from projections.read.common import (
    CAMERA_STATUSES,
    RADIO_STATUSES,
    Query,
    Scope,
    position_at,
    positions,
)
from projections.read.kpis import kpi_status_of, scoped_kpis
from projections.read.overview import overview
from projections.read.reports import report_figures
from projections.read.services import units_present

#: The overview's figures of the citizens' reports (`report_figures` says how each counts).
REPORT_FIGURES: Final = (
    "received_today",
    "open",
    "overdue",
    "resolved_today",
    "satisfaction_rate",
)
#: The overview's figures, by their path without the ``overview.`` prefix.
OVERVIEW_FIGURES: Final = (
    *(f"devices.camera.{s}" for s in CAMERA_STATUSES),
    *(f"devices.radio.{s}" for s in RADIO_STATUSES),
    "broadcasts.active",
    "broadcasts.emergency_active",
    "services.received_today",
    "services.completed_today",
    "services.on_time_rate",
    "services.overdue",
    "kpis.on_track",
    "kpis.off_track",
    "alarms.active",
    *(f"reports.{f}" for f in REPORT_FIGURES),
)
#: The fields of an indicator that have a lineage.
KPI_FIELDS: Final = ("value", "target")
#: The index's figures below ``services.index``: the total, each group, each part.
INDEX_FIGURES: Final = (
    "total",
    *index_read.GROUPS,
    *(f"{p.group}.{p.name}" for p in index_read.PARTS),
)


class UnknownFigure(ValueError):
    """A figure path the server does not know (400)."""


@dataclass(frozen=True, slots=True)
class Figure:
    """A parsed figure path: which answer (``overview``, ``kpis``, ``index``) and where."""

    answer: str
    path: str
    code: str | None = None


def parse_figure(text: str) -> Figure:
    """Check a figure path; raises `UnknownFigure` naming what is known."""
    head, _, rest = text.partition(".")
    if head == "overview" and rest in OVERVIEW_FIGURES:
        return Figure("overview", rest)
    if head == "kpis":
        code, _, name = rest.rpartition(".")
        if code and name in KPI_FIELDS:
            return Figure("kpis", name, code)
    if text == "services.index":
        return Figure("index", "total")
    if text.startswith("services.index."):
        rest = text.removeprefix("services.index.")
        if rest in INDEX_FIGURES:
            return Figure("index", rest)
    raise UnknownFigure(
        f"unknown figure {text!r}: use overview.<{'|'.join(OVERVIEW_FIGURES)}>, "
        f"kpis.<code>.<{'|'.join(KPI_FIELDS)}> or services.index[.<{'|'.join(INDEX_FIGURES)}>]"
    )


# -- the answer -------------------------------------------------------------------------


async def _items(conn: Connection, pairs: Sequence[tuple[str, int]]) -> list[dict[str, Any]]:
    """Each (subject, position) with its stored event's provenance, from the log."""
    if not pairs:
        return []
    rows = await conn.fetch(
        f"SELECT notification_id, topic, state FROM {EVENTS_TABLE} "
        "WHERE notification_id = ANY($1::int8[])",
        [p for _, p in pairs],
    )
    events = {row[0]: (short_name(row[1]), orjson.loads(row[2])) for row in rows}
    items = []
    for subject, position in pairs:
        name, state = events.get(position, ("", {}))
        meta = state.get("meta") if isinstance(state.get("meta"), dict) else None
        if meta is not None:
            source, event_id, key = meta.get("source"), meta.get("id"), meta.get("key")
            at, received = meta.get("time"), meta.get("received_at")
        else:  # an alarm event: from the rules or an operator, not a CloudEvent
            source = event_id = None
            key = state.get("by")
            at, received = state.get("at"), state.get("timestamp")
        items.append(
            {
                "subject": subject,
                "position": position,
                "type": CLOUDEVENT_TYPES.get(name, name),
                "source": source,
                "id": event_id,
                "time": _iso(at),
                "received_at": _iso(received),
                "key": key,
            }
        )
    return items


def _iso(text: Any) -> str | None:
    return iso(datetime.fromisoformat(text)) if isinstance(text, str) else None


async def _page(
    conn: Connection, query: Query, sql: str | Sequence[str], after: int | None, limit: int
) -> tuple[list[tuple[str, int]], int | None]:
    """A page of the (subject, position) pairs of `sql` (one statement or several parts,
    each with the columns ``subject`` and ``position``), by position, after `after`; and
    the cursor of the next page. Each part is cut to the page before the parts are joined
    (a part lists each event once; several parts may list the same one)."""
    parts = [sql] if isinstance(sql, str) else list(sql)
    where = "" if after is None else f"WHERE position > {query.arg(after)}"
    cut = query.arg(limit + 1)
    joined = " UNION ALL ".join(
        f"(SELECT subject, position FROM ({part}) p {where} ORDER BY position LIMIT {cut})"
        for part in parts
    )
    rows = await conn.fetch(
        f"SELECT DISTINCT subject, position FROM ({joined}) c "
        f"ORDER BY position, subject LIMIT {cut}",
        *query.args,
    )
    pairs = [(row[0], row[1]) for row in rows[:limit]]
    following = pairs[-1][1] if len(rows) > limit else None
    return pairs, following


def _list_page(
    pairs: Sequence[tuple[str, int]], after: int | None, limit: int
) -> tuple[list[tuple[str, int]], int | None]:
    ordered = sorted((p for p in pairs if after is None or p[1] > after), key=lambda p: p[1])
    page = ordered[:limit]
    return page, (page[-1][1] if len(ordered) > limit else None)


def _value(answer: dict[str, Any], path: str) -> Any:
    value: Any = answer
    for part in path.split("."):
        value = value[part]
    return value


async def lineage(
    conn: Connection,
    figure: Figure,
    *,
    label: str,
    clock: datetime,
    as_of: datetime | None,
    scope: Scope,
    after: int | None,
    limit: int,
    period: index_read.Period | None = None,
    agency: str | None = None,
    unit: str | None = None,
) -> dict[str, Any] | None:
    """``GET /api/v1/lineage``: the figure's value and a page of the events that made it;
    None for an indicator that is unknown (then or now)."""
    if figure.answer == "overview":
        answer = await overview(conn, scope, clock=clock, as_of=as_of)
        position = answer["position"]
        value = _value(answer, figure.path)
        pairs, following = await _overview_page(
            conn, figure.path, position, as_of or clock, scope, after, limit
        )
    elif figure.answer == "kpis":
        assert figure.code is not None
        found = await _kpi_lineage(conn, figure.code, figure.path, as_of)
        if found is None:
            return None
        position, value, all_pairs = found
        pairs, following = _list_page(all_pairs, after, limit)
    else:
        assert period is not None
        answer = await index_read.service_index(
            conn,
            period=period,
            clock=clock,
            as_of=as_of,
            agency=agency,
            unit=unit,
            units=scope.units,
        )
        position = answer["position"]
        if figure.path == "total":
            value = answer["total"]
        elif "." in figure.path:
            group, _, name = figure.path.partition(".")
            value = next(p["score"] for p in answer["groups"][group]["parts"] if p["name"] == name)
        else:
            value = answer["groups"][figure.path]["score"]
        query = Query()
        sql = _index_sql(
            query,
            figure.path,
            period,
            index_read.counted_at(period, as_of or clock),
            position,
            agency,
            scope.units,
        )
        pairs, following = await _page(conn, query, sql, after, limit)
    return {
        "figure": label,
        "position": position,
        "value": value,
        "items": await _items(conn, pairs),
        "next": following,
    }


# -- overview -----------------------------------------------------------------------------


async def _overview_page(
    conn: Connection,
    path: str,
    position: int,
    clock: datetime,
    scope: Scope,
    after: int | None,
    limit: int,
) -> tuple[list[tuple[str, int]], int | None]:
    section, _, name = path.partition(".")
    query = Query(position)
    if section == "kpis":
        return _list_page(await _kpi_status_pairs(conn, name, position, clock, scope), after, limit)
    in_scope = ""
    if section == "devices":
        kind, status = name.split(".")
        if scope.units is not None:
            in_scope = f"AND s.unit = ANY({query.arg(list(scope.units))}::text[])"
        sql = f"""
            SELECT cur.code AS subject, (
                SELECT min(h.from_position) FROM rm_device_history h
                WHERE h.originator_id = cur.originator_id AND h.from_position <= $1
                AND h.from_position > coalesce((
                    SELECT max(o.from_position) FROM rm_device_history o
                    WHERE o.originator_id = cur.originator_id AND o.from_position <= $1
                    AND o.status IS DISTINCT FROM cur.status), 0)) AS position
            FROM (
                SELECT d.code, d.originator_id, s.status FROM rm_devices d
                CROSS JOIN LATERAL (
                    SELECT h.kind, h.unit, h.status FROM rm_device_history h
                    WHERE h.originator_id = d.originator_id AND h.from_position <= $1
                    ORDER BY h.from_position DESC LIMIT 1) s
                WHERE s.kind = {query.arg(kind)} AND s.status = {query.arg(status)} {in_scope}
            ) cur"""
    elif section == "broadcasts":
        if scope.units is not None:
            in_scope = f"AND unit = ANY({query.arg(list(scope.units))}::text[])"
        emergency = "AND kind = 'emergency'" if name == "emergency_active" else ""
        sql = (
            "SELECT station AS subject, start_position AS position FROM rm_broadcasts "
            f"WHERE on_air @> $1::int8 {emergency} {in_scope}"
        )
    elif section == "services":
        units = list(scope.units) if scope.units is not None else await units_present(conn)
        u = query.arg(units)
        if name == "overdue":
            c = query.arg(clock)
            sql = (
                "SELECT code AS subject, received_position AS position FROM rm_dossiers "
                f"WHERE unit = ANY({u}::text[]) AND due_at < {c} AND ((state = 'open' "
                "AND received_position <= $1) OR (closed_position IS NOT NULL "
                "AND open_positions @> $1::int8))"
            )
        else:
            start, end = local_day(clock)
            s, e = query.arg(start), query.arg(end)
            if name == "received_today":
                sql = (
                    "SELECT code AS subject, received_position AS position FROM rm_dossiers "
                    f"WHERE unit = ANY({u}::text[]) AND received_at >= {s} AND received_at < {e} "
                    "AND received_position <= $1"
                )
            else:  # completed today (the on-time rate's denominator too)
                sql = (
                    "SELECT code AS subject, closed_position AS position FROM rm_dossiers "
                    f"WHERE unit = ANY({u}::text[]) AND closed_at >= {s} AND closed_at < {e} "
                    "AND closed_position <= $1 AND state = 'completed'"
                )
    elif section == "reports":
        condition, column = report_figures(query, clock, position, at="$1", only=name)[name]
        if scope.units is not None:
            in_scope = f"AND r.unit = ANY({query.arg(list(scope.units))}::text[])"
        sql = (
            f"SELECT r.code AS subject, {column} AS position FROM rm_reports r "
            f"WHERE {condition} {in_scope}"
        )
    else:  # alarms.active
        if scope.units is not None:
            in_scope = f"AND unit = ANY({query.arg(list(scope.units))}::text[])"
        sql = (
            "SELECT subject, raised_position AS position FROM rm_alarms "
            "WHERE raised_position <= $1 AND (acknowledged_position IS NULL OR "
            "acknowledged_position > $1) AND (resolved_position IS NULL OR resolved_position > $1) "
            f"{in_scope}"
        )
    return await _page(conn, query, sql, after, limit)


async def _kpi_status_pairs(
    conn: Connection, name: str, position: int, clock: datetime, scope: Scope
) -> list[tuple[str, int]]:
    """The indicators counted as on track (met or on track) or off track, each with its
    latest event at the position."""
    today = local_date(clock)
    wanted = [
        k
        for k in await scoped_kpis(conn, scope.owners, position)
        if (kpi_status_of(k, today) == "off_track") == (name == "off_track")
    ]
    if not wanted:
        return []
    rows = await conn.fetch(
        "SELECT originator_id, max(position) FROM rm_kpi_log WHERE position <= $1 "
        "AND originator_id = ANY($2::uuid[]) GROUP BY 1",
        position,
        [k.originator_id for k in wanted],
    )
    latest = {row[0]: row[1] for row in rows}
    return [(k.code, latest[k.originator_id]) for k in wanted if k.originator_id in latest]


# -- KPIs ---------------------------------------------------------------------------------


async def _kpi_lineage(
    conn: Connection, code: str, field: str, as_of: datetime | None
) -> tuple[int, Any, list[tuple[str, int]]] | None:
    """(position, value, pairs) of an indicator's value or target; None when unknown.

    The value: of the latest period's reports, the one with the latest CloudEvent time
    (ties: the later position) is in effect; the items are it and the reports of the same
    period it replaced (earlier by time). The target likewise, from the definitions and
    revisions."""
    position = (await positions(conn)).get("kpis", 0)
    if as_of is not None:
        position = await position_at(conn, as_of, position)
    oid = subject_id("indicator", code)
    rows = await conn.fetch(
        "SELECT position, event, time, data FROM rm_kpi_log WHERE originator_id = $1 "
        "AND position <= $2 ORDER BY position",
        oid,
        position,
    )
    if not any(r["event"] == "Indicator.Defined" for r in rows):
        return None
    if field == "value":
        reports = [(r, orjson.loads(r["data"])) for r in rows if r["event"] == "Indicator.Reported"]
        if not reports:
            return position, None, []
        latest = max((d["period"] for _, d in reports), key=period_key)
        chosen = [(r, d) for r, d in reports if d["period"] == latest]
    else:
        kinds = ("Indicator.Defined", "Indicator.Redefined", "Indicator.TargetRevised")
        chosen = [(r, orjson.loads(r["data"])) for r in rows if r["event"] in kinds]
    ordered = sorted(chosen, key=lambda rd: (rd[0]["time"], rd[0]["position"]))
    winner = ordered[-1][1]
    value = winner["value"] if field == "value" else winner["target"]
    return position, value, [(code, r["position"]) for r, _ in ordered]


# -- the service index --------------------------------------------------------------------


def _index_sql(
    query: Query,
    path: str,
    period: index_read.Period,
    at: datetime,
    position: int,
    agency: str | None,
    units: Collection[str] | None,
) -> list[str]:
    """The (subject, position) pairs of an index figure, as SQL parts (arguments in
    `query`)."""
    if path == "total":
        names = [f"{p.group}.{p.name}" for p in index_read.PARTS]
    elif "." in path:
        names = [path]
    else:
        names = [f"{p.group}.{p.name}" for p in index_read.PARTS if p.group == path]
    s, e, p = query.arg(period.start), query.arg(period.end), query.arg(position)
    a = None if agency is None else query.arg(agency)
    u = None if units is None else query.arg(list(units))

    def within(alias: str = "") -> str:
        out = "" if a is None else f" AND {alias}agency = {a}"
        return out if u is None else f"{out} AND {alias}unit = ANY({u}::text[])"

    cond = within()
    received = (
        "SELECT code AS subject, received_position AS position FROM rm_index_dossiers "
        f"WHERE received_at >= {s} AND received_at < {e} AND received_position <= {p}{cond}"
    )
    closed = (
        "SELECT code AS subject, closed_position AS position FROM rm_index_dossiers "
        f"WHERE closed_at >= {s} AND closed_at < {e} AND closed_position <= {p}{cond}"
    )
    completed = f"{closed} AND state = 'completed'"
    levels = ", ".join(f"'{level}'" for level in idx.ONLINE_LEVELS)
    parts: list[str] = []
    for name in names:
        if name == "progress.on_time":
            parts.append(completed)
            if at >= period.start:
                parts.append(in_progress_pairs(e, p, cond))
        elif name == "online.online_share":
            parts.append(f"{received} AND level IN ({levels})")
        elif name == "online.online_payment":
            parts.append(f"{completed} AND fee")
        elif name == "digitisation.digitised_intake":
            parts.append(received)
        elif name == "digitisation.e_result":
            parts.append(completed)
        elif name == "satisfaction.satisfied":
            parts.append(
                "SELECT code AS subject, rated_position AS position FROM rm_index_dossiers "
                f"WHERE rated_at >= {s} AND rated_at < {e} AND rated_position <= {p}{cond}"
            )
        elif name == "transparency.timely":
            parts += [received, closed]
            parts.append(
                "SELECT d.code AS subject, s.position FROM rm_index_supplements s "
                "JOIN rm_index_dossiers d USING (originator_id) "
                f"WHERE s.at >= {s} AND s.at < {e} AND s.position <= {p}{within('d.')}"
            )
    return parts


def in_progress_pairs(end: str, position: str, cond: str) -> str:
    """The dossiers in progress in a period ending at `end` as of `position`
    (placeholders), each with its reception: the parts of `index_read.in_progress_sql`."""
    base = "SELECT code AS subject, received_position AS position FROM rm_index_dossiers WHERE "
    received = f"received_position <= {position} AND received_at < {end}{cond}"
    return " UNION ALL ".join(
        f"({base}{c} AND {received})"
        for c in (
            "state = 'open'",
            f"state <> 'open' AND closed_position > {position}",
            f"state <> 'open' AND closed_position <= {position} AND closed_at >= {end}",
        )
    )
