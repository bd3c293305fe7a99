"""What the GitHub audit listeners (commit statuses, deployments) share: a client of their
own, made only when GITHUB_TOKEN is set (without it, a warning names the services that wanted
one), and an ordered outbox their items leave by, in the background (`app.notify.outbox`)."""

import logging
from collections.abc import Callable
from typing import Generic, TypeVar

from app.config.catalog import Catalog
from app.config.services import Service
from app.config.settings import Settings
from app.notify.outbox import Outbox
from app.signals.github.client import GitHubClient

log = logging.getLogger(__name__)
T = TypeVar("T")


def writer(
    settings: Settings, catalog: Catalog, wants: Callable[[Service], bool], what: str, scope: str
) -> GitHubClient | None:
    """A GitHub client with the token, or None and a warning naming the services that `wants`
    one (`scope`: what the token must be allowed, to do `what`)."""
    token = settings.github_token
    if token is None:
        if wanted := [service.name for service in catalog.services if wants(service)]:
            log.warning(
                "GITHUB_TOKEN is not set: no %s for %s (set a token that may %s)",
                what,
                ", ".join(wanted),
                scope,
            )
        return None
    return GitHubClient(settings.github_api_url, token.get_secret_value())


class Listener(Generic[T]):
    """A GitHub listener: its client, the services file (which services want it), the page
    GitHub links to, and the outbox `send` takes its items from, one at a time, in order."""

    def __init__(
        self, github: GitHubClient, catalog: Catalog, public_url: str | None, name: str
    ) -> None:
        self.github, self.catalog = github, catalog
        self._public_url = public_url.rstrip("/") if public_url else None
        self._outbox: Outbox[T] = Outbox(name, self.send)

    async def send(self, item: T) -> bool:
        """Write one item to GitHub; True when written."""
        raise NotImplementedError

    def link(self, service: str) -> str | None:
        """The service's page on this Cascade, for GitHub to link to."""
        return f"{self._public_url}/status/{service}" if self._public_url else None

    def start(self) -> None:
        self._outbox.start()

    async def stop(self) -> None:
        """Let the queued items go out for a few seconds, then stop."""
        await self._outbox.stop()
        await self.github.aclose()
