"""Stopping background tasks for sure.

On Python 3.11 `asyncio.wait_for` (which redis-py runs every command through)
can swallow a cancellation that lands as its awaitable completes: a task
cancelled once may run on. `cancel` cancels until the tasks are done.
"""

import asyncio
from collections.abc import Iterable
from typing import Any


async def cancel(tasks: Iterable["asyncio.Task[Any]"]) -> None:
    """Cancel `tasks` and wait for them, cancelling again any that swallowed it."""
    pending = {task for task in tasks if not task.done()}
    while pending:
        for task in pending:
            task.cancel()
        _done, pending = await asyncio.wait(pending, timeout=1)
