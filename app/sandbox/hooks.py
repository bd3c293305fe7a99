"""The sandbox platform's `api:release` webhooks, sent to Cascade as Heroku sends them.

`app.sandbox` announces every release change here, and it goes to each `api:release`
subscription of the app (`World` keeps them; the Platform API's `/apps/{app}/webhooks` edits
them). Each subscription has its own queue: its events go in order, signed with its secret in
`Heroku-Webhook-Hmac-SHA256`, and a `sync` one retries a failed delivery after each backoff
delay. A receiver that fails is logged and recorded, and never stops the sandbox.
"""

import asyncio
import base64
import hashlib
import hmac
import json
import logging
from collections import deque
from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import datetime

import httpx

from app.sandbox.bodies import ACCOUNT, iso, release_hook_data
from app.sandbox.resources import AppWebhook, Json, Release, new_id

log = logging.getLogger("cascade.sandbox")

API_MEDIA_TYPE = "application/vnd.heroku+json; version=3"


def sign(secret: bytes, body: bytes) -> str:
    """`Heroku-Webhook-Hmac-SHA256`: base64 of the HMAC-SHA256 of the raw body."""
    return base64.b64encode(hmac.new(secret, body, hashlib.sha256).digest()).decode()


@dataclass(frozen=True)
class _Delivery:
    event: Json  # the payload without webhook_metadata, which changes per attempt
    webhook_id: str
    url: str  # the subscription as it was when the event happened
    secret: bytes
    retries: bool  # level sync
    id: str = field(default_factory=new_id)


class WebhookSender:
    """Delivers each app's release events to its `api:release` webhook subscriptions."""

    def __init__(
        self,
        url: str | None,
        secret: str,
        *,
        transport: httpx.AsyncBaseTransport | None,
        retry_delays: Sequence[float],
    ) -> None:
        self.url, self.secret = url, secret  # of the subscriptions the sandbox starts with
        self._transport, self._retry_delays = transport, tuple(retry_delays)
        self._outbox: asyncio.Queue[_Delivery] = asyncio.Queue()
        self._lanes: dict[str, asyncio.Queue[_Delivery]] = {}  # one per subscription
        self.deliveries: deque[Json] = deque(maxlen=10_000)  # for /_sandbox/webhooks

    def announce(self, action: str, release: Release, now: datetime) -> None:
        """Queue the event now, so it carries the release as it is at this moment."""
        hooks = [h for h in release.app.webhooks if "api:release" in h.include]
        if not hooks:
            return
        stamp = now.strftime("%Y-%m-%dT%H:%M:%S.%fZ")
        event: Json = {
            "id": new_id(),
            "data": release_hook_data(release),
            "actor": ACCOUNT,
            "action": action,
            "version": API_MEDIA_TYPE,
            "resource": "release",
            "sequence": None,
            "created_at": stamp,
            "updated_at": stamp,
            "published_at": iso(now),
            "previous_data": {},
        }
        for hook in hooks:
            self._outbox.put_nowait(_delivery(event, hook))

    async def run(self) -> None:
        """Deliver forever; within a subscription a retrying event holds back the next."""
        async with (
            httpx.AsyncClient(transport=self._transport, timeout=10.0) as client,
            asyncio.TaskGroup() as lanes,
        ):
            while True:
                delivery = await self._outbox.get()
                lane = self._lanes.get(delivery.webhook_id)
                if lane is None:
                    lane = self._lanes[delivery.webhook_id] = asyncio.Queue()
                    lanes.create_task(self._drain(client, lane))
                lane.put_nowait(delivery)

    async def _drain(self, client: httpx.AsyncClient, lane: "asyncio.Queue[_Delivery]") -> None:
        while True:
            await self._deliver(client, await lane.get())

    async def _deliver(self, client: httpx.AsyncClient, delivery: _Delivery) -> None:
        data = delivery.event["data"]
        record: Json = {
            "delivery_id": delivery.id,
            "event_id": delivery.event["id"],
            "action": delivery.event["action"],
            "app": data["app"]["name"],
            "version": data["version"],
            "release_status": data["status"],
            "status": "pending",
            "attempts": 0,
            "last_error": None,
            "webhook_id": delivery.webhook_id,
            "url": delivery.url,
        }
        self.deliveries.append(record)
        for delay in (0.0, *(self._retry_delays if delivery.retries else ())):
            await asyncio.sleep(delay)
            record["attempts"] += 1
            try:
                code = await self._post(client, delivery)
            except Exception as exc:  # a broken receiver must never break the sandbox
                problem = repr(exc)
            else:
                if 200 <= code < 300:
                    record["status"] = "succeeded"
                    return
                problem = f"HTTP {code}"
            record["last_error"] = problem
            log.warning(
                "sandbox: webhook %s failed (attempt %d): %s",
                _name(record),
                record["attempts"],
                problem,
            )
        record["status"] = "failed"
        log.error(
            "sandbox: webhook %s given up after %d attempts", _name(record), record["attempts"]
        )

    async def _post(self, client: httpx.AsyncClient, delivery: _Delivery) -> int:
        body, headers = signed(delivery, new_id())
        response = await client.post(delivery.url, content=body, headers=headers)
        return response.status_code


def signed(delivery: _Delivery, attempt_id: str) -> tuple[bytes, dict[str, str]]:
    """One attempt of `delivery` as Heroku sends it: the event with its webhook_metadata,
    signed with the subscription's secret."""
    metadata = {
        "attempt": {"id": attempt_id},
        "delivery": {"id": delivery.id},
        "event": {"id": delivery.event["id"], "include": "api:release"},
        "webhook": {"id": delivery.webhook_id},
    }
    body = json.dumps({**delivery.event, "webhook_metadata": metadata}).encode()
    headers = {
        "Content-Type": "application/json",
        "Heroku-Webhook-Hmac-SHA256": sign(delivery.secret, body),
        "User-Agent": "Heroku-Webhooks (Cascade sandbox)",
    }
    return body, headers


def _delivery(event: Json, hook: AppWebhook) -> _Delivery:
    return _Delivery(event, hook.id, hook.url, hook.secret.encode(), hook.level == "sync")


def _name(record: Json) -> str:
    return f"{record['action']} {record['app']} v{record['version']} ({record['release_status']})"
