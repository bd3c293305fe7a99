"""GitHub commit statuses: where a commit is in the pipeline, and why it waits.

An audit listener. For a service with `commit_statuses = true` (and a `repo`), each gate
transition and promotion becomes a `cascade/<stage>` status on the commit: pending with the
blocking gate's reason, success once it runs in the stage, failure when its promotion
failed. Statuses go out one at a time in the order of the events, in the background: GitHub
being slow or down never delays or breaks a promotion. An unchanged status is not re-posted.
"""

import logging
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from app.config.catalog import Catalog
from app.config.durations import short
from app.config.services import Service
from app.config.settings import Settings
from app.metrics import Metrics
from app.notify.github import Listener, writer
from app.signals.github.client import GitHubClient, GitHubError, shorten
from app.storage import keys
from app.storage.audit import Event
from app.storage.client import Client

log = logging.getLogger(__name__)

CONTEXT = "cascade/{stage}"
SCOPE = "write statuses: classic scope repo:status, or fine-grained 'Commit statuses'"


@dataclass(frozen=True)
class Status:
    stage: str
    state: str  # pending|success|failure
    description: str

    @property
    def context(self) -> str:
        return CONTEXT.format(stage=self.stage)


def statuses(event: Event) -> list[Status]:
    """The statuses an audit event means for its commit (pure)."""
    source, target, details = event.source, event.target, event.details
    if event.kind == "gate.changed" and source and target:
        running = Status(source, "success", f"running on {source}")
        return [running, _waiting(target, source, details, event.message)]
    if event.kind == "promotion.started" and source and target:
        return [Status(target, "pending", f"promoting from {source}")]
    if event.kind == "promotion.succeeded" and target:
        return [Status(target, "success", f"running on {target}")]
    if event.kind == "promotion.failed" and target:
        return [Status(target, "failure", event.message)]
    return []


def _waiting(target: str, source: str, details: Mapping[str, Any], message: str) -> Status:
    """The target's status while the commit has not reached it."""
    state = details.get("state")
    if state == "failed":
        return Status(target, "failure", f"promotion failed: {details.get('reason') or message}")
    if state == "ready":
        return Status(target, "pending", f"every gate is open: promoting from {source}")
    if state == "promoting":
        return Status(target, "pending", f"promoting from {source}")
    blocking = [g for g in details.get("gates", ()) if g.get("state") != "open"]
    reason = (
        f"{blocking[0]['name']}: {blocking[0]['reason']}"
        if blocking
        else details.get("reason") or message
    )
    opens_at = details.get("opens_at")
    if opens_at:
        reason += f" (at {_clock(opens_at)})"
    return Status(target, "pending", f"{state or 'waiting'}: {reason}")


def _clock(stamp: str) -> str:
    try:
        return datetime.fromisoformat(stamp).strftime("%Y-%m-%d %H:%M UTC")
    except ValueError:
        return stamp


class CommitStatuses(Listener[tuple[str, str, str, Status]]):
    """Posts the statuses of audit events, in order, deduplicated through Redis."""

    def __init__(
        self,
        github: GitHubClient,
        client: Client,
        catalog: Catalog,
        metrics: Metrics,
        public_url: str | None = None,
    ) -> None:
        super().__init__(github, catalog, public_url, "commit statuses")
        self.redis, self.metrics = client, metrics

    @classmethod
    def from_settings(
        cls, settings: Settings, client: Client, catalog: Catalog, metrics: Metrics
    ) -> "CommitStatuses | None":
        """With GITHUB_TOKEN set; None otherwise (warned about if a service wants them)."""
        made = writer(settings, catalog, _wants, "commit statuses", SCOPE)
        return None if made is None else cls(made, client, catalog, metrics, settings.public_url)

    async def on_event(self, event: Event) -> None:
        """Audit listener: queue the event's statuses when its service wants them."""
        service = self.catalog.get(event.service) if event.service else None
        if service is None or not service.commit_statuses or not service.repo or not event.commit:
            return
        for status in statuses(event):
            self._outbox.put((service.name, service.repo, event.commit, status))

    async def send(self, item: tuple[str, str, str, Status]) -> bool:
        return await self.post(*item)

    async def post(self, service: str, repo: str, commit: str, status: Status) -> bool:
        """Post unless GitHub already shows this status; True when posted."""
        key = keys.commit_status(service, commit, status.context)
        wanted = f"{status.state} {shorten(status.description)}"
        if await self.redis.get(key) == wanted:
            self.metrics.commit_statuses.labels("unchanged").inc()
            return False
        try:
            await self.github.create_status(
                repo,
                commit,
                state=status.state,
                context=status.context,
                description=status.description,
                target_url=self.link(service),
            )
        except GitHubError as error:
            self.metrics.commit_statuses.labels("failed").inc()
            log.warning(
                "commit status %s %s on %s@%s not posted: %s",
                status.context,
                status.state,
                repo,
                short(commit),
                error,
                extra={"fields": {"service": service, "commit": commit}},
            )
            return False
        ttl = int(keys.COMMIT_STATUS_TTL.total_seconds())
        await self.redis.set(key, wanted, ex=ttl)
        self.metrics.commit_statuses.labels("posted").inc()
        log.info(
            "commit status %s %s: %s",
            status.context,
            status.state,
            status.description,
            extra={"fields": {"service": service, "commit": commit}},
        )
        return True


def _wants(service: Service) -> bool:
    return service.commit_statuses
