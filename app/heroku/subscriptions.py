"""Heroku app webhook subscriptions, kept by Cascade itself when CASCADE_PUBLIC_URL is set.

At start-up and after a reload every stage app gets exactly one `api:release` `sync`
subscription of ours, signed with HEROKU_WEBHOOK_SECRET, posting to
`<public url>/webhooks/heroku`. Ours: its id is the one recorded in Redis for the app, or its
URL is our endpoint; any other is someone else's and never touched. In between, one app is
checked only on evidence that its subscription is broken: the resync found a release of it
that no webhook had brought (`suspect`, at most once per app per resync interval). No periodic
check of every app: an idle fleet costs no call here. Without a public URL, `manual_commands`
gives the `heroku webhooks:add` lines to run (`app.heroku.manual`).
"""

import asyncio
import json
import logging
from collections.abc import Awaitable, Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass

from app.config.catalog import Catalog
from app.config.services import Service, ServicesConfig
from app.heroku.client import AppWebhook, HerokuClient, HerokuError
from app.heroku.endpoint import INCLUDE, LEVEL, endpoint, same_endpoint, secret_tag
from app.heroku.suspects import Suspects
from app.storage import keys
from app.storage.client import Client
from app.storage.locks import Locks
from app.tasks import cancel

log = logging.getLogger(__name__)

PLACEHOLDER = "https://CASCADE-PUBLIC-URL"
LOCK = ":webhook-subscriptions"  # a lock name no service can have (names start alphanumeric)
LOCK_TRIES = 20  # another process may be checking them; wait for it rather than skip


@dataclass(frozen=True)
class Change:
    """What one app's check did: created, repaired, kept; `removed` lists duplicates deleted."""

    app: str
    action: str
    webhook_id: str | None
    detail: str = ""
    removed: tuple[str, ...] = ()


Stages = Callable[[Service], Awaitable[Sequence[str] | None]]


class Subscriptions:
    def __init__(
        self,
        heroku: HerokuClient,
        client: Client,
        locks: Locks,
        stages: Stages,
        catalog: Catalog,
        public_url: str,
        secret: str,
        suspects: Suspects,
    ) -> None:
        self.heroku, self.redis, self.locks, self._stages = heroku, client, locks, stages
        self.catalog, self.suspects = catalog, suspects
        self.url, self._secret, self._tag = endpoint(public_url), secret, secret_tag(secret)
        self._full = True  # at start-up every process checks every app
        self._task: asyncio.Task[None] | None = None
        self._retry: asyncio.TimerHandle | None = None  # after a check that failed

    def start(self) -> None:
        """Check every app now, on `request()`, and each app its suspects tell."""
        self.suspects.wanted.set()
        self._task = asyncio.create_task(self._run())

    def request(self) -> None:
        """Check every app again soon: the services file changed."""
        self._full = True
        self.suspects.wanted.set()

    async def stop(self) -> None:
        if self._retry is not None:
            self._retry.cancel()
        if self._task is not None:
            await cancel([self._task])
            self._task = None

    async def ensure(self, config: ServicesConfig) -> list[Change]:
        """Check every stage app of `config`, one process at a time across all of them."""
        return await self._locked(lambda: self._ensure(config))

    async def ensure_apps(self, apps: Iterable[str]) -> list[Change]:
        """Check only `apps` (suspects), under the same lock as the check of every app."""
        return await self._locked(lambda: self._ensure_apps(sorted(apps)))

    async def ensure_app(self, app: str) -> Change:
        """Exactly one subscription of ours on `app`, as it should be; others untouched."""
        hooks = await self.heroku.webhooks(app)
        recorded = await self._recorded(app)
        known = recorded.get("id")
        ours = [h for h in hooks if h.id == known or same_endpoint(h.url, self.url)]
        if not ours:
            hook = await self.heroku.create_webhook(app, self._body())
            await self._record(app, hook.id)
            return Change(app, "created", hook.id, f"api:release → {self.url}")
        keep = next((h for h in ours if h.id == known), ours[0])
        extra = [h for h in ours if h is not keep]  # all at our URL: never one pointed elsewhere
        for hook in extra:
            await self.heroku.delete_webhook(app, hook.id)
        problems = self._problems(keep, recorded)
        if problems:
            keep = await self.heroku.update_webhook(app, keep.id, self._body())
        if problems or known != keep.id:
            await self._record(app, keep.id)
        action = "repaired" if problems else "kept"
        return Change(app, action, keep.id, "; ".join(problems), tuple(h.id for h in extra))

    async def _locked(self, check: Callable[[], Awaitable[list[Change]]]) -> list[Change]:
        """Run `check` holding the subscriptions' lock: one process at a time checks them."""
        for _ in range(LOCK_TRIES):
            async with self.locks.hold(LOCK) as lease:
                if lease.held:
                    return await check()
            await asyncio.sleep(await self.locks.busy_for(LOCK) + 0.1)
        log.warning("webhook subscriptions not checked: another process kept them busy")
        return []

    async def _ensure(self, config: ServicesConfig) -> list[Change]:
        changes: list[Change] = []
        for service in config.services:
            stages = await self._stages(service)
            if stages is None:
                log.warning(
                    "webhook subscriptions of service=%s not checked: its pipeline is unknown",
                    service.name,
                )
                continue
            for app in stages:
                change = await self._check(app, f" service={service.name}")
                if change is not None:
                    changes.append(change)
        kept = sum(c.action == "kept" for c in changes)
        log.info("webhook subscriptions checked: %d apps, %d as they were", len(changes), kept)
        return changes

    async def _ensure_apps(self, apps: Sequence[str]) -> list[Change]:
        changes: list[Change] = []
        for app in apps:
            change = await self._check(app, "")
            if change is not None:
                changes.append(change)
                log.info(
                    "webhook subscription of app=%s checked, as a resync found a release no"
                    " webhook had brought: %s",
                    app,
                    "as it was (the delivery was lost elsewhere)"
                    if change.action == "kept" and not change.removed
                    else change.action,
                )
        return changes

    async def _check(self, app: str, where: str) -> Change | None:
        """One app's check, logged when it changed something; None when Heroku refused it."""
        try:
            change = await self.ensure_app(app)
        except HerokuError as error:
            log.error(
                "cannot keep the webhook subscription of app=%s%s: %s"
                " (the token needs access to the app's webhooks)",
                app,
                where,
                error,
            )
            return None
        if change.action != "kept" or change.removed:
            log.info(
                "webhook subscription %s app=%s id=%s %s%s",
                change.action,
                app,
                change.webhook_id,
                change.detail,
                f" removed duplicates {', '.join(change.removed)}" if change.removed else "",
            )
        return change

    def _problems(self, hook: AppWebhook, recorded: Mapping[str, str]) -> list[str]:
        """What differs from the subscription we want (the secret: from what Redis recorded)."""
        problems = []
        if hook.url != self.url:
            problems.append(f"url was {hook.url}")
        if tuple(sorted(hook.include)) != INCLUDE:
            problems.append(f"include was {','.join(hook.include)}")
        if hook.level != LEVEL:
            problems.append(f"level was {hook.level}")
        if recorded.get("id") != hook.id or recorded.get("secret") != self._tag:
            problems.append("secret set")  # unknown or changed: Heroku cannot tell us
        return problems

    def _body(self) -> dict[str, object]:
        return {"include": list(INCLUDE), "level": LEVEL, "url": self.url, "secret": self._secret}

    async def _recorded(self, app: str) -> dict[str, str]:
        raw = await self.redis.hget(keys.SUBSCRIPTIONS, app)
        try:
            value = json.loads(raw) if raw else {}
        except ValueError:
            return {}
        return value if isinstance(value, dict) else {}

    async def _record(self, app: str, webhook_id: str) -> None:
        value = json.dumps({"id": webhook_id, "secret": self._tag})
        await self.redis.hset(keys.SUBSCRIPTIONS, app, value)

    async def _run(self) -> None:
        wanted = self.suspects.wanted
        while True:
            await wanted.wait()
            wanted.clear()  # a request or suspect made while checking asks for more
            full, self._full = self._full, False
            apps = self.suspects.take()
            try:
                if full:
                    await self.ensure(self.catalog.config)  # covers the suspects too
                elif apps:
                    await self.ensure_apps(apps)
            except Exception:  # Redis away, a bug: log it, never stop the loop
                log.exception("webhook subscriptions check failed")
                self._again_later(full, apps)

    def _again_later(self, full: bool, apps: set[str]) -> None:
        """A check that failed is tried again a resync interval later (or on the next ask)."""
        self._full = self._full or full
        self.suspects.again(apps)
        if self._retry is not None:
            self._retry.cancel()
        loop = asyncio.get_running_loop()
        self._retry = loop.call_later(self.suspects.every, self.suspects.wanted.set)
