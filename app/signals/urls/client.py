"""The URL prober: GET each URL a service lists, at decision time, and remember the answer.

Every URL of a service is probed at once, each within `TIMEOUT_SECONDS`. An answer is
kept in memory for `signal_retry_seconds`, shared by every service that lists the URL,
and probes of one URL that overlap share one request. Redirects are not followed: a
URL that redirects (often to a login page answering 200) is not an answer of 200.
"""

import asyncio
import socket
from datetime import datetime, timedelta
from http import HTTPStatus

import httpx

from app.config.services import Service
from app.config.settings import Settings
from app.signals.urls.facts import NOT_CHECKED, UrlCheck, shown

TIMEOUT_SECONDS = 5.0
USER_AGENT = "cascade-urls-gate"


class UrlProber:
    def __init__(
        self,
        fresh_for: timedelta,
        timeout: float = TIMEOUT_SECONDS,
        transport: httpx.AsyncBaseTransport | None = None,
    ) -> None:
        self.fresh_for = fresh_for
        self.timeout = timeout
        self._http = httpx.AsyncClient(
            timeout=timeout,
            follow_redirects=False,
            headers={"User-Agent": USER_AGENT},
            transport=transport,
        )
        self._answers: dict[str, UrlCheck] = {}  # one per URL: bounded by the services file
        self._probing: dict[str, asyncio.Task[UrlCheck]] = {}

    @classmethod
    def from_settings(cls, settings: Settings) -> "UrlProber":
        return cls(timedelta(seconds=settings.signal_retry_seconds))

    async def gather(
        self, service: Service, now: datetime, *, fetch: bool = True
    ) -> tuple[UrlCheck, ...]:
        """One check per URL of `service`; `fetch=False` reads the cache only."""
        if not fetch:
            return tuple(self._answers.get(url) or _unchecked(url) for url in service.urls)
        return tuple(await asyncio.gather(*(self.check(url, now) for url in service.urls)))

    async def check(self, url: str, now: datetime) -> UrlCheck:
        """The cached answer while fresh, else the answer of a probe (maybe one under way)."""
        cached = self._answers.get(url)
        if cached is not None and cached.recheck_at is not None and now < cached.recheck_at:
            return cached
        task = self._probing.get(url)
        if task is None:
            task = asyncio.create_task(self._probe(url, now))
            self._probing[url] = task
            task.add_done_callback(lambda _: self._probing.pop(url, None))
        return await asyncio.shield(task)  # one caller giving up does not cancel the others'

    async def aclose(self) -> None:
        under_way = list(self._probing.values())
        for task in under_way:
            task.cancel()
        await asyncio.gather(*under_way, return_exceptions=True)
        await self._http.aclose()

    async def _probe(self, url: str, now: datetime) -> UrlCheck:
        recheck_at = now + self.fresh_for
        try:
            async with asyncio.timeout(self.timeout):  # in all: a slow trickle times out too
                async with self._http.stream("GET", url) as response:  # the body is not read
                    status = response.status_code
                    phrase = response.reason_phrase or _phrase(status)
                    moved = response.next_request
            location = str(moved.url) if moved is not None else None
            answer = UrlCheck(url, status, None, now, recheck_at, phrase, location)
        except (TimeoutError, httpx.TimeoutException):
            answer = UrlCheck(url, None, f"timed out after {self.timeout:g}s", now, recheck_at)
        except httpx.HTTPError as error:
            answer = UrlCheck(url, None, _why(error, url), now, recheck_at)
        except httpx.InvalidURL as error:  # the services file checks URLs, but not every detail
            why = f"it is not a URL that can be fetched ({_scrub(str(error), url)})"
            answer = UrlCheck(url, None, why, now, recheck_at)
        self._answers[url] = answer
        return answer


def _unchecked(url: str) -> UrlCheck:
    return UrlCheck(url, None, NOT_CHECKED, None)


def _phrase(status: int) -> str:
    try:
        return HTTPStatus(status).phrase
    except ValueError:
        return ""


def _why(error: httpx.HTTPError, url: str) -> str:
    """Why there was no answer, in words; never the URL's userinfo."""
    for cause in _causes(error):
        if isinstance(cause, ConnectionRefusedError):
            return "connection refused"
        if isinstance(cause, socket.gaierror):
            return f"its host name does not resolve ({cause.strerror})"
    if isinstance(error, httpx.RemoteProtocolError):
        return f"the connection closed without an answer ({_scrub(str(error), url)})"
    return f"{type(error).__name__}: {_scrub(str(error), url)}"


def _causes(error: BaseException) -> list[BaseException]:
    """`error` and everything it was raised from or during, each once (a chain may loop)."""
    found: list[BaseException] = []
    todo: list[BaseException | None] = [error]
    while todo:
        cause = todo.pop()
        if cause is not None and all(cause is not f for f in found):
            found.append(cause)
            todo += [cause.__cause__, cause.__context__]
    return found


def _scrub(text: str, url: str) -> str:
    return text.replace(url, shown(url)) if url != shown(url) else text
