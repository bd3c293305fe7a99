"""The programmable peer itself: what other e2e tests rely on it to do."""

from concurrent.futures import ThreadPoolExecutor

import httpx
import pytest

from tests.e2e import harness
from tests.e2e.peer import Peer


def test_nothing_set_is_a_github_style_404(peer: Peer) -> None:
    answer = httpx.get(peer.url + "/repos/acme/api/commits/abc")
    assert (answer.status_code, answer.json()) == (404, {"message": "Not Found"})


def test_it_answers_what_it_was_told_and_remembers_what_it_was_asked(peer: Peer) -> None:
    peer.answer("GET", "/ci/api", 500)
    peer.answer("POST", "/hooks", 201, json={"id": 7}, headers={"X-RateLimit-Remaining": "41"})
    broken = httpx.get(peer.url + "/ci/api?ref=main&x=1", headers={"Authorization": "token t"})
    made = httpx.post(peer.url + "/hooks", json={"state": "success"})
    assert (broken.status_code, broken.reason_phrase) == (500, "Internal Server Error")
    assert (made.status_code, made.json(), made.headers["x-ratelimit-remaining"]) == (
        201,
        {"id": 7},
        "41",
    )
    assert httpx.delete(peer.url + "/ci/api").status_code == 404  # another method: not set

    (asked,) = [r for r in peer.requests("/ci/api") if r["method"] == "GET"]
    assert asked["query"] == {"ref": "main", "x": "1"}
    assert asked["target"] == "/ci/api?ref=main&x=1"
    assert asked["headers"]["authorization"] == "token t"
    (posted,) = peer.requests("/hooks")
    assert posted["json"] == {"state": "success"}
    assert [r["path"] for r in peer.requests()] == ["/ci/api", "/hooks", "/ci/api"]

    peer.answer("GET", "/ci/api", 200, body="fine")  # a new answer replaces the old
    assert httpx.get(peer.url + "/ci/api").text == "fine"
    peer.forget("/ci/api")
    assert httpx.get(peer.url + "/ci/api").status_code == 404
    peer.reset()
    assert peer.requests() == []
    assert httpx.post(peer.url + "/hooks").status_code == 404


def test_it_can_hang_or_be_down(peer: Peer) -> None:
    peer.hang("/slow")
    peer.down("/gone")
    with pytest.raises(httpx.ReadTimeout):
        httpx.get(peer.url + "/slow", timeout=0.3)
    with pytest.raises((httpx.RemoteProtocolError, httpx.ReadError)):
        httpx.get(peer.url + "/gone")
    assert [r["path"] for r in peer.requests()] == ["/slow", "/gone"]


def test_a_new_answer_ends_the_requests_hanging_on_the_old(peer: Peer) -> None:
    peer.hang("/slow")
    with ThreadPoolExecutor(1) as pool:
        waiting = pool.submit(httpx.get, peer.url + "/slow", timeout=10)
        harness.wait_for(lambda: peer.requests("/slow"), 5, "the request to arrive")
        peer.answer("GET", "/slow", 200)
        with pytest.raises((httpx.RemoteProtocolError, httpx.ReadError)):
            waiting.result(timeout=5)
    assert httpx.get(peer.url + "/slow").status_code == 200


def test_a_bad_answer_is_refused(peer: Peer) -> None:
    bad = httpx.post(peer.url + "/_peer/answers", json={"path": "/x", "mode": "sulk"})
    assert bad.status_code == 422
    assert "mode" in bad.json()["detail"]
