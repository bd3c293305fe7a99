"""Faults, on real processes and a real Redis: duplicate deliveries racing over three processes
and their ticks, SIGKILL at each step of a promotion, and webhook clocks far off.

Each test asserts its own invariants (one promotion per target and commit, no 5xx) and
records what it tried in `tests.figures` for RELIABILITY.md. The Platform API's faults are
in `test_faults_platform.py`, Redis stopping in `test_faults_redis.py`.
"""

import uuid
from concurrent.futures import ThreadPoolExecutor
from datetime import UTC, datetime, timedelta
from typing import Any, NamedTuple

import pytest

from tests.e2e import harness
from tests.e2e.conftest import (
    THREE_STAGES,
    Cluster,
    duplicates,
    pipeline_id,
    platform_requests,
    promoted,
    unsubscribe,
)
from tests.figures import Figure, record

pytestmark = [pytest.mark.e2e, pytest.mark.reliability]

A, B = "a" * 40, "b" * 40
CRASH_STEPS = ("claimed", "posted", "following")  # one service per step, killed together
CRASH_SERVICES = "".join(
    f'[[service]]\nname = "{step}"\npipeline = "{step}"\n'
    f'stages = ["{step}-dev", "{step}-prod"]\nmin_age = "0s"\n\n'
    for step in CRASH_STEPS
)


def reconciles(process: harness.Process, service: str = "api") -> float:
    return harness.metric(process, "cascade_reconcile_duration_seconds_count", service=service)


def succeeded_release(cluster: Cluster, app: str, commit: str) -> dict[str, Any]:
    """Release `commit` on `app`; once it succeeded, the `data` of the webhook that says so."""
    deployed = cluster.deploy(app, commit)

    def current() -> dict[str, Any] | None:
        now = harness.get(cluster.platform, "/_sandbox/state")["apps"][app]["current"]
        return now if now["id"] == deployed["id"] else None

    done = cluster.wait(current, f"{commit[:7]} to run on {app}")
    return {**deployed, "status": "succeeded", "created_at": done["created_at"]}


# duplicates and races ------------------------------------------------------------------


def test_100_deliveries_over_three_processes_and_their_ticks_promote_once(cluster_factory) -> None:  # type: ignore[no-untyped-def]
    cluster = cluster_factory()
    answers = harness.Answers()
    tick = {"CASCADE_TICK_SECONDS": "0.3"}  # the tick fires in all three, racing the webhook
    ports = [cluster.cascade_port, harness.free_port(), harness.free_port()]
    with ThreadPoolExecutor(3) as pool:
        processes = list(
            pool.map(
                lambda i: cluster.start_cascade(port=ports[i], name=f"cascade-{i + 1}", **tick),
                range(3),
            )
        )
    unsubscribe(cluster, "api-qa")  # the 100 deliveries below are Cascade's only news of A
    release = succeeded_release(cluster, "api-qa", A)
    # One event, as Heroku sends it again and again: half with its own delivery id, half
    # as fresh deliveries of the same news (same app, version and status).
    same = str(uuid.uuid4())
    hooks = [
        harness.release_hook(release, delivery=same if i % 2 else str(uuid.uuid4()))
        for i in range(100)
    ]
    with ThreadPoolExecutor(25) as pool:
        replies = list(
            pool.map(
                lambda i: answers.deliver(processes[i % 3], hooks[i]),
                range(100),
            )
        )
    assert {r.status_code for r in replies} == {202}
    outcomes = [r.json()["status"] for r in replies]
    assert (outcomes.count("accepted"), outcomes.count("duplicate")) == (1, 99)

    cluster.wait(lambda: cluster.running("api-prod") == A, "A to reach api-prod")
    # Every process ticks a few more times with nothing left to do: still one promotion each.
    seen = [reconciles(p) for p in processes]
    cluster.wait(
        lambda: all(reconciles(p) >= n + 3 for p, n in zip(processes, seen, strict=True)),
        "three more ticks in every process",
    )
    counts = promoted(cluster)
    record(
        Figure(
            area="faults",
            check="100 concurrent deliveries of one release webhook over 3 processes, ticks racing",
            cases=100,
            faults=99,
            promotions=sum(counts.values()),
            duplicates=duplicates(counts),
            five_xx=answers.five_xx,
            note="3 Cascade processes on one Redis, each ticking every 0.3 s",
        )
    )
    assert counts == {("api-st", A): 1, ("api-prod", A): 1}
    assert answers.five_xx == 0


# crash -----------------------------------------------------------------------------------


def test_sigkill_at_each_step_of_a_promotion_never_promotes_twice(cluster_factory) -> None:  # type: ignore[no-untyped-def]
    """One process holds three promotions, each at another step, when it is killed:

    claimed: the record is claimed under the lock, the re-read before the POST is held;
    posted: the POST reached Heroku, its answer is held;
    following: Heroku answered, the promotion's targets are held pending.
    """
    cluster = cluster_factory(CRASH_SERVICES)
    answers = harness.Answers()
    cascade = cluster.start_cascade()
    for step in CRASH_STEPS:  # each moves only when the test lets it
        answers.pause(cascade, step)
    for step in CRASH_STEPS:
        cluster.deploy(f"{step}-dev", A)
    cluster.wait(
        lambda: all(
            harness.stage_commit(answers.json(cascade, "/status"), f"{step}-dev") == A
            for step in CRASH_STEPS
        ),
        "A on every dev stage, as Cascade sees it",
    )
    cluster.faults(hold_releases=True)  # every release from now on stays pending

    answers.resume(cascade, "following")
    (following,) = cluster.wait(lambda: promotions_to(cluster, "following-prod"), "a promotion")
    targets = f"/pipeline-promotions/{following['id']}/promotion-targets"
    cluster.wait(lambda: sent(cluster, "GET", targets), "Cascade to follow its targets")

    cluster.faults(promotion_response_delay=60)
    answers.resume(cascade, "posted")
    cluster.wait(lambda: promotions_to(cluster, "posted-prod"), "the POST to reach the platform")

    reread = f"/pipelines/{pipeline_id(cluster, 'claimed')}/latest-releases"
    cluster.faults(delays=[{"method": "GET", "path_prefix": reread, "seconds": 60}])
    answers.resume(cascade, "claimed")
    cluster.wait(
        lambda: sent(cluster, "GET", reread, answered=False), "the re-read after the claim"
    )
    assert not promotions_to(cluster, "claimed-prod")

    cascade.kill()
    cluster.faults(promotion_response_delay=0)
    restarted = cluster.start_cascade(name="cascade-restarted")
    # The claim that never reached Heroku is decided again, once the dead process's lock expires.
    cluster.wait(lambda: promotions_to(cluster, "claimed-prod"), "claimed to be promoted", 40)
    cluster.faults(hold_releases=False)  # every target finishes now, followed by the restart

    def settled() -> dict[str, list[str]] | None:
        kinds = {
            step: [
                e["kind"]
                for e in answers.json(restarted, f"/events?service={step}")["events"]
                if e["kind"].startswith("promotion.") and e["to"] == f"{step}-prod"
            ]
            for step in CRASH_STEPS
        }
        return kinds if all("promotion.succeeded" in k for k in kinds.values()) else None

    kinds = cluster.wait(settled, "every promotion to be followed to its end and recorded")
    counts = promoted(cluster)
    record(
        Figure(
            area="faults",
            check="SIGKILL after the claim, after the POST, while following; restart",
            cases=len(CRASH_STEPS),
            faults=1,
            promotions=sum(counts.values()),
            duplicates=duplicates(counts),
            five_xx=answers.five_xx,
            note="one process killed with a promotion at each step; the restart finishes all three",
        )
    )
    assert counts == {(f"{step}-prod", A): 1 for step in CRASH_STEPS}
    assert all(cluster.running(f"{step}-prod") == A for step in CRASH_STEPS)
    assert all(kinds[step].count("promotion.succeeded") == 1 for step in CRASH_STEPS)
    assert not any("promotion.failed" in k for k in kinds.values())
    assert answers.five_xx == 0


def promotions_to(cluster: Cluster, app: str) -> list[dict[str, Any]]:
    return [p for p in cluster.promotions() if app in p["target_apps"]]


def sent(cluster: Cluster, method: str, path: str, *, answered: bool = True) -> bool:
    """The platform received the request (and, unless `answered=False`, answered it)."""
    return any(
        r["method"] == method and r["path"] == path and (r["status"] is not None) == answered
        for r in platform_requests(cluster)
    )


# clock -----------------------------------------------------------------------------------


class Judged(NamedTuple):
    """What Cascade made of a forged release webhook."""

    state: str  # the pair's
    age: str  # the age gate's state
    opens_at: datetime  # when the age gate opens
    sent_at: datetime  # just before the webhook was sent
    answered_at: datetime  # just after Cascade answered it


def test_webhook_timestamps_far_off_cannot_open_the_age_gate_early(cluster_factory) -> None:  # type: ignore[no-untyped-def]
    cluster = cluster_factory(THREE_STAGES.format(min_age="1h"))
    answers = harness.Answers()
    cascade = cluster.start_cascade()
    unsubscribe(cluster, "api-qa")  # only the forged deliveries tell Cascade of api-qa
    judged = []
    for commit, forged in ((A, timedelta(days=-2)), (B, timedelta(days=3650))):
        release = succeeded_release(cluster, "api-qa", commit)
        sent_at = datetime.now(UTC)
        release["created_at"] = (sent_at + forged).isoformat()
        reply = answers.deliver(cascade, harness.release_hook(release))
        answered_at = datetime.now(UTC)
        assert reply.json()["status"] == "accepted"

        def pair(c: str = commit) -> dict[str, Any] | None:
            pairs = answers.json(cascade, "/status/api")["promotions"]
            return next((p for p in pairs if p["commit"] == c and p["to"] == "api-st"), None)

        found = cluster.wait(pair, f"{commit[:7]} to be judged")
        (age,) = [g for g in found["gates"] if g["name"] == "age"]
        opens_at = datetime.fromisoformat(age["opens_at"])
        judged.append(Judged(found["state"], age["state"], opens_at, sent_at, answered_at))

    promotions = cluster.promotions()
    record(
        Figure(
            area="faults",
            check="release webhooks dated 2 days back and 10 years ahead, min_age 1h",
            cases=len(judged),
            faults=len(judged),
            promotions=len(promotions),
            five_xx=answers.five_xx,
            note="a commit arrives when Cascade receives it, by Cascade's clock",
        )
    )
    assert promotions == []
    assert [(j.state, j.age) for j in judged] == [("waiting", "closed")] * 2
    past, future = judged
    hour = timedelta(hours=1)
    # Dated two days back or ten years ahead: counted from its arrival, by Cascade's clock.
    for dated in (past, future):
        assert dated.sent_at + hour <= dated.opens_at <= dated.answered_at + hour
    assert answers.five_xx == 0
