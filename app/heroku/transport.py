"""The Platform API's transport: one request sent, paced, counted and retried safely.

Every endpoint of `app.heroku.client` goes through `Transport.send` (or `list`, which follows
Range pages). Reads are retried; a write is sent again only when it provably never left this
process, so a promotion happens at most once. While the rate-limit pool is low, requests are
paced at Heroku's refill rate rather than hammered. Errors are the types of
`app.heroku.errors`, logged once with what Heroku support needs (never the token).
"""

import asyncio
import logging
import random
import time
from collections import Counter
from collections.abc import Awaitable, Callable, Mapping
from typing import Any, TypedDict, TypeVar
from urllib.parse import quote

import httpx

from app.heroku.errors import HerokuError, NotFound, OutcomeUnknown
from app.version import user_agent

log = logging.getLogger(__name__)

T = TypeVar("T")
ACCEPT = "application/vnd.heroku+json; version=3"
MAX_PAGES = 50  # 50 pages of up to 1000 items: far more than any pipeline has
MAX_RETRY_AFTER = 60.0  # never let one Retry-After stall a reconcile for longer
# The request provably never left this process, so even a POST may be sent again.
NOT_SENT = (httpx.ConnectError, httpx.ConnectTimeout, httpx.PoolTimeout)

# Told of every attempt: endpoint ("GET /apps/{app}"), HTTP status (None: no answer), and the
# last RateLimit-Remaining; `app.metrics` counts them.
CallObserver = Callable[[str, int | None, int | None], None]


def shaped(what: str, parse: Callable[[Any], T], data: Any) -> T:
    """Parse a response body; a shape we do not know is an error, never a guess."""
    try:
        return parse(data.json() if isinstance(data, httpx.Response) else data)
    except (KeyError, TypeError, ValueError, AttributeError) as exc:
        raise HerokuError(f"unexpected {what} from Heroku: {exc!r}") from exc


class Options(TypedDict, total=False):
    """What a `Transport` may be given beyond where and as whom (its defaults are its own)."""

    transport: httpx.AsyncBaseTransport | None  # httpx's: tests and the sandbox answer here
    timeout: float
    max_retries: int
    backoff: float
    pace_below: int
    pace_interval: float
    concurrency: int
    sleep: Callable[[float], Awaitable[None]]
    clock: Callable[[], float]
    observe: CallObserver | None


class Transport:
    """One authenticated connection pool to the Platform API, with retries and pacing."""

    def __init__(
        self,
        base_url: str,
        token: str,
        *,
        transport: httpx.AsyncBaseTransport | None = None,
        timeout: float = 10.0,
        max_retries: int = 4,
        backoff: float = 0.5,
        pace_below: int = 200,
        pace_interval: float = 0.8,
        concurrency: int = 8,
        sleep: Callable[[float], Awaitable[None]] = asyncio.sleep,
        clock: Callable[[], float] = time.monotonic,
        observe: CallObserver | None = None,
    ) -> None:
        self._http = httpx.AsyncClient(
            base_url=base_url,
            transport=transport,
            timeout=httpx.Timeout(timeout, connect=min(timeout, 5.0)),
            headers={
                "Accept": ACCEPT,
                "Authorization": f"Bearer {token}",
                "User-Agent": user_agent(),
            },
        )
        self._max_retries = max_retries
        self._backoff = backoff
        self._pace_below = pace_below  # RateLimit-Remaining under this: pace requests
        self._pace_interval = pace_interval  # 0.8 s = Heroku's refill of 75 tokens a minute
        self._slots = asyncio.Semaphore(concurrency)
        self._sleep = sleep
        self._clock = clock
        self._next_slot = 0.0
        self._pacing = False
        self.calls: Counter[str] = Counter()
        self.rate_limit_remaining: int | None = None
        self._observe = observe  # each call's endpoint, status and RateLimit-Remaining

    async def aclose(self) -> None:
        await self._http.aclose()

    async def list(
        self, template: str, *, rng: str | None = None, limit: int | None = None, **ids: str
    ) -> list[Any]:
        """GET every page of a list: a 206 names the next page in Next-Range."""
        items: list[Any] = []
        for _ in range(MAX_PAGES):
            headers = {"Range": rng} if rng else None
            response = await self.send("GET", template, headers=headers, refused=None, **ids)
            items.extend(shaped(f"page of {template}", _array, response))
            rng = response.headers.get("Next-Range")
            if response.status_code != 206 or not rng or (limit and len(items) >= limit):
                return items[:limit] if limit else items
        raise HerokuError(f"GET {template}: more than {MAX_PAGES} pages, giving up")

    async def send(
        self,
        method: str,
        template: str,
        *,
        json: Any = None,
        headers: Mapping[str, str] | None = None,
        refused: type[HerokuError] | None = None,
        **ids: str,
    ) -> httpx.Response:
        """One logical request: paced, counted, retried only where that cannot repeat an action.

        `refused`: the error a clear refusal (4xx other than 429) raises; by default NotFound
        for a 404 and HerokuError for the rest.
        """
        path = template.format(**{k: quote(v, safe="") for k, v in ids.items()})
        for attempt in range(self._max_retries + 1):
            response, problem = await self._attempt(method, template, path, json, headers, refused)
            if response is not None and response.status_code < 400:
                return response
            if attempt == self._max_retries:
                break
            wait = _retry_after(response) if response is not None else None
            delay = self._delay(attempt) if wait is None else wait
            log.warning("heroku %s %s: %s; retry in %.2fs", method, path, problem, delay)
            await self._sleep(delay)
        tries = f"{problem}; gave up after {self._max_retries + 1} tries"
        raise self.error(HerokuError, method, path, response, tries)

    async def _attempt(
        self,
        method: str,
        template: str,
        path: str,
        json: Any,
        headers: Mapping[str, str] | None,
        refused: type[HerokuError] | None,
    ) -> tuple[httpx.Response | None, str]:
        """Send once; raise at once when a retry cannot help or might repeat a promotion."""
        once = method != "GET"  # a POST is repeated only when it provably did nothing
        async with self._slots:
            await self._pace()
            self.calls[f"{method} {template}"] += 1
            try:
                response = await self._http.request(method, path, json=json, headers=headers)
            except httpx.TransportError as exc:
                self._observed(method, template, None)
                problem = f"{type(exc).__name__}: {exc}"
                if once and not isinstance(exc, NOT_SENT):
                    raise self.error(OutcomeUnknown, method, path, None, problem) from exc
                return None, problem
        self._note_rate_limit(response)
        status = response.status_code
        self._observed(method, template, status)
        if status >= 500 and once:
            raise self.error(OutcomeUnknown, method, path, response)
        if 400 <= status < 500 and status != 429:
            kind = refused or (NotFound if status == 404 else HerokuError)
            raise self.error(kind, method, path, response)
        return response, f"HTTP {status}"

    async def _pace(self) -> None:
        """Spread requests out at the refill rate while the rate-limit pool is nearly empty."""
        remaining = self.rate_limit_remaining
        if remaining is None or remaining >= self._pace_below:
            self._pacing = False
            return
        if not self._pacing:
            self._pacing = True
            interval = self._pace_interval
            log.warning("heroku rate limit low (%s left): pacing at %.2fs", remaining, interval)
        now = self._clock()
        slot = max(now, self._next_slot)
        self._next_slot = slot + self._pace_interval
        if slot > now:
            await self._sleep(slot - now)

    def _observed(self, method: str, template: str, status: int | None) -> None:
        if self._observe is not None:
            self._observe(f"{method} {template}", status, self.rate_limit_remaining)

    def _note_rate_limit(self, response: httpx.Response) -> None:
        remaining = response.headers.get("RateLimit-Remaining")
        if remaining is not None and remaining.strip().isdigit():
            self.rate_limit_remaining = int(remaining)

    def _delay(self, attempt: int) -> float:
        base: float = self._backoff * 2**attempt
        return base + random.uniform(0, base / 4)

    def error(
        self,
        cls: type[HerokuError],
        method: str,
        path: str,
        response: httpx.Response | None,
        detail: str | None = None,
    ) -> HerokuError:
        """Build and log the error: method, path, status, Heroku's id, Request-Id; no token."""
        status = error_id = request_id = message = None
        if response is not None:
            status, request_id = response.status_code, response.headers.get("Request-Id")
            try:
                error_id, message = (body := response.json()).get("id"), body.get("message")
            except (ValueError, AttributeError):
                message = response.text[:200] or None
        head = f"Heroku {method} {path}: {status or 'no response'} {error_id or ''}".rstrip()
        text = "; ".join(part for part in (head, message, detail) if part)
        text += f" (Request-Id {request_id})" if request_id else ""
        log.error("%s [%s]", text, cls.__name__)
        return cls(text, status=status, error_id=error_id, request_id=request_id)


def _retry_after(response: httpx.Response) -> float | None:
    value = response.headers.get("Retry-After", "").strip()
    try:
        return min(max(float(value), 0.0), MAX_RETRY_AFTER) if value else None
    except ValueError:  # an HTTP-date: fall back to our own backoff
        return None


def _array(data: Any) -> list[Any]:
    if not isinstance(data, list):
        raise TypeError(f"expected a JSON array, got {type(data).__name__}")
    return data
