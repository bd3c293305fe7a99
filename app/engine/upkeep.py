"""What keeps a running Cascade fit for production, wired around the runtime (`app.runtime`).

Metrics fed by the audit trail (the Platform API client is given them when built), the
webhook subscriptions (with CASCADE_PUBLIC_URL), the services-file reloader and its
watcher, and the GitHub commit statuses and deployments (with GITHUB_TOKEN). Started once
the runtime is built; the intake (watcher, subscriptions) stops before the queue drains, the
commit statuses and deployments after it.
"""

import logging
from collections.abc import Sequence
from typing import TYPE_CHECKING

from app.config.reload import Reloader, Watcher
from app.config.services import Service
from app.heroku.subscriptions import Subscriptions, manual_commands
from app.notify.commit_status import CommitStatuses
from app.notify.deployments import Deployments, Stages
from app.signals.github.client import GitHubClient
from app.storage.locks import Locks

if TYPE_CHECKING:
    from app.runtime import Runtime

log = logging.getLogger("cascade")


def start(runtime: "Runtime") -> None:
    runtime.audit.subscribe(runtime.metrics.on_event)
    runtime.commit_statuses = _commit_statuses(runtime)
    runtime.deployments = _deployments(runtime)
    runtime.subscriptions = _subscriptions(runtime)
    runtime.reloader = Reloader(runtime)
    settings = runtime.settings
    runtime.watcher = Watcher(
        settings.config_path, runtime.reloader.reload, settings.reload_seconds
    )
    runtime.watcher.start()


async def stop_intake(runtime: "Runtime") -> None:
    """Before the queue drains: no reload, no subscription check starts any more."""
    if runtime.watcher is not None:
        await runtime.watcher.stop()
    if runtime.subscriptions is not None:
        await runtime.subscriptions.stop()


async def stop(runtime: "Runtime") -> None:
    """After the queue drained: the statuses its last decisions made still go out."""
    if runtime.commit_statuses is not None:
        await runtime.commit_statuses.stop()
    if runtime.deployments is not None:
        await runtime.deployments.stop()


def _commit_statuses(runtime: "Runtime") -> CommitStatuses | None:
    wanted = [s.name for s in runtime.config.services if s.commit_statuses]
    scope = "write statuses: classic scope repo:status, or fine-grained 'Commit statuses'"
    github = _github_writer(runtime, "commit statuses", wanted, scope)
    if github is None:
        return None
    statuses = CommitStatuses(
        github, runtime.redis, lambda: runtime.config, runtime.metrics, runtime.settings.public_url
    )
    runtime.audit.subscribe(statuses.on_event)
    statuses.start()
    return statuses


def _deployments(runtime: "Runtime") -> Deployments | None:
    wanted = [s.name for s in runtime.config.services if s.github_deployments]
    scope = "create deployments: classic scope repo_deployment, or fine-grained 'Deployments'"
    github = _github_writer(runtime, "GitHub deployments", wanted, scope)
    if github is None:
        return None
    deployments = Deployments(
        github,
        runtime.redis,
        lambda: runtime.config,
        _stages(runtime),
        runtime.settings.public_url,
    )
    runtime.audit.subscribe(deployments.on_event)
    deployments.start()
    return deployments


def _github_writer(
    runtime: "Runtime", what: str, wanted: list[str], scope: str
) -> GitHubClient | None:
    """A GitHub client with the token, or None and a warning naming the services it fails."""
    token = runtime.settings.github_token
    if token is None:
        if wanted:
            log.warning(
                "GITHUB_TOKEN is not set: no %s for %s (set a token that may %s)",
                what,
                ", ".join(wanted),
                scope,
            )
        return None
    return GitHubClient(runtime.settings.github_api_url, token.get_secret_value())


def _stages(runtime: "Runtime") -> Stages:
    """A service's stage apps in promotion order: configured, else the pipeline's."""
    reconciler = runtime.reconciler

    async def stages(service: Service) -> Sequence[str] | None:
        if service.stages:
            return service.stages
        topology = await reconciler.topologies.get(service)
        return topology.stages if topology else None

    return stages


def _subscriptions(runtime: "Runtime") -> Subscriptions | None:
    settings, secret = runtime.settings, runtime.heroku_secret
    if settings.public_url is None:
        log.info(
            "CASCADE_PUBLIC_URL is not set: webhook subscriptions are yours to add"
            " (`cascade check` prints the lines); for example: %s",
            (manual_commands(runtime.config) or ["(no service)"])[0],
        )
        return None
    if secret is None or not secret.get_secret_value():
        log.error(
            "CASCADE_PUBLIC_URL is set but HEROKU_WEBHOOK_SECRET is not: webhook subscriptions"
            " are not managed (a subscription without the secret would be refused here)"
        )
        return None
    reconciler = runtime.reconciler
    subscriptions = Subscriptions(
        runtime.heroku,
        runtime.redis,
        Locks(runtime.redis),
        _stages(runtime),
        settings.public_url,
        secret.get_secret_value(),
    )
    # Between start-up and reloads an app is checked only on evidence: a resync found a
    # release of it that no webhook had brought.
    reconciler.unannounced = subscriptions.suspect
    subscriptions.start(lambda: runtime.config, settings.resync_seconds)
    return subscriptions
