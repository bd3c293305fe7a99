"""Heroku's Range header on a list of releases: one page, and the Next-Range that follows.

`Range: version ]12..; order=desc,max=10`, as the Platform API reads it; a range it cannot
satisfy is refused with 416, as Heroku refuses it.
"""

import re
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from app.sandbox.resources import PlatformError, Release


@dataclass(frozen=True)
class Page:
    """One page of a Range-d list: 206 with `next_range` when more follow."""

    items: list[Release]
    content_range: str | None
    next_range: str | None


_RANGE = re.compile(r"^\s*(\w+)\s+(\]?)([^.;\s]*)\.\.([^;\s]*)\s*(?:;\s*(.*?))?\s*;?\s*$")
_SORT_KEYS: dict[str, Callable[[Release], int | str]] = {
    "version": lambda r: r.version,
    "id": lambda r: r.id,
}
ACCEPT_RANGES = ", ".join(_SORT_KEYS)


def releases_page(releases: list[Release], header: str | None) -> Page:
    """Heroku's `Range: version ]12..; order=desc,max=10`; without a header, by version."""
    spec = _RANGE.match(header or "version ..")
    if spec is None or spec[1] not in _SORT_KEYS:
        raise PlatformError(416, "requested_range_not_satisfiable", f"Invalid Range {header!r}.")
    name, exclusive, start, end, options = spec.groups()
    settings = dict(
        part.split("=", 1) for part in re.split(r"[,;]\s*", options or "") if "=" in part
    )
    try:
        size = int(settings.get("max", 200))
        first: Any = (int(start) if name == "version" else start) if start else None
        last: Any = (int(end) if name == "version" else end) if end else None
    except ValueError:
        raise PlatformError(416, "requested_range_not_satisfiable", "Invalid Range.") from None
    if not 1 <= size <= 1000:
        raise PlatformError(416, "requested_range_not_satisfiable", "max must be 1 to 1000.")
    desc, key = settings.get("order") == "desc", _SORT_KEYS[name]

    def within(release: Release) -> bool:
        """`first` is where the order starts (`]` excludes it), `last` where it stops."""
        value: Any = key(release)
        if first is not None and value == first and exclusive:
            return False
        if first is not None and value != first and (value > first) == desc:  # before the start
            return False
        return last is None or value == last or (value < last) != desc

    found = sorted(filter(within, releases), key=key, reverse=desc)
    items = found[:size]
    content = f"{name} {key(items[0])}..{key(items[-1])}" if items else None
    if len(found) <= size:
        return Page(items, content, None)
    order = "desc" if desc else "asc"
    return Page(items, content, f"{name} ]{key(items[-1])}..{end}; order={order},max={size}")
