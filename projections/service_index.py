"""The Decision 766 service index: the counters behind ``GET /api/v1/services/index``.

Decision 766/QĐ-TTg (2022) scores the public services of a province, an agency or a
commune out of 100 in five groups (progress 20, online provision 22, digitisation 22,
satisfaction 18, transparency 18). This projection keeps what the center can count of
them from its own dossier events (the reading is in docs/READ_MODELS.md, *service_index*):

* ``rm_index_dossiers``: one row per dossier with the facts the index needs (level,
  channel, the index's optional flags, due time, reception, closing and rating with the
  positions of those events, and whether each reached the center within 24 h of its
  CloudEvent ``time``). The queries read it for what the counters do not resolve (the
  dossiers in progress at this moment, ``as_of``) and lineage lists its events;
* ``rm_index_supplements``: every request for more documents (a status event too), with
  its position;
* ``rm_index_months``: counters per local month (Asia/Ho_Chi_Minh) and group: agency
  ``*`` and unit ``*`` (the province), an agency (unit ``*``), a unit (agency ``*``: the
  dossiers whose ``unit`` is that code; a query of a district sums the rows of its
  communes and its own), and an agency in a unit. Quarters and years are sums of months.

**Counters of a month** (by the CloudEvent time of each fact): dossiers received, of
those the ones whose procedure can be filed online (``full_online``/``partial_online``)
and of those the ones filed ``online``, digitised at intake; completed, on time, with a
fee, with a fee paid online, with an electronic result; rated, rated ``very_satisfied``
or ``satisfied``; status events (reception, supplement request, completion, withdrawal)
and of those the timely ones. And two changes, as in `projections.services`: of the
dossiers in progress (+1 at the reception, -1 at the closing or the reception, whichever
is later) and of those in progress and overdue (+1 just after ``due_at`` or at the
reception, -1 at the closing if it is later): their sum over every month before a
moment is how many were in progress (overdue) then.

A flag the event does not carry (``digitised``, ``fee``, ``e_result``, ``paid_online``)
counts as false.

**Apply** folds a chunk in memory: receptions become rows (one COPY), closings and
ratings of dossiers received in earlier chunks are looked up in one query and written in
one UPDATE, supplement requests in one COPY, and the counter changes, summed per group
and month in memory and rolled up to the four levels, in one INSERT ... ON CONFLICT. The
counters are sums and the rows follow the aggregates' own order (a dossier is received
once, closed once, rated once), so any cut of the log into chunks gives the same tables.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from datetime import datetime, timedelta
from typing import Any, ClassVar, Final
from uuid import UUID

from ops_center.domain.dossier import Dossier
from ops_center.domain.events import name_of, names_of
from ops_center.store.log import Event
from projections.projection import Connection, Projection, copy_rows
from projections.services import local_month

NAME: Final = "service_index"
#: The agency or unit of a rolled-up counter row: every one.
ALL: Final = "*"
#: How soon after its CloudEvent ``time`` a status event must reach the center to count
#: as timely (transparency).
TIMELY: Final = timedelta(hours=24)
#: Procedure levels whose dossiers may be filed online (the online share's denominator).
ONLINE_LEVELS: Final = ("full_online", "partial_online")
#: Ratings that count as satisfied.
SATISFIED: Final = ("very_satisfied", "satisfied")

#: The counters of a month row, in table order.
COUNTERS: Final = (
    "received",
    "online_eligible",
    "online_filed",
    "digitised",
    "completed",
    "completed_on_time",
    "fee_completed",
    "fee_paid_online",
    "e_result",
    "rated",
    "satisfied",
    "status_events",
    "status_timely",
    "in_progress_change",
    "overdue_change",
)
(
    RECEIVED,
    ELIGIBLE,
    FILED,
    DIGITISED,
    COMPLETED,
    ON_TIME,
    FEE,
    PAID,
    E_RESULT,
    RATED,
    SATISFIED_COUNT,
    STATUS,
    TIMELY_COUNT,
    IN_PROGRESS,
    OVERDUE,
) = range(len(COUNTERS))

_COUNTER_COLUMNS: Final = ",\n    ".join(f"{c} integer NOT NULL DEFAULT 0" for c in COUNTERS)

SCHEMA: Final = f"""
CREATE TABLE IF NOT EXISTS rm_index_dossiers (
    originator_id uuid PRIMARY KEY,
    code text NOT NULL,
    agency text COLLATE "C" NOT NULL,
    unit text COLLATE "C" NOT NULL,
    level text NOT NULL,
    channel text NOT NULL,
    digitised boolean NOT NULL,
    fee boolean NOT NULL,
    due_at timestamptz NOT NULL,
    received_at timestamptz NOT NULL,
    received_position bigint NOT NULL,
    received_timely boolean NOT NULL,
    state text NOT NULL,
    closed_at timestamptz,
    closed_position bigint,
    closed_timely boolean,
    on_time boolean,
    e_result boolean,
    paid_online boolean,
    rating text,
    rated_at timestamptz,
    rated_position bigint
);
CREATE INDEX IF NOT EXISTS rm_index_dossiers_open_due ON rm_index_dossiers (due_at)
    INCLUDE (agency, unit, received_at, received_position) WHERE state = 'open';
CREATE INDEX IF NOT EXISTS rm_index_dossiers_received ON rm_index_dossiers (received_at)
    INCLUDE (agency, unit, received_position);
CREATE INDEX IF NOT EXISTS rm_index_dossiers_closed ON rm_index_dossiers (closed_at)
    INCLUDE (agency, unit, closed_position) WHERE closed_at IS NOT NULL;
CREATE INDEX IF NOT EXISTS rm_index_dossiers_closed_positions
    ON rm_index_dossiers (closed_position) WHERE closed_position IS NOT NULL;
CREATE INDEX IF NOT EXISTS rm_index_dossiers_rated ON rm_index_dossiers (rated_at)
    WHERE rated_at IS NOT NULL;

CREATE TABLE IF NOT EXISTS rm_index_supplements (
    originator_id uuid NOT NULL,
    position bigint NOT NULL,
    at timestamptz NOT NULL,
    timely boolean NOT NULL,
    PRIMARY KEY (originator_id, position)
);
CREATE INDEX IF NOT EXISTS rm_index_supplements_at ON rm_index_supplements (at);

CREATE TABLE IF NOT EXISTS rm_index_months (
    agency text COLLATE "C" NOT NULL,
    unit text COLLATE "C" NOT NULL,
    month timestamptz NOT NULL,
    {_COUNTER_COLUMNS},
    PRIMARY KEY (agency, unit, month)
);
"""

_ROW_COLUMNS: Final = (
    "originator_id",
    "code",
    "agency",
    "unit",
    "level",
    "channel",
    "digitised",
    "fee",
    "due_at",
    "received_at",
    "received_position",
    "received_timely",
    "state",
    "closed_at",
    "closed_position",
    "closed_timely",
    "on_time",
    "e_result",
    "paid_online",
    "rating",
    "rated_at",
    "rated_position",
)

_LOOKUP: Final = (
    "SELECT originator_id, agency, unit, fee, due_at, received_at FROM rm_index_dossiers "
    "WHERE originator_id = ANY($1::uuid[])"
)

# Closings and ratings of dossiers received in earlier chunks (a column is left as it is
# where the chunk brings nothing for it).
_UPDATE: Final = """
UPDATE rm_index_dossiers d SET
    state = coalesce(u.state, d.state),
    closed_at = coalesce(u.closed_at, d.closed_at),
    closed_position = coalesce(u.closed_position, d.closed_position),
    closed_timely = coalesce(u.closed_timely, d.closed_timely),
    on_time = coalesce(u.on_time, d.on_time),
    e_result = coalesce(u.e_result, d.e_result),
    paid_online = coalesce(u.paid_online, d.paid_online),
    rating = coalesce(u.rating, d.rating),
    rated_at = coalesce(u.rated_at, d.rated_at),
    rated_position = coalesce(u.rated_position, d.rated_position)
FROM unnest($1::uuid[], $2::text[], $3::timestamptz[], $4::int8[], $5::bool[], $6::bool[],
            $7::bool[], $8::bool[], $9::text[], $10::timestamptz[], $11::int8[])
    AS u(o, state, closed_at, closed_position, closed_timely, on_time, e_result, paid_online,
         rating, rated_at, rated_position)
WHERE d.originator_id = u.o
"""

_ADD: Final = (
    f"INSERT INTO rm_index_months AS t (agency, unit, month, {', '.join(COUNTERS)}) "
    "SELECT * FROM unnest($1::text[], $2::text[], $3::timestamptz[], "
    + ", ".join(f"${i}::int4[]" for i in range(4, 4 + len(COUNTERS)))
    + ") ORDER BY 1, 2, 3 ON CONFLICT (agency, unit, month) DO UPDATE SET "
    + ", ".join(f"{c} = t.{c} + excluded.{c}" for c in COUNTERS)
)

_US: Final = timedelta(microseconds=1)

# The UPDATE joins a chunk's ids with a table of every dossier: a primary-key probe per id
# costs the same at any size, where a hash join would read the whole table (as in
# `projections.services`).
_INDEX_JOINS: Final = "SET LOCAL enable_hashjoin = off; SET LOCAL enable_mergejoin = off"
_DEFAULT_JOINS: Final = (
    "SET LOCAL enable_hashjoin TO DEFAULT; SET LOCAL enable_mergejoin TO DEFAULT"
)

Key = tuple[str, str, datetime]

_RECEIVED: Final = name_of(Dossier, "Received")
_SUPPLEMENT: Final = name_of(Dossier, "SupplementRequested")
_COMPLETED: Final = name_of(Dossier, "Completed")
_RATED: Final = name_of(Dossier, "Rated")
#: Where each column of a dossier row is (`_ROW_COLUMNS`).
_ROW_INDEX: Final = {name: i for i, name in enumerate(_ROW_COLUMNS)}
#: The closing and rating columns of a row received in this chunk, before them.
_NO_CLOSING: Final = (None,) * 9
#: The local offset (`TZ`) and the first year since which it has not changed.
_LOCAL_OFFSET: Final = timedelta(hours=7)
_STEADY_FROM: Final = 1976


# What the fold needs of a dossier (from its reception in this chunk, or its stored row as
# `_LOOKUP` fetches it, used as it is): by position in the row.
_AGENCY, _UNIT, _FEE, _DUE_AT, _RECEIVED_AT = range(1, 6)


def timely(event: Event) -> bool:
    """Whether the event reached the center within `TIMELY` of its CloudEvent time."""
    received = event.meta.get("received_at")
    if not isinstance(received, str):
        return True  # not from a CloudEvent: nothing was late
    return datetime.fromisoformat(received) - event.time <= TIMELY


def rollup(changes: dict[Key, list[int]]) -> dict[Key, list[int]]:
    """Changes of ``(agency, unit, month)`` added to the four levels of rows."""
    out: dict[Key, list[int]] = {}
    for (agency, unit, month), counts in changes.items():
        for key in (
            (agency, unit, month),
            (agency, ALL, month),
            (ALL, unit, month),
            (ALL, ALL, month),
        ):
            total = out.get(key)
            if total is None:
                out[key] = list(counts)
            else:
                for i, n in enumerate(counts):
                    total[i] += n
    return out


class _Changes:
    """Counter changes per ``(agency, unit, month)``, summed in memory."""

    def __init__(self) -> None:
        self.by_key: dict[Key, list[int]] = {}
        self._months: dict[tuple[int, int], datetime] = {}

    def month(self, moment: datetime) -> datetime:
        """`local_month` of `moment`. Asia/Ho_Chi_Minh has kept UTC+7 since 1975-06-13, so
        a moment given at +07:00 from 1976 on is in the local month of its own year and
        month (the CloudEvent times of the province): looked up, not converted again."""
        if moment.year >= _STEADY_FROM and moment.utcoffset() == _LOCAL_OFFSET:
            key = (moment.year, moment.month)
            start = self._months.get(key)
            if start is None:
                start = self._months[key] = local_month(moment)
            return start
        return local_month(moment)

    def cell(self, agency: str, unit: str, moment: datetime) -> list[int]:
        """The counters of `agency`, `unit` and the month of `moment` (made at zero)."""
        key = (agency, unit, self.month(moment))
        counts = self.by_key.get(key)
        if counts is None:
            counts = self.by_key[key] = [0] * len(COUNTERS)
        return counts

    def columns(self) -> list[list[Any]]:
        rows = sorted(rollup(self.by_key).items())
        out: list[list[Any]] = [[key[i] for key, _ in rows] for i in range(3)]
        out += [[counts[i] for _, counts in rows] for i in range(len(COUNTERS))]
        return out


class _Arrival:
    """`timely` for the events of a chunk, each ``received_at`` parsed once (a batch of
    events shares one), as the earliest timely time (received - time <= TIMELY exactly
    when time >= received - TIMELY)."""

    def __init__(self) -> None:
        self._earliest: dict[str, datetime] = {}

    def timely(self, event: Event) -> bool:
        received = event.meta.get("received_at")
        if not isinstance(received, str):
            return True  # not from a CloudEvent: nothing was late
        earliest = self._earliest.get(received)
        if earliest is None:
            earliest = datetime.fromisoformat(received) - TIMELY
            self._earliest[received] = earliest
        return event.time >= earliest


class _Times:
    """ISO times parsed once per chunk (due times repeat: the end of a working day)."""

    def __init__(self) -> None:
        self._parsed: dict[str, datetime] = {}

    def parse(self, text: str) -> datetime:
        at = self._parsed.get(text)
        if at is None:
            at = self._parsed[text] = datetime.fromisoformat(text)
        return at


class ServiceIndexProjection(Projection):
    """The service index's dossiers and monthly counters (see the module docstring)."""

    name: ClassVar[str] = NAME
    tables: ClassVar[tuple[str, ...]] = (
        "rm_index_dossiers",
        "rm_index_supplements",
        "rm_index_months",
    )
    events: ClassVar[frozenset[str] | None] = names_of(
        Dossier, "Received", "SupplementRequested", "Completed", "Withdrawn", "Rated"
    )

    async def setup(self, conn: Connection) -> None:
        await conn.execute(SCHEMA)

    async def apply(self, conn: Connection, events: Sequence[Event]) -> None:
        new: dict[UUID, list[Any]] = {}  # rows received in this chunk (column order)
        known: dict[UUID, Sequence[Any]] = {}
        later: dict[UUID, dict[str, Any]] = {}  # closings and ratings of stored dossiers
        supplements: list[tuple[Any, ...]] = []
        arrival = _Arrival()
        due_times = _Times()
        for event in events:
            if event.name == _RECEIVED:
                state = event.state
                oid = event.originator_id
                due_at = due_times.parse(state["due_at"])
                agency, unit, fee = state["agency"], state["unit"], state.get("fee") is True
                known[oid] = (oid, agency, unit, fee, due_at, event.time)
                new[oid] = [
                    oid,
                    state["code"],
                    agency,
                    unit,
                    state["level"],
                    state["channel"],
                    state.get("digitised") is True,
                    fee,
                    due_at,
                    event.time,
                    event.position,
                    arrival.timely(event),
                    "open",
                    *_NO_CLOSING,
                ]
        missing = list({e.originator_id for e in events if e.originator_id not in known})
        if missing:
            for row in await conn.fetch(_LOOKUP, missing):
                known[row[0]] = row
        changes = _Changes()
        cell = changes.cell
        for event in events:
            oid = event.originator_id
            dossier = known.get(oid)
            if dossier is None:  # never received: the aggregate refuses this; be defensive
                continue
            state = event.state
            at = event.time
            what = event.name
            agency, unit = dossier[_AGENCY], dossier[_UNIT]
            if what == _RECEIVED:
                counts = cell(agency, unit, at)
                eligible = state["level"] in ONLINE_LEVELS
                counts[RECEIVED] += 1
                counts[ELIGIBLE] += eligible
                counts[FILED] += eligible and state["channel"] == "online"
                counts[DIGITISED] += state.get("digitised") is True
                counts[IN_PROGRESS] += 1
                counts[STATUS] += 1
                counts[TIMELY_COUNT] += arrival.timely(event)
                r = dossier[_RECEIVED_AT]
                overdue = dossier[_DUE_AT] + _US
                cell(agency, unit, r if r > overdue else overdue)[OVERDUE] += 1
                continue
            if what == _RATED:
                counts = cell(agency, unit, at)
                counts[RATED] += 1
                counts[SATISFIED_COUNT] += state.get("rating") in SATISFIED
                fields: dict[str, Any] = {
                    "rating": state.get("rating"),
                    "rated_at": at,
                    "rated_position": event.position,
                }
            else:
                arrived = arrival.timely(event)
                counts = cell(agency, unit, at)
                counts[STATUS] += 1
                counts[TIMELY_COUNT] += arrived
                if what == _SUPPLEMENT:
                    supplements.append((oid, event.position, at, arrived))
                    continue
                completed = what == _COMPLETED
                if completed:
                    fee = dossier[_FEE]
                    counts[COMPLETED] += 1
                    counts[ON_TIME] += state.get("on_time") is True
                    counts[FEE] += fee
                    counts[PAID] += fee and state.get("paid_online") is True
                    counts[E_RESULT] += state.get("e_result") is True
                r = dossier[_RECEIVED_AT]
                cell(agency, unit, r if r > at else at)[IN_PROGRESS] -= 1
                overdue = max(r, dossier[_DUE_AT] + _US, at)
                cell(agency, unit, overdue)[OVERDUE] -= 1
                fields = {
                    "state": "completed" if completed else "withdrawn",
                    "closed_at": at,
                    "closed_position": event.position,
                    "closed_timely": arrived,
                    "on_time": state.get("on_time") if completed else None,
                    "e_result": state.get("e_result") is True if completed else None,
                    "paid_online": state.get("paid_online") is True if completed else None,
                }
            row = new.get(oid)
            if row is not None:
                for name, value in fields.items():
                    row[_ROW_INDEX[name]] = value
            else:
                found = later.get(oid)
                if found is None:
                    later[oid] = fields
                else:
                    found.update(fields)
        await copy_rows(conn, "rm_index_dossiers", _ROW_COLUMNS, [tuple(r) for r in new.values()])
        if later:
            await conn.execute(_INDEX_JOINS)
            await conn.execute(_UPDATE, *_update_columns(later))
            await conn.execute(_DEFAULT_JOINS)
        await copy_rows(
            conn,
            "rm_index_supplements",
            ("originator_id", "position", "at", "timely"),
            supplements,
        )
        if changes.by_key:
            await conn.execute(_ADD, *changes.columns())


_UPDATE_FIELDS: Final = (
    "state",
    "closed_at",
    "closed_position",
    "closed_timely",
    "on_time",
    "e_result",
    "paid_online",
    "rating",
    "rated_at",
    "rated_position",
)


def _update_columns(later: dict[UUID, dict[str, Any]]) -> Iterable[list[Any]]:
    yield list(later)
    for name in _UPDATE_FIELDS:
        yield [fields.get(name) for fields in later.values()]
