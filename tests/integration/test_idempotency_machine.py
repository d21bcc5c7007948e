"""Idempotency as a state machine, against the real application on real PostgreSQL.

Hypothesis drives sequences of: new events, duplicates, conflicts (same ``(source, id)``,
other content), duplicates within one batch (what the group-commit writer does with two
requests arriving together), duplicates sent concurrently by two nodes (two `OpsCenter`
instances on two threads, released together), the same for new and for known events,
and two nodes racing with different content for the same ``(source, id)``. A model keeps
what must be stored: ``(source, id)`` -> (content, position). After every step the store
must equal the model: one receipt per acknowledged event, at its position, nothing else.
"""

from __future__ import annotations

import os
import threading
import uuid
from concurrent.futures import ThreadPoolExecutor
from typing import Any

import psycopg
import pytest
from hypothesis import HealthCheck, settings
from hypothesis import strategies as st
from hypothesis.stateful import (
    Bundle,
    RuleBasedStateMachine,
    invariant,
    multiple,
    rule,
    run_state_machine_as_test,
)

from ops_center.ingest import cloudevents
from ops_center.ingest.catalogue import CATALOGUE, validate_data
from ops_center.province.profile import load_profile
from ops_center.store.application import OpsCenter, Outcome, Submission

PROFILE = load_profile()
NAMES = ("Cổng UBND", "Ngã tư", "Chợ", "Trường học")
#: Sequences tried (``OPS_CENTER_MACHINE_EXAMPLES``; default 12 for CI, 200 for a long run).
EXAMPLES = int(os.environ.get("OPS_CENTER_MACHINE_EXAMPLES", "12"))
MACHINE_SETTINGS = settings(
    max_examples=EXAMPLES,
    stateful_step_count=12,
    deadline=None,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.filter_too_much],
)


def submission(source: str, event_id: str, subject: str, name: str) -> Submission:
    raw = {
        "specversion": "1.0",
        "id": event_id,
        "source": source,
        "type": "camera.registered",
        "time": "2026-11-22T09:00:00+07:00",
        "subject": subject,
        "data": {"name": name, "unit": "MS-D01-C01", "kind": "security"},
    }
    event = cloudevents.parse(raw)
    kind = CATALOGUE[event.type]
    meta = {
        "source": source,
        "id": event_id,
        "time": event.time,
        "received_at": "2026-11-22T02:00:00+00:00",
        "key": "machine",
    }
    return Submission(event, kind, validate_data(kind, event.data, PROFILE), meta)  # type: ignore[arg-type]


@pytest.fixture(scope="module")
def nodes(database_url: str) -> Any:
    """Two application instances on the same database: two nodes."""
    first, second = OpsCenter(database_url), OpsCenter(database_url)
    yield first, second
    first.close()
    second.close()


def test_idempotency_state_machine(nodes: tuple[OpsCenter, OpsCenter], database_url: str) -> None:
    node_a, node_b = nodes
    pool = ThreadPoolExecutor(2, thread_name_prefix="node")
    steps = {"steps": 0, "events": 0}

    def together(a: Submission, b: Submission) -> tuple[Outcome, Outcome]:
        """Node A ingests `a` and node B ingests `b` at the same moment."""
        barrier = threading.Barrier(2)

        def run(node: OpsCenter, sub: Submission) -> Outcome:
            barrier.wait(10)
            return node.ingest([sub])[0]

        first = pool.submit(run, node_a, a)
        second = pool.submit(run, node_b, b)
        return first.result(30), second.result(30)

    class Idempotency(RuleBasedStateMachine):
        known = Bundle("known")

        def __init__(self) -> None:
            super().__init__()
            #: Every run has its own source: the model covers exactly what it sent.
            self.source = f"urn:machine:{uuid.uuid4().hex}"
            self.model: dict[str, tuple[Submission, int]] = {}
            self.last = 0

        def fresh(self, name: str) -> Submission:
            return submission(self.source, uuid.uuid4().hex, f"CAM-{uuid.uuid4().hex}", name)

        def accept(self, sub: Submission, outcome: Outcome) -> str:
            assert outcome.status == "accepted", outcome
            assert outcome.position is not None
            assert outcome.position > self.last  # positions only grow
            self.last = outcome.position
            self.model[sub.event.id] = (sub, outcome.position)
            steps["events"] += 1
            return sub.event.id

        def expect_duplicate(self, event_id: str, outcome: Outcome) -> None:
            assert outcome == Outcome("duplicate", position=self.model[event_id][1]), outcome

        @rule(target=known, names=st.lists(st.sampled_from(NAMES), min_size=1, max_size=4))
        def new_events(self, names: list[str]) -> Any:
            subs = [self.fresh(n) for n in names]
            outcomes = node_a.ingest(subs)
            return multiple(*(self.accept(s, o) for s, o in zip(subs, outcomes, strict=True)))

        @rule(event_id=known, on_b=st.booleans())
        def duplicate(self, event_id: str, on_b: bool) -> None:
            sub = self.model[event_id][0]
            self.expect_duplicate(event_id, (node_b if on_b else node_a).ingest([sub])[0])

        @rule(event_id=known, name=st.sampled_from(NAMES))
        def conflict(self, event_id: str, name: str) -> None:
            stored = self.model[event_id][0]
            changed = submission(self.source, event_id, stored.event.subject, name + " (mới)")
            (outcome,) = node_a.ingest([changed])
            assert outcome.status == "rejected"
            assert outcome.error is not None
            assert outcome.error.code == "conflict"

        @rule(target=known, name=st.sampled_from(NAMES))
        def duplicate_within_one_batch(self, name: str) -> str:
            sub = self.fresh(name)
            first, second = node_a.ingest([sub, sub])
            event_id = self.accept(sub, first)
            self.expect_duplicate(event_id, second)
            return event_id

        @rule(target=known, name=st.sampled_from(NAMES))
        def new_event_sent_by_two_nodes_at_once(self, name: str) -> str:
            sub = self.fresh(name)
            outcomes = together(sub, sub)
            accepted = [o for o in outcomes if o.status == "accepted"]
            assert len(accepted) == 1, outcomes
            event_id = self.accept(sub, accepted[0])
            self.expect_duplicate(event_id, next(o for o in outcomes if o is not accepted[0]))
            return event_id

        @rule(event_id=known)
        def known_event_sent_by_two_nodes_at_once(self, event_id: str) -> None:
            sub = self.model[event_id][0]
            for outcome in together(sub, sub):
                self.expect_duplicate(event_id, outcome)

        @rule(target=known, names=st.lists(st.sampled_from(NAMES), min_size=2, max_size=2))
        def two_nodes_race_with_different_content(self, names: list[str]) -> Any:
            one = self.fresh(names[0])
            other = submission(self.source, one.event.id, one.event.subject, names[1] + " (khác)")
            outcomes = together(one, other)
            statuses = sorted(o.status for o in outcomes)
            assert statuses == ["accepted", "rejected"], outcomes
            winner = one if outcomes[0].status == "accepted" else other
            loser = outcomes[1] if winner is one else outcomes[0]
            assert loser.error is not None
            assert loser.error.code == "conflict"
            return self.accept(winner, outcomes[0] if winner is one else outcomes[1])

        @rule(target=known, event_id=known, name=st.sampled_from(NAMES))
        def mixed_batch(self, event_id: str, name: str) -> str:
            """A batch with a new event, a duplicate and a conflict: each gets its own."""
            stored = self.model[event_id][0]
            changed = submission(self.source, event_id, stored.event.subject, name + " (sửa)")
            new = self.fresh(name)
            dup_outcome, new_outcome, conflict_outcome = node_b.ingest([stored, new, changed])
            self.expect_duplicate(event_id, dup_outcome)
            assert conflict_outcome.error is not None
            assert conflict_outcome.error.code == "conflict"
            return self.accept(new, new_outcome)

        @invariant()
        def store_equals_model(self) -> None:
            steps["steps"] += 1
            with psycopg.connect(database_url) as conn:
                rows = conn.execute(
                    "SELECT r.event_id, r.digest, e.notification_id FROM ingest_receipts r "
                    "JOIN ops_events e ON e.originator_id = r.originator_id "
                    "AND e.originator_version = r.originator_version WHERE r.source = %s",
                    (self.source,),
                ).fetchall()
            assert {row[0]: (bytes(row[1]), row[2]) for row in rows} == {
                event_id: (sub.event.digest, position)
                for event_id, (sub, position) in self.model.items()
            }

    try:
        run_state_machine_as_test(Idempotency, settings=MACHINE_SETTINGS)
    finally:
        pool.shutdown()
    print(
        f"\nidempotency machine: {EXAMPLES} sequences, {steps['steps']} store checks, "
        f"{steps['events']} events accepted"
    )
    assert steps["events"] > 0
