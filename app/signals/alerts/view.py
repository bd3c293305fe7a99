"""The alerts signal: the firing alerts kept in Redis, and Librato's alert status as fallback.

The Librato and Alertmanager webhooks `record` what fires and what clears. With
LIBRATO_USER and LIBRATO_TOKEN set, Librato's status API is polled (`refresh`, about once
a minute, and by a reconcile that finds it stale) and is the authority on Librato alerts.
`gather` gives one service the firing alerts its entries match, or says why that cannot
be known: the feed is stale, or no sender has ever reported to this Cascade.
"""

import asyncio
import json
import logging
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, replace
from datetime import UTC, datetime, timedelta

import redis.asyncio as redis

from app.clock import utcnow
from app.config.durations import humanize
from app.config.services import Service
from app.config.settings import Settings
from app.signals.alerts.client import LibratoClient, LibratoError
from app.signals.alerts.facts import (
    ALERTMANAGER,
    LIBRATO,
    Alert,
    AlertsFacts,
    Entry,
    describe,
    matching,
    parse_entry,
)
from app.signals.freshness import Freshness, judge
from app.storage import keys
from app.tasks import cancel

log = logging.getLogger(__name__)
ALERTS, WEBHOOK = "alerts", "webhook"  # how freshness names the signal, and a delivery
MISSED_POLLS = 3  # a polled source read longer ago than this many poll intervals is stale
HEARTBEAT_MAX_AGE = timedelta(minutes=5)
SILENCE_MAX = timedelta(hours=24)  # as long as a firing alert is kept without a repeat
TOKEN = "?token=<CASCADE_WEBHOOK_TOKEN>"
NO_SOURCE = (
    "no alert source has reported yet: point Alertmanager at /webhooks/alertmanager or"
    f" Librato at /webhooks/librato (add {TOKEN}), or set LIBRATO_USER and LIBRATO_TOKEN"
)
SET_HEARTBEAT = (
    "set CASCADE_ALERTMANAGER_HEARTBEAT to an always-firing alert (Watchdog),"
    " or check its route to Cascade"
)
NO_ALERTMANAGER = (
    "Alertmanager has not reported yet, and only its alerts can match an entry with labels:"
    f" point it at /webhooks/alertmanager (add {TOKEN})"
)
_SHOWN = 5  # alerts named in one event
LIBRATO_KEY = f"{LIBRATO}:"
# One delivery's alerts, applied atomically in the order of their own times, not of arrival.
# KEYS: the firing hash, the ended hash. ARGV: now, the ended marks' lifetime (seconds), then
# per alert: "fire" or "clear", its key, its episode (epoch seconds, "" if unknown), its JSON.
# A fire of an episode no later than the last one ended, or older than the one firing, is
# out of order (-1); so is a clear of an episode older than the one firing. Otherwise a fire
# answers HSET's 1/0 and a clear HDEL's 1/0, and a clear marks its episode as ended.
_RECORD = """
local now, life = tonumber(ARGV[1]), tonumber(ARGV[2])
local function start_of(key)
  local kept = redis.call('HGET', KEYS[1], key)
  if not kept then return nil end
  local ok, data = pcall(cjson.decode, kept)
  if ok and type(data) == 'table' and type(data.start) == 'number' then return data.start end
  return nil
end
local function ended_at(key)
  local mark = redis.call('HGET', KEYS[2], key)
  if not mark then return nil end
  local at, expires = string.match(mark, '^([^|]+)|(.+)$')
  if at == nil or tonumber(expires) == nil or tonumber(expires) <= now then return nil end
  return tonumber(at)
end
local out = {}
for i = 3, #ARGV, 4 do
  local op, key, episode, value = ARGV[i], ARGV[i + 1], tonumber(ARGV[i + 2]), ARGV[i + 3]
  local start, result = start_of(key), -1
  if op == 'fire' then
    local ended = ended_at(key)
    local late = episode and ((ended and episode <= ended) or (start and episode < start))
    if not late then result = redis.call('HSET', KEYS[1], key, value) end
  else
    if not (episode and start and start > episode) then
      result = redis.call('HDEL', KEYS[1], key)
    end
    local ended = ended_at(key)
    if episode and (not ended or episode > ended) then
      redis.call('HSET', KEYS[2], key, string.format('%.6f|%.6f', episode, now + life))
    end
  end
  out[#out + 1] = result
end
return out
"""


@dataclass(frozen=True)
class _Kept:
    """A firing alert as stored: until when it counts, when it was recorded, by whom."""

    alert: Alert
    expires: float  # epoch seconds
    recorded: float  # epoch seconds
    polled: bool  # Librato's status API listed it: it also says when it stops


@dataclass(frozen=True)
class _Truncated:
    """A group whose last notification left `count` alerts out (Alertmanager's max_alerts)."""

    labels: dict[str, str]  # the group's labels: every alert left out carries them
    count: int

    def may_hide(self, entry: Entry) -> bool:
        """False only when no alert of this group can match `entry`."""
        for label, value in self.labels.items():
            if label == "alertname" and entry.name != value:
                return False
            if label != "alertname" and dict(entry.labels).get(label, value) != value:
                return False
        return True


@dataclass(frozen=True)
class _State:
    kept: dict[str, _Kept]  # unexpired, by alert key
    expired: dict[str, Alert]
    polled: datetime | None  # the last good read of Librato's status API
    failure: str | None  # why the reads since then failed
    heard: dict[str, datetime]  # the alert senders that ever delivered, and when last
    truncated: list[_Truncated]  # groups whose last notification left alerts out

    def alerts(self) -> list[Alert]:
        return [kept.alert for kept in self.kept.values()]


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
        client: "redis.Redis",
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
        self.stale_after = stale_after
        self.heartbeat, self.heartbeat_max_age = heartbeat, heartbeat_max_age
        self.silence_max = silence_max
        self._polling: asyncio.Task[bool] | None = None
        self._record = client.register_script(_RECORD)

    @classmethod
    def from_settings(cls, settings: Settings, client: "redis.Redis") -> "AlertsView":
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
        reports = [("clear", a) for a in cleared] + [("fire", a) for a in fields.values()]
        if not reports:
            return Recorded(refused=tuple(refused))
        argv: list[str | float] = [now.timestamp(), keys.ALERTMANAGER_TTL.total_seconds()]
        for op, alert in reports:
            episode = alert.episode.timestamp() if alert.episode else ""
            argv += [op, alert.key, episode, _dump(alert, now, now, polled=False)]
        results = await self._record(keys=[keys.ALERTS_FIRING, keys.ALERTS_ENDED], args=argv)
        done = list(zip(reports, (int(r) for r in results), strict=True))
        return Recorded(
            fired=tuple(a for (op, a), n in done if op == "fire" and n == 1),
            cleared=tuple(a for (op, a), n in done if op == "clear" and n == 1),
            refused=tuple(refused),
            outdated=tuple(a for _, a in [r for r, n in done if n < 0]),
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
        expires = (now + keys.ALERTMANAGER_TTL).timestamp()
        value = json.dumps({"labels": labels, "count": count, "expires": expires})
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
        stale = plain and self.librato is not None and not self._fresh(state, now)
        if fetch and stale and await self._poll_once(now):
            state = await self._state(now)
        firing = matching(entries, state.alerts())
        problems = self._problems(service, state, firing, now)
        recheck_at = now + self.retry if problems else None
        return AlertsFacts(firing, "; ".join(problems) or None, recheck_at)

    def _problems(
        self, service: Service, state: _State, firing: Sequence[Alert], now: datetime
    ) -> list[str]:
        entries = [parse_entry(text) for text in service.every_alert]
        plain = [e for e in entries if e.plain]
        problems = [_full()] if len(state.kept) >= keys.ALERTS_MAX else []
        if plain and self.librato is not None and not self._fresh(state, now):
            problems.append(self._stale(state, now))
        if plain and self.librato is None and not state.heard:
            problems.append(NO_SOURCE)
        elif len(plain) < len(entries) and ALERTMANAGER not in state.heard:
            problems.append(NO_ALERTMANAGER)
        problems += self._silences(state, now)
        problems += [_left_out(t) for t in state.truncated if any(map(t.may_hide, entries))]
        by_name = [e for e in plain if not e.name.isdigit()]
        unnamed = [a for a in state.alerts() if a.source == LIBRATO and not a.name]
        if by_name and (ids := [f"#{a.id}" for a in unnamed if a not in firing]):
            why = state.failure or "retried at the next poll"
            problems.append(
                f"Librato alerts fire whose names are not known: {', '.join(ids)} ({why})"
            )
        return problems

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
            changed += _librato_changes(before.alerts(), after.alerts())
            reopened = not self._fresh(before, now)  # unknown until now: every plain entry may open
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
        state = await self._state(now)
        kept = {k.alert.id: k for k in state.kept.values() if k.alert.source == LIBRATO}
        gone = [
            LIBRATO_KEY + alert_id
            for alert_id, k in kept.items()
            if alert_id not in firing and (k.polled or await self._webhook_outdated(k, now))
        ]
        fields = {}
        for alert_id, since in firing.items():
            old = kept.get(alert_id)
            alert = old.alert if old else Alert(LIBRATO, "", alert_id, since=since)
            if not alert.name:
                alert = await self._named(alert)
            recorded = datetime.fromtimestamp(old.recorded, UTC) if old else now
            fields[alert.key] = _dump(replace(alert, since=alert.since or since), now, recorded)
        async with self.redis.pipeline(transaction=True) as pipe:
            if gone:
                pipe.hdel(keys.ALERTS_FIRING, *gone)
            for key, value in fields.items():
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

    async def _named(self, alert: Alert) -> Alert:
        assert self.librato is not None
        try:
            found = await self.librato.alert(alert.id)
        except LibratoError as error:
            log.warning("Librato alert #%s fires; its name is not known: %s", alert.id, error)
            return alert
        return replace(alert, name=found.name, url=found.runbook_url or alert.url)

    async def _webhook_outdated(self, kept: _Kept, now: datetime) -> bool:
        """A webhook said it fires, the status feed does not list it: ask the alert itself.

        News newer than this read is kept as it is; so is an alert whose status is unread.
        """
        assert self.librato is not None
        if kept.recorded >= now.timestamp():
            return False
        try:
            return not await self.librato.triggered(kept.alert.id)
        except LibratoError as error:
            log.warning("Librato alert #%s kept firing, status unread: %s", kept.alert.id, error)
            return False

    def _silences(self, state: _State, now: datetime) -> list[str]:
        """Why a webhook sender's silence no longer means "nothing fires"."""
        problems = []
        if self.heartbeat:  # configured: Alertmanager is expected, heard or not
            problems += self._heartbeat(state, now)
        for source, at in sorted(state.heard.items()):
            polled = source == LIBRATO and self.librato is not None  # the feed's age counts
            beating = source == ALERTMANAGER and self.heartbeat
            if not polled and not beating and now - at > self.silence_max:
                problems.append(
                    f"{source} was last heard {humanize(now - at)} ago, longer than"
                    f" CASCADE_SILENT_SOURCE_MAX_AGE ({humanize(self.silence_max)}) allows: "
                    + (SET_HEARTBEAT if source == ALERTMANAGER else "check its route to Cascade")
                )
        return problems

    async def freshness(self, now: datetime) -> list[Freshness]:
        """When each alert source was last heard, and whether that still counts."""
        state = await self._state(now)
        found = []
        if self.heartbeat:
            how, last = f"heartbeat {self.heartbeat}", self._last_beat(state)
            found.append(judge(ALERTS, ALERTMANAGER, how, last, self.heartbeat_max_age, now))
        elif ALERTMANAGER in state.heard:
            last = state.heard[ALERTMANAGER]
            found.append(judge(ALERTS, ALERTMANAGER, WEBHOOK, last, self.silence_max, now))
        if self.librato is not None:
            found.append(judge(ALERTS, LIBRATO, "poll", state.polled, self.stale_after, now))
        elif LIBRATO in state.heard:
            last = state.heard[LIBRATO]
            found.append(judge(ALERTS, LIBRATO, WEBHOOK, last, self.silence_max, now))
        return found

    def _last_beat(self, state: _State) -> datetime | None:
        """When Alertmanager last notified its heartbeat alert (a repeat renews `recorded`)."""
        beats = [
            datetime.fromtimestamp(k.recorded, UTC)
            for k in state.kept.values()
            if k.alert.source == ALERTMANAGER and k.alert.name == self.heartbeat
        ]
        return max(beats, default=None)

    def _heartbeat(self, state: _State, now: datetime) -> list[str]:
        """Alertmanager's always-firing alert: its last notification must be recent."""
        beat = self._last_beat(state)
        name, limit = f'"{self.heartbeat}"', humanize(self.heartbeat_max_age)
        if beat is None:
            return [
                f"Alertmanager's heartbeat {name} has not been heard: route it to Cascade"
                f" (repeat_interval under {limit})"
            ]
        age = now - beat
        if age <= self.heartbeat_max_age:
            return []
        return [
            f"Alertmanager's heartbeat {name} was last heard {humanize(age)} ago (it must be"
            f" under {limit} old): its notifications are not reaching Cascade"
        ]

    def _fresh(self, state: _State, now: datetime) -> bool:
        return state.polled is not None and now - state.polled <= self.stale_after

    def _stale(self, state: _State, now: datetime) -> str:
        if state.polled is None:
            read = "Librato's alert status has not been read yet"
        else:
            read = f"Librato's alert status was last read {humanize(now - state.polled)} ago"
        why = f": {state.failure}" if state.failure else ""
        return f"{read}{why} (it must be under {humanize(self.stale_after)} old)"

    # Redis -------------------------------------------------------------------------------

    async def _state(self, now: datetime) -> _State:
        async with self.redis.pipeline(transaction=False) as pipe:
            pipe.hgetall(keys.ALERTS_FIRING)
            pipe.get(keys.LIBRATO_POLLED)
            pipe.get(keys.LIBRATO_FAILURE)
            pipe.hmget(keys.HEARD, [LIBRATO, ALERTMANAGER])
            pipe.hvals(keys.ALERTS_TRUNCATED)
            raw, polled, failure, heard, truncated = await pipe.execute()
        kept: dict[str, _Kept] = {}
        expired: dict[str, Alert] = {}
        for key, value in raw.items():
            item = _load(value)
            if item is None:
                expired[key] = Alert("", "", key)  # unreadable: dropped at the next refresh
            elif item.expires <= now.timestamp():
                expired[key] = item.alert
            else:
                kept[key] = item
        return _State(
            kept=kept,
            expired=expired,
            polled=datetime.fromtimestamp(float(polled), UTC) if polled else None,
            failure=failure,
            heard={
                source: datetime.fromtimestamp(float(at), UTC)
                for source, at in zip((LIBRATO, ALERTMANAGER), heard, strict=True)
                if at
            },
            truncated=[t for v in truncated if (t := _load_truncated(str(v), now)) is not None],
        )

    async def _forget_ended(self, now: datetime) -> None:
        """Drop the ended marks past their lifetime: a report that late is not ordered."""
        marks = await self.redis.hgetall(keys.ALERTS_ENDED)
        old = [k for k, v in marks.items() if _mark_expired(str(v), now)]
        if old:
            await self.redis.hdel(keys.ALERTS_ENDED, *old)

    async def _forget(self, alerts: dict[str, Alert]) -> None:
        if alerts:
            await self.redis.hdel(keys.ALERTS_FIRING, *alerts)


def _load_truncated(value: str, now: datetime) -> _Truncated | None:
    try:
        data = json.loads(value)
        if float(data["expires"]) <= now.timestamp():
            return None
        return _Truncated({str(k): str(v) for k, v in data["labels"].items()}, int(data["count"]))
    except (ValueError, KeyError, TypeError, AttributeError):
        return None


def _left_out(truncated: _Truncated) -> str:
    group = ", ".join(f"{k}={v}" for k, v in sorted(truncated.labels.items())) or "(all)"
    return (
        f"Alertmanager left {truncated.count} alerts of the group {group} out of a notification"
        " (max_alerts), and this service's may be among them: set max_alerts: 0 for Cascade"
    )


def _mark_expired(mark: str, now: datetime) -> bool:
    _, _, expires = mark.partition("|")
    try:
        return float(expires) <= now.timestamp()
    except ValueError:
        return True


def _full() -> str:
    return (
        f"more than {keys.ALERTS_MAX} alerts are firing, more than Cascade keeps: which fire"
        " is not known (stop the flood of alerts, or send Cascade only the ones it needs)"
    )


def _librato_changes(before: Iterable[Alert], after: Iterable[Alert]) -> list[Alert]:
    """Librato alerts that started or stopped firing, or got their name, between two reads."""
    old = {(a.key, a.name): a for a in before if a.source == LIBRATO}
    new = {(a.key, a.name): a for a in after if a.source == LIBRATO}
    return [old[k] for k in old.keys() - new.keys()] + [new[k] for k in new.keys() - old.keys()]


def _ttl(source: str) -> timedelta:
    return keys.LIBRATO_TTL if source == LIBRATO else keys.ALERTMANAGER_TTL


def _dump(alert: Alert, now: datetime, recorded: datetime, *, polled: bool = True) -> str:
    return json.dumps(
        {
            "source": alert.source,
            "name": alert.name,
            "id": alert.id,
            "labels": dict(alert.labels),
            "since": alert.since.isoformat() if alert.since else None,
            "start": alert.since.timestamp() if alert.since else None,  # read by _RECORD
            "url": alert.url,
            "expires": (now + _ttl(alert.source)).timestamp(),
            "recorded": recorded.timestamp(),
            "polled": polled,
        },
        separators=(",", ":"),
    )


def _load(value: str) -> _Kept | None:
    try:
        data = json.loads(value)
        since = data["since"]
        alert = Alert(
            source=data["source"],
            name=data["name"],
            id=data["id"],
            labels=data["labels"],
            since=datetime.fromisoformat(since) if since else None,
            url=data["url"],
        )
        return _Kept(alert, float(data["expires"]), float(data["recorded"]), bool(data["polled"]))
    except (ValueError, KeyError, TypeError) as error:
        log.warning("an unreadable firing alert in Redis is dropped: %s", error)
        return None


def _names(alerts: Sequence[Alert]) -> str:
    shown = ", ".join(describe(a) for a in alerts[:_SHOWN])
    return shown + (f" and {len(alerts) - _SHOWN} more" if len(alerts) > _SHOWN else "")
