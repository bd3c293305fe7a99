"""Every signal's Redis view and its fallback reader, gathered per snapshot.

Webhooks write each signal's view (the `record…` methods of `<signal>/view.py`); a
reconcile reads them all at once through `Views.gather`. A view falls back to its
source's API (`<signal>/client.py`) when it has nothing or has gone stale, and says
`problem` when neither can tell: its gate is then unknown, which is closed.
"""

import asyncio
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import UTC, datetime

from app.config.services import Service
from app.config.settings import Settings
from app.core.models import Signals
from app.signals.alerts.view import AlertsView
from app.signals.freezes.facts import FreezeWindow
from app.signals.freshness import Freshness, judge
from app.signals.github.branch_view import Branch
from app.signals.github.view import GitHubView
from app.signals.incidents.view import IncidentsView, Kept
from app.signals.urls.client import UrlProber
from app.storage import keys
from app.storage.batch import Batch, Reply
from app.storage.client import Client

_INFORMATIONAL = {"github": "github", "heroku": "releases"}  # source -> the signal it feeds


@dataclass(frozen=True)
class Prefetched:
    """What the signals' views read in a batch that goes out anyway (a reconcile's lock),
    instead of in a round trip of their own (`Views.send_reads`)."""

    incidents: Reply[Kept]
    branch: Reply[Branch] | None = None  # when the service names a repo


@dataclass
class Views:
    github: GitHubView
    alerts: AlertsView
    incidents: IncidentsView
    urls: UrlProber

    @classmethod
    def from_settings(cls, settings: Settings, client: Client) -> "Views":
        return cls(
            github=GitHubView.from_settings(settings, client),
            alerts=AlertsView.from_settings(settings, client),
            incidents=IncidentsView.from_settings(settings, client),
            urls=UrlProber.from_settings(settings),
        )

    async def gather(
        self,
        service: Service,
        commits: Sequence[tuple[str, str]],
        now: datetime,
        freezes: tuple[FreezeWindow, ...] = (),
        *,
        fetch: bool = True,
        prefetched: Prefetched | None = None,
    ) -> Signals:
        """Every signal of `service`; `commits` are the (source, target) commits that differ.

        With `fetch=False` (status pages, notices) only what is in Redis or cached is read.
        `prefetched`: what `send_reads` added to a batch sent already.
        """
        kept = prefetched.incidents.value if prefetched else None
        branch = prefetched.branch.value if prefetched and prefetched.branch else None
        github, alerts, incidents, urls = await asyncio.gather(
            self.github.gather(service, commits, now, fetch=fetch, branch=branch),
            self.alerts.gather(service, now, fetch=fetch),
            self.incidents.gather(service, now, fetch=fetch, kept=kept),
            self.urls.gather(service, now, fetch=fetch and bool(commits)),  # probe when moving
        )
        return Signals(github, alerts, incidents, urls, freezes)

    def send_reads(self, batch: Batch, service: Service) -> Prefetched:
        """Add the reads of `gather` that need nothing read before them to `batch`."""
        incidents = self.incidents.send_reads(batch)
        if not service.repo:
            return Prefetched(incidents)
        branch = self.github.send_branch_read(batch, service.repo, service.branch)
        return Prefetched(incidents, branch)

    async def refresh(self, services: Sequence[Service]) -> list[str]:
        """Poll the feeds that have a fallback reader; the services whose view changed."""
        changed = await asyncio.gather(
            self.alerts.refresh(services), self.incidents.refresh(services)
        )
        return sorted({name for names in changed for name in names})

    async def freshness(self, now: datetime) -> list[Freshness]:
        """Every signal source's freshness, from Redis alone: for `/status` and the dashboard.

        GitHub and Heroku deliveries are shown too; their age never gates (an API backs them).
        """
        alerts, incidents, heard = await asyncio.gather(
            self.alerts.freshness(now),
            self.incidents.freshness(now),
            self.alerts.redis.hmget(keys.HEARD, list(_INFORMATIONAL)),
        )
        others = [
            judge(signal, source, "webhook", datetime.fromtimestamp(float(at), UTC), None, now)
            for (source, signal), at in zip(_INFORMATIONAL.items(), heard, strict=True)
            if at
        ]
        return [*alerts, *incidents, *others]

    async def aclose(self) -> None:
        await asyncio.gather(
            self.github.aclose(), self.alerts.aclose(), self.incidents.aclose(), self.urls.aclose()
        )
