"""Cascade as a real process, the sandbox as its Platform API peer, a real Redis."""

import json
from collections import Counter
from datetime import UTC, datetime, timedelta
from pathlib import Path

import httpx

from tests.conftest import FIXTURES
from tests.e2e import harness
from tests.e2e.conftest import THREE_STAGES, platform_requests

A, B = "a" * 40, "b" * 40
STAGE_MIN_AGE = '[service.stage_min_age]\n"api-prod" = {}\n'


def promoted(cluster) -> Counter[tuple[str, str]]:  # type: ignore[no-untyped-def]
    return Counter((t, p["commit"]) for p in cluster.promotions() for t in p["target_apps"])


def test_release_webhook_promotes_at_once_without_the_tick(cluster_factory) -> None:  # type: ignore[no-untyped-def]
    cluster = cluster_factory()
    cluster.start_cascade()  # the tick is an hour away, resync too
    cluster.deploy("api-qa", A)
    cluster.wait(lambda: cluster.running("api-prod") == A, "A to reach api-prod")
    assert promoted(cluster) == {("api-st", A): 1, ("api-prod", A): 1}


def test_a_fir_pipeline_promotes_its_oci_image(cluster_factory) -> None:  # type: ignore[no-untyped-def]
    cluster = cluster_factory(sandbox_flags=("--fir", "api"))  # OCI images, no slug
    cluster.start_cascade()
    cluster.deploy("api-qa", A)  # its webhook names the image, not the commit
    cluster.wait(lambda: cluster.running("api-prod") == A, "A to reach api-prod")
    assert promoted(cluster) == {("api-st", A): 1, ("api-prod", A): 1}
    paths = [r["path"] for r in platform_requests(cluster)]
    assert any("/oci-images/" in path for path in paths)
    assert not any("/slugs/" in path for path in paths)


def test_a_container_stack_stage_is_explained_and_never_promoted(cluster_factory) -> None:  # type: ignore[no-untyped-def]
    cluster = cluster_factory(sandbox_flags=("--container", "api-prod"))
    cascade = cluster.start_cascade()
    cluster.deploy("api-qa", A)
    cluster.wait(lambda: cluster.running("api-st") == A, "A to reach api-st")

    def explained() -> dict | None:  # type: ignore[type-arg]
        promotions = harness.get(cascade, "/status/api")["promotions"]
        return next((p for p in promotions if p["to"] == "api-prod"), None)

    held = cluster.wait(explained, "the api-st to api-prod pair")
    assert held["state"] == "blocked"
    assert held["reason"].startswith("api-prod is on the container stack")
    assert promoted(cluster) == {("api-st", A): 1}
    prod = harness.get(cluster.platform, "/_sandbox/state")["apps"]["api-prod"]["id"]
    asked = [r for r in platform_requests(cluster) if r["path"] == f"/apps/{prod}"]
    assert len(asked) == 1  # its stack, read with the pipeline, not on each reconcile


def test_one_shot_timer_promotes_when_min_age_elapses(cluster_factory) -> None:  # type: ignore[no-untyped-def]
    cluster = cluster_factory(THREE_STAGES.format(min_age="2s"))
    cascade = cluster.start_cascade()
    cluster.deploy("api-qa", A)
    status = cluster.wait(
        lambda: (s := harness.get(cascade, "/status/api"))["promotions"] and s,
        "a waiting promotion",
    )
    waiting = status["promotions"][0]
    assert waiting["state"] == "waiting"
    assert [g["name"] for g in waiting["gates"] if g["state"] == "closed"] == ["age"]
    assert waiting["opens_at"] is not None
    assert cluster.promotions() == []
    cluster.wait(lambda: cluster.running("api-st") == A, "the timer to promote A to api-st")


def test_three_stages_two_commits_each_promoted_once_pinned(cluster_factory) -> None:  # type: ignore[no-untyped-def]
    # A needs 3 s in api-qa but only 1 s in api-st: B, released on api-qa as A reaches
    # api-st, cannot catch up with it.
    cluster = cluster_factory(THREE_STAGES.format(min_age="3s") + STAGE_MIN_AGE.format('"1s"'))
    cluster.start_cascade()
    cluster.deploy("api-qa", A)
    cluster.wait(lambda: cluster.running("api-st") == A, "A on api-st")
    cluster.deploy("api-qa", B)  # A is between api-st and api-prod
    cluster.wait(lambda: cluster.running("api-prod") == B, "B to follow A to api-prod")
    assert promoted(cluster) == {
        ("api-st", A): 1,
        ("api-prod", A): 1,
        ("api-st", B): 1,
        ("api-prod", B): 1,
    }
    order = [(p["target_apps"][0], p["commit"]) for p in cluster.promotions()]
    assert order.index(("api-prod", A)) < order.index(("api-prod", B))
    for promotion in cluster.promotions():
        pinned = promotion["request"]["source"]["release"]["id"]
        assert pinned == promotion["release_id"]


def test_pauses_stop_promotions_and_say_why(cluster_factory) -> None:  # type: ignore[no-untyped-def]
    cluster = cluster_factory()
    cascade = cluster.start_cascade()
    url = cascade.url
    made = httpx.post(
        url + "/pause", json={"reason": "incident 42", "by": "ana"}, headers=harness.admin()
    )
    assert made.status_code == 201
    assert made.json()["reason"] == "incident 42"
    cluster.deploy("api-qa", A)

    def blocked() -> dict | None:  # type: ignore[type-arg]
        promotions = harness.get(cascade, "/status/api")["promotions"]
        return promotions[0] if promotions and promotions[0]["commit"] == A else None

    held = cluster.wait(blocked, "the pause to block A")
    assert held["state"] == "blocked"
    assert "incident 42" in held["reason"]
    assert harness.get(cascade, "/status")["paused"]["by"] == "ana"
    assert cluster.promotions() == []

    # a service pause replaces nothing globally but holds the service too
    service_pause = {"reason": "api migration", "service": "api"}
    assert (
        httpx.post(url + "/pause", json=service_pause, headers=harness.admin()).status_code == 201
    )
    assert httpx.delete(url + "/pause", headers=harness.admin()).status_code == 204
    cluster.wait(lambda: "api migration" in (blocked() or {}).get("reason", ""), "service pause")
    assert harness.get(cascade, "/status/api")["paused"]["reason"] == "api migration"
    assert cluster.promotions() == []

    resumed = httpx.delete(url + "/pause", params={"service": "api"}, headers=harness.admin())
    assert resumed.status_code == 204
    cluster.wait(lambda: cluster.running("api-st") == A, "DELETE /pause to resume at once")


def test_timed_pause_lifts_itself_and_pauses_survive_a_restart(cluster_factory) -> None:  # type: ignore[no-untyped-def]
    cluster = cluster_factory()
    cascade = cluster.start_cascade()
    forever = {"reason": "holiday", "service": "api"}
    assert (
        httpx.post(cascade.url + "/pause", json=forever, headers=harness.admin()).status_code == 201
    )
    cascade.stop()
    cascade = cluster.start_cascade(name="cascade-again")
    assert harness.get(cascade, "/status/api")["paused"]["reason"] == "holiday"

    until = (datetime.now(UTC) + timedelta(seconds=2)).isoformat()
    timed = {"reason": "short", "service": "api", "until": until}
    assert (
        httpx.post(cascade.url + "/pause", json=timed, headers=harness.admin()).status_code == 201
    )
    cluster.deploy("api-qa", A)
    cluster.wait(lambda: cluster.running("api-st") == A, "the timed pause to lift by itself")


def test_refused_deliveries_change_nothing(cluster_factory, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    cluster = cluster_factory()
    cascade = cluster.start_cascade()
    before = harness.get(cascade, "/status")
    payload = json.loads((FIXTURES / "heroku" / "zulip-release_update.json").read_text())
    payload["data"]["app"]["name"] = "api-qa"
    body = json.dumps(payload).encode()
    hook = cascade.url + "/webhooks/heroku"

    wrong = httpx.post(
        hook, content=body, headers={"Heroku-Webhook-Hmac-SHA256": harness.sign(body, "nope")}
    )
    assert wrong.status_code == 401
    missing = httpx.post(hook, content=body)
    assert missing.status_code == 401
    garbage = b"{not json"
    malformed = httpx.post(
        hook, content=garbage, headers={"Heroku-Webhook-Hmac-SHA256": harness.sign(garbage)}
    )
    assert malformed.status_code == 400
    huge = b" " * (1024 * 1024 + 1)
    too_big = httpx.post(
        hook, content=huge, headers={"Heroku-Webhook-Hmac-SHA256": harness.sign(huge)}
    )
    assert too_big.status_code == 413
    for answer in (wrong, missing, malformed, too_big):
        assert answer.json()["detail"]

    no_token = httpx.post(cascade.url + "/pause", json={"reason": "x"})
    bad_token = httpx.post(
        cascade.url + "/pause", json={"reason": "x"}, headers={"Authorization": "Bearer no"}
    )
    assert (no_token.status_code, bad_token.status_code) == (401, 401)
    assert harness.get(cascade, "/status") == before
    assert harness.get(cascade, "/events")["events"] == []
