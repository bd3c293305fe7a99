"""The alerts view's stored form, and one read of it as a `State`.

`app.signals.alerts.view` reads and writes Redis; this module says what its values mean:
a firing alert is one JSON field of the firing hash (until when it counts, who recorded
it), a group Alertmanager cut short is one of the truncated hash, and a cleared episode
leaves an ended mark. Pure: no I/O.
"""

import json
import logging
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta

from app.signals.alerts.facts import ALERTMANAGER, LIBRATO, Alert, Entry
from app.storage import keys

log = logging.getLogger(__name__)
HEARD = (LIBRATO, ALERTMANAGER)  # the senders whose last delivery `State.heard` tells


@dataclass(frozen=True)
class Kept:
    """A firing alert as stored: until when it counts, when it was recorded, by whom."""

    alert: Alert
    expires: float  # epoch seconds
    recorded: float  # epoch seconds
    polled: bool  # Librato's status API listed it: it also says when it stops


@dataclass(frozen=True)
class Truncated:
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
class State:
    """Everything the view keeps, as of one moment."""

    kept: dict[str, Kept]  # unexpired, by alert key
    expired: dict[str, Alert]
    polled: datetime | None  # the last good read of Librato's status API
    failure: str | None  # why the reads since then failed
    heard: dict[str, datetime]  # the alert senders that ever delivered, and when last
    truncated: list[Truncated]  # groups whose last notification left alerts out

    def alerts(self) -> list[Alert]:
        return [kept.alert for kept in self.kept.values()]


def state(
    firing: dict[str, str],
    polled: str | None,
    failure: str | None,
    heard: Sequence[str | None],
    truncated: Iterable[str],
    now: datetime,
) -> State:
    """The view as of `now`, from its Redis values (`heard`: one per sender of `HEARD`)."""
    kept: dict[str, Kept] = {}
    expired: dict[str, Alert] = {}
    for key, value in firing.items():
        item = load(value)
        if item is None:
            expired[key] = Alert("", "", key)  # unreadable: dropped at the next refresh
        elif item.expires <= now.timestamp():
            expired[key] = item.alert
        else:
            kept[key] = item
    return State(
        kept=kept,
        expired=expired,
        polled=datetime.fromtimestamp(float(polled), UTC) if polled else None,
        failure=failure,
        heard={
            source: datetime.fromtimestamp(float(at), UTC)
            for source, at in zip(HEARD, heard, strict=True)
            if at
        },
        truncated=[t for v in truncated if (t := load_truncated(str(v), now)) is not None],
    )


def dump(alert: Alert, now: datetime, recorded: datetime, *, polled: bool = True) -> str:
    """A firing alert as kept, counting from `now` for as long as its sender's reports last."""
    return json.dumps(
        {
            "source": alert.source,
            "name": alert.name,
            "id": alert.id,
            "labels": dict(alert.labels),
            "since": alert.since.isoformat() if alert.since else None,
            "start": alert.since.timestamp() if alert.since else None,  # read by the script
            "url": alert.url,
            "expires": (now + _ttl(alert.source)).timestamp(),
            "recorded": recorded.timestamp(),
            "polled": polled,
        },
        separators=(",", ":"),
    )


def load(value: str) -> Kept | None:
    """A kept alert; None (and a warning) when the value cannot be read."""
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
        return Kept(alert, float(data["expires"]), float(data["recorded"]), bool(data["polled"]))
    except (ValueError, KeyError, TypeError) as error:
        log.warning("an unreadable firing alert in Redis is dropped: %s", error)
        return None


def dump_truncated(labels: dict[str, str], count: int, now: datetime) -> str:
    """A truncated group as kept: as long as a firing alert."""
    expires = (now + keys.ALERTMANAGER_TTL).timestamp()
    return json.dumps({"labels": labels, "count": count, "expires": expires})


def load_truncated(value: str, now: datetime) -> Truncated | None:
    """A truncated group still in force at `now`; None when past or unreadable."""
    try:
        data = json.loads(value)
        if float(data["expires"]) <= now.timestamp():
            return None
        return Truncated({str(k): str(v) for k, v in data["labels"].items()}, int(data["count"]))
    except (ValueError, KeyError, TypeError, AttributeError):
        return None


def mark_expired(mark: str, now: datetime) -> bool:
    """An ended mark (`<episode>|<expires>`) past its lifetime, or unreadable."""
    _, _, expires = mark.partition("|")
    try:
        return float(expires) <= now.timestamp()
    except ValueError:
        return True


def _ttl(source: str) -> timedelta:
    return keys.LIBRATO_TTL if source == LIBRATO else keys.ALERTMANAGER_TTL
