from datetime import datetime, timedelta

import pytest

from app.config.durations import humanize
from app.core.models import GateState, Pause, Snapshot
from app.gates import age, allow
from tests.factories import NOW, pause, service, snapshot, stage

QA, ST = "api-qa", "api-st"


def snap(arrived: datetime | None = NOW - timedelta(hours=1), **overrides: object) -> Snapshot:
    history = {QA: {"A": arrived}} if arrived else {}
    return snapshot((stage(QA, "A"), stage(ST, "O")), history, **overrides)


def check_allow(**pauses: Pause | None) -> tuple[GateState, str, datetime | None]:
    s = snap(**pauses)
    result = allow.check(s, s.pairs()[0])
    return result.state, result.reason, result.opens_at


# allow ----------------------------------------------------------------------


def test_allow_is_open_without_a_pause() -> None:
    assert check_allow() == (GateState.OPEN, "not paused, no freeze window", None)


def test_global_pause_closes_with_who_and_why() -> None:
    state, reason, opens_at = check_allow(global_pause=pause("deploy freeze"))
    assert (state, opens_at) == (GateState.CLOSED, None)
    assert reason == "everything paused by ops: deploy freeze"


def test_service_pause_closes() -> None:
    state, reason, _ = check_allow(service_pause=pause("flaky db", svc="api"))
    assert state is GateState.CLOSED
    assert reason == "service api paused by ops: flaky db"


def test_pause_until_later_opens_then() -> None:
    until = NOW + timedelta(minutes=15)
    assert check_allow(global_pause=pause(until=until))[::2] == (GateState.CLOSED, until)


@pytest.mark.parametrize("until", [NOW, NOW - timedelta(seconds=1)], ids=["now", "past"])
def test_expired_pause_is_open(until: datetime) -> None:
    assert check_allow(global_pause=pause(until=until))[0] is GateState.OPEN


@pytest.mark.parametrize(
    ("global_until", "service_until", "opens_at"),
    [
        (NOW + timedelta(hours=1), NOW + timedelta(hours=2), NOW + timedelta(hours=2)),
        (NOW + timedelta(hours=3), NOW + timedelta(hours=2), NOW + timedelta(hours=3)),
        (None, NOW + timedelta(hours=2), None),
        (NOW + timedelta(hours=1), None, None),
    ],
    ids=["service-later", "global-later", "global-forever", "service-forever"],
)
def test_both_pauses_open_at_the_later_until(
    global_until: datetime | None, service_until: datetime | None, opens_at: datetime | None
) -> None:
    state, reason, result = check_allow(
        global_pause=pause("g", until=global_until),
        service_pause=pause("s", until=service_until, svc="api"),
    )
    assert (state, result) == (GateState.CLOSED, opens_at)
    assert "everything paused" in reason
    assert "service api paused" in reason


# age ------------------------------------------------------------------------


def test_age_opens_after_min_age() -> None:
    s = snap(NOW - timedelta(hours=1))
    result = age.check(s, s.pairs()[0])
    assert (result.state, result.opens_at) == (GateState.OPEN, None)
    assert result.reason == "ran 1h in api-qa, needs 30m"


def test_age_is_closed_until_arrival_plus_min_age() -> None:
    s = snap(NOW - timedelta(minutes=10))
    result = age.check(s, s.pairs()[0])
    assert (result.state, result.opens_at) == (GateState.CLOSED, NOW + timedelta(minutes=20))
    assert result.reason == "needs 30m in api-qa, opens in 20m"


def test_age_opens_exactly_at_min_age() -> None:
    s = snap(NOW - timedelta(minutes=30))
    assert age.check(s, s.pairs()[0]).state is GateState.OPEN


@pytest.mark.parametrize(
    ("stage_min_age", "state"),
    [
        ({ST: timedelta(hours=2)}, GateState.CLOSED),
        ({ST: timedelta(minutes=5)}, GateState.OPEN),
        ({"api-prod": timedelta(hours=2)}, GateState.OPEN),
    ],
    ids=["target-longer", "target-shorter", "other-target-ignored"],
)
def test_stage_min_age_of_the_target_wins(
    stage_min_age: dict[str, timedelta], state: GateState
) -> None:
    svc = service(min_age=timedelta(minutes=45), stage_min_age=stage_min_age)
    s = snap(NOW - timedelta(hours=1), service=svc)
    assert age.check(s, s.pairs()[0]).state is state


def test_age_with_unknown_arrival_is_unknown() -> None:
    s = snap(None)
    result = age.check(s, s.pairs()[0])
    assert (result.state, result.opens_at) == (GateState.UNKNOWN, None)


# durations --------------------------------------------------------------------


@pytest.mark.parametrize(
    ("delta", "text"),
    [
        (timedelta(0), "0s"),
        (timedelta(seconds=-5), "0s"),
        (timedelta(seconds=45), "45s"),
        (timedelta(seconds=1.4), "1s"),
        (timedelta(seconds=90), "1m30s"),
        (timedelta(minutes=30), "30m"),
        (timedelta(hours=1), "1h"),
        (timedelta(hours=1, minutes=12, seconds=5), "1h12m"),
        (timedelta(days=2), "2d"),
        (timedelta(days=1, hours=3, minutes=4), "1d3h"),
        (timedelta(days=1, seconds=5), "1d5s"),
    ],
    ids=[
        "zero",
        "negative",
        "seconds",
        "rounded",
        "minutes-seconds",
        "minutes",
        "hour",
        "two-largest-units",
        "days",
        "days-hours",
        "days-seconds",
    ],
)
def test_humanize(delta: timedelta, text: str) -> None:
    assert humanize(delta) == text
