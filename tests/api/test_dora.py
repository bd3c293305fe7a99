"""`GET /dora`, the DORA series of `/metrics` and `cascade dora`, on Cascade run in-process
with the history of `tests.dora_history` written through its own modules (T two days ago)."""

from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
from prometheus_client.parser import text_string_to_metric_families

from app.cli import main as cli
from app.cli import remote
from app.runtime import Runtime
from app.storage import keys
from app.storage.audit import Event
from tests.dora_history import EXPECTED, history, seed
from tests.inprocess import Cascade


async def seeded(cascade: Cascade) -> None:
    await seed(cascade.runtime, history(datetime.now(UTC) - timedelta(days=2)))


def stages_of(body: dict[str, Any], service: str) -> dict[str, dict[str, Any]]:
    found = next(s for s in body["services"] if s["name"] == service)
    return {stage["stage"]: stage for stage in found["stages"]}


def as_api(expected: Any) -> dict[str, Any]:
    return {
        "stage": expected.stage,
        "deployments": expected.deployments,
        "lead_time_p50_seconds": expected.lead_time_p50,
        "lead_time_p90_seconds": expected.lead_time_p90,
        "halts": expected.halts,
        "change_failure_rate": pytest.approx(expected.change_failure_rate),
        "time_to_restore_seconds": expected.time_to_restore,
        "open_halts": expected.open_halts,
    }


async def test_dora_answers_the_hand_computed_figures(cascade: Cascade) -> None:
    await seeded(cascade)
    # Three days back from now is one day before T: the window of tests.dora_history.
    body = await cascade.json("/dora", service="api", days=3)
    assert body["days"] == 3
    assert [s["name"] for s in body["services"]] == ["api"]
    stages = stages_of(body, "api")
    assert list(stages) == ["api-qa", "api-st", "api-prod"]
    assert stages["api-st"] == as_api(EXPECTED[1])
    assert stages["api-prod"] == as_api(EXPECTED[2])
    # api-qa: c1..c5, and the commit the sandbox started it on (arrived at startup).
    assert stages["api-qa"]["deployments"] == EXPECTED[0].deployments + 1
    assert stages["api-qa"]["lead_time_p50_seconds"] == 0.0


async def test_days_narrows_the_window_and_every_service_is_answered(cascade: Cascade) -> None:
    await seeded(cascade)
    body = await cascade.json("/dora", days=1)  # T+430 min is well over a day ago
    assert [s["name"] for s in body["services"]] == ["api", "web"]
    for stage in ("api-st", "api-prod"):
        assert stages_of(body, "api")[stage]["deployments"] == 0
        assert stages_of(body, "api")[stage]["change_failure_rate"] is None
    assert (await cascade.json("/dora"))["days"] == 30


async def test_an_unknown_service_is_404(cascade: Cascade) -> None:
    response = await cascade.client.get("/dora", params={"service": "nope"})
    assert response.status_code == 404
    assert response.json() == {"detail": "no service named 'nope'"}


@pytest.mark.parametrize("days", ["0", "-1", "91", "a week"])
async def test_a_bad_days_is_422(cascade: Cascade, days: str) -> None:
    response = await cascade.client.get("/dora", params={"days": days})
    assert response.status_code == 422
    assert "days" in response.json()["detail"]


async def test_the_record_keeps_each_commit_at_its_first_time(cascade: Cascade) -> None:
    """A promotion heard again later (another process, a replay) is one deployment, at its
    first time: heard an hour later too, the lead times would be an hour longer."""
    runtime: Runtime = cascade.runtime
    t = datetime.now(UTC) - timedelta(days=2)
    await seed(runtime, history(t))
    await seed(runtime, history(t + timedelta(hours=1)))
    stages = stages_of(await cascade.json("/dora", service="api", days=3), "api")
    assert stages["api-st"] == as_api(EXPECTED[1])
    assert stages["api-prod"] == as_api(EXPECTED[2])


async def test_metrics_carry_the_30_day_figures(cascade: Cascade) -> None:
    await seeded(cascade)
    response = await cascade.client.get("/metrics")
    samples = {
        (s.name, tuple(sorted(s.labels.items()))): s.value
        for family in text_string_to_metric_families(response.text)
        for s in family.samples
        if s.name.startswith("cascade_dora_")
    }

    def of(name: str, stage: str, **more: str) -> float | None:
        labels = tuple(sorted({"service": "api", "stage": stage, **more}.items()))
        return samples.get((f"cascade_dora_{name}", labels))

    # 30 days take c0 in too. api-prod: c0 (lead T-3d → T-2d+60 min = 90000 s), c1, c3, c5:
    # leads 3600, 7200, 9000, 90000: p50 = 2nd = 7200, p90 = ceil(3.6) = 4th = 90000; one
    # halt ÷ 4 = 0.25, restored in 7200 s.
    assert of("deployments", "api-prod") == 4
    assert of("lead_time_seconds", "api-prod", quantile="0.5") == 7200
    assert of("lead_time_seconds", "api-prod", quantile="0.9") == 90000
    assert of("change_failure_rate", "api-prod") == 0.25
    assert of("time_to_restore_seconds", "api-prod") == 7200
    # api-st: c0..c6, one halt never restored: 1/7, and no time-to-restore series.
    assert of("deployments", "api-st") == 7
    assert of("change_failure_rate", "api-st") == pytest.approx(1 / 7)
    assert of("time_to_restore_seconds", "api-st") is None


async def test_cascade_dora_prints_each_stage_in_words(
    cascade: Cascade, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    await seeded(cascade)
    body = await cascade.json("/dora", service="api", days=3)
    asked: list[Any] = []
    monkeypatch.setattr(
        remote, "call", lambda *args, **kwargs: asked.append((args, kwargs)) or body
    )
    assert cli.main(["dora", "api", "--days", "3"]) == 0
    assert asked == [(("GET", "/dora"), {"params": {"days": 3, "service": "api"}})]
    # The figures of tests.dora_history in words (api-qa: c1..c5 and the sandbox's commit).
    assert capsys.readouterr().out.splitlines() == [
        "",
        "api (last 3 days)",
        "  STAGE     DEPLOYS  LEAD P50  LEAD P90  FAILURES      RESTORE",
        "  api-qa    6        0s        0s        0% (0 of 6)   -",
        "  api-st    6        30m       1h        17% (1 of 6)  - (1 open)",
        "  api-prod  3        2h        2h 30m    33% (1 of 3)  2h",
    ]


async def test_the_record_forgets_what_is_older_than_any_window(cascade: Cascade) -> None:
    """A stage's record keeps 90 days (the widest `days`) behind its newest mark, no more."""
    runtime: Runtime = cascade.runtime
    now = datetime.now(UTC)
    for commit, age in (("a" * 40, 91), ("b" * 40, 89), ("c" * 40, 0)):
        event = Event(
            kind="promotion.succeeded",
            message="promoted",
            at=now - timedelta(days=age),
            service="api",
            commit=commit,
            source="api-qa",
            target="api-st",
        )
        await runtime.audit.record(event)
        await runtime.audit.drain()
    kept = await runtime.redis.zrange(keys.dora_deployed("api", "api-st"), 0, -1)
    assert kept == ["b" * 40, "c" * 40]
    assert 0 < await runtime.redis.ttl(keys.dora_deployed("api", "api-st")) <= 90 * 86400
