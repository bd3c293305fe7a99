"""Reading the services file's TOML: typed getters whose every error says where it was.

`Table` is one TOML table being read; `parse_duration` and `cron_problem` check the two
small languages of the file (durations, cron expressions). `app.config.services` builds
its values with these; validation is written by hand because every check knows where it
is, which is what makes the messages useful.
"""

import json
import re
from collections.abc import Callable, Collection
from datetime import timedelta
from urllib.parse import urlsplit
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

_DURATION = re.compile(r"(?:(\d+)d)?(?:(\d+)h)?(?:(\d+)m)?(?:(\d+)s)?", re.ASCII)
_SECONDS = re.compile(r"\d+(?:\.\d+)?", re.ASCII)
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


class ConfigError(ValueError):
    """The services file is invalid; the message names file, service and field."""


def show(value: object) -> str:
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
        raise ValueError(f"{show(value)} is too long a duration") from None
    hint = "write 90s, 30m, 1h or 1h30m, or a number of seconds"
    raise ValueError(f"{show(value)} is not a duration ({hint})")


def cron_problem(expr: str) -> str | None:
    """Why `expr` is not a 5-field cron expression, or None when it looks like one."""
    parts = expr.split()
    if len(parts) != 5:
        order = "minute hour day-of-month month day-of-week"
        return f"{show(expr)} has {len(parts)} fields; expected 5: {order}"
    for part, (name, low, high, names) in zip(parts, _CRON_FIELDS, strict=True):
        for item in part.upper().split(","):
            match = _CRON_ITEM.fullmatch(item)
            values = [v for v in match.groups()[:2] if v is not None] if match else []
            step = match and match.group(3)
            in_range = all(v in names or (v.isdigit() and low <= int(v) <= high) for v in values)
            if not match or not in_range or step == "0":
                allowed = f"{low}-{high}" + (f" or {names[0]}-{names[-1]}" if names else "")
                return f"{show(expr)}: the {name} field {show(part)} is not {allowed}"
    return None


class Table:
    """One TOML table being read; each error it raises says where the value was."""

    def __init__(self, where: str, data: object) -> None:
        if not isinstance(data, dict):
            raise ConfigError(f"{where}: expected a table, got {show(data)}")
        self.where, self.data = where, data

    def only(self, known: Collection[str]) -> "Table":
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
            raise self.error(key, f"expected {expected}, got {show(value)}")
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
            raise self.error(key, f"expected a list of {expected}, got {show(value)}")
        for item in value:
            if not (isinstance(item, str) and check(item)):
                raise self.error(key, f"expected a list of {expected}; {show(item)} is not one")
        return tuple(value)

    def boolean(self, key: str, default: bool) -> bool:
        value = self.data.get(key, default)
        if not isinstance(value, bool):
            raise self.error(key, f"expected true or false, got {show(value)}")
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


def is_url(text: str) -> bool:
    try:
        parts = urlsplit(text)
    except ValueError:
        return False
    return parts.scheme in ("http", "https") and bool(parts.hostname)


def is_timezone(name: str) -> bool:
    try:
        ZoneInfo(name)
    except (ZoneInfoNotFoundError, ValueError, OSError):
        return False
    return True
