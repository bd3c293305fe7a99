"""Values of the alerts gate: the firing alerts, and which of them a service's entries name.

An `alerts` entry is a plain name — a Librato alert name or id, or an Alertmanager
`alertname` — or `alertname{label="value", …}` (equality matchers only, as in PromQL),
which matches only the Alertmanager alerts of that alertname carrying those labels.
An entry fires while any alert it matches fires. `app.signals.alerts.view` keeps the firing
alerts in Redis; the services file checks the entries with `parse_entry` when it loads.
"""

import json
import re
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from datetime import datetime
from functools import lru_cache

LIBRATO = "librato"
ALERTMANAGER = "alertmanager"

_MATCHER = re.compile(
    r'\s*([A-Za-z_][A-Za-z0-9_]*)\s*(=~|!=|!~|=)\s*"((?:[^"\\]|\\.)*)"\s*(?:,|\Z)', re.ASCII
)
_ESCAPE = re.compile(r"\\(.)")
_LABELS_SHOWN = 4


@dataclass(frozen=True)
class Alert:
    """One alert as a sender reported it: firing, or just resolved/cleared."""

    source: str  # LIBRATO or ALERTMANAGER
    name: str  # Librato alert name ("" while not known), Alertmanager `alertname`
    id: str  # Librato alert id, Alertmanager fingerprint
    labels: Mapping[str, str] = field(default_factory=dict)  # Alertmanager only
    since: datetime | None = None  # Librato trigger_time, Alertmanager startsAt
    url: str | None = None  # Librato runbook_url, Alertmanager generatorURL
    until: datetime | None = None  # a resolved Alertmanager alert's endsAt

    @property
    def episode(self) -> datetime | None:
        """The latest moment of the episode this report speaks of: what orders reports of one
        alert that arrive out of order (HA pairs, retries). None: only arrival orders it.
        An end before the start (no real sender writes one) counts as the start."""
        times = [t for t in (self.since, self.until) if t is not None]
        return max(times) if times else None

    @property
    def key(self) -> str:
        """Unique among all firing alerts: the source and its own id."""
        return f"{self.source}:{self.id}"


@dataclass(frozen=True)
class AlertsFacts:
    """What `gather` found for one service that lists alerts."""

    firing: tuple[Alert, ...]  # the firing alerts its entries match
    problem: str | None = None  # set when whether an alert fires cannot be known
    recheck_at: datetime | None = None  # with a problem: when a fresh look may know


@dataclass(frozen=True)
class Entry:
    """One entry of a service's `alerts`, parsed."""

    text: str  # as written in the services file
    name: str
    labels: tuple[tuple[str, str], ...] = ()  # empty: a plain name

    @property
    def plain(self) -> bool:
        """A plain name may be a Librato alert; an entry with labels is Alertmanager's only."""
        return not self.labels


@lru_cache(maxsize=1024)
def parse_entry(text: str) -> Entry:
    """`name` or `name{label="value", …}`; ValueError saying what is wrong and how to write it."""
    shown = json.dumps(text)
    stripped = text.strip()
    if "{" not in stripped and "}" not in stripped:
        if not stripped:
            raise ValueError("an empty name: write a Librato alert name or id, or an alertname")
        return Entry(text, stripped)
    name, _, rest = stripped.partition("{")
    if not rest.endswith("}"):
        raise ValueError(f'{shown}: write label matchers as name{{label="value", other="v"}}')
    labels: dict[str, str] = {}
    body, at = rest[:-1], 0
    while body[at:].strip():
        match = _MATCHER.match(body, at)
        if match is None:
            raise ValueError(f'{shown}: expected label="value" at {json.dumps(body[at:].strip())}')
        label, operator, value = match.groups()
        if operator != "=":
            raise ValueError(f'{shown}: only label="value" matchers are supported, not {operator}')
        if label in labels:
            raise ValueError(f"{shown}: the label {label} is matched twice")
        labels[label] = _ESCAPE.sub(lambda m: "\n" if m[1] == "n" else m[1], value)
        at = match.end()
    named = labels.pop("alertname", None)
    name = name.strip()
    if name and named is not None and named != name:
        raise ValueError(f"{shown}: two different alertnames")
    if not (name or named):
        raise ValueError(f'{shown}: no alertname: write alertname{{label="value"}}')
    return Entry(text, name or named or "", tuple(sorted(labels.items())))


def matches(entry: Entry, alert: Alert) -> bool:
    if entry.labels:
        return (
            alert.source == ALERTMANAGER
            and alert.name == entry.name
            and all(alert.labels.get(label) == value for label, value in entry.labels)
        )
    return alert.name == entry.name or (alert.source == LIBRATO and alert.id == entry.name)


def matching(entries: Iterable[str], alerts: Iterable[Alert]) -> tuple[Alert, ...]:
    """The alerts any of `entries` (checked when the services file loaded) matches."""
    parsed = [parse_entry(text) for text in entries]
    return tuple(a for a in alerts if any(matches(entry, a) for entry in parsed))


def describe(alert: Alert) -> str:
    """`"name" (source, detail)`: how a person recognises the alert in its sender's UI."""
    return f"{title(alert)} ({detail(alert)})"


def title(alert: Alert) -> str:
    if alert.name:
        return f'"{alert.name}"'
    return f"Librato alert #{alert.id}" if alert.source == LIBRATO else "an unnamed alert"


def detail(alert: Alert) -> str:
    """Where it comes from: `librato #12, runbook …`, `alertmanager, job=api, …`."""
    if alert.source == LIBRATO:
        return f"librato #{alert.id}" + (f", runbook {alert.url}" if alert.url else "")
    return f"{alert.source}{shown_labels(alert.labels)}"


def shown_labels(labels: Mapping[str, str]) -> str:
    """`, job=api, instance=…`: the labels besides alertname, a few at most."""
    items = [f"{k}={v}" for k, v in sorted(labels.items()) if k != "alertname"]
    more = f", +{len(items) - _LABELS_SHOWN} more" if len(items) > _LABELS_SHOWN else ""
    return "".join(f", {item}" for item in items[:_LABELS_SHOWN]) + more
