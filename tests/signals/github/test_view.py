"""The github signal's view (`app.signals.github.view` and the branch and checks views it
keeps) and its REST reads (`app.signals.github.client`, `app.signals.github.answers`).

Redis is the session's real server; GitHub is respx on a local base URL, answering in the
shapes of GitHub's REST API (FORMATS.md §3: compare `status`, combined status `statuses[]`,
`check_suites[]`). Every unmatched request fails. Times are passed, never read.
"""

from collections.abc import AsyncIterator, Iterator
from datetime import UTC, datetime, timedelta
from typing import Any

import httpx
import pytest
import respx

from app.signals.github.branch_view import Branch
from app.signals.github.client import GitHubClient, GitHubError
from app.signals.github.facts import (
    CheckReport,
    Checks,
    ChecksState,
    GitHubFacts,
    Push,
    Relation,
)
from app.signals.github.view import GitHubView
from app.storage import keys
from app.storage.batch import Batch
from app.storage.client import Client
from tests.factories import NOW, service

GITHUB = "https://github.test/api/v3"
TOKEN = "ghp_secret0123456789"
REPO = "acme/api"
SOURCE, TARGET, OTHER = "a" * 40, "b" * 40, "c" * 40
RETRY, POLL = 10.0, 60.0
API = service(repo=REPO)
CHECKED = service(repo=REPO, require_checks=True)
Json = dict[str, Any]


class GitHubPeer:
    """GitHub's compare, combined status and check-suites endpoints, answering from dicts."""

    def __init__(self) -> None:
        self.compares: dict[tuple[str, str], str | httpx.Response] = {}
        self.statuses: dict[str, list[Json]] = {}
        self.suites: dict[str, list[Json]] = {}
        self.down = False
        self.calls: list[str] = []
        self.headers: list[httpx.Headers] = []

    def _answer(self, request: httpx.Request, answer: Any) -> httpx.Response:
        self.calls.append(request.url.path.removeprefix("/api/v3"))
        self.headers.append(request.headers)
        if self.down:
            raise httpx.ConnectError("connection refused", request=request)
        if isinstance(answer, httpx.Response):
            return answer
        if answer is None:
            return httpx.Response(404, json={"message": "Not Found"})
        return httpx.Response(200, json=answer)

    def compare(self, request: httpx.Request, base: str, head: str) -> httpx.Response:
        found = self.compares.get((base, head))
        body: Json = {"status": found, "ahead_by": 1, "behind_by": 0, "commits": []}
        return self._answer(request, body if isinstance(found, str) else found)

    def status(self, request: httpx.Request, sha: str) -> httpx.Response:
        statuses = self.statuses.get(sha, [])
        return self._answer(
            request,
            {"state": "pending", "sha": sha, "total_count": len(statuses), "statuses": statuses},
        )

    def check_suites(self, request: httpx.Request, sha: str) -> httpx.Response:
        suites = self.suites.get(sha, [])
        return self._answer(request, {"total_count": len(suites), "check_suites": suites})


@pytest.fixture
def redis_client(server_or_cluster: Client) -> Client:
    """Every test here runs on one server and on a three-master Redis Cluster."""
    return server_or_cluster


@pytest.fixture
def peer() -> Iterator[GitHubPeer]:
    github = GitHubPeer()
    with respx.mock(base_url=GITHUB, assert_all_called=False) as mock:
        mock.get(path__regex=r"/repos/acme/api/compare/(?P<base>\w+)\.\.\.(?P<head>[\w/.-]+)").mock(
            side_effect=github.compare
        )
        mock.get(path__regex=r"/repos/acme/api/commits/(?P<sha>\w+)/status").mock(
            side_effect=github.status
        )
        mock.get(path__regex=r"/repos/acme/api/commits/(?P<sha>\w+)/check-suites").mock(
            side_effect=github.check_suites
        )
        yield github


@pytest.fixture
async def view(redis_client: Client, peer: GitHubPeer) -> AsyncIterator[GitHubView]:
    made = GitHubView(redis_client, GitHubClient(GITHUB, None, timeout=5.0), RETRY, POLL)
    yield made
    await made.aclose()


def on_main(peer: GitHubPeer, *shas: str) -> None:
    for sha in shas:
        peer.compares[(sha, "main")] = "ahead"


async def facts(
    view: GitHubView,
    now: datetime = NOW,
    *,
    fetch: bool = True,
    svc: Any = API,
    pair: tuple[str, str] = (SOURCE, TARGET),
) -> GitHubFacts:
    return (await view.gather(svc, [pair], now, fetch=fetch))[pair]


def push(after: str | None, before: str | None = None, *commits: str, forced: bool = False) -> Push:
    return Push(REPO, "main", before, after, tuple(commits), forced)


# on the branch and ahead, from GitHub's compare ------------------------------------------


async def test_on_the_branch_and_ahead_then_cached(view: GitHubView, peer: GitHubPeer) -> None:
    on_main(peer, SOURCE)
    peer.compares[(TARGET, SOURCE)] = "ahead"
    assert await facts(view) == GitHubFacts(True, Relation.AHEAD)
    assert peer.calls == [
        f"/repos/acme/api/compare/{SOURCE}...main",
        f"/repos/acme/api/compare/{TARGET}...{SOURCE}",
    ]
    assert "authorization" not in peer.headers[0]  # no GITHUB_TOKEN: anonymous calls

    peer.calls.clear()
    later = NOW + timedelta(days=1)
    assert await facts(view, later) == GitHubFacts(True, Relation.AHEAD)
    assert peer.calls == []  # a commit on the branch stays there; a compare never changes


@pytest.mark.parametrize(
    ("relation", "expected"),
    [
        pytest.param("behind", Relation.BEHIND, id="behind"),
        pytest.param("diverged", Relation.DIVERGED, id="diverged"),
        pytest.param("identical", Relation.IDENTICAL, id="identical"),
        pytest.param(
            httpx.Response(
                404, json={"message": f"No common ancestor between {TARGET} and {SOURCE}."}
            ),
            Relation.DIVERGED,
            id="no-common-ancestor",
        ),
    ],
)
async def test_how_the_source_stands_to_the_target(
    view: GitHubView, peer: GitHubPeer, relation: str | httpx.Response, expected: Relation
) -> None:
    on_main(peer, SOURCE)
    peer.compares[(TARGET, SOURCE)] = relation
    assert (await facts(view)).relation is expected


async def test_not_on_the_branch_skips_the_compare_with_the_target(
    view: GitHubView, peer: GitHubPeer
) -> None:
    peer.compares[(SOURCE, "main")] = "diverged"
    assert await facts(view) == GitHubFacts(False, None)
    assert peer.calls == [f"/repos/acme/api/compare/{SOURCE}...main"]


async def test_a_negative_is_kept_briefly_and_dropped_by_a_push(
    view: GitHubView, peer: GitHubPeer, redis_client: Client
) -> None:
    peer.compares[(SOURCE, "main")] = "diverged"
    assert (await facts(view)).on_branch is False
    assert (await facts(view, NOW + timedelta(seconds=5))).on_branch is False
    assert len(peer.calls) == 1  # the negative answered the second time
    negative = keys.github_off_branch(REPO, 0, "main", SOURCE)
    assert 0 < await redis_client.ttl(negative) <= keys.GITHUB_OFF_BRANCH_TTL.total_seconds()
    stale = NOW + keys.GITHUB_OFF_BRANCH_FRESH
    assert (await facts(view, stale, fetch=False)).on_branch is False  # still shown
    assert len(peer.calls) == 1
    assert (await facts(view, stale)).on_branch is False  # asked again before deciding
    assert len(peer.calls) == 2

    await view.record_push(push(OTHER, TARGET, OTHER))  # something was merged into main
    on_main(peer, SOURCE)  # ... and it was our commit
    peer.compares[(TARGET, SOURCE)] = "ahead"
    assert await facts(view, stale + timedelta(seconds=1)) == GitHubFacts(True, Relation.AHEAD)
    assert peer.calls[2] == f"/repos/acme/api/compare/{SOURCE}...main"


# what pushes prove, without a call -------------------------------------------------------


async def test_pushes_prove_on_branch_and_order_without_a_call(
    view: GitHubView, peer: GitHubPeer
) -> None:
    await view.record_push(push(TARGET, None, TARGET))  # creates main at TARGET
    await view.record_push(push(OTHER, TARGET, OTHER))
    await view.record_push(push(SOURCE, OTHER, "d" * 40, SOURCE))
    assert await facts(view) == GitHubFacts(True, Relation.AHEAD)
    assert await facts(view, pair=(TARGET, SOURCE)) == GitHubFacts(True, Relation.BEHIND)
    assert await facts(view, pair=("d" * 40, TARGET)) != GitHubFacts(None)  # listed: on main
    assert peer.calls == [f"/repos/acme/api/compare/{TARGET}...{'d' * 40}"]  # not a push head


async def test_a_forced_push_clears_what_is_cached(view: GitHubView, peer: GitHubPeer) -> None:
    on_main(peer, SOURCE)
    peer.compares[(TARGET, SOURCE)] = "ahead"
    await view.record_push(push(SOURCE, TARGET, SOURCE))
    assert await facts(view) == GitHubFacts(True, Relation.AHEAD)
    assert peer.calls == []

    await view.record_push(push(OTHER, SOURCE, OTHER, forced=True))  # SOURCE rewritten away
    peer.compares[(SOURCE, "main")] = "diverged"
    assert await facts(view) == GitHubFacts(False, None)
    assert peer.calls == [f"/repos/acme/api/compare/{SOURCE}...main"]
    assert await facts(view, pair=(OTHER, TARGET)) != GitHubFacts(None)  # the new head is on main


async def test_a_push_after_another_process_rewrote_the_branch_is_kept_where_it_is_read(
    view: GitHubView, peer: GitHubPeer, redis_client: Client
) -> None:
    await view.record_push(push(TARGET, None, TARGET))  # this process sees generation 0
    elsewhere = GitHubView(redis_client, GitHubClient(GITHUB, None, timeout=5.0), RETRY, POLL)
    await elsewhere.record_push(push(TARGET, None, TARGET, forced=True))  # generation 1
    await view.record_push(push(SOURCE, TARGET, SOURCE))  # written under 0, then under 1
    assert await facts(view) == GitHubFacts(True, Relation.AHEAD)
    assert peer.calls == []
    await elsewhere.aclose()


async def test_a_delivery_seen_before_records_nothing_and_says_so(
    view: GitHubView, redis_client: Client
) -> None:
    seen = keys.github_seen(REPO, "d-1")
    elsewhere = GitHubView(redis_client, GitHubClient(GITHUB, None, timeout=5.0), RETRY, POLL)
    await elsewhere.record_push(push(TARGET, None, TARGET, forced=True))  # generation 1 there
    assert await view.record_push(push(SOURCE, TARGET, SOURCE), seen) is True  # 0, then 1
    assert await redis_client.get(seen) == "1"
    assert await view.record_push(push(SOURCE, TARGET, SOURCE), seen) is False
    assert await redis_client.get(keys.github_pushes(REPO, "main")) == "2"  # counted once here
    forced = keys.github_seen(REPO, "d-2")
    assert await view.record_push(push(OTHER, SOURCE, OTHER, forced=True), forced) is True
    assert await view.record_push(push(OTHER, SOURCE, OTHER, forced=True), forced) is False
    assert await redis_client.get(keys.github_generation(REPO)) == "2"  # one rewrite, not two
    await elsewhere.aclose()


async def test_where_the_branch_stands_may_come_read_already(
    view: GitHubView, peer: GitHubPeer, redis_client: Client
) -> None:
    await view.record_push(push(SOURCE, TARGET, SOURCE))  # generation 0: on main, ahead
    batch = Batch()
    read = GitHubView.send_branch_read(batch, REPO, "main")
    await batch.send(redis_client)
    assert read.value == Branch(REPO, "main", 0, 1)  # no rewrite yet; one push
    pair = (SOURCE, TARGET)
    found = await view.gather(API, [pair], NOW, branch=read.value)
    assert found[pair] == GitHubFacts(True, Relation.AHEAD)
    later = Branch(REPO, "main", 1, 2)  # as read after a rewrite elsewhere: nothing known of 1
    on_main(peer, SOURCE)
    peer.compares[(TARGET, SOURCE)] = "ahead"
    assert (await view.gather(API, [pair], NOW, branch=later))[pair].on_branch is True
    assert peer.calls  # asked GitHub: the facts of generation 0 were not read for 1


async def test_a_deleted_branch_clears_what_is_cached(view: GitHubView, peer: GitHubPeer) -> None:
    await view.record_push(push(SOURCE, TARGET, SOURCE))
    await view.record_push(push(None, SOURCE, forced=False))  # main deleted
    peer.compares[(SOURCE, "main")] = httpx.Response(404, json={"message": "Not Found"})
    found = await facts(view)
    assert found.on_branch is None
    assert found.problem == "GitHub answered 404 for acme/api: check `repo` and GITHUB_TOKEN"
    assert found.recheck_at == NOW + timedelta(seconds=POLL)  # refused: not asked again soon


# GitHub unreachable, and back --------------------------------------------------------------


async def test_unreachable_is_unknown_until_it_is_back(view: GitHubView, peer: GitHubPeer) -> None:
    peer.down = True
    found = await facts(view)
    assert found.on_branch is None
    assert found.problem is not None
    assert found.problem.startswith("GitHub unreachable: ConnectError")
    assert found.recheck_at == NOW + timedelta(seconds=RETRY)

    assert (await facts(view, NOW + timedelta(seconds=RETRY - 1))).recheck_at == found.recheck_at
    assert len(peer.calls) == 1  # a failed read is not repeated before its recheck time

    peer.down = False
    on_main(peer, SOURCE)
    peer.compares[(TARGET, SOURCE)] = "ahead"
    back = await facts(view, NOW + timedelta(seconds=RETRY))
    assert back == GitHubFacts(True, Relation.AHEAD)


async def test_fetch_false_reads_only_the_cache(view: GitHubView, peer: GitHubPeer) -> None:
    found = await facts(view, fetch=False)
    assert found == GitHubFacts(None, problem="not read from GitHub yet")
    assert peer.calls == []

    on_main(peer, SOURCE)
    peer.compares[(TARGET, SOURCE)] = "ahead"
    await facts(view)
    peer.calls.clear()
    assert await facts(view, fetch=False) == GitHubFacts(True, Relation.AHEAD)
    assert peer.calls == []


async def test_fetch_false_tells_the_last_failure(view: GitHubView, peer: GitHubPeer) -> None:
    peer.down = True
    await facts(view)
    found = await facts(view, NOW + timedelta(hours=1), fetch=False)
    assert found.problem is not None
    assert found.problem.startswith("GitHub unreachable")
    assert len(peer.calls) == 1


async def test_a_service_without_a_repo_gathers_nothing(view: GitHubView, peer: GitHubPeer) -> None:
    assert await view.gather(service(), [(SOURCE, TARGET)], NOW) == {}
    assert await view.gather(API, [], NOW) == {}
    assert peer.calls == []


# checks ------------------------------------------------------------------------------------


def report(key: str, state: str, at: datetime = NOW, name: str | None = None) -> CheckReport:
    return CheckReport(REPO, SOURCE, key, name or key.partition(":")[2], state, at)


async def on_and_ahead(view: GitHubView) -> None:
    await view.record_push(push(TARGET, None, TARGET))
    await view.record_push(push(SOURCE, TARGET, SOURCE))


async def test_recorded_checks_join_githubs_answer(view: GitHubView, peer: GitHubPeer) -> None:
    await on_and_ahead(view)
    await view.record_check(report("status:ci/build", "success"))
    await view.record_check(report("suite:7", "success", name="github-actions"))
    found = await facts(view, svc=CHECKED)
    assert found == GitHubFacts(True, Relation.AHEAD, Checks(ChecksState.SUCCESS))
    assert len(peer.calls) == 2  # GitHub's statuses and suites of the commit: the whole truth

    await view.record_check(report("suite:8", "timed_out", name="github-actions"))
    found = await facts(view, NOW + timedelta(seconds=RETRY), svc=CHECKED)
    assert found.checks == Checks(ChecksState.FAILURE, failing=("github-actions",))


async def test_the_latest_report_of_a_context_wins(view: GitHubView, peer: GitHubPeer) -> None:
    await on_and_ahead(view)
    assert await view.record_check(report("status:ci", "pending", NOW))
    assert await view.record_check(report("status:ci", "success", NOW + timedelta(minutes=2)))
    # a delivery that crossed the newer one on the way is not taken
    assert not await view.record_check(report("status:ci", "failure", NOW + timedelta(minutes=1)))
    assert (await facts(view, svc=CHECKED)).checks == Checks(ChecksState.SUCCESS)


async def test_checks_fall_back_to_the_api(view: GitHubView, peer: GitHubPeer) -> None:
    await on_and_ahead(view)
    peer.statuses[SOURCE] = [
        {"context": "ci/build", "state": "success"},
        {"context": "cascade/api-st", "state": "pending"},  # Cascade's own: left out
    ]
    peer.suites[SOURCE] = [
        {
            "id": 1,
            "status": "in_progress",
            "conclusion": None,
            "app": {"slug": "github-actions"},
            "latest_check_runs_count": 2,
        },
        {
            "id": 2,
            "status": "queued",
            "conclusion": None,
            "app": {"slug": "dependabot"},
            "latest_check_runs_count": 0,
        },  # an app that runs no check: left out
    ]
    found = await facts(view, svc=CHECKED)
    assert found.checks == Checks(ChecksState.PENDING, pending=("github-actions",))
    assert found.recheck_at == NOW + timedelta(seconds=POLL)  # no webhook will say: look again
    assert sorted(peer.calls) == [
        f"/repos/acme/api/commits/{SOURCE}/check-suites",
        f"/repos/acme/api/commits/{SOURCE}/status",
    ]

    peer.calls.clear()
    assert (await facts(view, NOW + timedelta(seconds=1), svc=CHECKED)).checks == found.checks
    assert peer.calls == []  # read again only after a poll interval

    peer.suites[SOURCE][0].update(status="completed", conclusion="success")
    later = await facts(view, NOW + timedelta(seconds=POLL), svc=CHECKED)
    assert later.checks == Checks(ChecksState.SUCCESS)
    assert later.recheck_at is None


def suite(number: int, app: str, conclusion: str | None, at: datetime = NOW, runs: int = 1) -> Json:
    """A check suite as GitHub's REST API lists it."""
    return {
        "id": number,
        "status": "completed" if conclusion else "in_progress",
        "conclusion": conclusion,
        "app": {"slug": app},
        "latest_check_runs_count": runs,
        "updated_at": at.isoformat().replace("+00:00", "Z"),
    }


async def test_a_green_suite_reported_by_webhook_does_not_hide_one_still_running(
    view: GitHubView, peer: GitHubPeer
) -> None:
    """Repository webhooks bring a check suite only when it completes: the first green one
    says nothing of the others, so GitHub is asked for every suite of the commit."""
    await on_and_ahead(view)
    await view.record_check(report("suite:7", "success", name="github-actions"))
    peer.suites[SOURCE] = [suite(7, "github-actions", "success"), suite(9, "circleci", None)]
    found = await facts(view, svc=CHECKED)
    assert found.checks == Checks(ChecksState.PENDING, pending=("circleci",))


async def test_checks_are_read_again_after_each_webhook_on_the_commit(
    view: GitHubView, peer: GitHubPeer
) -> None:
    await on_and_ahead(view)
    peer.statuses[SOURCE] = [
        {"context": "ci", "state": "success", "updated_at": "2026-05-01T11:00:00Z"}
    ]
    assert (await facts(view, svc=CHECKED)).checks == Checks(ChecksState.SUCCESS)
    assert len(peer.calls) == 2
    later = NOW + timedelta(hours=5)
    assert (await facts(view, later, svc=CHECKED)).checks == Checks(ChecksState.SUCCESS)
    assert len(peer.calls) == 2  # green and nothing said since: cached, however long

    peer.suites[SOURCE] = [suite(3, "circleci", "failure", NOW)]
    await view.record_check(report("suite:3", "failure", NOW, name="circleci"))
    found = await facts(view, later, svc=CHECKED)
    assert found.checks == Checks(ChecksState.FAILURE, failing=("circleci",))
    assert len(peer.calls) == 4  # the webhook concerned the commit: GitHub asked again
    await view.record_check(report("suite:3", "failure", NOW, name="circleci"))  # a repeat
    assert (await facts(view, later, svc=CHECKED)).checks == found.checks
    assert len(peer.calls) == 4


async def test_a_burst_of_webhooks_reads_github_at_most_once_per_retry(
    view: GitHubView, peer: GitHubPeer
) -> None:
    """Every status change of every context is a delivery: the calls stay bounded by time."""
    await on_and_ahead(view)
    peer.suites[SOURCE] = [suite(3, "circleci", None)]
    found = await facts(view, svc=CHECKED)
    assert found.checks == Checks(ChecksState.PENDING, pending=("circleci",))
    assert len(peer.calls) == 2
    soon = NOW + timedelta(seconds=1)
    for n, at in enumerate((soon, soon + timedelta(seconds=1))):
        await view.record_check(report(f"status:lint-{n}", "pending", at, name=f"lint-{n}"))
        found = await facts(view, at, svc=CHECKED)
        assert found.checks is None  # changed since GitHub was asked, asked too recently
        assert found.problem == "the checks changed since GitHub was last asked; asking again soon"
        assert found.recheck_at == NOW + timedelta(seconds=RETRY)
    assert len(peer.calls) == 2
    later = NOW + timedelta(seconds=RETRY)
    found = await facts(view, later, svc=CHECKED)
    assert found.checks == Checks(ChecksState.PENDING, pending=("circleci", "lint-0", "lint-1"))
    assert len(peer.calls) == 4  # one read for the whole burst


async def test_a_webhook_newer_than_the_apis_answer_wins(
    view: GitHubView, peer: GitHubPeer
) -> None:
    """GitHub's API may lag behind the delivery that made Cascade ask it."""
    await on_and_ahead(view)
    peer.suites[SOURCE] = [suite(3, "circleci", "success", NOW)]
    await view.record_check(report("suite:3", "failure", NOW + timedelta(minutes=1), "circleci"))
    found = await facts(view, svc=CHECKED)
    assert found.checks == Checks(ChecksState.FAILURE, failing=("circleci",))


async def test_more_checks_than_one_page_are_unknown(view: GitHubView, peer: GitHubPeer) -> None:
    await on_and_ahead(view)
    peer.suites[SOURCE] = [suite(n, f"app-{n}", "success") for n in range(101)]
    found = await facts(view, svc=CHECKED)
    assert found.checks is None
    assert found.problem is not None
    assert "101 check suites" in found.problem


async def test_webhook_reports_alone_do_not_open_when_github_is_unreachable(
    view: GitHubView, peer: GitHubPeer
) -> None:
    await on_and_ahead(view)
    await view.record_check(report("suite:7", "success", name="github-actions"))
    peer.down = True
    found = await facts(view, svc=CHECKED)
    assert found.checks is None
    assert found.problem is not None
    assert "unreachable" in found.problem


async def test_no_checks_at_all(view: GitHubView, peer: GitHubPeer) -> None:
    await on_and_ahead(view)
    assert (await facts(view, svc=CHECKED)).checks == Checks(ChecksState.NONE)


async def test_unreadable_checks_are_unknown(view: GitHubView, peer: GitHubPeer) -> None:
    await on_and_ahead(view)
    peer.down = True
    found = await facts(view, svc=CHECKED)
    assert (found.on_branch, found.relation, found.checks) == (True, Relation.AHEAD, None)
    assert found.problem is not None
    assert "unreachable" in found.problem
    assert found.recheck_at == NOW + timedelta(seconds=RETRY)


async def test_checks_are_not_read_for_a_commit_that_may_not_move(
    view: GitHubView, peer: GitHubPeer
) -> None:
    peer.compares[(SOURCE, "main")] = "diverged"
    assert (await facts(view, svc=CHECKED)).checks is None
    assert peer.calls == [f"/repos/acme/api/compare/{SOURCE}...main"]


# the client --------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("answer", "problem"),
    [
        pytest.param(
            httpx.Response(404, json={"message": "Not Found"}),
            "GitHub answered 404 for acme/api: check `repo` and GITHUB_TOKEN",
            id="404",
        ),
        pytest.param(
            httpx.Response(401, json={"message": "Bad credentials"}),
            "GitHub answered 401 for acme/api: GITHUB_TOKEN is not accepted",
            id="401",
        ),
        pytest.param(
            httpx.Response(502, text="<html>bad gateway</html>"),
            "GitHub answered 502 for acme/api: <html>bad gateway</html>",
            id="502",
        ),
        pytest.param(
            httpx.Response(200, json={"status": "sideways"}),
            "GitHub's compare of acme/api has no known status: 'sideways'",
            id="unknown-status",
        ),
    ],
)
async def test_refusals_say_what_to_check_and_never_the_token(
    answer: httpx.Response, problem: str
) -> None:
    with respx.mock(base_url=GITHUB) as mock:
        route = mock.get(f"/repos/acme/api/compare/{SOURCE}...main").mock(return_value=answer)
        client = GitHubClient(GITHUB, TOKEN)
        with pytest.raises(GitHubError) as caught:
            await client.compare(REPO, SOURCE, "main")
        await client.aclose()
    assert str(caught.value) == problem
    assert TOKEN not in str(caught.value)
    assert route.calls[0].request.headers["authorization"] == f"Bearer {TOKEN}"


async def test_a_used_up_rate_limit_says_until_when() -> None:
    reset = datetime(2026, 5, 1, 12, 30, tzinfo=UTC)
    headers = {"x-ratelimit-remaining": "0", "x-ratelimit-reset": str(int(reset.timestamp()))}
    with respx.mock(base_url=GITHUB) as mock:
        mock.get(f"/repos/acme/api/compare/{SOURCE}...main").mock(
            return_value=httpx.Response(403, headers=headers, json={"message": "rate limit"})
        )
        client = GitHubClient(GITHUB, None)
        with pytest.raises(GitHubError) as caught:
            await client.compare(REPO, SOURCE, "main")
        await client.aclose()
    assert caught.value.retry_at == reset
    assert str(caught.value) == (
        "GitHub's rate limit is used up until 12:30 UTC"
        " (set GITHUB_TOKEN: 5000 calls an hour instead of 60)"
    )


async def test_a_rate_limit_is_waited_out(redis_client: Client, peer: GitHubPeer) -> None:
    reset = NOW + timedelta(minutes=20)
    headers = {"x-ratelimit-remaining": "0", "x-ratelimit-reset": str(int(reset.timestamp()))}
    peer.compares[(SOURCE, "main")] = httpx.Response(403, headers=headers, json={"message": "x"})
    view = GitHubView(redis_client, GitHubClient(GITHUB, None), RETRY, POLL)
    found = await facts(view)
    await view.aclose()
    assert found.recheck_at == reset
