import pytest

from app.core.models import Candidate, GateResult, GateState, Pair, PairState, Plan
from app.storage import keys
from app.storage.audit import Audit, Event, record_gate_changes
from app.storage.client import Client
from app.storage.store import Store
from tests.factories import NOW, snapshot, stage


@pytest.fixture
def redis_client(server_or_cluster: Client) -> Client:
    """Every test here runs on one server and on a three-master Redis Cluster."""
    return server_or_cluster


@pytest.fixture
def audit(redis_client: Client) -> Audit:
    return Audit(redis_client)


def event(message: str = "promoted", service: str | None = "api") -> Event:
    return Event(
        kind="promotion.succeeded",
        message=message,
        at=NOW,
        service=service,
        commit="A",
        source="api-qa",
        target="api-st",
    )


def test_public_shape_uses_from_and_to() -> None:
    out = event().public()
    assert out["from"] == "api-qa"
    assert out["to"] == "api-st"
    assert out["at"] == NOW.isoformat()
    assert "source" not in out
    assert "target" not in out


async def test_record_writes_global_and_service_streams(audit: Audit, redis_client: Client) -> None:
    await audit.record(event())
    assert await redis_client.xlen(keys.EVENTS) == 1
    assert await redis_client.xlen(keys.service_events("api")) == 1
    assert await audit.read() == [event().public()]
    assert await audit.read("api") == [event().public()]


async def test_record_touches_every_named_service(audit: Audit) -> None:
    await audit.record(event("incident opened", service=None), services=("api", "web"))
    assert [e["message"] for e in await audit.read("api")] == ["incident opened"]
    assert [e["message"] for e in await audit.read("web")] == ["incident opened"]


async def test_read_is_newest_first_and_limited(audit: Audit) -> None:
    for i in range(5):
        await audit.record(event(f"m{i}"))
    assert [e["message"] for e in await audit.read(limit=3)] == ["m4", "m3", "m2"]


async def test_read_by_service_reads_only_that_service(audit: Audit) -> None:
    await audit.record(event("for api", service="api"))
    await audit.record(event("for web", service="web"))
    await audit.record(event("global", service=None))
    assert [e["message"] for e in await audit.read("api")] == ["for api"]
    assert [e["message"] for e in await audit.read()] == ["global", "for web", "for api"]
    assert await audit.read("nobody") == []


async def test_streams_are_capped_approximately(
    audit: Audit, redis_client: Client, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(keys, "EVENTS_MAXLEN", 10)
    monkeypatch.setattr(keys, "SERVICE_EVENTS_MAXLEN", 5)
    config = await redis_client.config_get("stream-node-max-entries")
    node = int(config["stream-node-max-entries"])  # approximate trimming drops whole nodes
    for i in range(10 + 3 * node):
        await audit.record(event(f"m{i}"))
    assert 10 <= await redis_client.xlen(keys.EVENTS) <= 10 + node
    assert 5 <= await redis_client.xlen(keys.service_events("api")) <= 5 + node


async def test_record_logs_one_line(audit: Audit, caplog: pytest.LogCaptureFixture) -> None:
    with caplog.at_level("INFO", logger="cascade.audit"):
        await audit.record(event())
    (entry,) = caplog.records
    assert entry.getMessage() == (
        'promotion.succeeded service=api commit=A from=api-qa to=api-st message="promoted"'
    )


async def test_listeners_hear_every_event_and_a_failing_one_changes_nothing(
    redis_client: Client, caplog: pytest.LogCaptureFixture
) -> None:
    audit = Audit(redis_client)
    heard: list[str] = []

    async def listener(event: Event) -> None:
        heard.append(event.kind)

    async def broken(event: Event) -> None:
        raise RuntimeError("receiver down")

    audit.subscribe(broken)
    audit.subscribe(listener)
    await audit.record(Event(kind="pause.set", message="m", at=NOW, service="api"))
    await audit.drain()
    assert heard == ["pause.set"]
    assert "receiver down" in caplog.text
    assert len(await audit.read()) == 1


def waiting(target: str, gate: GateState) -> Candidate:
    pair = Pair(0, stage("api-qa", "A"), stage(target, "O"))
    gates = (GateResult("age", gate, "young"),)
    return Candidate(pair, "A", PairState.WAITING, gates, "age: young")


async def test_a_pairs_gates_are_audited_when_they_change_and_not_again(
    audit: Audit, redis_client: Client
) -> None:
    store, seen = Store(redis_client), snapshot((stage("api-qa", "A"), stage("api-st", "O")))

    async def decide(*candidates: Candidate) -> list[str]:
        audited = (await store.view("api", [])).gate_states
        await record_gate_changes(
            audit, store, seen, Plan("api", candidates, None), audited, dry_run=False
        )
        return [e["details"]["gates"][0]["state"] for e in await audit.read("api")]

    assert await decide(waiting("api-st", GateState.CLOSED)) == ["closed"]
    assert await decide(waiting("api-st", GateState.CLOSED)) == ["closed"]  # unchanged: quiet
    assert await decide(waiting("api-st", GateState.OPEN)) == ["open", "closed"]
    await decide()  # nothing waits any more: the state kept is cleared, no event
    assert (await store.view("api", [])).gate_states == {}
    assert len(await audit.read("api")) == 2
