"""The status page reader: one GET of `STATUS_API_URL`, its body read by `pages.parse`.

Every failure (unreachable, refused, not JSON, a shape not understood) comes back as
`StatusFeedError` with a message saying what to check.
"""

from datetime import datetime

import httpx

from app.signals.incidents.facts import Feed
from app.signals.incidents.pages import StatusFeedError, parse


class StatusFeed:
    """One HTTP client for `STATUS_API_URL`."""

    def __init__(
        self,
        url: str,
        *,
        transport: httpx.AsyncBaseTransport | None = None,
        timeout: float = 5.0,
    ) -> None:
        self.url = url
        self._http = httpx.AsyncClient(
            transport=transport,
            timeout=httpx.Timeout(timeout, connect=min(timeout, 3.0)),
            follow_redirects=True,
            headers={"Accept": "application/json", "User-Agent": "cascade"},
        )

    async def read(self, now: datetime) -> Feed:
        """What the page says is open and troubled, as read at `now`."""
        try:
            response = await self._http.get(self.url)
        except httpx.HTTPError as error:
            raise StatusFeedError(f"{type(error).__name__}: {error}".rstrip(": ")) from None
        if response.status_code == 404:
            raise StatusFeedError(
                "HTTP 404: check STATUS_API_URL (Heroku's v4 feed may have moved to the"
                " Salesforce Trust API: https://api.status.salesforce.com/v1/instances/<KEY>/status)"
            )
        if response.status_code != 200:
            raise StatusFeedError(f"HTTP {response.status_code}")
        try:
            body = response.json()
        except ValueError:
            raise StatusFeedError("the answer is not JSON: check STATUS_API_URL") from None
        return parse(body, now)

    async def aclose(self) -> None:
        await self._http.aclose()
