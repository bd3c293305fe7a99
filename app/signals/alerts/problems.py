"""Why the alerts view cannot say what fires, and how fresh each alert source is.

Silence from an alert sender means "nothing fires" only while the sender is known to be
listening: Librato's status API read recently, Alertmanager's heartbeat beating, or a
webhook sender heard within CASCADE_SILENT_SOURCE_MAX_AGE. Otherwise the answer is a
problem, which keeps the alerts gate unknown (closed). Pure: it judges one `State`.
"""

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta

from app.config.durations import humanize
from app.signals.alerts.facts import ALERTMANAGER, LIBRATO, Alert, parse_entry
from app.signals.alerts.stored import State, Truncated
from app.signals.freshness import Freshness, judge
from app.storage import keys

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


@dataclass(frozen=True)
class Expected:
    """The alert sources this Cascade listens to, and how long each may stay silent."""

    polled: bool  # Librato's status API is read (LIBRATO_USER and LIBRATO_TOKEN are set)
    stale_after: timedelta  # the poll's age past which Librato's feed is not known
    heartbeat: str | None = None  # Alertmanager's always-firing alert, when configured
    heartbeat_max_age: timedelta = HEARTBEAT_MAX_AGE
    silence_max: timedelta = SILENCE_MAX  # a webhook sender's silence, without a heartbeat

    def problems(
        self, texts: Sequence[str], state: State, firing: Sequence[Alert], now: datetime
    ) -> list[str]:
        """Why what fires for a service listing `texts` is not known; empty when it is."""
        entries = [parse_entry(text) for text in texts]
        plain = [e for e in entries if e.plain]
        problems = [_full()] if len(state.kept) >= keys.ALERTS_MAX else []
        if plain and self.polled and not self.fresh(state, now):
            problems.append(self._stale(state, now))
        if plain and not self.polled and not state.heard:
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

    def fresh(self, state: State, now: datetime) -> bool:
        """Librato's status API was read recently enough to be the authority."""
        return state.polled is not None and now - state.polled <= self.stale_after

    def freshness(self, state: State, now: datetime) -> list[Freshness]:
        """When each alert source was last heard, and whether that still counts."""
        found = []
        if self.heartbeat:
            how, last = f"heartbeat {self.heartbeat}", self._last_beat(state)
            found.append(judge(ALERTS, ALERTMANAGER, how, last, self.heartbeat_max_age, now))
        elif ALERTMANAGER in state.heard:
            last = state.heard[ALERTMANAGER]
            found.append(judge(ALERTS, ALERTMANAGER, WEBHOOK, last, self.silence_max, now))
        if self.polled:
            found.append(judge(ALERTS, LIBRATO, "poll", state.polled, self.stale_after, now))
        elif LIBRATO in state.heard:
            last = state.heard[LIBRATO]
            found.append(judge(ALERTS, LIBRATO, WEBHOOK, last, self.silence_max, now))
        return found

    def _silences(self, state: State, now: datetime) -> list[str]:
        """Why a webhook sender's silence no longer means "nothing fires"."""
        problems = []
        if self.heartbeat:  # configured: Alertmanager is expected, heard or not
            problems += self._heartbeat(state, now)
        for source, at in sorted(state.heard.items()):
            polled = source == LIBRATO and self.polled  # the feed's age counts
            beating = source == ALERTMANAGER and self.heartbeat
            if not polled and not beating and now - at > self.silence_max:
                problems.append(
                    f"{source} was last heard {humanize(now - at)} ago, longer than"
                    f" CASCADE_SILENT_SOURCE_MAX_AGE ({humanize(self.silence_max)}) allows: "
                    + (SET_HEARTBEAT if source == ALERTMANAGER else "check its route to Cascade")
                )
        return problems

    def _last_beat(self, state: State) -> datetime | None:
        """When Alertmanager last notified its heartbeat alert (a repeat renews `recorded`)."""
        beats = [
            datetime.fromtimestamp(k.recorded, UTC)
            for k in state.kept.values()
            if k.alert.source == ALERTMANAGER and k.alert.name == self.heartbeat
        ]
        return max(beats, default=None)

    def _heartbeat(self, state: State, now: datetime) -> list[str]:
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

    def _stale(self, state: State, now: datetime) -> str:
        if state.polled is None:
            read = "Librato's alert status has not been read yet"
        else:
            read = f"Librato's alert status was last read {humanize(now - state.polled)} ago"
        why = f": {state.failure}" if state.failure else ""
        return f"{read}{why} (it must be under {humanize(self.stale_after)} old)"


def _left_out(truncated: Truncated) -> str:
    group = ", ".join(f"{k}={v}" for k, v in sorted(truncated.labels.items())) or "(all)"
    return (
        f"Alertmanager left {truncated.count} alerts of the group {group} out of a notification"
        " (max_alerts), and this service's may be among them: set max_alerts: 0 for Cascade"
    )


def _full() -> str:
    return (
        f"more than {keys.ALERTS_MAX} alerts are firing, more than Cascade keeps: which fire"
        " is not known (stop the flood of alerts, or send Cascade only the ones it needs)"
    )
