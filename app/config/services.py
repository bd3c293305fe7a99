"""Load and validate the services file (TOML) into frozen values.

A bad file stops startup with a `ConfigError` naming the file, the service and
the field, so an operator can fix it without guessing. Validation is written by
hand: every check knows where it is, which is what makes the messages useful.
"""

import json
import re
import tomllib
from collections.abc import Callable, Collection, Mapping
from dataclasses import dataclass, field, fields
from datetime import timedelta
from functools import cached_property
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from app.signals.alerts.facts import parse_entry


class ConfigError(ValueError):
    """The services file is invalid; the message names file, service and field."""


@dataclass(frozen=True)
class Freeze:
    cron: str
    duration: timedelta
    timezone: str
    reason: str
    services: tuple[str, ...] = ()  # empty: every service


@dataclass(frozen=True)
class Service:
    name: str
    pipeline: str
    stages: tuple[str, ...] | None = None  # None: from the pipeline's couplings
    repo: str | None = None
    branch: str = "main"
    alerts: tuple[str, ...] = ()
    urls: tuple[str, ...] = ()
    incident_systems: tuple[str, ...] = ()
    require_checks: bool = False
    min_age: timedelta = timedelta(minutes=30)
    stage_min_age: Mapping[str, timedelta] = field(default_factory=dict)
    commit_statuses: bool = False  # post `cascade/<stage>` statuses on the commits (needs repo)
    github_deployments: bool = False  # a GitHub deployment per promotion (needs repo)
    # The apps of `stages` promoted together, in order, when an entry of `stages` is a list of
    # apps (a wave); empty: each stage on its own. Not a TOML key: written inside `stages`.
    waves: tuple[tuple[str, ...], ...] = ()
    # stage app -> alerts that watch that app only: they close promotions out of it and count
    # for the auto-halt after a promotion into it
    stage_alerts: Mapping[str, tuple[str, ...]] = field(default_factory=dict)
    halt_window: timedelta = timedelta(minutes=30)  # 0: no auto-halt (`app.core.halt`)
    rollback: bool = False  # an auto-halt also rolls the halted stage back once

    @property
    def every_alert(self) -> tuple[str, ...]:
        """Every alert entry the service reads: its own and every stage's, once each."""
        staged = (entry for entries in self.stage_alerts.values() for entry in entries)
        return tuple(dict.fromkeys((*self.alerts, *staged)))

    def alerts_out_of(self, source: str) -> tuple[str, ...]:
        """The alerts that close promotions out of `source`: the service's and the stage's."""
        return (*self.alerts, *self.stage_alerts.get(source, ()))

    def min_age_for(self, target: str) -> timedelta:
        """The age gate for promoting into `target`: a per-stage value wins."""
        return self.stage_min_age.get(target, self.min_age)


@dataclass(frozen=True)
class ServicesConfig:
    path: Path
    services: tuple[Service, ...]
    freezes: tuple[Freeze, ...] = ()

    def get(self, name: str) -> Service | None:
        return self._by_name.get(name)

    @cached_property
    def _by_name(self) -> dict[str, Service]:
        """Names are unique; a dict keeps a tick over N services O(N), not O(N²)."""
        return {service.name: service for service in self.services}


_DURATION = re.compile(r"(?:(\d+)d)?(?:(\d+)h)?(?:(\d+)m)?(?:(\d+)s)?", re.ASCII)
_SECONDS = re.compile(r"\d+(?:\.\d+)?", re.ASCII)
_NAME = re.compile(r"[A-Za-z0-9][A-Za-z0-9._-]*", re.ASCII)  # safe in a URL path segment
_REPO = re.compile(r"[A-Za-z0-9-]+/[A-Za-z0-9._-]+", re.ASCII)
_CRON_ITEM = re.compile(r"(?:\*|(\w+)(?:-(\w+))?)(?:/(\d+))?", re.ASCII)
_MONTHS = ("JAN", "FEB", "MAR", "APR", "MAY", "JUN", "JUL", "AUG", "SEP", "OCT", "NOV", "DEC")
_DAYS = ("SUN", "MON", "TUE", "WED", "THU", "FRI", "SAT")
_CRON_FIELDS: tuple[tuple[str, int, int, tuple[str, ...]], ...] = (
    ("minute", 0, 59, ()),
    ("hour", 0, 23, ()),
    ("day-of-month", 1, 31, ()),
    ("month", 1, 12, _MONTHS),
    ("day-of-week", 0, 7, _DAYS),
)
Check = Callable[[str], object]  # truthy when the string is acceptable
_DEFAULT_FIELDS = ("min_age", "branch", "require_checks", "incident_systems", "halt_window")
# the TOML keys are the field names (`waves` is written inside `stages`)
_SERVICE_FIELDS = tuple(f.name for f in fields(Service) if f.name != "waves")
_FREEZE_FIELDS = tuple(f.name for f in fields(Freeze))


def _show(value: object) -> str:
    """A value as the operator wrote it in TOML, more or less."""
    return "a table" if isinstance(value, dict) else json.dumps(value, default=str)


def parse_duration(value: object) -> timedelta:
    """`90s`, `30m`, `1h`, `1h30m`, `2d`, or a number of seconds (`90` or `"90"`)."""
    seconds: float | None = None
    if isinstance(value, int | float) and not isinstance(value, bool):
        seconds = value
    elif isinstance(value, str) and _SECONDS.fullmatch(value):
        seconds = float(value)
    elif isinstance(value, str) and (match := _DURATION.fullmatch(value)) and any(match.groups()):
        days, hours, minutes, secs = (int(group or 0) for group in match.groups())
        seconds = ((days * 24 + hours) * 60 + minutes) * 60 + secs
    try:
        if seconds is not None and seconds >= 0:  # NaN fails this too
            return timedelta(seconds=seconds)
    except OverflowError:
        raise ValueError(f"{_show(value)} is too long a duration") from None
    hint = "write 90s, 30m, 1h or 1h30m, or a number of seconds"
    raise ValueError(f"{_show(value)} is not a duration ({hint})")


def _cron_problem(expr: str) -> str | None:
    """Why `expr` is not a 5-field cron expression, or None when it looks like one."""
    parts = expr.split()
    if len(parts) != 5:
        order = "minute hour day-of-month month day-of-week"
        return f"{_show(expr)} has {len(parts)} fields; expected 5: {order}"
    for part, (name, low, high, names) in zip(parts, _CRON_FIELDS, strict=True):
        for item in part.upper().split(","):
            match = _CRON_ITEM.fullmatch(item)
            values = [v for v in match.groups()[:2] if v is not None] if match else []
            step = match and match.group(3)
            in_range = all(v in names or (v.isdigit() and low <= int(v) <= high) for v in values)
            if not match or not in_range or step == "0":
                allowed = f"{low}-{high}" + (f" or {names[0]}-{names[-1]}" if names else "")
                return f"{_show(expr)}: the {name} field {_show(part)} is not {allowed}"
    return None


class _Table:
    """One TOML table being read; each error it raises says where the value was."""

    def __init__(self, where: str, data: object) -> None:
        if not isinstance(data, dict):
            raise ConfigError(f"{where}: expected a table, got {_show(data)}")
        self.where, self.data = where, data

    def only(self, known: Collection[str]) -> "_Table":
        """Refuse keys outside `known`: a typo must not silently become a default."""
        if unknown := [key for key in self.data if key not in known]:
            listed = ", ".join(known)
            raise ConfigError(f'{self.where}: unknown field "{unknown[0]}" (known: {listed})')
        return self

    def error(self, key: str, what: str) -> ConfigError:
        return ConfigError(f'{self.where}: field "{key}": {what}')

    def text(self, key: str, expected: str, check: Check = str.strip) -> str | None:
        """The string at `key`, None when absent; `check` refuses bad content."""
        value = self.data.get(key)
        if value is not None and not (isinstance(value, str) and check(value)):
            raise self.error(key, f"expected {expected}, got {_show(value)}")
        return value

    def required(self, key: str, expected: str, check: Check = str.strip) -> str:
        value = self.text(key, expected, check)
        if value is None:
            raise self.error(key, f"missing; expected {expected}")
        return value

    def texts(
        self, key: str, expected: str, check: Check = str.strip, default: tuple[str, ...] = ()
    ) -> tuple[str, ...]:
        """A list of strings, `default` when absent; every item must pass `check`."""
        value = self.data.get(key, default)
        if not isinstance(value, list | tuple):
            raise self.error(key, f"expected a list of {expected}, got {_show(value)}")
        for item in value:
            if not (isinstance(item, str) and check(item)):
                raise self.error(key, f"expected a list of {expected}; {_show(item)} is not one")
        return tuple(value)

    def boolean(self, key: str, default: bool) -> bool:
        value = self.data.get(key, default)
        if not isinstance(value, bool):
            raise self.error(key, f"expected true or false, got {_show(value)}")
        return value

    def duration(self, key: str, default: timedelta | None) -> timedelta:
        """The duration at `key`; `default` when absent, required when that is None."""
        value = self.data.get(key)
        if value is not None:
            return self.as_duration(key, value)
        if default is None:
            raise self.error(key, "missing; expected a duration such as 30m")
        return default

    def as_duration(self, key: str, value: object) -> timedelta:
        try:
            return parse_duration(value)
        except ValueError as exc:
            raise self.error(key, str(exc)) from None


def _is_url(text: str) -> bool:
    try:
        parts = urlsplit(text)
    except ValueError:
        return False
    return parts.scheme in ("http", "https") and bool(parts.hostname)


def _alerts(table: _Table, key: str = "alerts") -> tuple[str, ...]:
    """Each entry: an alert name or id, or `alertname{label="value", …}` (equality only)."""
    entries = table.texts(key, "alert names")
    for entry in entries:
        try:
            parse_entry(entry)
        except ValueError as exc:
            raise table.error(key, str(exc)) from None
    return entries


def _stage_alerts(table: _Table, stages: tuple[str, ...] | None) -> dict[str, tuple[str, ...]]:
    """`[service.stage_alerts]`: keyed by a stage app of `stages`, which must be written out:
    an alert keyed by an app that is no stage would silently watch nothing."""
    if "stage_alerts" not in table.data:
        return {}
    by_stage = _Table(f'{table.where}: field "stage_alerts"', table.data["stage_alerts"])
    if stages is None:
        raise table.error("stage_alerts", 'needs "stages", the apps its keys must be among')
    if unknown := [app for app in by_stage.data if app not in stages]:
        expected = f"one of {', '.join(stages)}"
        raise table.error(
            "stage_alerts", f"{_show(unknown[0])} is not a stage; expected {expected}"
        )
    return {app: _alerts(by_stage, app) for app in by_stage.data}


def _is_timezone(name: str) -> bool:
    try:
        ZoneInfo(name)
    except (ZoneInfoNotFoundError, ValueError, OSError):
        return False
    return True


def _service(path: Path, index: int, data: object, defaults: Service) -> Service:
    """One `[[service]]` table; `defaults` carries what `[defaults]` said."""
    table = _Table(f"{path}: service #{index}", data)
    name = table.required("name", "a URL-safe name (letters, digits, . _ -)", _NAME.fullmatch)
    table.where = f'{path}: service "{name}"'
    table.only(_SERVICE_FIELDS)
    waves = _waves(table) if "stages" in table.data else None
    stages = tuple(app for wave in waves for app in wave) if waves is not None else None
    by_target = _Table(f'{table.where}: field "stage_min_age"', table.data.get("stage_min_age", {}))
    # the first wave is never a target; without stages, the pipeline decides later
    targets = stages[len(waves[0]) :] if waves and stages else tuple(by_target.data)
    if unknown := [t for t in by_target.data if t not in targets]:
        expected = f"one of {', '.join(targets)} (the first stage is never a target)"
        raise table.error("stage_min_age", f"{_show(unknown[0])} is not a target stage; {expected}")
    commit_statuses, github_deployments = _github_writes(table)
    return Service(
        name=name,
        pipeline=table.required("pipeline", "the Heroku pipeline name or id"),
        stages=stages,
        repo=table.text("repo", 'a GitHub repository "owner/name"', _REPO.fullmatch),
        branch=table.text("branch", "a branch name") or defaults.branch,
        alerts=_alerts(table),
        urls=table.texts("urls", "http(s) URLs", _is_url),
        incident_systems=table.texts(
            "incident_systems", "names", default=defaults.incident_systems
        ),
        require_checks=table.boolean("require_checks", defaults.require_checks),
        min_age=table.duration("min_age", defaults.min_age),
        stage_min_age={
            t: table.as_duration(f"stage_min_age.{t}", v) for t, v in by_target.data.items()
        },
        commit_statuses=commit_statuses,
        github_deployments=github_deployments,
        waves=waves if waves and any(len(wave) > 1 for wave in waves) else (),
        stage_alerts=_stage_alerts(table, stages),
        halt_window=table.duration("halt_window", defaults.halt_window),
        rollback=table.boolean("rollback", False),
    )


def _waves(table: _Table) -> tuple[tuple[str, ...], ...]:
    """`stages`: app names in order, an entry a list of apps for a wave promoted together."""
    value = table.data["stages"]
    expected = "a list of app names in order (an entry may be a list of apps: a wave)"
    if not isinstance(value, list):
        raise table.error("stages", f"expected {expected}, got {_show(value)}")
    waves = []
    for entry in value:
        apps = entry if isinstance(entry, list) else [entry]
        if not apps or not all(isinstance(app, str) and app.strip() for app in apps):
            raise table.error("stages", f"expected {expected}; {_show(entry)} is not one")
        waves.append(tuple(apps))
    flat = [app for wave in waves for app in wave]
    if len(waves) < 2 or len(set(flat)) != len(flat):
        distinct = "2 or more distinct app names in order"
        raise table.error("stages", f"expected {distinct}, got {_show(value)}")
    return tuple(waves)


def _github_writes(table: _Table) -> tuple[bool, bool]:
    """`commit_statuses` and `github_deployments`: each writes to the service's `repo`."""
    wanted = (table.boolean("commit_statuses", False), table.boolean("github_deployments", False))
    for name, on in zip(("commit_statuses", "github_deployments"), wanted, strict=True):
        if on and "repo" not in table.data:
            raise table.error(name, 'needs "repo", the GitHub repository to post on')
    return wanted


def _freeze(path: Path, index: int, data: object, names: Collection[str]) -> Freeze:
    """One `[[freeze]]` window; its `services` must be configured ones."""
    table = _Table(f"{path}: freeze #{index}", data).only(_FREEZE_FIELDS)
    cron = table.required("cron", 'a 5-field cron expression such as "0 15 * * FRI"')
    if problem := _cron_problem(cron):
        raise table.error("cron", problem)
    duration = table.duration("duration", None)
    if not duration:
        raise table.error("duration", "expected a duration longer than 0")
    services = table.texts("services", "service names")
    if unknown := [s for s in services if s not in names]:
        configured = ", ".join(names)
        raise table.error("services", f"{_show(unknown[0])} is not a service here ({configured})")
    zone = table.text("timezone", "an IANA time zone such as Europe/Paris", _is_timezone)
    return Freeze(
        cron=cron,
        duration=duration,
        timezone=zone or "UTC",
        reason=table.required("reason", "why deploys are frozen"),
        services=services,
    )


def _tables(path: Path, data: dict[str, Any], key: str) -> list[Any]:
    value = data.get(key, [])
    if not isinstance(value, list):
        raise ConfigError(f'{path}: "{key}" must be an array of tables: write [[{key}]]')
    return value


def load_services(path: Path) -> ServicesConfig:
    """Read and check the whole services file; the first problem raises `ConfigError`."""
    try:
        data = tomllib.loads(path.read_text(encoding="utf-8"))
    except FileNotFoundError:
        hint = "create it, or set CASCADE_CONFIG to the services file's path"
        raise ConfigError(f"{path}: the services file does not exist ({hint})") from None
    except tomllib.TOMLDecodeError as exc:
        raise ConfigError(f"{path}: not valid TOML: {exc}") from None
    except (OSError, UnicodeDecodeError) as exc:
        raise ConfigError(f"{path}: cannot read the services file: {exc}") from None
    _Table(str(path), data).only(("defaults", "service", "freeze"))
    table = _Table(f"{path}: [defaults]", data.get("defaults", {})).only(_DEFAULT_FIELDS)
    defaults = Service(
        name="",
        pipeline="",
        branch=table.text("branch", "a branch name") or "main",
        incident_systems=table.texts("incident_systems", "names"),
        require_checks=table.boolean("require_checks", False),
        min_age=table.duration("min_age", timedelta(minutes=30)),
        halt_window=table.duration("halt_window", timedelta(minutes=30)),
    )
    services: dict[str, Service] = {}
    for index, item in enumerate(_tables(path, data, "service"), 1):
        service = _service(path, index, item, defaults)
        if service.name in services:
            taken = f"{_show(service.name)} is already taken; names must be unique"
            raise ConfigError(f'{path}: service #{index}: field "name": {taken}')
        services[service.name] = service
    if not services:
        raise ConfigError(f"{path}: no [[service]] table; configure at least one service")
    freezes = [
        _freeze(path, i, item, services) for i, item in enumerate(_tables(path, data, "freeze"), 1)
    ]
    return ServicesConfig(path=path, services=tuple(services.values()), freezes=tuple(freezes))
