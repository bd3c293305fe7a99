"""Start Cascade and the sandbox platform as real processes, and speak HTTP to them."""

import json
import os
import signal
import socket
import subprocess
import sys
import time
import uuid
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, TypeVar

import httpx

from tests import signing

SECRET = "e2e-webhook-secret"
ADMIN = "e2e-admin-token"
ROOT = Path(__file__).resolve().parents[2]
T = TypeVar("T")


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


@dataclass
class Process:
    """A child process serving HTTP on `port`, its output in `log`."""

    name: str
    argv: list[str]
    env: dict[str, str]
    port: int
    log: Path
    ready_path: str
    proc: subprocess.Popen[bytes] | None = field(default=None, repr=False)

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def start(self, timeout: float = 30) -> "Process":
        with self.log.open("ab") as out:
            self.proc = subprocess.Popen(
                self.argv, env=self.env, stdout=out, stderr=subprocess.STDOUT, cwd=ROOT
            )
        wait_for(lambda: self._ready(), timeout, f"{self.name} to answer {self.ready_path}", self)
        return self

    def stop(self) -> None:
        if self.proc is not None and self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
            try:
                self.proc.wait(10)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()
        self.proc = None

    def kill(self) -> None:
        """SIGKILL: no shutdown code runs, as in a crash."""
        if self.proc is not None:
            self.proc.kill()
            self.proc.wait()
        self.proc = None

    def output(self) -> str:
        return self.log.read_text(errors="replace") if self.log.exists() else ""

    def _ready(self) -> bool:
        if self.proc is not None and self.proc.poll() is not None:
            raise RuntimeError(f"{self.name} exited with {self.proc.returncode}:\n{self.output()}")
        try:
            return httpx.get(self.url + self.ready_path, timeout=1).status_code == 200
        except httpx.HTTPError:
            return False


def wait_for(
    check: Callable[[], T | bool | None],
    timeout: float = 30,
    what: str = "a condition",
    *logs: Process,
) -> T:
    """Poll `check` until it returns something truthy; fail with the processes' output."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        result = check()
        if result:
            return result  # type: ignore[return-value]
        time.sleep(0.05)
    tails = "\n".join(f"--- {p.name} ---\n{p.output()[-6000:]}" for p in logs)
    raise AssertionError(f"timed out waiting for {what}\n{tails}")


def python(*args: str) -> list[str]:
    return [sys.executable, *args]


def base_env(**extra: str) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith(("CASCADE_", "HEROKU_"))}
    env.update({"PYTHONUNBUFFERED": "1", "HEROKU_WEBHOOK_SECRET": SECRET})
    env.update(extra)
    return env


def sandbox(
    config: Path,
    cascade_port: int,
    tmp: Path,
    release_seconds: float = 0.2,
    flags: Sequence[str] = (),
) -> Process:
    """`flags`: more of `python -m app.sandbox`'s options (`--fir PIPELINE`, `--container APP`)."""
    port = free_port()
    argv = python(
        "-m", "app.sandbox", "--port", str(port), "--config", str(config),
        "--webhook-url", f"http://127.0.0.1:{cascade_port}/webhooks/heroku",
        "--release-seconds", str(release_seconds), *flags,
    )  # fmt: skip
    return Process("sandbox", argv, base_env(), port, tmp / "sandbox.log", "/_sandbox/state")


def cascade(
    config: Path,
    redis_url: str,
    platform: Process,
    tmp: Path,
    port: int | None = None,
    name: str = "cascade",
    **env: str,
) -> Process:
    port = port or free_port()
    settings = {
        "REDIS_URL": redis_url,
        "HEROKU_API_KEY": "e2e-platform-token",
        "HEROKU_API_URL": platform.url,
        "CASCADE_ADMIN_TOKEN": ADMIN,
        "CASCADE_CONFIG": str(config),
        "CASCADE_DATA_DIR": str(tmp / "data"),
        "CASCADE_TICK_SECONDS": "3600",
        "CASCADE_RESYNC_SECONDS": "3600",
    }
    settings.update(env)
    argv = python("-m", "uvicorn", "app.main:app", "--port", str(port), "--no-access-log")
    return Process(name, argv, base_env(**settings), port, tmp / f"{name}.log", "/readyz")


def sign(body: bytes, secret: str = SECRET) -> str:
    return signing.heroku(body, secret)


def deliver(url: str, payload: Mapping[str, Any], secret: str = SECRET) -> httpx.Response:
    body = json.dumps(payload).encode()
    headers = {"Heroku-Webhook-Hmac-SHA256": sign(body, secret), "Content-Type": "application/json"}
    return httpx.post(url + "/webhooks/heroku", content=body, headers=headers, timeout=10)


def admin() -> dict[str, str]:
    return {"Authorization": f"Bearer {ADMIN}"}


def get(process: Process, path: str) -> Any:
    response = httpx.get(process.url + path, timeout=10)
    response.raise_for_status()
    return response.json()


def stage_commit(status: Mapping[str, Any], app: str) -> str | None:
    for service in status["services"]:
        for stage in service["stages"]:
            if stage["app"] == app:
                return stage["commit"]  # type: ignore[no-any-return]
    return None


def peer(tmp: Path, port: int | None = None, name: str = "peer") -> Process:
    """The programmable HTTP peer of `tests.e2e.peer` (GitHub, Librato, status page, CI URL)."""
    port = port or free_port()
    argv = python("-m", "tests.e2e.peer", "--port", str(port))
    return Process(name, argv, base_env(), port, tmp / f"{name}.log", "/_peer/health")


# The fault tests (tests/e2e/test_faults*.py) -------------------------------------------

PLATFORM_HEADERS = {
    "Authorization": "Bearer operator",
    "Accept": "application/vnd.heroku+json; version=3",
}


def release_hook(
    release: Mapping[str, Any], action: str = "update", delivery: str | None = None
) -> dict[str, Any]:
    """An `api:release` event carrying `release` (a webhook's `data`), as Heroku sends it."""
    delivery = delivery or str(uuid.uuid4())
    return {
        "id": str(uuid.uuid4()),
        "action": action,
        "resource": "release",
        "version": "application/vnd.heroku+json; version=3",
        "data": dict(release),
        "webhook_metadata": {"delivery": {"id": delivery}, "attempt": {"id": str(uuid.uuid4())}},
    }


def metric(process: Process, name: str, **labels: str) -> float:
    """One sample of the process's /metrics (0 when it has none yet)."""
    text = httpx.get(process.url + "/metrics", timeout=10).text
    for line in text.splitlines():
        sample, _, value = line.rpartition(" ")
        if sample.split("{")[0] == name and all(f'{k}="{v}"' in sample for k, v in labels.items()):
            return float(value)
    return 0.0


class Answers:
    """Talks to Cascade for a test and keeps every status code, to count the 5xx."""

    def __init__(self) -> None:
        self.statuses: list[int] = []

    @property
    def five_xx(self) -> int:
        return sum(status >= 500 for status in self.statuses)

    def send(self, method: str, url: str, **kwargs: Any) -> httpx.Response:
        response = httpx.request(method, url, timeout=10, **kwargs)
        self.statuses.append(response.status_code)
        return response

    def json(self, process: Process, path: str) -> Any:
        response = self.send("GET", process.url + path)
        response.raise_for_status()
        return response.json()

    def deliver(self, process: Process, payload: Mapping[str, Any]) -> httpx.Response:
        body = json.dumps(payload).encode()
        headers = {"Heroku-Webhook-Hmac-SHA256": sign(body), "Content-Type": "application/json"}
        return self.send("POST", process.url + "/webhooks/heroku", content=body, headers=headers)

    def pause(self, process: Process, service: str, reason: str = "held by the test") -> None:
        body = {"reason": reason, "service": service}
        response = self.send("POST", process.url + "/pause", json=body, headers=admin())
        assert response.status_code == 201, response.text

    def resume(self, process: Process, service: str) -> None:
        params = {"service": service}
        response = self.send("DELETE", process.url + "/pause", params=params, headers=admin())
        assert response.status_code == 204, response.text
