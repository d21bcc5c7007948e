"""Group commit: how `GroupCommitWriter` gathers, splits and answers (no database here).

The writer is given a plain function in place of `OpsCenter.ingest`; what it records is
the batches it was called with, so these tests see exactly how requests were grouped.
"""

from __future__ import annotations

import asyncio
import threading
from collections.abc import Sequence
from typing import Any

import pytest

from ops_center.store.application import Outcome, StoreUnavailable
from ops_center.store.writer import GroupCommitWriter, WriterClosed


class Recorder:
    """Stands in for `OpsCenter.ingest`: answers `accepted` with increasing positions."""

    def __init__(self, *, delay: float = 0.0, fail_on: object = None) -> None:
        self.batches: list[list[Any]] = []
        self.position = 0
        self.delay = delay
        self.fail_on = fail_on
        self.threads: set[str] = set()
        self.release = threading.Event()
        self.release.set()

    def __call__(self, batch: Sequence[Any]) -> list[Outcome]:
        self.threads.add(threading.current_thread().name)
        self.release.wait(5)
        if self.fail_on is not None and self.fail_on in batch:
            raise StoreUnavailable("database down")
        self.batches.append(list(batch))
        outcomes = []
        for _ in batch:
            self.position += 1
            outcomes.append(Outcome("accepted", position=self.position))
        return outcomes


async def started(recorder: Recorder, **options: Any) -> GroupCommitWriter:
    writer = GroupCommitWriter(recorder, **options)  # type: ignore[arg-type]
    await writer.start()
    return writer


async def test_concurrent_requests_share_one_transaction_and_get_their_own_outcomes() -> None:
    recorder = Recorder()
    recorder.release.clear()  # hold the first transaction so the others queue up
    writer = await started(recorder, max_batch=1000, max_wait=0.0)
    first = asyncio.create_task(writer.submit(["a0"]))
    await asyncio.sleep(0.02)
    rest = [asyncio.create_task(writer.submit([f"r{i}-0", f"r{i}-1"])) for i in range(5)]
    await asyncio.sleep(0.02)
    recorder.release.set()
    answers = await asyncio.gather(first, *rest)
    await writer.close()

    assert recorder.batches[0] == ["a0"]
    assert recorder.batches[1] == [f"r{i}-{j}" for i in range(5) for j in range(2)]
    assert [len(a) for a in answers] == [1, 2, 2, 2, 2, 2]
    positions = [o.position for answer in answers for o in answer]
    assert positions == list(range(1, 12))
    assert recorder.threads == {"ops-writer_0"}  # never on the event loop's thread


async def test_a_transaction_takes_whole_requests_until_it_reaches_max_batch() -> None:
    recorder = Recorder()
    recorder.release.clear()
    writer = await started(recorder, max_batch=4, max_wait=0.0)
    blocker = asyncio.create_task(writer.submit(["x"]))
    await asyncio.sleep(0.02)
    small = [asyncio.create_task(writer.submit([f"s{i}"] * 1)) for i in range(6)]
    large = asyncio.create_task(writer.submit([f"L{i}" for i in range(9)]))
    await asyncio.sleep(0.02)
    recorder.release.set()
    await asyncio.gather(blocker, *small, large)
    await writer.close()

    # [x], then four single events (the limit), then the last two singles and the large
    # request, which is never split: it joins while the batch is under the limit.
    assert [len(b) for b in recorder.batches] == [1, 4, 11]
    assert recorder.batches[2][2:] == [f"L{i}" for i in range(9)]


async def test_an_unavailable_store_fails_only_the_requests_in_that_transaction() -> None:
    recorder = Recorder(fail_on="poison")
    writer = await started(recorder, max_batch=1000, max_wait=0.0)
    with pytest.raises(StoreUnavailable):
        await writer.submit(["poison"])
    (outcome,) = await writer.submit(["fine"])
    await writer.close()
    assert outcome.status == "accepted"
    assert writer.stats.failed_batches == 1
    assert writer.stats.events == 1


async def test_close_records_what_was_submitted_and_refuses_new_submissions() -> None:
    recorder = Recorder()
    recorder.release.clear()
    writer = await started(recorder, max_batch=1000, max_wait=0.0)
    pending = [asyncio.create_task(writer.submit([f"e{i}"])) for i in range(3)]
    await asyncio.sleep(0.02)
    closing = asyncio.create_task(writer.close())
    await asyncio.sleep(0.02)
    with pytest.raises(WriterClosed):
        await writer.submit(["late"])
    recorder.release.set()
    await closing
    answers = await asyncio.gather(*pending)
    assert [a[0].status for a in answers] == ["accepted"] * 3
    assert sum(len(b) for b in recorder.batches) == 3


async def test_an_empty_submission_is_answered_at_once_without_a_transaction() -> None:
    recorder = Recorder()
    writer = await started(recorder)
    assert await writer.submit([]) == []
    await writer.close()
    assert recorder.batches == []
