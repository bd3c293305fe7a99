"""The services file (TOML): its frozen values, and how each of its tables becomes one.

A bad file stops startup with a `ConfigError` naming the file, the service and the field,
so an operator can fix it without guessing; the getters that know where they are (`Table`,
durations, cron expressions) are `app.config.table`'s. `ConfigError` and `parse_duration`
are importable from here, where their users have always found them.
"""

import re
import tomllib
from collections.abc import Collection, Mapping
from dataclasses import dataclass, field, fields
from datetime import timedelta
from functools import cached_property
from pathlib import Path
from typing import Any

from app.config.table import (
    ConfigError,
    Table,
    cron_problem,
    is_timezone,
    is_url,
    parse_duration,
    show,
)
from app.signals.alerts.facts import parse_entry

__all__ = [
    "ConfigError",
    "Freeze",
    "Service",
    "ServicesConfig",
    "load_services",
    "parse_duration",
]

_NAME = re.compile(r"[A-Za-z0-9][A-Za-z0-9._-]*", re.ASCII)  # safe in a URL path segment
_REPO = re.compile(r"[A-Za-z0-9-]+/[A-Za-z0-9._-]+", re.ASCII)


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


_DEFAULT_FIELDS = ("min_age", "branch", "require_checks", "incident_systems", "halt_window")
# the TOML keys are the field names (`waves` is written inside `stages`)
_SERVICE_FIELDS = tuple(f.name for f in fields(Service) if f.name != "waves")
_FREEZE_FIELDS = tuple(f.name for f in fields(Freeze))


def _alerts(table: Table, key: str = "alerts") -> tuple[str, ...]:
    """Each entry: an alert name or id, or `alertname{label="value", …}` (equality only)."""
    entries = table.texts(key, "alert names")
    for entry in entries:
        try:
            parse_entry(entry)
        except ValueError as exc:
            raise table.error(key, str(exc)) from None
    return entries


def _stage_alerts(table: Table, stages: tuple[str, ...] | None) -> dict[str, tuple[str, ...]]:
    """`[service.stage_alerts]`: keyed by a stage app of `stages`, which must be written out:
    an alert keyed by an app that is no stage would silently watch nothing."""
    if "stage_alerts" not in table.data:
        return {}
    by_stage = Table(f'{table.where}: field "stage_alerts"', table.data["stage_alerts"])
    if stages is None:
        raise table.error("stage_alerts", 'needs "stages", the apps its keys must be among')
    if unknown := [app for app in by_stage.data if app not in stages]:
        expected = f"one of {', '.join(stages)}"
        raise table.error("stage_alerts", f"{show(unknown[0])} is not a stage; expected {expected}")
    return {app: _alerts(by_stage, app) for app in by_stage.data}


def _service(path: Path, index: int, data: object, defaults: Service) -> Service:
    """One `[[service]]` table; `defaults` carries what `[defaults]` said."""
    table = Table(f"{path}: service #{index}", data)
    name = table.required("name", "a URL-safe name (letters, digits, . _ -)", _NAME.fullmatch)
    table.where = f'{path}: service "{name}"'
    table.only(_SERVICE_FIELDS)
    waves = _waves(table) if "stages" in table.data else None
    stages = tuple(app for wave in waves for app in wave) if waves is not None else None
    by_target = Table(f'{table.where}: field "stage_min_age"', table.data.get("stage_min_age", {}))
    # the first wave is never a target; without stages, the pipeline decides later
    targets = stages[len(waves[0]) :] if waves and stages else tuple(by_target.data)
    if unknown := [t for t in by_target.data if t not in targets]:
        expected = f"one of {', '.join(targets)} (the first stage is never a target)"
        raise table.error("stage_min_age", f"{show(unknown[0])} is not a target stage; {expected}")
    commit_statuses, github_deployments = _github_writes(table)
    return Service(
        name=name,
        pipeline=table.required("pipeline", "the Heroku pipeline name or id"),
        stages=stages,
        repo=table.text("repo", 'a GitHub repository "owner/name"', _REPO.fullmatch),
        branch=table.text("branch", "a branch name") or defaults.branch,
        alerts=_alerts(table),
        urls=table.texts("urls", "http(s) URLs", is_url),
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


def _waves(table: Table) -> tuple[tuple[str, ...], ...]:
    """`stages`: app names in order, an entry a list of apps for a wave promoted together."""
    value = table.data["stages"]
    expected = "a list of app names in order (an entry may be a list of apps: a wave)"
    if not isinstance(value, list):
        raise table.error("stages", f"expected {expected}, got {show(value)}")
    waves = []
    for entry in value:
        apps = entry if isinstance(entry, list) else [entry]
        if not apps or not all(isinstance(app, str) and app.strip() for app in apps):
            raise table.error("stages", f"expected {expected}; {show(entry)} is not one")
        waves.append(tuple(apps))
    flat = [app for wave in waves for app in wave]
    if len(waves) < 2 or len(set(flat)) != len(flat):
        distinct = "2 or more distinct app names in order"
        raise table.error("stages", f"expected {distinct}, got {show(value)}")
    return tuple(waves)


def _github_writes(table: Table) -> tuple[bool, bool]:
    """`commit_statuses` and `github_deployments`: each writes to the service's `repo`."""
    wanted = (table.boolean("commit_statuses", False), table.boolean("github_deployments", False))
    for name, on in zip(("commit_statuses", "github_deployments"), wanted, strict=True):
        if on and "repo" not in table.data:
            raise table.error(name, 'needs "repo", the GitHub repository to post on')
    return wanted


def _freeze(path: Path, index: int, data: object, names: Collection[str]) -> Freeze:
    """One `[[freeze]]` window; its `services` must be configured ones."""
    table = Table(f"{path}: freeze #{index}", data).only(_FREEZE_FIELDS)
    cron = table.required("cron", 'a 5-field cron expression such as "0 15 * * FRI"')
    if problem := cron_problem(cron):
        raise table.error("cron", problem)
    duration = table.duration("duration", None)
    if not duration:
        raise table.error("duration", "expected a duration longer than 0")
    services = table.texts("services", "service names")
    if unknown := [s for s in services if s not in names]:
        configured = ", ".join(names)
        raise table.error("services", f"{show(unknown[0])} is not a service here ({configured})")
    zone = table.text("timezone", "an IANA time zone such as Europe/Paris", is_timezone)
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
    Table(str(path), data).only(("defaults", "service", "freeze"))
    table = Table(f"{path}: [defaults]", data.get("defaults", {})).only(_DEFAULT_FIELDS)
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
            taken = f"{show(service.name)} is already taken; names must be unique"
            raise ConfigError(f'{path}: service #{index}: field "name": {taken}')
        services[service.name] = service
    if not services:
        raise ConfigError(f"{path}: no [[service]] table; configure at least one service")
    freezes = [
        _freeze(path, i, item, services) for i, item in enumerate(_tables(path, data, "freeze"), 1)
    ]
    return ServicesConfig(path=path, services=tuple(services.values()), freezes=tuple(freezes))
