"""GitHub deployments: where every commit runs, on the repository's Environments panel.

An audit listener. For a service with `github_deployments = true` (and a `repo`), each
promotion becomes a GitHub deployment of the commit with the target app as environment
(the last stage a production one), made once per (service, target, commit) however many
processes hear of it: its id is kept in Redis. Its statuses follow the promotion:
in_progress, then success or failure. They go out one at a time in event order, in the
background (`app.notify.outbox`): GitHub being slow or down never delays or breaks a promotion.
"""

import asyncio
import logging
import secrets
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass

from app.config.catalog import Catalog
from app.config.durations import short
from app.config.services import Service
from app.config.settings import Settings
from app.notify.github import Listener, writer
from app.signals.github.client import GitHubClient, GitHubError
from app.storage import keys
from app.storage.audit import Event
from app.storage.client import Client

log = logging.getLogger(__name__)

# The deployment status each event means. A halted stage's deployment is a failure, with the
# event's message as the reason.
STATES = {
    "promotion.started": "in_progress",
    "promotion.succeeded": "success",
    "promotion.failed": "failure",
    "promotion.halted": "failure",
    "service.halted": "failure",  # the auto-halt (`app.engine.halter`): the event marks it at once
}
WAIT_SECONDS = 0.25  # how often a status waits for the id that another process is creating
SCOPE = "create deployments: classic scope repo_deployment, or fine-grained 'Deployments'"
CLAIM = "claim:"  # a key's value while its deployment is being created: "claim:<token>"
_SETTLE = """
local held = redis.call('get', KEYS[1])
if held and held ~= ARGV[1] then return 0 end
if ARGV[2] == '' then redis.call('del', KEYS[1])
else redis.call('set', KEYS[1], ARGV[2], 'EX', ARGV[3]) end
return 1
"""

Stages = Callable[[Service], Awaitable[Sequence[str] | None]]


@dataclass(frozen=True)
class Step:
    """One status to post on the deployment of `commit` to `target`."""

    service: str
    repo: str
    commit: str
    target: str
    state: str  # in_progress|success|failure
    description: str
    source: str | None = None


def step(service: Service, event: Event) -> Step | None:
    """The deployment status an audit event means for its commit, if any (pure)."""
    state = STATES.get(event.kind)
    if state is None or not service.repo or not event.commit or not event.target:
        return None
    descriptions = {
        "in_progress": f"promoting from {event.source}",
        "success": f"running on {event.target}",
    }
    return Step(
        service.name,
        service.repo,
        event.commit,
        event.target,
        state,
        descriptions.get(state, event.message),
        event.source,
    )


class Deployments(Listener[Step]):
    """Makes one deployment per promotion and posts its statuses, in order."""

    def __init__(
        self,
        github: GitHubClient,
        client: Client,
        catalog: Catalog,
        stages: Stages,
        public_url: str | None = None,
    ) -> None:
        super().__init__(github, catalog, public_url, "GitHub deployments")
        self.redis, self._stages = client, stages
        self._settle = client.register_script(_SETTLE)

    @classmethod
    def from_settings(
        cls, settings: Settings, client: Client, catalog: Catalog, stages: Stages
    ) -> "Deployments | None":
        """With GITHUB_TOKEN set; None otherwise (warned about if a service wants them)."""
        made = writer(settings, catalog, _wants, "GitHub deployments", SCOPE)
        return None if made is None else cls(made, client, catalog, stages, settings.public_url)

    async def on_event(self, event: Event) -> None:
        """Audit listener: queue the event's deployment status when its service wants it.

        Besides the promotion's own events, `promotion.halted` (target, commit, message)
        marks the stage's deployment `failure`: the auto-halt's event, when it comes.
        """
        service = self._wanted(event.service)
        if service is not None and (wanted := step(service, event)) is not None:
            self._outbox.put(wanted)

    def mark_halted(self, service: str, target: str, commit: str, reason: str) -> None:
        """Mark the deployment of `commit` to `target` `failure` with `reason`.

        For a halt told outside the audit trail; the auto-halt's `service.halted` event comes
        through `on_event`. Queued behind the promotion's own statuses, so the halt is the
        last word on GitHub.
        """
        configured = self._wanted(service)
        if configured is not None and configured.repo:
            self._outbox.put(Step(service, configured.repo, commit, target, "failure", reason))

    def _wanted(self, name: str | None) -> Service | None:
        service = self.catalog.get(name) if name else None
        return service if service is not None and service.github_deployments else None

    async def send(self, step: Step) -> bool:
        """Post the step's status, creating the deployment first if need be; True when posted.

        `in_progress` only follows a deployment made here: a second `promotion.started`
        (or one heard after the promotion settled) changes nothing.
        """
        key = keys.github_deployment(step.service, step.target, step.commit)
        if step.state == "in_progress":
            token = await self._claim(key)
            deployment = await self._create(key, token, step) if token else None
        else:
            deployment = await self._known_or_created(key, step)
        return deployment is not None and await self._post(step, deployment)

    async def _known_or_created(self, key: str, step: Step) -> int | None:
        """The id kept for the key, waiting while another process creates it; else made here.

        Made here when the started event was missed (or its deployment never reached GitHub).
        """
        tries = int(keys.GITHUB_DEPLOYMENT_CLAIM_TTL.total_seconds() / WAIT_SECONDS) + 1
        for _ in range(tries):
            held = await self.redis.get(key)
            if held is not None and held.isdigit():
                return int(held)
            if held is None and (token := await self._claim(key)):
                return await self._create(key, token, step)
            await asyncio.sleep(WAIT_SECONDS)
        self._warn(step, "the deployment another process was creating never came")
        return None

    async def _claim(self, key: str) -> str | None:
        """Take the right to create the key's deployment: once, across processes."""
        token = CLAIM + secrets.token_hex(8)
        ttl = int(keys.GITHUB_DEPLOYMENT_CLAIM_TTL.total_seconds())
        return token if await self.redis.set(key, token, nx=True, ex=ttl) else None

    async def _create(self, key: str, token: str, step: Step) -> int | None:
        """Create the deployment and keep its id; a failure gives the claim back."""
        try:
            deployment = await self.github.create_deployment(
                step.repo,
                step.commit,
                environment=step.target,
                description=f"Cascade: {short(step.commit)} to {step.target}",
                production=await self._last_stage(step),
                payload={"service": step.service, "source": step.source or ""},
            )
        except GitHubError as error:
            await self._settle(keys=[key], args=[token, "", 0])
            self._warn(step, f"not created: {error}")
            return None
        except BaseException:  # the stages unknown, a cancellation: the next event tries again
            await self._settle(keys=[key], args=[token, "", 0])
            raise
        ttl = int(keys.GITHUB_DEPLOYMENT_TTL.total_seconds())
        await self._settle(keys=[key], args=[token, str(deployment), ttl])
        log.info(
            "GitHub deployment %d of %s to %s created",
            deployment,
            short(step.commit),
            step.target,
            extra={"fields": {"service": step.service, "commit": step.commit}},
        )
        return deployment

    async def _last_stage(self, step: Step) -> bool:
        """Whether the target is the service's last stage: GitHub's production environment."""
        service = self.catalog.get(step.service)
        stages = await self._stages(service) if service else None
        return bool(stages and stages[-1] == step.target)

    async def _post(self, step: Step, deployment: int) -> bool:
        try:
            await self.github.create_deployment_status(
                step.repo,
                deployment,
                state=step.state,
                environment=step.target,
                description=step.description,
                log_url=self.link(step.service),
            )
        except GitHubError as error:
            self._warn(step, f"status {step.state} not posted: {error}")
            return False
        log.info(
            "GitHub deployment %d of %s to %s: %s",
            deployment,
            short(step.commit),
            step.target,
            step.state,
            extra={"fields": {"service": step.service, "commit": step.commit}},
        )
        return True

    def _warn(self, step: Step, what: str) -> None:
        log.warning(
            "GitHub deployment of %s@%s to %s: %s",
            step.repo,
            short(step.commit),
            step.target,
            what,
            extra={"fields": {"service": step.service, "commit": step.commit}},
        )


def _wants(service: Service) -> bool:
    return service.github_deployments
