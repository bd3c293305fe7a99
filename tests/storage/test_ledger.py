import asyncio
from dataclasses import dataclass, replace
from datetime import UTC, datetime, timedelta

import pytest
from pydantic import TypeAdapter

from app.core.models import PromotionRecord, PromotionState
from app.storage import keys
from app.storage.client import Client
from app.storage.ledger import Ledger, Sent
from tests.factories import NOW


@pytest.fixture
def redis_client(server_or_cluster: Client) -> Client:
    """Every test here runs on one server and on a three-master Redis Cluster."""
    return server_or_cluster


@pytest.fixture
def ledger(redis_client: Client) -> Ledger:
    return Ledger(redis_client)


def record(commit: str = "A", state: PromotionState = PromotionState.CLAIMED) -> PromotionRecord:
    return PromotionRecord(
        service="api",
        source="api-qa",
        target="api-st",
        commit=commit,
        release_id=f"rel-{commit}",
        state=state,
        claimed_at=NOW,
        updated_at=NOW,
    )


async def test_claim_is_exclusive(ledger: Ledger) -> None:
    results = await asyncio.gather(*(ledger.claim(record()) for _ in range(20)))
    assert results.count(True) == 1
    assert await ledger.unsettled("api") == [record()]


async def test_claims_into_different_targets_are_independent(ledger: Ledger) -> None:
    assert await ledger.claim(record("A")) is True
    assert await ledger.claim(replace(record("A"), target="api-prod")) is True


async def test_settling_a_record_stops_following_it(ledger: Ledger) -> None:
    await ledger.claim(record())
    done = record(state=PromotionState.SUCCEEDED)
    assert await ledger.swap(record(), done) is True
    assert await ledger.unsettled("api") == []
    assert await ledger.find("api", [("api-st", "A")]) == {("api-st", "A"): done}


async def test_settled_record_still_blocks_a_new_claim(ledger: Ledger) -> None:
    await ledger.claim(record())
    await ledger.swap(record(), record(state=PromotionState.FAILED))
    assert await ledger.claim(record()) is False


async def test_a_settled_record_frees_its_target(ledger: Ledger) -> None:
    await ledger.claim(record("A"))
    await ledger.swap(record("A"), record("A", PromotionState.FAILED))
    assert await ledger.claim(record("B")) is True


async def test_a_success_keeps_the_targets_older_settled_records(ledger: Ledger) -> None:
    # The target may be sent back to an older commit: A (failed) must not be made again
    # then, which deleting its record when B succeeded allowed (simulation seed 39).
    await ledger.claim(record("A"))
    await ledger.swap(record("A"), record("A", PromotionState.FAILED))
    await ledger.claim(record("B"))
    await ledger.swap(record("B"), record("B", PromotionState.SUCCEEDED))
    found = await ledger.find("api", [("api-st", "A"), ("api-st", "B")])
    assert found == {
        ("api-st", "A"): record("A", PromotionState.FAILED),
        ("api-st", "B"): record("B", PromotionState.SUCCEEDED),
    }
    assert await ledger.claim(record("A")) is False


async def test_a_target_keeps_the_records_of_its_last_commits_only(
    ledger: Ledger, redis_client: Client, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(keys, "SETTLED_KEPT", 2)
    for commit in "ABC":
        await ledger.claim(record(commit))
        await ledger.swap(record(commit), record(commit, PromotionState.SUCCEEDED))
    found = await ledger.find("api", [("api-st", c) for c in "ABC"])
    assert set(found) == {("api-st", "B"), ("api-st", "C")}  # A, the oldest, is gone
    assert await redis_client.zrange(keys.settled("api", "api-st"), 0, -1) == [
        keys.promotion("api", "api-st", "B"),
        keys.promotion("api", "api-st", "C"),
    ]


async def test_a_write_over_a_changed_record_changes_nothing(ledger: Ledger) -> None:
    await ledger.claim(record())
    promoting = replace(record(state=PromotionState.PROMOTING), promotion_id="p-1")
    assert await ledger.swap(record(), promoting) is True
    assert await ledger.swap(record(), record(state=PromotionState.FAILED)) is False
    assert await ledger.unsettled("api") == [promoting]


async def test_an_unsettled_record_has_no_expiry_and_is_followed(
    ledger: Ledger, redis_client: Client
) -> None:
    await ledger.claim(record())
    promoting = replace(record(state=PromotionState.PROMOTING), promotion_id="p-1")
    await ledger.swap(record(), promoting)
    assert await ledger.unsettled("api") == [promoting]
    assert await redis_client.ttl(keys.promotion("api", "api-st", "A")) == -1


async def test_drop_forgets_the_claim(ledger: Ledger) -> None:
    await ledger.claim(record())
    assert await ledger.drop(record()) is True
    assert await ledger.find("api", [("api-st", "A")]) == {}
    assert await ledger.unsettled("api") == []
    assert await ledger.claim(record()) is True


async def test_find_returns_only_existing_records(ledger: Ledger) -> None:
    await ledger.claim(record("A"))
    found = await ledger.find("api", [("api-st", "A"), ("api-st", "B"), ("api-prod", "A")])
    assert found == {("api-st", "A"): record("A")}
    assert await ledger.find("api", []) == {}


async def test_unsettled_cleans_up_vanished_keys(ledger: Ledger, redis_client: Client) -> None:
    await ledger.claim(record("A"))
    await ledger.claim(replace(record("B"), target="api-prod"))
    await redis_client.delete(keys.promotion("api", "api-st", "A"))
    assert await ledger.unsettled("api") == [replace(record("B"), target="api-prod")]
    assert await redis_client.smembers(keys.promotions("api")) == {
        keys.promotion("api", "api-prod", "B")
    }


async def test_a_stale_drop_never_deletes_the_next_holders_record(ledger: Ledger) -> None:
    # P1 claims, stalls past its lock; P2 takes the unsent claim back and claims afresh.
    stale = replace(record(), by="p1", token="t1")
    assert await ledger.claim(stale) is True
    assert await ledger.swap(stale, None) is True
    live = replace(record(), by="p2", token="t2", claimed_at=NOW + timedelta(seconds=30))
    assert await ledger.claim(live) is True
    await ledger.drop(stale)  # P1 wakes up, its re-read failed: gives back what it holds
    assert await ledger.find("api", [("api-st", "A")]) == {("api-st", "A"): live}
    assert await ledger.unsettled("api") == [live]


async def test_a_settled_record_is_kept_without_expiry(
    ledger: Ledger, redis_client: Client
) -> None:
    await ledger.claim(record())
    await ledger.swap(record(), record(state=PromotionState.FAILED))
    assert await redis_client.ttl(keys.promotion("api", "api-st", "A")) == -1


async def test_a_second_unsettled_record_into_one_target_is_refused(ledger: Ledger) -> None:
    assert await ledger.claim(record("A")) is True
    assert await ledger.claim(record("B")) is False  # A is still in flight into api-st
    elsewhere = replace(record("B"), target="api-prod")
    assert await ledger.claim(elsewhere) is True


@dataclass(frozen=True)
class RecordBeforeTokens:
    """PromotionRecord as the Cascade before claim tokens wrote it."""

    service: str
    source: str
    target: str
    commit: str
    release_id: str
    state: PromotionState
    claimed_at: datetime
    updated_at: datetime
    promotion_id: str | None = None
    error: str | None = None
    by: str | None = None
    sent: bool = True


async def test_a_record_an_older_cascade_wrote_is_still_settled(
    ledger: Ledger, redis_client: Client
) -> None:
    old = RecordBeforeTokens(
        "api", "api-qa", "api-st", "A", "rel-A", PromotionState.PROMOTING, NOW, NOW, "p-1"
    )
    key = keys.promotion("api", "api-st", "A")
    await redis_client.set(key, TypeAdapter(RecordBeforeTokens).dump_json(old))
    await redis_client.sadd(keys.promotions("api"), key)
    (seen,) = await ledger.unsettled("api")
    assert await ledger.swap(seen, replace(seen, state=PromotionState.SUCCEEDED)) is True
    assert await ledger.unsettled("api") == []


@pytest.mark.parametrize(
    ("stored", "now", "sent"),
    [
        (None, NOW, Sent.SENT),
        (
            '{"reason": "hold", "created_at": "2026-01-01T00:00:00Z", "until": null}',
            NOW,
            Sent.PAUSED,
        ),
        ("not json", NOW, Sent.PAUSED),  # unknown is closed
        ('{"reason": "hold", "until": "whenever"}', NOW, Sent.PAUSED),
        # a timed pause by `until` and the clock given, whatever form `until` was stored in
        (
            '{"reason": "r", "until": "2030-03-01T12:00:00Z"}',
            datetime(2030, 3, 1, 11, 59, 59, tzinfo=UTC),
            Sent.PAUSED,
        ),
        (
            '{"reason": "r", "until": "2030-03-01T12:00:00Z"}',
            datetime(2030, 3, 1, 12, tzinfo=UTC),
            Sent.SENT,
        ),
        (
            '{"reason": "r", "until": "2030-03-01T12:00:00.500000Z"}',
            datetime(2030, 3, 1, 12, 0, 0, 400000, tzinfo=UTC),
            Sent.PAUSED,
        ),
        (
            '{"reason": "r", "until": "2030-03-01T12:00:00.500000Z"}',
            datetime(2030, 3, 1, 12, 0, 0, 600000, tzinfo=UTC),
            Sent.SENT,
        ),
        (
            '{"reason": "r", "until": "2030-03-01T13:00:00+01:00"}',
            datetime(2030, 3, 1, 11, 59, tzinfo=UTC),
            Sent.PAUSED,
        ),
        (
            '{"reason": "r", "until": "2030-03-01T13:00:00+01:00"}',
            datetime(2030, 3, 1, 12, 1, tzinfo=UTC),
            Sent.SENT,
        ),
        (
            '{"reason": "r", "until": "2024-02-29T19:00:00-05:00"}',
            datetime(2024, 3, 1, 0, 0, 1, tzinfo=UTC),
            Sent.SENT,
        ),
        (
            '{"reason": "r", "until": "2024-02-29T19:00:00-05:00"}',
            datetime(2024, 2, 29, 23, 59, tzinfo=UTC),
            Sent.PAUSED,
        ),
    ],
)
async def test_marking_sent_refuses_while_the_service_is_paused(
    ledger: Ledger, redis_client: Client, stored: str | None, now: datetime, sent: Sent
) -> None:
    await ledger.claim(record())
    if stored is not None:
        await redis_client.set(keys.pause("api"), stored)
    sending = replace(record(), sent=True)
    assert await ledger.mark_sent(record(), sending, now) is sent
    (left,) = await ledger.unsettled("api")
    assert left == (sending if sent is Sent.SENT else record())


async def test_marking_sent_changes_nothing_once_the_record_is_not_the_claimers(
    ledger: Ledger,
) -> None:
    await ledger.claim(record())
    await ledger.drop(record())
    assert await ledger.mark_sent(record(), replace(record(), sent=True), NOW) is Sent.LOST
    assert await ledger.unsettled("api") == []
