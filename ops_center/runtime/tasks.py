"""Stopping background tasks for sure."""

from __future__ import annotations

import asyncio
from collections.abc import Iterable
from typing import Any


async def stop_tasks(tasks: Iterable[asyncio.Future[Any]]) -> None:
    """Cancel the tasks and wait until they are done, cancelling again should a
    cancellation be lost (on Python 3.11 a timeout inside a library, e.g. redis-py's read
    timeout, can swallow one)."""
    pending = {t for t in tasks if not t.done()}
    while pending:
        for task in pending:
            task.cancel()
        _, pending = await asyncio.wait(pending, timeout=1.0)
    for task in tasks:
        if task.done() and not task.cancelled():
            task.exception()  # retrieved: the owner logged what mattered
