"""The incidents view's stored form: webhook news by field, the feed's last read, its failure.

`app.signals.incidents.view` reads and writes Redis; this module says what its values mean
and which news replaces which. News is kept as JSON (pydantic); a value an incompatible
version wrote reads as absent. Pure: no I/O.
"""

import logging
from collections.abc import Iterable
from dataclasses import dataclass
from datetime import datetime
from typing import TypeVar

from pydantic import TypeAdapter, ValidationError

from app.signals.incidents.facts import Component, Feed, Incident
from app.storage import keys

log = logging.getLogger(__name__)
Touched = tuple[str, ...]  # the component names some news concerns; empty: every component
T = TypeVar("T")


@dataclass(frozen=True)
class Entry:
    """One piece of webhook news: an incident or a component, as received."""

    received_at: datetime
    incident: Incident | None = None
    component: Component | None = None

    @property
    def updated_at(self) -> datetime | None:
        news = self.incident or self.component
        return news.updated_at if news else None

    @property
    def active(self) -> bool:
        """An open incident or a troubled component: never dropped before closed news."""
        return bool(self.incident and self.incident.open) or bool(
            self.component and self.component.troubled
        )


@dataclass(frozen=True)
class FeedRead:
    """The last good read of the status page, and the URL it was read from."""

    url: str
    feed: Feed


@dataclass(frozen=True)
class Failure:
    """Why the status page cannot be read since the last good read."""

    url: str
    since: datetime  # the first failure after the last good read
    at: datetime
    error: str


entry, feed_read, failure = TypeAdapter(Entry), TypeAdapter(FeedRead), TypeAdapter(Failure)


def replaces(new: Entry, old: Entry) -> bool:
    """Later (or as late but different) news replaces what is kept; a repeat does not."""
    if new.incident == old.incident and new.component == old.component:
        return False
    if new.updated_at is None or old.updated_at is None:
        return True
    return new.updated_at >= old.updated_at


def overflow(stored: dict[str, str], writing: str, now: datetime) -> list[str]:
    """The fields to drop: closed news past its keep, then the oldest past the cap."""
    others = [(k, e) for k, v in stored.items() if k != writing and (e := parse(v)) is not None]
    unreadable = [k for k, v in stored.items() if k != writing and parse(v) is None]
    expired = {k for k, e in others if not e.active and now - e.received_at > keys.STATUS_VIEW_KEEP}
    kept = sorted(
        ((k, e) for k, e in others if k not in expired),
        key=lambda item: (item[1].active, item[1].received_at),
    )
    excess = max(0, len(kept) + 1 - keys.STATUS_VIEW_MAX)
    if excess:
        log.warning("status view full: dropping the %d oldest items", excess)
    return [*unreadable, *expired, *(k for k, _ in kept[:excess])]


def changes(before: Feed, after: Feed) -> list[Touched]:
    """What differs between two reads: the components each changed item names."""
    statuses = {(c.name, c.status) for c in before.components}
    statuses ^= {(c.name, c.status) for c in after.components}
    incidents = set(before.incidents) ^ set(after.incidents)
    return [i.components for i in incidents] + [(name,) for name, _ in statuses]


def entries(values: Iterable[str]) -> list[Entry]:
    return [e for v in values if (e := parse(v)) is not None]


def parse(value: str | None) -> Entry | None:
    return load(entry, value)


def load(adapter: TypeAdapter[T], value: str | bytes | None) -> T | None:
    """A stored value, or None when absent or written by an incompatible version."""
    if value is None:
        return None
    try:
        return adapter.validate_json(value)
    except ValidationError:
        return None
