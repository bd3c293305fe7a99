"""Freeze windows: when a `[[freeze]]` entry holds a service, until when, and the allow gate."""

from datetime import UTC, datetime, timedelta

import pytest

from app.config.services import Freeze
from app.core.models import GateState, Signals
from app.gates import allow
from app.signals.freezes.facts import FreezeWindow
from app.signals.freezes.windows import trigger, windows
from tests.factories import NOW, pause, snapshot, stage

WEEKEND = Freeze("0 15 * * FRI", timedelta(hours=66), "America/Los_Angeles", "no weekend deploys")
# 2026-11-20 is a Friday; 15:00 in Los Angeles (PST, UTC-8) is 23:00 UTC.
FRIDAY_3PM = datetime(2026, 11, 20, 23, 0, tzinfo=UTC)
MONDAY_9AM = FRIDAY_3PM + timedelta(hours=66)


def utc(text: str) -> datetime:
    return datetime.fromisoformat(text).replace(tzinfo=UTC)


@pytest.mark.parametrize(
    ("now", "in_force"),
    [
        (FRIDAY_3PM - timedelta(seconds=1), False),
        (FRIDAY_3PM, True),
        (FRIDAY_3PM + timedelta(hours=30), True),
        (MONDAY_9AM - timedelta(seconds=1), True),
        (MONDAY_9AM, False),
        (FRIDAY_3PM - timedelta(days=3), False),
    ],
    ids=["a-second-before", "at-its-start", "saturday", "last-second", "at-its-end", "wednesday"],
)
def test_weekend_freeze_in_its_hours_only(now: datetime, in_force: bool) -> None:
    found = windows([WEEKEND], "api", now)
    assert bool(found) is in_force
    if in_force:
        assert found == (FreezeWindow("no weekend deploys", FRIDAY_3PM, MONDAY_9AM, True),)


def test_a_freeze_of_other_services_does_not_hold_this_one() -> None:
    only_web = Freeze(WEEKEND.cron, WEEKEND.duration, WEEKEND.timezone, "web only", ("web",))
    saturday = FRIDAY_3PM + timedelta(hours=20)
    assert windows([only_web], "api", saturday) == ()
    (window,) = windows([only_web], "web", saturday)
    assert not window.global_


def test_duration_is_real_time_across_a_dst_change() -> None:
    # 2026-11-01 02:00 PDT ends daylight time in Los Angeles; a 24h window from 12:00 PDT
    # on Oct 31 (19:00 UTC) ends 24 real hours later, 19:00 UTC on Nov 1 (11:00 PST).
    freeze = Freeze("0 12 31 OCT *", timedelta(hours=24), "America/Los_Angeles", "dst")
    (window,) = windows([freeze], "api", utc("2026-11-01T12:00:00"))
    assert window.started_at == utc("2026-10-31T19:00:00")
    assert window.ends_at == utc("2026-11-01T19:00:00")


def test_overlapping_windows_are_one_until_the_last_ends() -> None:
    daily = Freeze("0 0 * * *", timedelta(hours=30), "UTC", "long nights")
    (window,) = windows([daily], "api", utc("2026-11-22T10:00:00"))
    # every start falls inside the previous window, so it never ends in bounded time;
    # the answer still comes, as the end of the chain looked at
    assert window.ends_at > utc("2026-11-23T06:00:00")


@pytest.mark.parametrize(
    ("cron", "now", "in_force"),
    [
        ("0 9 * * 0", utc("2026-11-22T09:30:00"), True),  # 2026-11-22 is a Sunday
        ("0 9 * * 7", utc("2026-11-22T09:30:00"), True),
        ("0 9 * * SUN", utc("2026-11-22T09:30:00"), True),
        ("0 9 * * 1", utc("2026-11-22T09:30:00"), False),  # cron 1 is Monday, not APScheduler's
        ("0 9 * * 0-2", utc("2026-11-24T09:30:00"), True),  # Sunday to Tuesday
        ("0 9 * * FRI-SUN", utc("2026-11-22T09:30:00"), True),
        ("0 9 * * 1-5", utc("2026-11-22T09:30:00"), False),
    ],
    ids=[
        "sunday-0",
        "sunday-7",
        "sunday-name",
        "monday-1",
        "range-from-sunday",
        "fri-sun",
        "weekdays",
    ],
)
def test_days_of_week_are_standard_cron(cron: str, now: datetime, in_force: bool) -> None:
    freeze = Freeze(cron, timedelta(hours=1), "UTC", "r")
    assert bool(windows([freeze], "api", now)) is in_force


@pytest.mark.parametrize(
    "cron",
    ["0 15 * * FRI", "*/15 9-17 * * mon-fri", "0 0 1,15 JAN,JUL *", "30 2 * * 0", "0 0 * * 7"],
)
def test_every_cron_the_services_file_accepts_makes_a_trigger(cron: str) -> None:
    assert trigger(cron, "Europe/Paris") is not None


# the allow gate -------------------------------------------------------------


def allow_with(*freezes: FreezeWindow, **overrides: object) -> tuple[GateState, str, object]:
    snap = snapshot(
        (stage("api-qa", "A"), stage("api-st", "O")),
        signals=Signals(freezes=freezes),
        **overrides,
    )
    result = allow.check(snap, snap.pairs()[0])
    return result.state, result.reason, result.opens_at


def test_a_freeze_in_force_closes_allow_until_its_end() -> None:
    window = FreezeWindow(
        "no weekend deploys", NOW - timedelta(hours=1), NOW + timedelta(hours=2), True
    )
    state, reason, opens_at = allow_with(window)
    assert (state, opens_at) == (GateState.CLOSED, NOW + timedelta(hours=2))
    assert "everything frozen until" in reason
    assert reason.endswith(": no weekend deploys")


def test_a_freeze_and_an_open_ended_pause_know_no_end() -> None:
    window = FreezeWindow("r", NOW - timedelta(hours=1), NOW + timedelta(hours=2), False)
    state, reason, opens_at = allow_with(window, global_pause=pause("incident"))
    assert (state, opens_at) == (GateState.CLOSED, None)
    assert "service api frozen" in reason
    assert "everything paused" in reason


def test_a_freeze_and_a_timed_pause_open_at_the_later_end() -> None:
    window = FreezeWindow("r", NOW - timedelta(hours=1), NOW + timedelta(hours=2), True)
    later = NOW + timedelta(hours=3)
    assert allow_with(window, global_pause=pause(until=later))[2] == later


def test_a_window_that_ended_does_not_close() -> None:
    window = FreezeWindow("r", NOW - timedelta(hours=2), NOW, True)
    assert allow_with(window)[0] is GateState.OPEN
