"""The GitHub client the notices write with (commit statuses, deployments): one per listener,
made only when GITHUB_TOKEN is set; without it, a warning names the services that wanted one."""

import logging
from collections.abc import Callable

from app.config.catalog import Catalog
from app.config.services import Service
from app.config.settings import Settings
from app.signals.github.client import GitHubClient

log = logging.getLogger(__name__)


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
