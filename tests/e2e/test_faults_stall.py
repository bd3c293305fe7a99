"""A process that stalls between its claim and its POST for longer than its lock lives.

The lock's next holder takes the unsent claim back and decides afresh; the stalled process,
when it wakes, finds its claim gone and sends nothing. A real process cannot be paused at
exactly that line, so this one runs in-process (Cascade's reconciler on the session's real
Redis, the sandbox as its Platform API): no `e2e` mark. Figures go to RELIABILITY.md.
"""

from typing import Any

import pytest

from app.engine.promote import Promoter
from app.engine.topology import Topology
from tests.engine.test_promote import posts, ready
from tests.engine.test_reconcile import A
from tests.figures import Figure, record
from tests.sandboxed import World

pytestmark = pytest.mark.reliability


async def test_a_claim_taken_back_from_a_stalled_process_is_never_sent(
    make_world: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    world: World = await make_world(resync_seconds=0.001)  # reads the pipeline each time
    await ready(world)
    promoter: Promoter = world.reconciler.promoter
    send = promoter._send

    async def stalled(claims: Any, topology: Topology, *args: Any) -> bool:
        # Meanwhile, the lock's next holder follows the claim.
        await world.reconciler.follower.follow(claims[0].service, topology)
        return await send(claims, topology, *args)

    monkeypatch.setattr(promoter, "_send", stalled)
    await world.reconciler.reconcile("api")
    sent_by_the_stalled = posts(world.heroku)
    taken_back = [
        e
        for e in await world.reconciler.audit.read("api")
        if e["kind"] == "promotion.deferred" and "stopped before sending" in e["message"]
    ]
    assert await world.reconciler.ledger.unsettled("api") == []

    monkeypatch.undo()
    await world.reconciler.reconcile("api")  # decided afresh: promoted, once
    promotions = posts(world.heroku)
    (claim,) = (await world.reconciler.ledger.find("api", [("api-st", A)])).values()
    record(
        Figure(
            area="faults",
            check="a process stalled past its lock between its claim and its POST",
            cases=1,
            faults=1,
            promotions=promotions,
            duplicates=max(promotions - 1, 0),
            note="the next holder of the lock takes the claim back; the stalled one sends nothing",
        )
    )
    assert sent_by_the_stalled == 0
    assert len(taken_back) == 1
    assert promotions == 1
    assert (claim.sent, claim.promotion_id is not None) == (True, True)
