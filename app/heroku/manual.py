"""Webhook subscriptions by hand: whether Cascade keeps them itself, and the lines to run when not.

Without CASCADE_PUBLIC_URL Cascade cannot name its own endpoint to Heroku; `cascade check`
prints the `heroku webhooks:add` lines instead, with the secret as a variable reference.
"""

import logging
import shlex
from collections.abc import Mapping, Sequence

from app.config.services import ServicesConfig
from app.heroku.endpoint import INCLUDE, LEVEL, endpoint
from app.heroku.subscriptions import PLACEHOLDER

log = logging.getLogger(__name__)


def managed(public_url: str | None, secret: str | None, config: ServicesConfig) -> bool:
    """Whether Cascade keeps the subscriptions itself; when not, the log says why and what to do."""
    if public_url is None:
        log.info(
            "CASCADE_PUBLIC_URL is not set: webhook subscriptions are yours to add"
            " (`cascade check` prints the lines); for example: %s",
            (manual_commands(config) or ["(no service)"])[0],
        )
        return False
    if not secret:
        log.error(
            "CASCADE_PUBLIC_URL is set but HEROKU_WEBHOOK_SECRET is not: webhook subscriptions"
            " are not managed (a subscription without the secret would be refused here)"
        )
        return False
    return True


def manual_commands(
    config: ServicesConfig,
    public_url: str = PLACEHOLDER,
    apps: Mapping[str, Sequence[str]] | None = None,
) -> list[str]:
    """The `heroku webhooks:add` lines that subscribe every stage app, for `cascade check`.

    `apps` gives the stages of services whose file entry has none (read from their pipeline);
    without it such a service gets a comment saying where to look. The secret stays a
    variable reference: it is never printed.
    """
    url = shlex.quote(endpoint(public_url))
    lines: list[str] = []
    for service in config.services:
        stages = (apps or {}).get(service.name) or service.stages
        if not stages:
            lines.append(
                f"# {service.name}: its stages are the apps of pipeline {service.pipeline}"
                f" (heroku pipelines:info {shlex.quote(service.pipeline)}); one line per app:"
            )
            stages = ("APP",)
        lines += [
            f"heroku webhooks:add -i {','.join(INCLUDE)} -l {LEVEL} -u {url}"
            f' -s "$HEROKU_WEBHOOK_SECRET" -a {shlex.quote(app)}'
            for app in stages
        ]
    return lines
