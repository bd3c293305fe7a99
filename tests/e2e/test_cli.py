"""Every `cascade` subcommand, run as a process against a running Cascade and a sandbox.

The console script is the one `pip install` made; its settings come from the
environment, as an operator's would: CASCADE_URL, CASCADE_ADMIN_TOKEN, and for
`check` and `serve` the platform's and Redis's.
"""

import json
import os
import shutil
import signal
import socket
import subprocess
import sys
from collections.abc import Callable
from pathlib import Path
from typing import Any

import httpx
import pytest
import redis

from tests.e2e import harness
from tests.e2e.conftest import THREE_STAGES, Cluster

SCRIPT = Path(sys.executable).with_name("cascade")
A = "a" * 40


def command() -> list[str]:
    return [str(SCRIPT)] if SCRIPT.exists() else harness.python("-m", "app.cli.main")


def cascade(*argv: str, cwd: Path, **env: str) -> subprocess.CompletedProcess[str]:
    """Run `cascade ARGV` with only these settings, in `cwd` (so no stray .env is read)."""
    peers = ("GITHUB_", "LIBRATO_", "STATUS_API_URL", "REDIS_URL")  # none but those given
    clean = {k: v for k, v in harness.base_env().items() if not k.startswith(peers)}
    return subprocess.run(
        [*command(), *argv],
        env={**clean, **env},
        cwd=cwd,
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )


@pytest.fixture
def running(cluster_factory: Callable[..., Cluster]) -> tuple[Cluster, harness.Process]:
    cluster = cluster_factory(THREE_STAGES.format(min_age="1h"))
    return cluster, cluster.start_cascade()


def client_env(process: harness.Process, token: str = harness.ADMIN) -> dict[str, Any]:
    return {"CASCADE_URL": process.url, "CASCADE_ADMIN_TOKEN": token, "cwd": process.log.parent}


def status_of(process: harness.Process) -> Any:
    return harness.get(process, "/status")


# status ---------------------------------------------------------------------------------


def test_status_is_a_readable_table(running: tuple[Cluster, harness.Process]) -> None:
    cluster, process = running
    cluster.deploy("api-qa", A)
    cluster.wait(lambda: status_of(process)["services"][0]["promotions"], "a waiting promotion")
    done = cascade("status", **client_env(process))
    assert done.returncode == 0, done.stderr
    lines = done.stdout.splitlines()
    assert "api (pipeline api)" in lines
    header = next(line for line in lines if line.strip().startswith("STAGE"))
    assert header.split() == ["STAGE", "COMMIT", "RELEASE", "SINCE"]
    for stage in status_of(process)["services"][0]["stages"]:
        row = next(line for line in lines if line.strip().startswith(stage["app"] + " "))
        assert row.split()[1] == stage["commit"][:7]
        assert row.split()[2] == f"v{stage['release']['version']}"
        assert row.rstrip().endswith("ago")
    moving = next(line for line in lines if line.strip().startswith(A[:7]))
    assert moving.split()[1:5] == ["api-qa", "→", "api-st", "waiting"]
    assert "age: needs 1h in api-qa" in moving
    assert "opens in 59m" in moving or "opens in 1h" in moving
    assert "moves on" not in moving  # the wait is said once


def test_status_json_is_the_api_answer(running: tuple[Cluster, harness.Process]) -> None:
    _cluster, process = running
    done = cascade("status", "--json", **client_env(process))
    assert done.returncode == 0, done.stderr
    assert json.loads(done.stdout) == status_of(process)
    one = cascade("status", "api", "--json", **client_env(process))
    assert json.loads(one.stdout) == harness.get(process, "/status/api")


def test_status_of_an_unknown_service(running: tuple[Cluster, harness.Process]) -> None:
    _cluster, process = running
    done = cascade("status", "nope", **client_env(process))
    assert done.returncode == 1
    assert done.stderr.strip() == "cascade: GET /status/nope: 404: no service named 'nope'"


# pause, resume, events, retry ---------------------------------------------------------


def test_pause_resume_and_events(running: tuple[Cluster, harness.Process]) -> None:
    _cluster, process = running
    env = client_env(process)
    done = cascade("pause", "--reason", "incident 42", "--until", "2h", "--by", "ana", **env)
    assert done.returncode == 0, done.stderr
    assert done.stdout.startswith("paused everything: incident 42 (by ana), until ")
    paused = status_of(process)["paused"]
    assert (paused["reason"], paused["by"]) == ("incident 42", "ana")
    shown = cascade("status", **env).stdout
    assert shown.splitlines()[0].startswith("PAUSED   everything: incident 42 (by ana), until ")

    one = cascade("pause", "--service", "api", "--reason", "migration", **env)
    assert one.stdout.strip() == "paused service api: migration"
    assert "  PAUSED: migration" in cascade("status", **env).stdout

    lifted = cascade("resume", "--service", "api", **env).stdout.strip()
    assert lifted == "lifted the pause of service api: migration"
    assert cascade("resume", **env).stdout.startswith("lifted the global pause: incident 42")
    again = cascade("resume", **env).stdout.strip()
    assert again == "there was no global pause: nothing to resume"
    assert status_of(process)["paused"] is None

    events = cascade("events", "--limit", "4", **env)
    assert events.returncode == 0
    kinds = [line.split()[2] for line in events.stdout.splitlines()]
    assert kinds == ["pause.lifted", "pause.lifted", "pause.set", "pause.set"]
    assert "everything paused: incident 42" in events.stdout
    raw = json.loads(cascade("events", "--json", "--service", "api", **env).stdout)
    assert [e["kind"] for e in raw] == ["pause.lifted", "pause.set"]


def test_retry(running: tuple[Cluster, harness.Process]) -> None:
    _cluster, process = running
    done = cascade("retry", "api", "api-st", **client_env(process))
    assert done.returncode == 0, done.stderr
    assert done.stdout.strip() == "nothing had failed; re-evaluating"
    wrong = cascade("retry", "api", "api-qa", **client_env(process))
    assert wrong.returncode == 1
    assert "'api-qa' is not a target stage of api" in wrong.stderr


def test_a_bad_until_is_refused_with_the_reason(running: tuple[Cluster, harness.Process]) -> None:
    _cluster, process = running
    done = cascade(
        "pause", "--reason", "x", "--until", "2001-01-01T00:00:00Z", **client_env(process)
    )
    assert done.returncode == 1
    assert "POST /pause: 422: until 2001-01-01T00:00:00+00:00 is in the past" in done.stderr


# refusals and an unreachable Cascade --------------------------------------------------


def test_a_wrong_token_is_refused_and_says_which_setting(
    running: tuple[Cluster, harness.Process],
) -> None:
    _cluster, process = running
    done = cascade("pause", "--reason", "x", **client_env(process, token="wrong"))
    assert done.returncode == 1
    assert done.stderr.strip() == (
        f"cascade: Cascade at {process.url} refused: missing or wrong admin token (401):"
        " CASCADE_ADMIN_TOKEN here does not match the one Cascade runs with"
    )
    assert "wrong" not in done.stderr.replace("wrong admin", "")  # the token is not echoed
    assert status_of(process)["paused"] is None


def test_no_token_at_all_says_to_set_one(running: tuple[Cluster, harness.Process]) -> None:
    _cluster, process = running
    env = client_env(process)
    del env["CASCADE_ADMIN_TOKEN"]
    done = cascade("resume", **env)
    assert done.returncode == 1
    assert "set CASCADE_ADMIN_TOKEN to the admin token Cascade runs with" in done.stderr


def test_a_cascade_without_writes_says_so(cluster_factory: Callable[..., Cluster]) -> None:
    """On a real Heroku, no token is made: writes stay disabled, and the refusal says the
    token belongs in the server's environment (setting it in the client's changes nothing)."""
    cluster = cluster_factory()
    process = harness.cascade(cluster.config, cluster.redis_url, cluster.platform, cluster.tmp)
    del process.env["CASCADE_ADMIN_TOKEN"]
    cluster.processes.append(process)
    process.start()
    done = cascade("pause", "--reason", "x", **client_env(process))
    assert done.returncode == 1
    assert f"Cascade at {process.url} refused (403): writes are disabled" in done.stderr
    assert "set CASCADE_ADMIN_TOKEN in the server's environment (where Cascade runs)" in (
        done.stderr
    )
    assert not (cluster.tmp / "data" / "admin-token").exists()


def test_an_unreachable_cascade(tmp_path: Path) -> None:
    url = f"http://127.0.0.1:{harness.free_port()}"
    for argv in (["status"], ["events"], ["pause", "--reason", "x"], ["resume"]):
        done = cascade(*argv, CASCADE_URL=url, cwd=tmp_path)
        assert done.returncode == 2
        assert done.stderr.startswith(f"cascade: cannot reach Cascade at {url} (")
        assert "is it running?" in done.stderr


def test_something_else_than_cascade(cluster_factory: Callable[..., Cluster]) -> None:
    cluster = cluster_factory()  # the sandbox answers, but it is not Cascade
    url = cluster.platform.url + "/_sandbox"
    done = cascade("status", CASCADE_URL=url, cwd=cluster.tmp)
    assert done.returncode == 1
    assert done.stderr.startswith("cascade: GET /_sandbox/status: 404: ")


# check ----------------------------------------------------------------------------------


def check_env(cluster: Cluster, config: Path, **extra: str) -> dict[str, str]:
    """A platform, Redis and services file to check: what `cascade serve` would use."""
    return {
        "CASCADE_CONFIG": str(config),
        "HEROKU_API_KEY": "e2e-platform-token",
        "HEROKU_API_URL": cluster.platform.url,
        "REDIS_URL": cluster.redis_url,
        "CASCADE_ADMIN_TOKEN": harness.ADMIN,
        **extra,
    }


def test_check_passes_on_a_sound_setup(cluster_factory: Callable[..., Cluster]) -> None:
    ok_url = "http://127.0.0.1:{port}/_sandbox/state"
    cluster = cluster_factory(THREE_STAGES.format(min_age="1h"))
    config = cluster.tmp / "with-urls.toml"
    config.write_text(
        THREE_STAGES.format(min_age="1h")
        + f'urls = ["{ok_url.format(port=cluster.platform.port)}"]\n'
    )
    done = cascade("check", cwd=cluster.tmp, **check_env(cluster, config))
    assert done.returncode == 0, done.stdout + done.stderr
    lines = done.stdout.splitlines()
    assert lines[0] == f"✓ services file: {config}: 1 service: api"
    assert "✓ Redis: REDIS_URL answers: one server" in lines
    assert f"✓ Heroku token: accepted by {cluster.platform.url}" in lines
    assert "✓ pipeline api: service api: api-qa → api-st → api-prod" in lines
    assert any(line.startswith("✓ url http://127.0.0.1:") for line in lines)
    assert "e2e-platform-token" not in done.stdout + done.stderr


@pytest.mark.parametrize(
    ("change", "expected"),
    [
        (('pipeline = "api"', 'pipeline = "nope"'), "✗ pipeline nope: not found, or the token"),
        (
            ('"api-prod"]', '"api-prod", "api-eu"]'),
            '✗ pipeline api: service "api": stage api-eu is not an app of pipeline',
        ),
        (
            ('min_age = "1h"', 'min_age = "1h"\nurls = ["http://127.0.0.1:1/down"]'),
            "✗ url http://127.0.0.1:1/down: cannot connect (ConnectError)",
        ),
    ],
    ids=["unknown-pipeline", "stage-not-in-pipeline", "url-down"],
)
def test_check_names_each_problem(
    cluster_factory: Callable[..., Cluster], change: tuple[str, str], expected: str
) -> None:
    cluster = cluster_factory(THREE_STAGES.format(min_age="1h"))
    config = cluster.tmp / "changed.toml"
    config.write_text(THREE_STAGES.format(min_age="1h").replace(*change))
    done = cascade("check", cwd=cluster.tmp, **check_env(cluster, config))
    assert done.returncode == 1
    assert any(line.startswith(expected) for line in done.stdout.splitlines()), done.stdout
    assert "1 problem found" in done.stderr


def test_check_refuses_a_bad_services_file(tmp_path: Path) -> None:
    config = tmp_path / "bad.toml"
    config.write_text('[[service]]\nname = "api"\npipeline = "api"\nmin_age = "soon"\n')
    done = cascade("check", CASCADE_CONFIG=str(config), cwd=tmp_path)
    assert done.returncode == 1
    assert done.stdout.strip() == (
        f'✗ services file: {config}: service "api": field "min_age": "soon" is not a duration'
        " (write 90s, 30m, 1h or 1h30m, or a number of seconds)"
    )


# serve ----------------------------------------------------------------------------------


@pytest.mark.parametrize("stop", [signal.SIGINT, signal.SIGTERM], ids=["SIGINT", "SIGTERM"])
def test_serve_runs_cascade_until_told_to_stop(
    cluster_factory: Callable[..., Cluster], stop: signal.Signals
) -> None:
    cluster = cluster_factory()
    port = harness.free_port()
    env = check_env(cluster, cluster.config, CASCADE_DATA_DIR=str(cluster.tmp / "data"))
    argv = [*command(), "serve", "--port", str(port)]
    served = harness.Process(
        "serve", argv, harness.base_env(**env), port, cluster.tmp / "serve.log", "/readyz"
    )
    cluster.processes.append(served)
    served.start()
    assert httpx.get(served.url + "/").status_code == 200
    assert f"Uvicorn running on http://127.0.0.1:{port} " in served.output()  # where it is
    assert served.proc is not None
    served.proc.send_signal(stop)
    # a stop asked for is a success (uvicorn would die of the signal: make said "Error 130")
    assert served.proc.wait(15) == 0
    assert "cascade stopped" in served.output()


@pytest.mark.skipif(shutil.which("make") is None, reason="needs make")
def test_make_serve_ends_quietly_on_ctrl_c(tmp_path: Path) -> None:
    """Ctrl-C reaches make, its shell and Cascade (one process group): no "make: *** Error"."""
    port = harness.free_port()
    env = harness.base_env(PORT=str(port), CASCADE_DATA_DIR=str(tmp_path / "data"))
    log = tmp_path / "make.log"
    with log.open("wb") as out:
        make = subprocess.Popen(
            ["make", "serve"],
            cwd=harness.ROOT,
            env=env,
            stdout=out,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )
    served = harness.Process("make serve", [], env, port, log, "/readyz", proc=make)
    harness.wait_for(served._ready, 60, "make serve to answer /readyz", served)
    os.killpg(make.pid, signal.SIGINT)
    make.wait(30)
    assert "cascade stopped" in served.output()
    assert "make: ***" not in served.output()


def test_the_sandbox_keeps_an_admin_token_for_the_local_client(
    tmp_path: Path, cluster_factory: Callable[..., Cluster]
) -> None:
    """No CASCADE_ADMIN_TOKEN anywhere: the sandbox makes one, the local client finds it."""
    cluster = cluster_factory()  # only to stop the servers at the end
    data = tmp_path / "data"
    port = harness.free_port()
    env = {
        k: v for k, v in harness.base_env().items() if k not in ("REDIS_URL", "PORT")
    }  # the sandbox, with its own Valkey under `data`
    env.update(CASCADE_CONFIG=str(harness.ROOT / "examples" / "demo.toml"))
    env.update(CASCADE_DATA_DIR=str(data), CASCADE_SANDBOX_DEPLOY_SECONDS="0")
    argv = [*command(), "serve", "--port", str(port)]

    def serve(name: str) -> harness.Process:
        served = harness.Process(name, argv, env, port, tmp_path / f"{name}.log", "/readyz")
        cluster.processes.append(served)  # stopped at the end, whatever happens
        return served.start(timeout=60)

    client = {"CASCADE_URL": f"http://localhost:{port}", "CASCADE_DATA_DIR": str(data)}
    first = serve("first")
    token = (data / "admin-token").read_text().strip()
    assert len(token) >= 32
    assert (data / "admin-token").stat().st_mode & 0o777 == 0o600
    done = cascade("pause", "--reason", "playing", cwd=tmp_path, **client)
    assert done.returncode == 0, done.stderr
    assert httpx.get(first.url + "/status").json()["paused"]["reason"] == "playing"
    for path in ("/", "/status", "/events", "/metrics"):
        assert token not in httpx.get(first.url + path).text
    first.stop()

    again = serve("again")
    loopback = {"CASCADE_URL": again.url}
    assert (data / "admin-token").read_text().strip() == token  # kept across the restart
    done = cascade("resume", cwd=tmp_path, **client)
    assert done.returncode == 0, done.stderr
    assert done.stdout.startswith("lifted the global pause: playing")
    elsewhere = cascade("pause", "--reason", "x", cwd=tmp_path, **{**client, **loopback})
    assert elsewhere.returncode == 0, elsewhere.stderr  # 127.0.0.1 is this machine too
    again.stop()
    for served in (first, again):
        assert "admin-token" in served.output()  # where it is, never what it is
        assert token not in served.output()


def test_serve_on_a_port_in_use_says_so_and_starts_nothing(
    cluster_factory: Callable[..., Cluster],
) -> None:
    """uvicorn binds after the app's startup: a second `cascade serve` on a port in use
    reconciled the pipeline, and could promote, for the moment it lived."""
    cluster = cluster_factory()
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        env = check_env(cluster, cluster.config, CASCADE_DATA_DIR=str(cluster.tmp / "data"))
        done = cascade("serve", "--port", str(port), cwd=cluster.tmp, **env)
    assert done.returncode == 2, done.stderr
    assert f"cascade: cannot start: cannot listen on 127.0.0.1:{port}" in done.stderr
    assert "choose another port with --port" in done.stderr
    with redis.Redis.from_url(cluster.redis_url) as seen:
        assert seen.keys("cascade:*") == []  # no data marker, no view: nothing started


def test_serve_refuses_a_bad_services_file(tmp_path: Path) -> None:
    config = tmp_path / "bad.toml"
    config.write_text("[[service]]\n")
    done = cascade("serve", CASCADE_CONFIG=str(config), cwd=tmp_path)
    assert done.returncode == 2
    assert done.stderr.startswith(f'cascade: cannot start: {config}: service #1: field "name"')
