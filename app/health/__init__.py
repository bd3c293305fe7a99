"""The health view: every signal's Redis view and its fallback reader, gathered per snapshot.

Webhooks write each signal's view (`record…` methods of its module here); a reconcile
reads them all at once through `Health.gather`. A signal's module falls back to its
source's API (`app.sources`) when the view has nothing or has gone stale, and says
`problem` when neither can tell: its gate is then unknown, which is closed.
"""

import asyncio
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any

import redis.asyncio as redis

from app.health.alerts import AlertsHealth
from app.health.github import GitHubHealth
from app.health.incidents import IncidentsHealth
from app.health.urls import UrlProber
from app.services import Service
from app.settings import Settings
from app.signals import Signals
from app.signals.freeze import FreezeWindow


@dataclass
class Health:
    github: GitHubHealth
    alerts: AlertsHealth
    incidents: IncidentsHealth
    urls: UrlProber

    @classmethod
    def from_settings(cls, settings: Settings, client: "redis.Redis") -> "Health":
        return cls(
            github=GitHubHealth.from_settings(settings, client),
            alerts=AlertsHealth.from_settings(settings, client),
            incidents=IncidentsHealth.from_settings(settings, client),
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
        incidents_read: Sequence[Any] | None = None,
    ) -> Signals:
        """Every signal of `service`; `commits` are the (source, target) commits that differ.

        With `fetch=False` (status pages, notices) only what is in Redis or cached is read.
        `incidents_read`: the replies to `IncidentsHealth.send_reads`, when sent already.
        """
        github, alerts, incidents, urls = await asyncio.gather(
            self.github.gather(service, commits, now, fetch=fetch),
            self.alerts.gather(service, now, fetch=fetch),
            self.incidents.gather(service, now, fetch=fetch, replies=incidents_read),
            self.urls.gather(service, now, fetch=fetch and bool(commits)),  # probe when moving
        )
        return Signals(github, alerts, incidents, urls, freezes)

    async def refresh(self, services: Sequence[Service]) -> list[str]:
        """Poll the feeds that have a fallback reader; the services whose view changed."""
        changed = await asyncio.gather(
            self.alerts.refresh(services), self.incidents.refresh(services)
        )
        return sorted({name for names in changed for name in names})

    async def aclose(self) -> None:
        await asyncio.gather(
            self.github.aclose(), self.alerts.aclose(), self.incidents.aclose(), self.urls.aclose()
        )
