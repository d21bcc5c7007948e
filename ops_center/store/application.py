"""The event-sourced application: load the subject, decide, save with receipts.

`OpsCenter.ingest` records a batch of validated CloudEvents in one transaction (group
commit). It is synchronous, like the `eventsourcing` library: call it from a thread.
Outcomes follow docs/CONTRACT.md §2: ``accepted`` with the stored position, ``duplicate`` with
the original position, or ``rejected`` with a code, pointer and detail. One bad event
never fails the others: decisions that are refused are left out of the transaction, and
a transaction refused by the database (a concurrent writer on another node) is retried
event by event after reloading the subjects.
"""

from __future__ import annotations

import logging
import time
from collections import OrderedDict
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any, ClassVar, Final, Literal
from uuid import UUID

from eventsourcing.application import AggregateNotFoundError, Application, ProcessingEvent
from eventsourcing.domain import Aggregate
from eventsourcing.persistence import (
    DataError,
    IntegrityError,
    InterfaceError,
    OperationalError,
    Recording,
    Transcoder,
)
from eventsourcing.utils import get_topic
from psycopg.errors import PipelineAborted

from ops_center.domain import Meta
from ops_center.domain.errors import CONFLICT, INTERNAL, INVALID_ENVELOPE, Rejection
from ops_center.ingest.catalogue import EventType
from ops_center.ingest.cloudevents import CloudEvent
from ops_center.ingest.decisions import aggregate_id, decide
from ops_center.store.database import Database, as_database
from ops_center.store.recorder import IngestRecorder, Known, OrjsonTranscoder, Receipt

log = logging.getLogger(__name__)

#: Attempts to record one event when other nodes keep changing its subject concurrently.
SINGLE_ATTEMPTS: Final = 3
#: Seconds after a failure to reach the store during which batches are refused at once
#: (`StoreUnavailable`) instead of each waiting out the connection timeouts again; the
#: first batch after that tries the store again.
UNREACHABLE_HOLD: Final = 1.0


class StoreUnavailable(Exception):
    """The event store could not be reached; nothing of the batch was stored."""


@dataclass(frozen=True, slots=True)
class Submission:
    """A CloudEvent that passed envelope and data validation, ready to be decided on."""

    event: CloudEvent
    kind: EventType
    data: dict[str, Any]
    meta: Meta

    @property
    def key(self) -> tuple[str, str]:
        return (self.event.source, self.event.id)


@dataclass(frozen=True, slots=True)
class Outcome:
    """What happened to one submitted event."""

    status: Literal["accepted", "duplicate", "rejected"]
    position: int | None = None
    error: Rejection | None = None

    @classmethod
    def rejected(cls, error: Rejection) -> Outcome:
        return cls("rejected", error=error)


def _conflict(sub: Submission) -> Outcome:
    return Outcome.rejected(
        Rejection(
            CONFLICT,
            "/id",
            f"an event with source {sub.event.source!r} and id {sub.event.id!r} "
            "was already received with different content",
        )
    )


def _repeat(sub: Submission, known: Known) -> Outcome:
    if known.digest == sub.event.digest:
        return Outcome("duplicate", position=known.position)
    return _conflict(sub)


class OpsCenter(Application[UUID]):
    """The operations center's event-sourced application (events table ``ops_events``)."""

    name = "Ops"
    env: ClassVar[dict[str, str]] = {
        "APPLICATION_RECORDER_TOPIC": get_topic(IngestRecorder),
    }

    def __init__(self, database: Database | str, *, cache_size: int = 100_000) -> None:
        super().__init__(env=as_database(database).library_env())
        self._cache: OrderedDict[UUID, Aggregate] = OrderedDict()
        self._absent: set[UUID] = set()
        self._cache_size = cache_size
        #: `time.monotonic()` until which the store counts as unreachable (see ingest).
        self._unreachable_until = 0.0

    def construct_transcoder(self) -> Transcoder:
        return OrjsonTranscoder()

    @property
    def store(self) -> IngestRecorder:
        assert isinstance(self.recorder, IngestRecorder)
        return self.recorder

    @property
    def events_table(self) -> str:
        """The name of the events table (the global log that projections follow)."""
        return self.store.events_table_name

    def ingest(self, batch: Sequence[Submission]) -> list[Outcome]:
        """Decide on and store a batch in one transaction; one outcome per submission.

        Raises `StoreUnavailable` when the database cannot be reached (nothing stored),
        and at once, without trying, for `UNREACHABLE_HOLD` seconds after such a failure:
        requests queued behind a failing commit are answered promptly.
        """
        if time.monotonic() < self._unreachable_until:
            raise StoreUnavailable("the event store was unreachable a moment ago")
        try:
            try:
                return self._ingest(batch, retry_singly=True)
            except DataError:
                # Something in the batch the database refuses to hold; find it.
                log.warning("batch of %d refused as data; retrying one by one", len(batch))
                return [self._ingest_single(sub) for sub in batch]
        except (OperationalError, InterfaceError) as exc:
            self._cache.clear()
            self._unreachable_until = time.monotonic() + UNREACHABLE_HOLD
            log.warning("event store unavailable: %s: %s", type(exc).__name__, exc)
            raise StoreUnavailable(str(exc)) from exc

    def _ingest(self, batch: Sequence[Submission], *, retry_singly: bool) -> list[Outcome]:
        outcomes: list[Outcome | None] = [None] * len(batch)
        known = self.store.find_receipts({sub.key for sub in batch})
        planned: list[int] = []
        repeats: list[int] = []
        seen: set[tuple[str, str]] = set()
        for i, sub in enumerate(batch):
            found = known.get(sub.key)
            if found is not None:
                outcomes[i] = _repeat(sub, found)
            elif sub.key in seen:
                repeats.append(i)
            else:
                seen.add(sub.key)
                planned.append(i)

        self._preload({aggregate_id(batch[i].kind, batch[i].event.subject) for i in planned})
        touched: dict[UUID, Aggregate] = {}
        ordered: list[Any] = []
        decided: list[tuple[int, Any]] = []
        receipts: list[Receipt] = []
        for i in planned:
            sub = batch[i]
            agg_id = aggregate_id(sub.kind, sub.event.subject)
            try:
                aggregate = self._decide(sub, agg_id, touched)
            except Rejection as rejection:
                outcomes[i] = Outcome.rejected(rejection)
                continue
            except Exception:
                # A bug, not bad input: reject this event alone and forget the subject,
                # whose cached state may be half-changed; it is reloaded from the store.
                log.exception("deciding on event %s/%s failed", *sub.key)
                self._cache.pop(agg_id, None)
                touched.pop(agg_id, None)
                outcomes[i] = Outcome.rejected(
                    Rejection(INTERNAL, "", "the event could not be processed; it was logged")
                )
                continue
            touched[aggregate.id] = aggregate
            (new_event,) = aggregate.collect_events()
            ordered.append(new_event)
            decided.append((i, new_event))
            receipts.append(
                Receipt(
                    sub.event.source,
                    sub.event.id,
                    sub.event.digest,
                    aggregate.id,
                    new_event.originator_version,
                )
            )

        if touched:
            try:
                # Save the events themselves, in the order they were decided, so that
                # positions follow the order of the requests.
                recordings = self._record_in_order(ordered, receipts)
            except IntegrityError:
                for agg_id in touched:
                    self._cache.pop(agg_id, None)
                if not retry_singly:
                    raise
                # Most often an aggregate this process had cached was changed by another
                # HTTP process (its cache entry is gone now): decide the whole batch again
                # on fresh state, in one transaction; one by one only if that fails too.
                log.info("batch of %d refused by the store; deciding it again", len(planned))
                try:
                    return self._ingest(batch, retry_singly=False)
                except IntegrityError:
                    log.info("batch of %d refused again; one by one", len(planned))
                for i in planned:
                    outcomes[i] = self._ingest_single(batch[i])
                decided = []
            except BaseException:
                for agg_id in touched:
                    self._cache.pop(agg_id, None)
                raise
            else:
                positions = {id(r.domain_event): r.notification.id for r in recordings}
                for i, new_event in decided:
                    outcomes[i] = Outcome("accepted", position=positions[id(new_event)])
                for aggregate in touched.values():
                    self._remember(aggregate)

        if repeats:
            again = self._ingest([batch[i] for i in repeats], retry_singly=retry_singly)
            for i, outcome in zip(repeats, again, strict=True):
                outcomes[i] = outcome
        assert all(o is not None for o in outcomes)
        return [o for o in outcomes if o is not None]

    def _ingest_single(self, sub: Submission) -> Outcome:
        for attempt in range(1, SINGLE_ATTEMPTS + 1):
            try:
                return self._ingest([sub], retry_singly=False)[0]
            except DataError as exc:
                return Outcome.rejected(
                    Rejection(INVALID_ENVELOPE, "", f"the store cannot hold this event: {exc}")
                )
            except IntegrityError:
                log.warning("event %s/%s refused by the store (attempt %d)", *sub.key, attempt)
        return Outcome.rejected(
            Rejection(
                CONFLICT,
                "/subject",
                f"subject {sub.event.subject!r} is being changed concurrently; send again",
            )
        )

    def _record_in_order(self, events: list[Any], receipts: list[Receipt]) -> list[Recording[UUID]]:
        """Store already-decided events with their receipts, in the given order.

        The same as `Application.save` for events, without its per-object protocol checks
        (profiled at 8 % of the writer's time); no snapshots or notifications are in use.
        """
        processing = ProcessingEvent[UUID]()
        processing.events.extend(events)
        processing.saved_kwargs["receipts"] = receipts
        try:
            return self._record(processing)
        except OperationalError as exc:
            if isinstance(exc.__cause__, PipelineAborted):
                # The insert runs in a pipeline: when a concurrent writer stored the same
                # event or aggregate version first, the unique violation can surface as
                # the aborted pipeline of the statement after it. The store is fine.
                raise IntegrityError(f"refused by the store: {exc}") from exc
            raise

    def _decide(self, sub: Submission, agg_id: UUID, touched: dict[UUID, Aggregate]) -> Aggregate:
        """Decide on `sub`; raises `Rejection`. A rejection decided on this process's
        cached state is checked against the stored state first: another HTTP process may
        have changed the subject since (a broadcast it started), and an event refused on
        stale state would be refused wrongly. An acceptance needs no such check: saving it
        on a stale version fails, and the batch is decided again (`_ingest`)."""
        current = touched.get(agg_id) or self._load(agg_id)
        try:
            return decide(sub.kind, current, sub.event.subject, sub.data, sub.meta)
        except Rejection:
            if current is None or agg_id in touched or self._cache.get(agg_id) is not current:
                raise
            self._cache.pop(agg_id, None)
            try:
                stored: Aggregate = self.repository.get(agg_id)
            except AggregateNotFoundError:  # pragma: no cover - aggregates are never deleted
                stored = current
            self._remember(stored)
            if stored.version == current.version:
                raise
        return decide(sub.kind, stored, sub.event.subject, sub.data, sub.meta)

    def _preload(self, ids: set[UUID]) -> None:
        """Load every uncached aggregate of a batch in one query; absent ones stay absent."""
        missing = [agg_id for agg_id in ids if agg_id not in self._cache]
        self._absent = set(missing)
        if not missing:
            return
        mapper = self.mapper
        for agg_id, stored in self.store.select_many(missing).items():
            aggregate: Aggregate | None = None
            for record in stored:
                aggregate = mapper.to_domain_event(record).mutate(aggregate)  # type: ignore[attr-defined]
            if aggregate is not None:
                self._absent.discard(agg_id)
                self._remember(aggregate)

    def _load(self, agg_id: UUID) -> Aggregate | None:
        cached = self._cache.get(agg_id)
        if cached is not None:
            self._cache.move_to_end(agg_id)
            return cached
        if agg_id in self._absent:
            return None
        try:
            aggregate: Aggregate = self.repository.get(agg_id)
        except AggregateNotFoundError:
            return None
        return aggregate

    def _remember(self, aggregate: Aggregate) -> None:
        self._cache[aggregate.id] = aggregate
        self._cache.move_to_end(aggregate.id)
        while len(self._cache) > self._cache_size:
            self._cache.popitem(last=False)

    def forget(self) -> None:
        """Drop every cached aggregate (they are reloaded from the store on next use)."""
        self._cache.clear()
