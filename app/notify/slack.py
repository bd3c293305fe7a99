"""Slack notices: promotions started, succeeded or failed; pauses set or lifted; long blocks.

An audit listener turns an event into a line and queues it; one sender per
process posts the lines in order, each with a timeout, so a slow or failing
Slack never delays a decision. "Blocked too long" comes from the plan, looked
at every so often: Redis keeps since when each (pair, commit) is blocked and
which process told Slack, so it is said once however many processes run.
"""

import asyncio
import logging
from collections.abc import Awaitable, Callable, Sequence
from contextlib import suppress
from datetime import UTC, datetime, timedelta

import httpx

from app.clock import utcnow
from app.config.catalog import Catalog
from app.config.durations import humanize, short
from app.config.services import Service
from app.config.settings import Settings
from app.core.models import Candidate, GateState, PairState, Plan, Snapshot
from app.core.plan import plan
from app.storage import keys
from app.storage.audit import Event
from app.storage.client import Client
from app.storage.store import Store
from app.tasks import cancel

log = logging.getLogger(__name__)
TIMEOUT_SECONDS = 5.0  # a hanging Slack holds only its own sender, this long per notice
OUTBOX = 200  # notices waiting for a slow Slack; past that new ones are dropped
FLUSH_SECONDS = 2.0  # at shutdown, how long the last notices may take
PlanSource = Callable[[], Awaitable[Sequence[Plan]]]
ICONS = {
    "promotion.started": ":arrow_forward:",
    "promotion.succeeded": ":white_check_mark:",
    "promotion.failed": ":x:",
    "pause.set": ":double_vertical_bar:",
    "pause.lifted": ":arrow_forward:",
    "service.halted": ":rotating_light:",
    "rollback.started": ":rewind:",
    "rollback.succeeded": ":rewind:",
    "rollback.failed": ":x:",
}


def escape(text: str) -> str:
    """Slack reads &, < and > as markup."""
    return text.replace("&", "&amp;").replace("<", "&lt;").replace(">", "&gt;")


def describe(event: Event) -> str | None:
    """The Slack line of an audit event, or None when Slack need not hear of it."""
    icon = ICONS.get(event.kind)
    if icon is None:
        return None
    where = f"*{escape(event.service)}*: " if event.service else ""
    return f"{icon} {where}{escape(event.message)}"


def describe_blocked(service: str, candidate: Candidate, blocked_for: timedelta) -> str:
    """Which gate holds the commit and why; the plan's reason when no gate does."""
    closed = [g for g in candidate.gates if g.state is not GateState.OPEN]
    why = "; ".join(f"{g.name} is {g.state.value}: {g.reason}" for g in closed)
    pair = candidate.pair
    return (
        f":warning: *{escape(service)}*: `{short(candidate.commit)}`"
        f" {escape(pair.source.app)} → {escape(pair.target.app)}"
        f" has been blocked for {humanize(blocked_for)}: {escape(why or candidate.reason)}"
    )


def plans_of(catalog: Catalog, observe: Callable[[Service], Awaitable[Snapshot]]) -> PlanSource:
    """Every configured service's plan as it stands (`observe`: Redis only), for the blocked
    check."""

    async def plans() -> list[Plan]:
        return [plan(await observe(service)) for service in catalog.services]

    return plans


class Notifier:
    def __init__(
        self,
        url: str,
        client: Client,
        *,
        store: Store,
        plans: PlanSource,
        blocked_after: timedelta,
        clock: Callable[[], datetime] = utcnow,
        dashboard_url: str | None = None,
        transport: httpx.AsyncBaseTransport | None = None,
    ) -> None:
        self.redis, self.store = client, store
        self.plans, self.blocked_after, self.clock = plans, blocked_after, clock
        self.dashboard_url = dashboard_url
        self._url = url  # a secret: never logged
        self._http = httpx.AsyncClient(timeout=TIMEOUT_SECONDS, transport=transport)
        self._outbox: asyncio.Queue[str] = asyncio.Queue(OUTBOX)
        self._tasks: list[asyncio.Task[None]] = []

    @classmethod
    def from_settings(
        cls, settings: Settings, client: Client, store: Store, plans: PlanSource
    ) -> "Notifier | None":
        """With CASCADE_SLACK_WEBHOOK_URL set; None otherwise."""
        url = settings.slack_webhook_url
        if url is None or not url.get_secret_value():
            return None
        return cls(
            url.get_secret_value(),
            client,
            store=store,
            plans=plans,
            blocked_after=settings.slack_blocked_after,
            dashboard_url=settings.public_url,
        )

    def start(self) -> None:
        self._tasks = [
            asyncio.create_task(self._send_forever()),
            asyncio.create_task(self._watch_blocked()),
        ]

    async def stop(self) -> None:
        """Give the last notices a moment, then stop."""
        with suppress(TimeoutError):
            await asyncio.wait_for(self._outbox.join(), FLUSH_SECONDS)
        await cancel(self._tasks)
        await self._http.aclose()

    async def on_event(self, event: Event) -> None:
        """Audit listener: queue the event's line; note when a pair became blocked."""
        line = describe(event)
        if line is not None:
            self.say(await self._with_pause(event, line))
        if event.kind == "gate.changed" and event.service and event.target and event.commit:
            field = f"{event.target} {event.commit}"
            since = keys.blocked_since(event.service)
            if event.details.get("state") == PairState.BLOCKED.value:
                await self.redis.hsetnx(since, field, str(event.at.timestamp()))
            else:
                await self.redis.hdel(since, field)

    def say(self, text: str) -> None:
        """Queue a notice; never waits (a full outbox drops it, with a log line)."""
        if self.dashboard_url:
            text += f" (<{self.dashboard_url.rstrip('/')}/|dashboard>)"
        try:
            self._outbox.put_nowait(text)
        except asyncio.QueueFull:
            log.warning("slack: %d notices waiting already; dropped one", OUTBOX)

    async def check_blocked(self) -> None:
        """Tell Slack, once, of every commit blocked longer than `blocked_after`."""
        now = self.clock()
        for decided in await self.plans():
            service = decided.service
            blocked = {
                f"{c.pair.target.app} {c.commit}": c
                for c in decided.candidates
                if c.state is PairState.BLOCKED and c.commit
            }
            since_key = keys.blocked_since(service)
            known = {str(k): str(v) for k, v in (await self.redis.hgetall(since_key)).items()}
            if stale := [field for field in known if field not in blocked]:
                await self.redis.hdel(since_key, *stale)
            for field, candidate in blocked.items():
                if field not in known:  # blocked before any process recorded it: from now
                    await self.redis.hsetnx(since_key, field, str(now.timestamp()))
                    continue
                blocked_for = now - datetime.fromtimestamp(float(known[field]), UTC)
                if blocked_for < self.blocked_after:
                    continue
                commit = candidate.commit or ""
                told = keys.blocked_told(service, candidate.pair.target.app, commit)
                if await self.redis.set(told, now.isoformat(), nx=True, ex=keys.BLOCKED_TOLD_TTL):
                    self.say(describe_blocked(service, candidate, blocked_for))

    async def _with_pause(self, event: Event, line: str) -> str:
        """A pause's line says who set it and until when, which its event does not."""
        if event.kind != "pause.set":
            return line
        pause = await self.store.pause(event.service)
        if pause is None:
            return line
        extra = [f"by {escape(pause.by)}"] if pause.by else []
        if pause.until:
            extra.append(f"until {pause.until.isoformat(timespec='minutes')}")
        return f"{line} ({', '.join(extra)})" if extra else line

    async def _send_forever(self) -> None:
        while True:
            text = await self._outbox.get()
            try:
                await self._post(text)
            finally:
                self._outbox.task_done()

    async def _post(self, text: str) -> None:
        try:
            response = await self._http.post(self._url, json={"text": text})
        except httpx.HTTPError as error:  # the message may name the URL: the type only
            log.warning("slack: notice not sent: %s", type(error).__name__)
            return
        if response.status_code >= 300:
            log.warning("slack: notice refused with HTTP %d", response.status_code)

    async def _watch_blocked(self) -> None:
        every = min(max(self.blocked_after.total_seconds() / 4, 0.5), 60.0)
        while True:
            await asyncio.sleep(every)
            try:
                await self.check_blocked()
            except Exception:
                log.exception("slack: checking for blocked commits failed")
