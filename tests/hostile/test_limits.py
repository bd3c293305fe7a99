"""A flood of authentic deliveries cannot grow Redis without bound.

Heroku release deliveries (each a new delivery id, version, commit and slug; one in ten a
repeat), with Librato test notifications (each an audit event, never deduplicated) and
GitHub pushes mixed in, are sent through the real routes in-process, many at a time.
Halfway and at the end the test reads Redis: every key is either of a bounded family
(one per configured app, service or source, or a capped stream or hash) or expires by
itself, and the part that does not expire stops growing: a delivery costs memory only
until its dedup keys expire (`DEDUP_TTL`). CASCADE_FLOOD_DELIVERIES sets how many
Heroku deliveries (10,000 by default, in CI; `make reliability` can send 100,000).
"""

import asyncio
import copy
import os
import uuid
from collections import deque
from dataclasses import dataclass
from typing import Any

import pytest
import redis.asyncio as redis

from app.storage import keys
from tests.figures import Figure, record
from tests.hostile.conftest import SECRETS, landed
from tests.hostile.senders import SENDERS, encode, github_hmac, heroku_hmac
from tests.inprocess import Cascade

pytestmark = pytest.mark.reliability
DELIVERIES = int(os.environ.get("CASCADE_FLOOD_DELIVERIES", "10000"))
AT_ONCE = 32  # deliveries in flight together
APPS = ("api-qa", "api-st", "api-prod", "web-dev", "web-prod", "not-ours")
SENDER = {s.name: s for s in SENDERS}
STREAM_SLACK = 100  # XADD MAXLEN ~ trims whole stream nodes (stream-node-max-entries)
MiB = 1024 * 1024


@dataclass(frozen=True)
class Reading:
    """Redis after some deliveries."""

    deliveries: int
    used_memory: int
    keys: int
    volatile: int  # keys with a TTL
    lasting: int  # keys without one
    lasting_bytes: int  # MEMORY USAGE of the keys without one, the capped streams apart
    streams: dict[str, int]  # stream key -> length
    families: dict[str, int]  # lasting keys by family (the key with ids replaced)


def family(key: str) -> str:
    """`cascade:{api}:stage:api-qa` -> `cascade:{*}:stage:*`: what kind of key it is."""
    parts = key.split(":")
    return ":".join(p if i < 1 or p in _WORDS else "*" for i, p in enumerate(parts))


_WORDS = {
    "stage", "history", "history-loaded", "order", "order-loaded", "events", "gates",
    "topology", "heard", "pause", "promotions", "subscriptions", "status", "view", "{alerts}",
    "firing", "generation", "pushes", "dedup", "slug", "github", "heroku", "librato",
}  # fmt: skip


async def read(client: "redis.Redis", deliveries: int) -> Reading:
    """Every key's TTL and type (pipelined), the size of those that do not expire."""
    volatile = lasting = lasting_bytes = 0
    streams: dict[str, int] = {}
    families: dict[str, int] = {}
    found = [key async for key in client.scan_iter(count=5000)]
    for first in range(0, len(found), 5000):
        batch = found[first : first + 5000]
        async with client.pipeline(transaction=False) as pipe:
            for key in batch:
                pipe.ttl(key)
                pipe.type(key)
            answers = await pipe.execute()
        for key, ttl, kind in zip(batch, answers[::2], answers[1::2], strict=True):
            name = key.decode()
            if ttl >= 0:
                volatile += 1
                if name.startswith(f"{keys.PREFIX}:dedup:"):
                    assert ttl <= keys.DEDUP_TTL.total_seconds(), name
                continue
            lasting += 1
            families[family(name)] = families.get(family(name), 0) + 1
            if kind == b"stream":  # bounded by their caps, checked apart
                streams[name] = await client.xlen(key)
            else:
                lasting_bytes += await client.memory_usage(key) or 0
    info = await client.info("memory")
    return Reading(
        deliveries,
        int(info["used_memory"]),
        volatile + lasting,
        volatile,
        lasting,
        lasting_bytes,
        streams,
        families,
    )


def heroku_delivery(n: int, base: dict[str, Any]) -> tuple[bytes, dict[str, str]]:
    payload = copy.deepcopy(base)
    data = payload["data"]
    data["app"]["name"] = APPS[n % len(APPS)]
    data["version"] = 1000 + n
    data["status"] = "pending" if n % 3 == 0 else "succeeded"
    data["slug"] = {"id": str(uuid.UUID(int=n)), "commit": f"{n:040x}"}
    data["created_at"] = "2026-01-01T00:00:00Z"
    payload["webhook_metadata"]["delivery"]["id"] = str(uuid.UUID(int=2**64 + n))
    body = encode(payload)
    return body, {"Content-Type": "application/json"} | heroku_hmac(
        body, SECRETS["heroku_webhook_secret"]
    )[0]


def librato_test(n: int) -> tuple[bytes, dict[str, str]]:
    payload = {
        "alert": {"id": 5846005, "name": "collectd.high.load", "version": 2},
        "trigger_time": 1444177459 + n,
        "triggered_by_user_test": True,
    }
    token = SECRETS["webhook_token"]
    return encode(payload), {"Content-Type": "application/json", "Authorization": f"Bearer {token}"}


def github_push(n: int, base: dict[str, Any]) -> tuple[bytes, dict[str, str]]:
    payload = copy.deepcopy(base)
    payload["before"], payload["after"] = uuid.uuid4().hex * 2, uuid.uuid4().hex * 2
    payload["forced"] = n % 50 == 0  # now and then a rewrite: a new generation of keys
    body = encode(payload)
    headers = {"X-GitHub-Event": "push", "X-GitHub-Delivery": str(uuid.uuid4())}
    return body, headers | github_hmac(body, SECRETS["github_webhook_secret"])[0]


class Flood:
    def __init__(self, cascade: Cascade) -> None:
        self.cascade = cascade
        self.statuses: dict[int, int] = {}
        self.answers: dict[tuple[str, str], int] = {}  # (path, accepted|duplicate|ignored)
        self.sent = 0
        self.heroku_base = SENDER["heroku"].samples["api-release-update-mercury.json"]
        self.push_base = SENDER["github"].samples["push-with-new-branch.json"]
        self.senders = [s for s in ("librato", "github") if landed(SENDER[s])]

    def delivery(self, n: int) -> tuple[str, bytes, dict[str, str]]:
        """The n-th: mostly Heroku, every 10th a repeat of an earlier one; every 3rd another."""
        if n % 3 == 1 and self.senders:
            name = self.senders[n % len(self.senders)]
            if name == "librato":
                return ("/webhooks/librato", *librato_test(n))
            return ("/webhooks/github", *github_push(n, self.push_base))
        return (
            "/webhooks/heroku",
            *heroku_delivery(n - n % 10 if n % 10 == 9 else n, self.heroku_base),
        )

    async def send(self, first: int, count: int) -> None:
        queue = deque(range(first, first + count))

        async def worker() -> None:
            while queue:
                path, body, headers = self.delivery(queue.popleft())
                response = await self.cascade.client.post(path, content=body, headers=headers)
                code = response.status_code
                self.statuses[code] = self.statuses.get(code, 0) + 1
                answer = response.json().get("status", "refused") if code < 500 else "error"
                self.answers[(path, answer)] = self.answers.get((path, answer), 0) + 1
                self.sent += 1

        await asyncio.gather(*(worker() for _ in range(AT_ONCE)))
        await self.cascade.settle()


async def test_a_flood_of_deliveries_leaves_redis_bounded(hostile: Cascade) -> None:
    url = hostile.settings.redis_url
    assert url is not None
    flood = Flood(hostile)
    async with redis.Redis.from_url(url.get_secret_value()) as client:
        start = await read(client, 0)
        await flood.send(0, DELIVERIES // 2)
        half = await read(client, flood.sent)
        await flood.send(DELIVERIES // 2, DELIVERIES - DELIVERIES // 2)
        end = await read(client, flood.sent)

    five_xx = sum(n for status, n in flood.statuses.items() if status >= 500)
    record(
        Figure(
            area="limits",
            check=f"{flood.sent:,} authentic deliveries, {AT_ONCE} at a time",
            cases=flood.sent,
            five_xx=five_xx,
            note=describe(flood, start, half, end),
        )
    )
    assert five_xx == 0, flood.statuses
    assert set(flood.statuses) <= {200, 202}, flood.statuses
    # What does not expire stops growing: same families, same count, about the same bytes.
    assert end.families == half.families, (half.families, end.families)
    assert end.lasting_bytes <= half.lasting_bytes * 1.1 + 64 * 1024, (half, end)
    # The audit streams are capped.
    for stream, length in end.streams.items():
        cap = keys.EVENTS_MAXLEN if stream == keys.EVENTS else keys.SERVICE_EVENTS_MAXLEN
        assert length <= cap + STREAM_SLACK, (stream, length, cap)
    # ... really capped: more events were recorded than a service's stream keeps.
    tests = flood.answers.get(("/webhooks/librato", "accepted"), 0)
    if tests > keys.SERVICE_EVENTS_MAXLEN + STREAM_SLACK:
        assert end.streams[keys.service_events("api")] >= keys.SERVICE_EVENTS_MAXLEN
    assert flood.answers[("/webhooks/heroku", "duplicate")] >= DELIVERIES // 20
    # Everything else a delivery leaves behind expires: the keys grow with the deliveries
    # only through those with a TTL.
    assert end.volatile > half.volatile


def describe(flood: Flood, start: Reading, half: Reading, end: Reading) -> str:
    memory = " → ".join(f"{r.used_memory / MiB:.1f}" for r in (start, half, end))
    per_delivery = (end.used_memory - half.used_memory) / max(1, end.deliveries - half.deliveries)
    streams = ", ".join(f"{k} {v:,}" for k, v in sorted(end.streams.items()))
    answers = ", ".join(
        f"{n:,} {path.rsplit('/', 1)[-1]} {answer}"
        for (path, answer), n in sorted(flood.answers.items())
    )
    return (
        f"Redis used_memory {memory} MiB (start, half, end), {per_delivery:.0f} B a delivery,"
        f" all of it in keys that expire; {end.keys:,} keys, {end.volatile:,} of them with a"
        f" TTL (dedup {keys.DEDUP_TTL.days} d); {end.lasting} without one, as many as halfway"
        f" ({half.lasting}), {end.lasting_bytes / 1024:.0f} KiB besides the capped streams"
        f" ({streams}); answers: {answers}"
    )
