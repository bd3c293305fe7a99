"""Values of the incident gate: open incidents and troubled components of a status page.

Two views feed it: status webhooks (kept in Redis by `app.signals.incidents.view`) and the last
read of `STATUS_API_URL` (`app.signals.incidents.client`). `merge` folds them into one
`IncidentsFacts`, latest news winning; `app.gates.incident` judges it per service.
"""

from collections.abc import Collection, Iterable, Mapping
from dataclasses import dataclass
from datetime import datetime
from typing import TypeVar

# Statuspage's incident and scheduled-maintenance statuses that mean "over" or "not begun".
# Anything else (investigating, identified, monitoring, in_progress, verifying, or a status
# Cascade does not know) is open: unknown is closed.
CLOSED_STATUSES = frozenset({"resolved", "postmortem", "completed", "scheduled"})
# "All is well": Statuspage, Heroku v4, and the Salesforce Trust API's instance statuses.
OPERATIONAL = frozenset(
    {"operational", "green", "ok", "informational_core", "informational_noncore"}
)


def is_open(status: str) -> bool:
    return status.strip().lower() not in CLOSED_STATUSES


def touches(systems: Collection[str], names: Collection[str]) -> bool:
    """Whether news naming `names` concerns a service watching `systems` (either empty: all)."""
    if not systems or not names:
        return True
    watched = {system.casefold() for system in systems}
    return any(name.casefold() in watched for name in names)


@dataclass(frozen=True)
class Incident:
    id: str
    name: str
    status: str  # investigating, identified, monitoring, in_progress, resolved, …
    components: tuple[str, ...] = ()  # systems/components it names; none: it touches every one
    url: str | None = None
    updated_at: datetime | None = None
    page_id: str | None = None  # the Statuspage page it is on, when known
    kind: str = "incident"  # or "maintenance": a maintenance in progress holds promotions too
    created_at: datetime | None = None  # when it opened, as its sender says (`app.core.halt`)

    @property
    def open(self) -> bool:
        return is_open(self.status)


@dataclass(frozen=True)
class Component:
    """A Statuspage component or a Heroku v4 system, with its status."""

    name: str
    status: str  # operational, degraded_performance, …, under_maintenance; Heroku: green, red, …
    updated_at: datetime | None = None
    page_id: str | None = None

    @property
    def troubled(self) -> bool:
        return self.status.strip().lower() not in OPERATIONAL


@dataclass(frozen=True)
class Feed:
    """One successful read of the status page: what was open and troubled at `fetched_at`."""

    fetched_at: datetime
    incidents: tuple[Incident, ...] = ()  # open ones only
    components: tuple[Component, ...] = ()  # troubled ones only
    page_id: str | None = None  # Statuspage's page id; None for Heroku v4


@dataclass(frozen=True)
class IncidentsFacts:
    incidents: tuple[Incident, ...]  # open ones, whatever systems they name
    components: tuple[Component, ...] = ()  # the ones not operational
    problem: str | None = None  # set when the status page cannot be known
    recheck_at: datetime | None = None


News = TypeVar("News", Incident, Component)


def merge(
    incidents: Iterable[Incident], components: Iterable[Component], feed: Feed | None
) -> tuple[tuple[Incident, ...], tuple[Component, ...]]:
    """The open incidents and troubled components, from webhook news and the last feed read.

    Of two reports of one incident (or component), the later wins; webhook news later than
    the feed's read wins even if the feed still lists the incident. Webhook news the feed
    does not list is dropped only when the feed is the same Statuspage page and was read
    after it: the page has moved on (a resolution whose webhook was missed).
    """
    hooks = {incident.id: incident for incident in incidents}
    listed = {incident.id: incident for incident in feed.incidents} if feed else {}
    states = {component.name.casefold(): component for component in components}
    shown = {c.name.casefold(): c for c in feed.components} if feed else {}
    return (
        tuple(sorted((i for i in _fold(hooks, listed, feed) if i.open), key=_incident_order)),
        tuple(sorted((c for c in _fold(states, shown, feed) if c.troubled), key=_name)),
    )


def _fold(hooks: Mapping[str, News], listed: Mapping[str, News], feed: Feed | None) -> list[News]:
    """Per key, the later of the webhook's and the feed's report."""
    kept = {
        k: n if (h := hooks.get(k)) is None or _later(n, h, feed) else h for k, n in listed.items()
    }
    kept.update((k, h) for k, h in hooks.items() if k not in kept and not _superseded(h, feed))
    return list(kept.values())


def _incident_order(incident: Incident) -> tuple[str, str]:
    return incident.name, incident.id


def _name(component: Component) -> str:
    return component.name


def _later(listed: Incident | Component, hook: Incident | Component, feed: Feed | None) -> bool:
    """The feed's report is newer than the webhook's (a tie goes to the webhook).

    News that came after the feed was read is never older than what the feed lists.
    """
    if hook.updated_at is None:
        return True
    if listed.updated_at is None or (feed is not None and hook.updated_at > feed.fetched_at):
        return False
    return listed.updated_at > hook.updated_at


def _superseded(hook: Incident | Component, feed: Feed | None) -> bool:
    """The feed is the same page as `hook` and was read after it, without listing it."""
    if feed is None or feed.page_id is None or hook.page_id != feed.page_id:
        return False
    return hook.updated_at is None or hook.updated_at < feed.fetched_at
