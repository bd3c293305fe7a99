"""Load and validate the services file (TOML) into frozen values.

A bad file stops startup with a `ConfigError` naming the file, the service and
the field, so an operator can fix it without guessing.
"""

from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import timedelta
from pathlib import Path


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


@dataclass(frozen=True)
class ServicesConfig:
    path: Path
    services: tuple[Service, ...]
    freezes: tuple[Freeze, ...] = ()

    def get(self, name: str) -> Service | None:
        return next((s for s in self.services if s.name == name), None)


def parse_duration(value: object) -> timedelta:
    """`90s`, `30m`, `1h`, `1h30m`, or a number of seconds (`90` or `"90"`)."""
    raise NotImplementedError


def load_services(path: Path) -> ServicesConfig:
    raise NotImplementedError
