import asyncio
from dataclasses import replace

import pytest
import redis.asyncio as redis

from app import keys
from app.ledger import Ledger
from app.models import PromotionRecord, PromotionState
from tests.factories import NOW


@pytest.fixture
def ledger(redis_client: "redis.Redis") -> Ledger:
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


async def test_claims_of_different_commits_are_independent(ledger: Ledger) -> None:
    assert await ledger.claim(record("A")) is True
    assert await ledger.claim(record("B")) is True


async def test_saving_a_settled_record_stops_following_it(
    ledger: Ledger, redis_client: "redis.Redis"
) -> None:
    await ledger.claim(record())
    done = record(state=PromotionState.SUCCEEDED)
    await ledger.save(done)
    assert await ledger.unsettled("api") == []
    assert await ledger.find("api", [("api-st", "A")]) == {("api-st", "A"): done}
    ttl = await redis_client.ttl(keys.promotion("api", "api-st", "A"))
    assert 0 < ttl <= keys.RECORD_TTL.total_seconds()


async def test_settled_record_still_blocks_a_new_claim(ledger: Ledger) -> None:
    await ledger.claim(record())
    await ledger.save(record(state=PromotionState.FAILED))
    assert await ledger.claim(record()) is False


async def test_saving_an_unsettled_record_keeps_following_it(
    ledger: Ledger, redis_client: "redis.Redis"
) -> None:
    await ledger.claim(record())
    promoting = replace(record(state=PromotionState.PROMOTING), promotion_id="p-1")
    await ledger.save(promoting)
    assert await ledger.unsettled("api") == [promoting]
    assert await redis_client.ttl(keys.promotion("api", "api-st", "A")) == -1


async def test_drop_forgets_the_claim(ledger: Ledger) -> None:
    await ledger.claim(record())
    await ledger.drop(record())
    assert await ledger.find("api", [("api-st", "A")]) == {}
    assert await ledger.unsettled("api") == []
    assert await ledger.claim(record()) is True


async def test_find_returns_only_existing_records(ledger: Ledger) -> None:
    await ledger.claim(record("A"))
    found = await ledger.find("api", [("api-st", "A"), ("api-st", "B"), ("api-prod", "A")])
    assert found == {("api-st", "A"): record("A")}
    assert await ledger.find("api", []) == {}


async def test_unsettled_cleans_up_vanished_keys(
    ledger: Ledger, redis_client: "redis.Redis"
) -> None:
    await ledger.claim(record("A"))
    await ledger.claim(record("B"))
    await redis_client.delete(keys.promotion("api", "api-st", "A"))
    assert await ledger.unsettled("api") == [record("B")]
    assert await redis_client.smembers(keys.promotions("api")) == {
        keys.promotion("api", "api-st", "B")
    }
