"""Values of the urls gate: what each configured URL answered, and how to show a URL.

`app.signals.urls.client` probes the URLs and caches each answer; the gate reads these values.
"""

from dataclasses import dataclass
from datetime import datetime
from urllib.parse import urlsplit, urlunsplit

NOT_CHECKED = "not checked yet"


@dataclass(frozen=True)
class UrlCheck:
    url: str  # as configured, userinfo included: show it through `shown`
    status: int | None  # None: no answer
    error: str | None  # why there was no answer (timed out, connection refused, …)
    checked_at: datetime | None  # None: never probed (only a cache read asked)
    recheck_at: datetime | None = None  # when the cached answer expires: a new probe may differ
    phrase: str = ""  # the status line's reason phrase: "Internal Server Error"
    location: str | None = None  # where a redirect (3xx) points; redirects are not followed


def shown(url: str) -> str:
    """`url` without its userinfo: `https://user:secret@host/x` → `https://host/x`."""
    try:
        parts = urlsplit(url)
    except ValueError:
        return url.rpartition("@")[2]
    if "@" not in parts.netloc:
        return url
    return urlunsplit(parts._replace(netloc=parts.netloc.rpartition("@")[2]))
