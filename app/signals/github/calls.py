"""The github view's calls to GitHub: each answer, or why there is none, as a `Read`.

A call that failed is not made again for the same thing before `retry` has passed, or
`poll` when GitHub refused it (a wrong `repo` or token needs a person, and asking spends
the hourly rate limit). What failed is remembered by this process, bounded.
"""

import logging
from collections.abc import Awaitable, Callable, Hashable
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Generic, TypeVar

from app.signals.github.client import GitHubClient, GitHubError

log = logging.getLogger(__name__)
T = TypeVar("T")
MEMORY_MAX = 10_000  # failures and polled checks remembered by this process
UNREAD = "not read from GitHub yet"


@dataclass(frozen=True)
class Read(Generic[T]):
    """One fact: its value, or why it is not known and when to look again."""

    value: T | None
    problem: str | None = None
    recheck_at: datetime | None = None


class Calls:
    """GitHub, asked only when a recent failure of the same call does not answer already."""

    def __init__(self, github: GitHubClient, retry: timedelta, poll: timedelta) -> None:
        self.github, self.retry, self.poll = github, retry, poll
        self._failures: dict[Hashable, tuple[datetime, str]] = {}

    async def ask(
        self,
        what: Hashable,
        now: datetime,
        fetch: bool,
        call: Callable[[], Awaitable[T]],
    ) -> Read[T]:
        """Ask GitHub, unless a failure of the same call is recent or fetching is not allowed."""
        failed = self._failures.get(what)
        if failed is not None and (failed[0] > now or not fetch):
            return Read(None, failed[1], failed[0] if failed[0] > now else None)
        if not fetch:
            return Read(None, UNREAD)
        try:
            value = await call()
        except GitHubError as error:
            # Unreachable or failing: soon again. Refused (404, 401…): a person must act first.
            refused = error.status is not None and error.status < 500
            until = max(
                now + (max(self.retry, self.poll) if refused else self.retry), error.retry_at or now
            )
            remember(self._failures, what, (until, str(error)), now)
            log.warning("github: %s", error)
            return Read(None, str(error), until)
        self._failures.pop(what, None)
        return Read(value)


def remember(
    memory: dict[Hashable, tuple[datetime, T]],
    key: Hashable,
    value: tuple[datetime, T],
    now: datetime,
) -> None:
    """Bounded: past entries go first, then the oldest."""
    if len(memory) >= MEMORY_MAX:
        for stale in [k for k, (until, _v) in memory.items() if until <= now]:
            del memory[stale]
        while len(memory) >= MEMORY_MAX:
            del memory[next(iter(memory))]
    memory[key] = value


def text(value: bytes | str) -> str:
    """A Redis reply as text, whether the client decodes replies or not."""
    return value.decode() if isinstance(value, bytes) else value
