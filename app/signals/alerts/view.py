"""The alerts signal: the firing alerts kept in Redis, and Librato's alert status as fallback.

The Librato and Alertmanager webhooks `record` what fires and what clears (through
`script.RECORD`, in order of the alerts' own times). With LIBRATO_USER and LIBRATO_TOKEN
set, Librato's status API is polled (`refresh`, about once a minute, and by a reconcile
that finds it stale) and is the authority on Librato alerts (`librato.merge`). `gather`
gives one service the firing alerts its entries match, or says why that cannot be known
(`problems`): the feed is stale, or no sender has ever reported to this Cascade.
"""

import asyncio
import logging
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta

from app.clock import utcnow
from app.config.services import Service
from app.config.settings import Settings
from app.signals.alerts import librato as feed
from app.signals.alerts import script, stored
from app.signals.alerts.client import LibratoClient, LibratoError
from app.signals.alerts.facts import Alert, AlertsFacts, describe, matching, parse_entry
from app.signals.alerts.problems import HEARTBEAT_MAX_AGE, MISSED_POLLS, SILENCE_MAX, Expected
from app.signals.alerts.stored import HEARD, State
from app.signals.freshness import Freshness
from app.storage import keys
from app.storage.client import Client
from app.tasks import cancel

log = logging.getLogger(__name__)
_SHOWN = 5  # alerts named in one event


@dataclass(frozen=True)
class Recorded:
    """What one delivery changed in the view."""

    fired: tuple[Alert, ...] = ()  # firing now, not before
    cleared: tuple[Alert, ...] = ()  # firing before, not now
    refused: tuple[Alert, ...] = ()  # not kept: the view is full
    outdated: tuple[Alert, ...] = ()  # older than what is known of the alert: ignored

    @property
    def changed(self) -> bool:
        return bool(self.fired or self.cleared)

    def summary(self) -> str:
        parts = [(f"firing: {_names(self.fired)}", self.fired)]
        parts += [(f"cleared: {_names(self.cleared)}", self.cleared)]
        parts += [(f"refused (the view is full): {_names(self.refused)}", self.refused)]
        parts += [(f"out of order, ignored: {_names(self.outdated)}", self.outdated)]
        return "; ".join(text for text, alerts in parts if alerts) or "no change"


class AlertsView:
    def __init__(
        self,
        client: Client,
        librato: LibratoClient | None,
        retry: timedelta,
        clock: Callable[[], datetime] = utcnow,
        stale_after: timedelta = MISSED_POLLS * timedelta(seconds=60),
        *,
        heartbeat: str | None = None,
        heartbeat_max_age: timedelta = HEARTBEAT_MAX_AGE,
        silence_max: timedelta = SILENCE_MAX,
    ) -> None:
        self.redis, self.librato, self.retry, self.clock = client, librato, retry, clock
        self.expected = Expected(
            librato is not None, stale_after, heartbeat, heartbeat_max_age, silence_max
        )
        self._polling: asyncio.Task[bool] | None = None
        self._record = client.register_script(script.RECORD)

    @classmethod
    def from_settings(cls, settings: Settings, client: Client) -> "AlertsView":
        user, token = settings.librato_user, settings.librato_token
        librato = None
        if user and token and token.get_secret_value():
            librato = LibratoClient(settings.librato_api_url, user, token.get_secret_value())
        retry = timedelta(seconds=settings.signal_retry_seconds)
        return cls(
            client,
            librato,
            retry,
            stale_after=MISSED_POLLS * timedelta(seconds=settings.poll_seconds),
            heartbeat=settings.alertmanager_heartbeat or None,
            heartbeat_max_age=settings.alertmanager_heartbeat_max_age,
            silence_max=settings.silent_source_max_age,
        )

    async def aclose(self) -> None:
        if self._polling is not None:
            await cancel([self._polling])
        if self.librato is not None:
            await self.librato.aclose()

    # the webhooks write ------------------------------------------------------------------

    async def record(
        self, firing: Sequence[Alert], cleared: Sequence[Alert], now: datetime
    ) -> Recorded:
        """Keep `firing` (a repeat refreshes its expiry), forget `cleared`, each unless a report
        of a later episode of the same alert came first; what changed."""
        fields = {a.key: a for a in firing}
        refused: list[Alert] = []
        if fields and await self.redis.hlen(keys.ALERTS_FIRING) + len(fields) > keys.ALERTS_MAX:
            refused = await self._make_room(firing, now)
            for alert in refused:
                fields.pop(alert.key, None)
        reports = [(script.CLEAR, a) for a in cleared] + [(script.FIRE, a) for a in fields.values()]
        if not reports:
            return Recorded(refused=tuple(refused))
        argv: list[str | float] = [now.timestamp(), keys.ALERTMANAGER_TTL.total_seconds()]
        for op, alert in reports:
            episode = alert.episode.timestamp() if alert.episode else ""
            argv += [op, alert.key, episode, stored.dump(alert, now, now, polled=False)]
        results = await self._record(keys=[keys.ALERTS_FIRING, keys.ALERTS_ENDED], args=argv)
        done = list(zip(reports, (int(r) for r in results), strict=True))
        return Recorded(
            fired=tuple(a for (op, a), n in done if op == script.FIRE and n == 1),
            cleared=tuple(a for (op, a), n in done if op == script.CLEAR and n == 1),
            refused=tuple(refused),
            outdated=tuple(a for (_, a), n in done if n == script.OUT_OF_ORDER),
        )

    async def record_truncated(
        self, group: str, labels: dict[str, str], count: int, now: datetime
    ) -> None:
        """A notification of `group` left `count` alerts out (0: none, forgetting a past one).

        Kept as long as a firing alert: the group's next notification replaces it.
        """
        if not count:
            await self.redis.hdel(keys.ALERTS_TRUNCATED, group)
            return
        value = stored.dump_truncated(labels, count, now)
        await self.redis.hset(keys.ALERTS_TRUNCATED, group, value)

    async def _make_room(self, firing: Sequence[Alert], now: datetime) -> list[Alert]:
        """Drop expired alerts; the new ones of `firing` that still do not fit."""
        state = await self._state(now)
        await self._forget(state.expired)
        known = [a.key in state.kept for a in firing]
        room = keys.ALERTS_MAX - len(state.kept)
        new = [a for a, kept in zip(firing, known, strict=True) if not kept]
        return new[max(0, room) :]

    # a reconcile reads -------------------------------------------------------------------

    async def gather(
        self, service: Service, now: datetime, *, fetch: bool = True
    ) -> AlertsFacts | None:
        """The firing alerts `service`'s entries match; None when it lists none.

        With `fetch`, a stale Librato feed is read at once (one try per retry interval).
        """
        entries = service.every_alert
        if not entries:
            return None
        plain = any(parse_entry(text).plain for text in entries)
        state = await self._state(now)
        stale = plain and self.librato is not None and not self.expected.fresh(state, now)
        if fetch and stale and await self._poll_once(now):
            state = await self._state(now)
        firing = matching(entries, state.alerts())
        problems = self.expected.problems(entries, state, firing, now)
        recheck_at = now + self.retry if problems else None
        return AlertsFacts(firing, "; ".join(problems) or None, recheck_at)

    async def freshness(self, now: datetime) -> list[Freshness]:
        """When each alert source was last heard, and whether that still counts."""
        return self.expected.freshness(await self._state(now), now)

    # the Librato feed --------------------------------------------------------------------

    async def refresh(self, services: Sequence[Service]) -> list[str]:
        """Forget expired alerts; poll Librato if configured; the services whose view changed."""
        now = self.clock()
        before = await self._state(now)
        await self._forget(before.expired)
        await self._forget_ended(now)
        changed = list(before.expired.values())
        reopened = False
        needed = any(parse_entry(t).plain for s in services for t in s.every_alert)
        if self.librato is not None and needed and await self.poll(now):
            after = await self._state(now)
            changed += feed.changes(before.alerts(), after.alerts())
            # unknown until now: every plain entry may open
            reopened = not self.expected.fresh(before, now)
        return sorted(
            s.name
            for s in services
            if matching(s.every_alert, changed)
            or (reopened and any(parse_entry(t).plain for t in s.every_alert))
        )

    async def poll(self, now: datetime) -> bool:
        """Read Librato's firing alerts into the view; False (and why, kept) when it failed."""
        if self.librato is None:
            return False
        try:
            firing = await self.librato.firing()
        except LibratoError as error:
            await self.redis.set(keys.LIBRATO_FAILURE, str(error), ex=keys.LIBRATO_FAILURE_TTL)
            log.warning("Librato's alert status not read: %s", error)
            return False
        merged = await feed.merge(self.librato, firing, await self._state(now), now)
        async with self.redis.pipeline(transaction=True) as pipe:
            if merged.gone:
                pipe.hdel(keys.ALERTS_FIRING, *merged.gone)
            for key, value in merged.fields.items():
                pipe.hset(keys.ALERTS_FIRING, key, value)
            pipe.set(keys.LIBRATO_POLLED, str(now.timestamp()))
            pipe.delete(keys.LIBRATO_FAILURE)
            await pipe.execute()
        return True

    async def _poll_once(self, now: datetime) -> bool:
        """A reconcile's poll: one per retry interval, whichever process asks first.

        Reconciles of this process that ask meanwhile share it; True when one was made.
        """
        if self._polling is None:
            spacing = max(1, int(self.retry.total_seconds() * 1000))
            if not await self.redis.set(keys.LIBRATO_TRIED, "1", nx=True, px=spacing):
                return False
            self._polling = asyncio.create_task(self.poll(now))
            self._polling.add_done_callback(self._polled)
        await asyncio.shield(self._polling)  # one reconcile giving up does not cancel it
        return True

    def _polled(self, task: "asyncio.Task[bool]") -> None:
        if self._polling is task:
            self._polling = None

    # Redis -------------------------------------------------------------------------------

    async def _state(self, now: datetime) -> State:
        async with self.redis.pipeline(transaction=False) as pipe:
            pipe.hgetall(keys.ALERTS_FIRING)
            pipe.get(keys.LIBRATO_POLLED)
            pipe.get(keys.LIBRATO_FAILURE)
            pipe.hmget(keys.HEARD, list(HEARD))
            pipe.hvals(keys.ALERTS_TRUNCATED)
            firing, polled, failure, heard, truncated = await pipe.execute()
        return stored.state(firing, polled, failure, heard, truncated, now)

    async def _forget_ended(self, now: datetime) -> None:
        """Drop the ended marks past their lifetime: a report that late is not ordered."""
        marks = await self.redis.hgetall(keys.ALERTS_ENDED)
        old = [k for k, v in marks.items() if stored.mark_expired(str(v), now)]
        if old:
            await self.redis.hdel(keys.ALERTS_ENDED, *old)

    async def _forget(self, alerts: dict[str, Alert]) -> None:
        if alerts:
            await self.redis.hdel(keys.ALERTS_FIRING, *alerts)


def _names(alerts: Sequence[Alert]) -> str:
    shown = ", ".join(describe(a) for a in alerts[:_SHOWN])
    return shown + (f" and {len(alerts) - _SHOWN} more" if len(alerts) > _SHOWN else "")
