"""How durations read on the page (`app.config.durations.spoken`): two adjacent units, spaced."""

from datetime import timedelta

import pytest

from app.config.durations import spoken


@pytest.mark.parametrize(
    ("delta", "text"),
    [
        (timedelta(0), "0s"),
        (timedelta(seconds=-5), "0s"),
        (timedelta(seconds=45), "45s"),
        (timedelta(seconds=90), "1m 30s"),
        (timedelta(hours=2, seconds=14), "2h"),
        (timedelta(hours=2, minutes=14, seconds=9), "2h 14m"),
        (timedelta(minutes=59, seconds=59.6), "1h"),
        (timedelta(days=1, seconds=5), "1d"),
        (timedelta(days=1, hours=3, minutes=4), "1d 3h"),
    ],
    ids=[
        "zero", "negative", "seconds", "minutes-seconds", "no-skipped-unit", "hours-minutes",
        "rounded-up", "days-no-seconds", "days-hours",
    ],
)  # fmt: skip
def test_spoken(delta: timedelta, text: str) -> None:
    assert spoken(delta) == text
