"""`cascade check` against peers that answer badly, and the client's plain errors.

Peers are replaced at the HTTP boundary with respx (an unmatched request fails the
test); Redis is the session's real server. `tests/e2e/test_cli.py` runs every
subcommand against a running Cascade and a sandbox platform.
"""

import argparse
import re
import subprocess
import sys
from collections.abc import Callable, Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import httpx
import pytest
import respx

from app.cli import check, remote, serve, status
from app.cli import main as cli
from app.config.settings import Settings
from tests.inprocess import clean_environment
from tests.redis_cluster import ValkeyCluster

HEROKU = "https://heroku.test"
GITHUB = "https://github.test"
LIBRATO = "https://librato.test"
FEED = "https://status.test/api/v2/summary.json"
SECRETS = ("heroku-sekrit", "github-sekrit", "librato-sekrit", "slack-sekrit", "admin-sekrit")
SERVICES = """
[[service]]
name = "api"
pipeline = "api"
stages = ["api-qa", "api-prod"]
repo = "acme/api"
urls = ["https://ci.test/ok", "https://ci.test/down"]
"""
Run = Callable[..., tuple[int, str, str]]


@pytest.fixture
def run(tmp_path: Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch) -> Run:
    """Run `cascade ARGS` with these settings (none read from the environment)."""
    clean_environment(monkeypatch)

    def run(*argv: str, services: str = SERVICES, **settings: Any) -> tuple[int, str, str]:
        config = tmp_path / "cascade.toml"
        config.write_text(services)
        values: dict[str, Any] = {"config_path": config, "data_dir": tmp_path / "data"}
        values.update(settings)
        chosen = Settings(_env_file=None, **values)  # type: ignore[call-arg]
        for module in (serve, check, remote):  # each command reads the settings itself
            monkeypatch.setattr(module, "get_settings", lambda: chosen)
        code = cli.main(list(argv))
        out, err = capsys.readouterr()
        return code, out, err

    return run


@pytest.fixture
def peers() -> Iterator[respx.MockRouter]:
    with respx.mock(assert_all_called=False) as router:
        router.get(f"{GITHUB}/rate_limit").respond(200, json={"rate": {"remaining": 4999}})
        router.get(f"{GITHUB}/repos/acme/api").respond(200, json={"full_name": "acme/api"})
        router.get(f"{LIBRATO}/v1/alerts").respond(200, json={"alerts": []})
        router.get(FEED).respond(200, json={"incidents": []})
        router.get("https://ci.test/ok").respond(200)
        router.get("https://ci.test/down").respond(503)
        yield router


def configured(**overrides: Any) -> dict[str, Any]:
    values = {
        "heroku_api_key": SECRETS[0],
        "heroku_api_url": HEROKU,
        "github_token": SECRETS[1],
        "github_api_url": GITHUB,
        "librato_user": "ops@acme.test",
        "librato_token": SECRETS[2],
        "librato_api_url": LIBRATO,
        "status_api_url": FEED,
        "slack_webhook_url": f"https://hooks.slack.test/{SECRETS[3]}",
        "admin_token": SECRETS[4],
        "heroku_webhook_secret": "hook",
    }
    values.update(overrides)
    return values


def lines(out: str) -> dict[str, str]:
    """Each finding by its item: "✗ url https://x: ..." → {"url https://x": "✗ ..."}."""
    found = {}
    for line in out.splitlines():
        mark, _, rest = line.partition(" ")
        item, _, text = rest.partition(": ")
        found[item] = f"{mark} {text}"
    return found


def test_a_bad_services_file_is_named_and_nothing_else_is_tried(run: Run) -> None:
    bad = SERVICES.replace('repo = "acme/api"', 'repository = "acme/api"')
    code, out, err = run("check", services=bad)
    assert code == 1
    (line,) = out.splitlines()
    assert line.startswith("✗ services file: ")
    assert 'service "api": unknown field "repository"' in line
    assert "1 problem found" in err


def test_every_configured_peer_gets_one_line(
    run: Run, peers: respx.MockRouter, redis_url: str
) -> None:
    peers.get(f"{HEROKU}/pipelines/api").respond(404, json={"id": "not_found", "message": "no"})
    code, out, err = run("check", **configured(redis_url=redis_url))
    found = lines(out)
    assert found["services file"].startswith("✓ ")
    assert found["Redis"] == "✓ REDIS_URL answers: one server"
    assert found["Heroku token"] == f"✓ accepted by {HEROKU}"
    assert found["pipeline api"].startswith("✗ not found, or the token cannot see it")
    assert 'check "pipeline" of service "api"' in found["pipeline api"]
    assert found["GitHub token"] == f"✓ accepted by {GITHUB}"
    assert found["repo acme/api"] == "✓ readable (service api)"
    assert found["Librato"] == f"✓ credentials accepted by {LIBRATO}"
    assert found["status feed"] == f"✓ {FEED} answers"
    assert found["url https://ci.test/ok"] == "✓ answers 200 (service api)"
    assert found["url https://ci.test/down"].startswith("✗ answers HTTP 503: the urls gate")
    assert found["Slack"].startswith("- CASCADE_SLACK_WEBHOOK_URL set (not tried")
    assert code == 1
    assert "2 problems found" in err
    for secret in SECRETS:
        assert secret not in out + err


def test_a_refused_heroku_token_says_how_to_get_one(run: Run, peers: respx.MockRouter) -> None:
    peers.get(f"{HEROKU}/pipelines/api").respond(401, json={"id": "unauthorized"})
    code, out, _err = run("check", **configured())
    assert lines(out)["Heroku token"] == (
        f"✗ refused by {HEROKU} (401): create one (heroku authorizations:create)"
        " and set HEROKU_API_KEY"
    )
    assert "pipeline api" not in lines(out)
    assert code == 1


def test_without_a_public_url_it_prints_the_webhook_commands(
    run: Run, peers: respx.MockRouter
) -> None:
    peers.get(f"{HEROKU}/pipelines/api").respond(401, json={"id": "unauthorized"})
    _code, out, _err = run("check", **configured())
    commands = [line.strip() for line in out.splitlines() if "webhooks:add" in line]
    assert commands == [
        "heroku webhooks:add -i api:release -l sync -u https://CASCADE-PUBLIC-URL/webhooks/heroku"
        f' -s "$HEROKU_WEBHOOK_SECRET" -a {app}'
        for app in ("api-qa", "api-prod")
    ]
    with_url = run("check", **configured(public_url="https://cascade.acme.test"))[1]
    assert "webhooks:add" not in with_url
    assert lines(with_url)["public URL"] == (
        "- Cascade keeps the api:release subscriptions at"
        " https://cascade.acme.test/webhooks/heroku (from CASCADE_PUBLIC_URL)"
    )


def test_check_says_the_public_url_came_from_heroku_s_dyno_metadata(
    run: Run, peers: respx.MockRouter
) -> None:
    """`heroku run cascade check` on a one-off dyno confirms the dyno metadata is on."""
    peers.get(f"{HEROKU}/pipelines/api").respond(401, json={"id": "unauthorized"})
    domain = "cascade-1a2b3c4d5e6f.herokuapp.com"
    out = run("check", **configured(heroku_app_default_domain_name=domain))[1]
    assert "webhooks:add" not in out
    assert lines(out)["public URL"] == (
        f"- Cascade keeps the api:release subscriptions at https://{domain}/webhooks/heroku"
        " (from HEROKU_APP_DEFAULT_DOMAIN_NAME, Heroku's dyno metadata)"
    )


def test_an_unreachable_heroku_is_one_line(run: Run, peers: respx.MockRouter) -> None:
    peers.get(f"{HEROKU}/pipelines/api").mock(side_effect=httpx.ConnectError("refused"))
    code, out, _err = run("check", **configured())
    assert lines(out)["Heroku"].startswith(f"✗ cannot reach {HEROKU}")
    assert "check HEROKU_API_URL" in lines(out)["Heroku"]
    assert code == 1


@pytest.mark.parametrize(
    ("route", "answer", "item", "expected"),
    [
        ("rate_limit", 401, "GitHub token", "✗ refused by https://github.test (HTTP 401)"),
        ("repos/acme/api", 404, "repo acme/api", "✗ not readable (HTTP 404)"),
    ],
    ids=["token", "repo"],
)
def test_github_problems(
    run: Run, peers: respx.MockRouter, route: str, answer: int, item: str, expected: str
) -> None:
    peers.get(f"{GITHUB}/{route}").respond(answer)
    code, out, _err = run("check", **configured(heroku_api_key=None))
    assert lines(out)[item].startswith(expected)
    assert code == 1


def test_github_without_a_token_is_a_note(run: Run, peers: respx.MockRouter) -> None:
    _code, out, _err = run("check", **configured(heroku_api_key=None, github_token=None))
    assert lines(out)["GitHub"].startswith("- GITHUB_TOKEN not set")
    assert lines(out)["repo acme/api"] == "✓ readable (service api)"
    assert "GitHub token" not in lines(out)
    (asked,) = [c.request for c in peers.calls if c.request.url.path == "/repos/acme/api"]
    assert "Authorization" not in asked.headers


@pytest.mark.parametrize(
    ("overrides", "answer", "expected"),
    [
        ({"librato_token": None}, None, "✗ LIBRATO_TOKEN is not set: set both or neither"),
        ({"librato_user": None}, None, "✗ LIBRATO_USER is not set: set both or neither"),
        ({}, 401, "✗ refused by https://librato.test (HTTP 401)"),
        ({"librato_user": None, "librato_token": None}, None, "- not configured"),
    ],
    ids=["no-token", "no-user", "refused", "unset"],
)
def test_librato(
    run: Run,
    peers: respx.MockRouter,
    overrides: dict[str, Any],
    answer: int | None,
    expected: str,
) -> None:
    if answer:
        peers.get(f"{LIBRATO}/v1/alerts").respond(answer)
    _code, out, _err = run("check", **configured(heroku_api_key=None, **overrides))
    assert lines(out)["Librato"].startswith(expected)


@pytest.mark.parametrize(
    ("answer", "expected"),
    [
        (httpx.Response(503), "HTTP 503: STATUS_API_URL should be"),
        (httpx.Response(200, text="<html>"), "answered, but not with a JSON object"),
        (httpx.ConnectTimeout("slow"), "no answer within 5s"),
    ],
    ids=["down", "not-json", "timeout"],
)
def test_status_feed_problems(
    run: Run, peers: respx.MockRouter, answer: httpx.Response | Exception, expected: str
) -> None:
    peers.get(FEED).mock(side_effect=[answer])
    code, out, _err = run("check", **configured(heroku_api_key=None))
    assert lines(out)["status feed"].startswith("✗ ")
    assert expected in lines(out)["status feed"]
    assert code == 1


def test_nothing_configured_is_notes_only(run: Run, peers: respx.MockRouter) -> None:
    bare = SERVICES.replace("urls", "alerts").replace('repo = "acme/api"', "")
    code, out, _err = run("check", services=bare)
    found = lines(out)
    assert found["GitHub"] == "- no service names a repo: skipped"
    assert found["Heroku"].startswith("- HEROKU_API_KEY not set: Cascade runs on the sandbox")
    assert found["Redis"].startswith("- REDIS_URL not set")
    assert found["status feed"] == "- STATUS_API_URL not set: skipped"
    assert found["Librato"] == "- not configured: alerts come from webhooks only"
    assert found["admin token"].startswith("- CASCADE_ADMIN_TOKEN not set")
    assert code == 0


def test_an_unreachable_redis_is_named_without_its_url(run: Run, peers: respx.MockRouter) -> None:
    url = "redis://:redis-sekrit@127.0.0.1:1/0"
    code, out, _err = run("check", **configured(heroku_api_key=None, redis_url=url))
    assert lines(out)["Redis"].startswith("✗ no answer (ConnectionError): check REDIS_URL")
    assert "redis-sekrit" not in out
    assert code == 1


# the client's errors, with nothing listening ---------------------------------------------


def test_an_unreachable_cascade_is_exit_2_with_where_it_looked(run: Run) -> None:
    code, out, err = run("status", url="http://127.0.0.1:1")
    assert code == 2
    assert out == ""
    assert err.startswith("cascade: cannot reach Cascade at http://127.0.0.1:1 (")
    assert "is it running? CASCADE_URL says where" in err


def test_an_until_duration_becomes_a_time() -> None:
    assert cli._until("2026-05-01T18:00:00Z") == "2026-05-01T18:00:00Z"
    assert cli._until("2h").endswith("+00:00")


@pytest.mark.parametrize("until", ["tomorrow", "", "2h later", "2026-13-01T00:00Z"])
def test_an_until_that_is_neither_a_time_nor_a_duration_is_a_usage_error(
    run: Run, capsys: pytest.CaptureFixture[str], until: str
) -> None:
    """Nothing is sent: the error names the forms accepted, and exits 2 as usage errors do."""
    with respx.mock(assert_all_called=False) as cascade:
        sent = cascade.post("http://cascade.test/pause").respond(201)
        with pytest.raises(SystemExit) as exited:
            run("pause", "--reason", "r", "--until", until, url="http://cascade.test")
    assert exited.value.code == 2
    assert not sent.called
    err = capsys.readouterr().err
    assert f"argument --until: {until!r} is neither an RFC 3339 time" in err
    assert "nor a duration (2h, 30m, 1d, 1h30m)" in err
    assert "too short" not in err


def test_recover_confirms_a_data_loss_with_the_admin_token(run: Run) -> None:
    with respx.mock(assert_all_called=True) as cascade:
        confirmed = cascade.post("http://cascade.test/recover").respond(
            202, json={"detail": "data loss confirmed: promoting again (Redis lost ...)"}
        )
        code, out, err = run("recover", url="http://cascade.test", admin_token="admin-sekrit")
    assert (code, err) == (0, "")
    assert out == "data loss confirmed: promoting again (Redis lost ...)\n"
    assert confirmed.calls.last.request.headers["Authorization"] == "Bearer admin-sekrit"


def test_status_names_each_source_and_whether_it_is_stale(
    capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    now = datetime.now(UTC)
    body = {
        "sandbox": False,
        "dry_run": False,
        "paused": None,
        "services": [],
        "sources": [
            {"signal": "alerts", "source": "alertmanager", "how": "webhook", "stale": False,
             "last_heard": (now - timedelta(minutes=3)).isoformat(),
             "limit_seconds": 86400.0},
            {"signal": "incidents", "source": "status webhooks", "how": "webhook", "stale": True,
             "last_heard": (now - timedelta(days=2)).isoformat(),
             "limit_seconds": 86400.0},
        ],
    }  # fmt: skip
    monkeypatch.setattr(remote, "call", lambda *args, **kwargs: body)
    assert status.status(cli._parser().parse_args(["status"])) == 0
    assert capsys.readouterr().out.splitlines() == [
        "SOURCE   alerts: last heard 3m ago from alertmanager (webhook)",
        "STALE    incidents: last heard 2d ago from status webhooks (webhook): stale, over 1d:"
        " unknown",
    ]


@pytest.mark.parametrize(
    ("message", "where"),
    [
        ('/srv/cascade.toml: service "web": unknown field "stagez"', ""),  # as Cascade says it
        ('service "web": unknown field "stagez"', "/srv/cascade.toml, "),
    ],
    ids=["message-names-the-file", "message-does-not"],
)
def test_status_says_first_that_the_services_file_was_not_reloaded(
    capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch, message: str, where: str
) -> None:
    now = datetime.now(UTC)
    problem = {
        "message": message,
        "path": "/srv/cascade.toml",
        "at": (now - timedelta(minutes=2)).isoformat(),
    }
    body = {"sandbox": True, "paused": None, "services": [], "config_problem": problem}
    monkeypatch.setattr(remote, "call", lambda *args, **kwargs: body)
    assert status.status(cli._parser().parse_args(["status"])) == 0
    first, second = capsys.readouterr().out.splitlines()
    assert first == (
        f"CONFIG   services file NOT reloaded ({where}2m ago): {message};"
        " still running the previous configuration"
    )
    assert second.startswith("SANDBOX")


def test_status_says_each_time_once_in_one_format(
    capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    """Ages in the two largest adjacent units ("2h ago", never "2h14s ago"); a wait said once;
    a pause's end in one format, the one --until takes."""
    now = datetime.now(UTC)
    release = {
        "id": "r",
        "version": 3,
        "status": "succeeded",
        "commit": "a1" * 20,
        "created_at": (now - timedelta(hours=2, seconds=14)).isoformat(),
    }
    opens = now + timedelta(seconds=18)
    waiting = {
        "from": "api-qa",
        "to": "api-st",
        "commit": "a1" * 20,
        "state": "waiting",
        "reason": "age: needs 1h in api-qa, opens in 18s",
        "opens_at": opens.isoformat(),
        "gates": [],
    }
    frozen = {**waiting, "to": "api-prod", "reason": "allow: freeze window"}
    until = datetime(2030, 5, 1, 18, 0, tzinfo=UTC)
    pause = {"reason": "incident 7", "by": "ana", "until": until.isoformat(), "service": None}
    stages = [{"app": "api-qa", "commit": "a1" * 20, "release": release}]
    api = {
        "name": "api",
        "pipeline": "api",
        "paused": None,
        "promotions": [waiting, frozen],
        "stages": stages,
    }
    body = {"sandbox": False, "dry_run": False, "paused": pause, "sources": [], "services": [api]}
    monkeypatch.setattr(remote, "call", lambda *args, **kwargs: body)
    assert status.status(cli._parser().parse_args(["status"])) == 0
    out = capsys.readouterr().out
    assert "PAUSED   everything: incident 7 (by ana), until 2030-05-01T18:00Z\n" in out
    assert out.rstrip("\n").splitlines()[4].endswith("v3       2h ago")
    lines = out.splitlines()
    assert lines[-2].endswith("age: needs 1h in api-qa, opens in 18s")  # not "moves on in" too
    assert re.search(r"allow: freeze window \(opens in 1[78]s\)$", lines[-1])


# resume says what it lifted ---------------------------------------------------------------

PAUSED = {"reason": "incident 7", "by": "ana", "until": None, "service": None}


def _status(everything: bool, services: dict[str, bool]) -> dict[str, Any]:
    return {
        "paused": PAUSED if everything else None,
        "services": [
            {"name": name, "paused": {**PAUSED, "service": name} if held else None}
            for name, held in services.items()
        ],
    }


@pytest.mark.parametrize(
    ("argv", "before", "expected"),
    [
        (
            [],
            _status(True, {"api": True, "web": False, "db": True}),
            [
                "lifted the global pause: incident 7 (by ana)",
                "still paused: api, db (cascade resume --service NAME lifts one)",
            ],
        ),
        ([], _status(True, {"api": False}), ["lifted the global pause: incident 7 (by ana)"]),
        ([], _status(False, {"api": False}), ["there was no global pause: nothing to resume"]),
        (
            [],
            _status(False, {"api": True}),
            [
                "there was no global pause: nothing to resume",
                "still paused: api (cascade resume --service NAME lifts one)",
            ],
        ),
        (
            ["--service", "api"],
            _status(True, {"api": True}),
            ["lifted the pause of service api: incident 7 (by ana)"],
        ),
        (
            ["--service", "api"],
            _status(False, {"api": False}),
            ["service api was not paused: nothing to resume"],
        ),
    ],
    ids=["global-some-remain", "global", "nothing", "only-services", "service", "service-not"],
)
def test_resume_says_exactly_what_it_lifted(
    run: Run, argv: list[str], before: dict[str, Any], expected: list[str]
) -> None:
    with respx.mock(assert_all_called=True) as cascade:
        cascade.get("http://cascade.test/status").respond(200, json=before)
        lifted = cascade.delete("http://cascade.test/pause").respond(204)
        code, out, err = run("resume", *argv, url="http://cascade.test", admin_token="t")
    assert (code, err) == (0, "")
    assert out.splitlines() == expected
    service = argv[1] if argv else None
    assert lifted.calls.last.request.url.params.get("service") == service


# a reader that leaves early ---------------------------------------------------------------

EVENTS_FOREVER = """
import sys
from app.cli import main as cli, remote
event = {"at": "2026-05-01T12:00:00+00:00", "kind": "pause.set", "service": "api",
         "message": "x" * 200}
remote.call = lambda *args, **kwargs: {"events": [event] * 5000}  # about 1 MB: more than a pipe
sys.exit(cli.main(["events"]))
"""


def test_a_reader_that_leaves_early_ends_it_quietly() -> None:
    """`cascade events | head`: no BrokenPipeError traceback, the exit code of SIGPIPE."""
    process = subprocess.Popen(
        [sys.executable, "-c", EVENTS_FOREVER],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        cwd=Path(__file__).parents[2],
    )
    assert process.stdout is not None
    assert process.stdout.read(100)  # it has started writing, and blocks on the full pipe
    process.stdout.close()
    _out, err = process.communicate(timeout=30)
    assert err.decode() == ""
    assert process.returncode == 141


# help ---------------------------------------------------------------------------------


def _parsers() -> list[tuple[str, argparse.ArgumentParser]]:
    parser = cli._parser()
    (commands,) = [a for a in parser._actions if isinstance(a, argparse._SubParsersAction)]
    return [("cascade", parser), *commands.choices.items()]


@pytest.mark.parametrize(("name", "parser"), _parsers(), ids=[name for name, _ in _parsers()])
def test_help_speaks_to_users_and_explains_every_option(
    name: str, parser: argparse.ArgumentParser
) -> None:
    text = parser.format_help()
    assert "app." not in text  # no internal module
    unexplained = [
        action.dest
        for action in parser._actions
        if not isinstance(action, argparse._SubParsersAction) and not action.help
    ]
    assert unexplained == []


# where the client looks --------------------------------------------------------------------


@pytest.mark.parametrize(
    ("settings", "expected"),
    [
        ({}, "http://localhost:8000"),
        ({"port": 8123}, "http://localhost:8123"),  # where `cascade serve` listens with PORT
        ({"port": 8123, "url": "http://cascade.test"}, "http://cascade.test"),
    ],
    ids=["default", "port", "cascade-url"],
)
def test_the_client_finds_cascade_on_port_unless_cascade_url_says(
    run: Run, settings: dict[str, Any], expected: str
) -> None:
    with respx.mock(assert_all_called=True) as cascade:
        cascade.get(f"{expected}/events").respond(200, json={"events": []})
        code, out, _err = run("events", **settings)
    assert (code, out) == (0, "no events yet\n")


@pytest.mark.parametrize(
    ("kind", "told"),
    [
        ("cluster-without-slots", "is a node of a Redis Cluster that does not serve every slot"),
        ("several-hosts", "names several servers"),
        ("several-hosts-no-port", "names several servers"),
        ("a-cluster-with-db-1", "is a node of a Redis Cluster, which has one database"),
    ],
)
def test_a_redis_cascade_cannot_use_is_named_with_what_to_do(
    run: Run,
    peers: respx.MockRouter,
    cluster_node: str,
    valkey_cluster: ValkeyCluster,
    kind: str,
    told: str,
) -> None:
    url = {
        "cluster-without-slots": cluster_node,
        "several-hosts": "redis://:redis-sekrit@a:6379,b:6379/0",
        "several-hosts-no-port": "redis://:redis-sekrit@a,b/0",
        "a-cluster-with-db-1": valkey_cluster.url.replace("/0", "/1"),
    }[kind]
    code, out, _err = run("check", **configured(heroku_api_key=None, redis_url=url))
    found = lines(out)["Redis"]
    assert found.startswith(f"✗ REDIS_URL {told}"), found
    assert "redis-sekrit" not in out
    assert code == 1


def test_a_cluster_is_checked_through_the_one_node_named(
    run: Run, peers: respx.MockRouter, valkey_cluster: ValkeyCluster
) -> None:
    _code, out, _err = run("check", **configured(heroku_api_key=None, redis_url=valkey_cluster.url))
    expected = "✓ REDIS_URL answers: a node of a Redis Cluster of 3 masters, every slot served"
    assert lines(out)["Redis"] == expected
