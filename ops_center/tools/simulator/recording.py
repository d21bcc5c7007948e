"""The simulated province recorded in-process: the way into `OpsCenter.ingest` without HTTP.

`submissions` validates raw CloudEvents against a profile as the HTTP ingest does
(envelope, catalogue, fields) and gives the submissions `OpsCenter.ingest` records;
`record` records events in transactions of `batch` events. The library is synchronous:
call them from a thread in async code. Unlike the rest of the simulator this module
loads the store (eventsourcing, psycopg): the package's ``__init__`` does not import it.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from datetime import UTC, datetime
from typing import Any

from ops_center.domain import Meta
from ops_center.ingest import cloudevents
from ops_center.ingest.catalogue import CATALOGUE, validate_data
from ops_center.province.profile import Profile
from ops_center.store.application import OpsCenter, Outcome, Submission

Raw = dict[str, Any]


def submissions(raws: Iterable[Raw], profile: Profile, *, key: str = "test") -> list[Submission]:
    """Validated submissions of raw CloudEvents; raises `Rejection` for a bad one."""
    received_at = datetime.now(UTC).isoformat()
    out: list[Submission] = []
    for raw in raws:
        event = cloudevents.parse(raw)
        kind = CATALOGUE[event.type]
        data = validate_data(kind, event.data, profile)
        meta: Meta = {
            "source": event.source,
            "id": event.id,
            "time": event.time,
            "received_at": received_at,
            "key": key,
        }
        out.append(Submission(event, kind, data, meta))
    return out


def record(
    store: OpsCenter,
    raws: Sequence[Raw],
    profile: Profile,
    *,
    batch: int = 1_000,
    key: str = "test",
) -> list[Outcome]:
    """Record `raws` in order, `batch` events per transaction (like the group-commit
    writer under load); every outcome, in order."""
    outcomes: list[Outcome] = []
    for begin in range(0, len(raws), batch):
        outcomes += store.ingest(submissions(raws[begin : begin + batch], profile, key=key))
    return outcomes
