"""The ordered background queue (`app.notify.outbox`): order, a failure in between, shutdown."""

import asyncio
import logging

import pytest

from app.notify import outbox
from app.notify.outbox import Outbox


async def test_items_go_out_in_order_past_a_failing_one(caplog: pytest.LogCaptureFixture) -> None:
    sent: list[int] = []

    async def send(item: int) -> None:
        await asyncio.sleep(0.01 * (3 - item))  # the first is the slowest
        if item == 2:
            raise RuntimeError("peer away")
        sent.append(item)

    box: Outbox[int] = Outbox("numbers", send)
    box.start()
    for item in (1, 2, 3):
        box.put(item)
    await box.stop()
    assert sent == [1, 3]
    assert "numbers: not sent: 2" in caplog.text


async def test_stop_gives_up_on_what_does_not_go_out(
    caplog: pytest.LogCaptureFixture, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(outbox, "DRAIN_SECONDS", 0.05)
    stuck = asyncio.Event()
    box: Outbox[int] = Outbox("numbers", lambda _item: stuck.wait())
    box.start()
    box.put(1)
    box.put(2)
    with caplog.at_level(logging.WARNING, logger="app.notify.outbox"):
        await asyncio.wait_for(box.stop(), timeout=2)
    assert "numbers: 1 not sent at shutdown" in caplog.text
