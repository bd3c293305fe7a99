"""The delivery metrics' fold (`app.core.dora`), on the history written by hand in
`tests.dora_history`, and the quantile it uses."""

from datetime import UTC, datetime, timedelta

import pytest

from app.core.dora import Mark, ServiceRecord, StageRecord, figures, quantile
from tests.dora_history import EXPECTED, STAGES, History, history

T = datetime(2026, 5, 1, 12, tzinfo=UTC)


def record_of(h: History) -> ServiceRecord:
    """The records as `app.storage.dora_record` reads them: the first stage's marks are arrivals."""

    def marks(stage: str, rows: list[tuple[str, str, datetime]]) -> tuple[Mark, ...]:
        return tuple(Mark(commit, at) for app, commit, at in rows if app == stage)

    first = tuple(Mark(commit, at) for commit, at in h.arrived.items())
    stages = [
        StageRecord(
            app, first if app == STAGES[0] else marks(app, h.promoted), marks(app, h.halted)
        )
        for app in STAGES
    ]
    c6 = next(commit for _, commit, _ in h.halted[1:])
    arrived = {c: at for c, at in h.arrived.items() if c != c6}
    return ServiceRecord("api", tuple(stages), arrived)


def test_figures_of_the_hand_written_history() -> None:
    h = history(T)
    assert figures(record_of(h), h.since) == EXPECTED


def test_a_narrower_window_leaves_the_earlier_marks_out() -> None:
    h = history(T)
    # From T+200 min: api-st keeps c5 (300, lead 3600) and c6 (420, no lead): p50 = p90 =
    # 3600. api-prod keeps c3 (240, lead 7200) and c5 (390, lead 9000): p50 = ceil(1) = 1st
    # = 7200, p90 = ceil(1.8) = 2nd = 9000; its halt at 270 too: 1/2, restored in 7200 s.
    found = figures(record_of(h), T + timedelta(minutes=200))
    st, prod = found[1], found[2]
    assert (st.deployments, st.lead_time_p50, st.lead_time_p90) == (2, 3600.0, 3600.0)
    assert (prod.deployments, prod.lead_time_p50, prod.lead_time_p90) == (2, 7200.0, 9000.0)
    assert (prod.halts, prod.change_failure_rate, prod.time_to_restore) == (1, 0.5, 7200.0)
    assert found[0].deployments == 1  # c5 arrived on api-qa at 240; c4 at 180 is out


def test_no_deployment_has_no_rate_and_no_lead_time() -> None:
    empty = ServiceRecord("api", (StageRecord("a", (), ()), StageRecord("b", (), ())), {})
    for stage in figures(empty, T):
        assert (stage.deployments, stage.change_failure_rate, stage.lead_time_p50) == (
            0,
            None,
            None,
        )


def test_a_redeployment_of_the_halted_commit_does_not_restore() -> None:
    commit, other = "a" * 40, "b" * 40
    stage = StageRecord(
        "b",
        (
            Mark(commit, T),
            Mark(commit, T + timedelta(hours=1)),
            Mark(other, T + timedelta(hours=3)),
        ),
        (Mark(commit, T + timedelta(minutes=30)),),
    )
    found = figures(ServiceRecord("api", (StageRecord("a", (), ()), stage), {}), T)
    assert found[1].time_to_restore == 150 * 60.0


@pytest.mark.parametrize(
    ("values", "q", "expected"),
    [
        ([], 0.5, None),
        ([7.0], 0.5, 7.0),
        ([7.0], 0.9, 7.0),
        ([3.0, 1.0], 0.5, 1.0),
        ([3.0, 1.0], 0.9, 3.0),
        ([5.0, 1.0, 4.0, 2.0, 3.0], 0.5, 3.0),
        ([5.0, 1.0, 4.0, 2.0, 3.0], 0.9, 5.0),
        ([float(v) for v in range(1, 11)], 0.9, 9.0),
        ([float(v) for v in range(1, 11)], 0.5, 5.0),
    ],
    ids=[
        "empty",
        "one-p50",
        "one-p90",
        "two-p50",
        "two-p90",
        "five-p50",
        "five-p90",
        "ten-p90",
        "ten-p50",
    ],
)
def test_quantile_is_the_nearest_rank(
    values: list[float], q: float, expected: float | None
) -> None:
    assert quantile(values, q) == expected
