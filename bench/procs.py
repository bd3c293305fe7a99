"""The processes a benchmark runs: its own Valkey, the Platform API peer, Cascade, wrk.

Built on the end-to-end harness (`tests/e2e/harness.py`): every server is a child
process on loopback, started and stopped by the benchmark that needs it. Cascade may
also run in the benchmark's own process (`in_process`, the tests' `tests/inprocess.py`).
"""

import asyncio
import contextlib
import os
import shutil
import subprocess
import sys
import tempfile
import time
from collections.abc import Coroutine, Iterator
from contextlib import AbstractAsyncContextManager
from dataclasses import dataclass
from pathlib import Path
from typing import Any, TypeVar

import httpx

from app.runtime import Runtime
from app.storage.embedded import EmbeddedRedis
from tests.e2e import harness
from tests.e2e.harness import base_env, free_port, python, wait_for
from tests.inprocess import make_settings, settled

ROOT = Path(__file__).resolve().parents[1]
SECRET = "bench-webhook-secret"
ADMIN = "bench-admin-token"
TOKEN = "bench-webhook-token"
ADMIN_HEADERS = {"Authorization": f"Bearer {ADMIN}"}
T = TypeVar("T")


class Process(harness.Process):
    """The harness's child process, optionally run from another source tree (`cwd`)."""

    def __init__(self, *args: Any, cwd: Path = ROOT, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.cwd = cwd

    def start(self, timeout: float = 30) -> "Process":
        with self.log.open("ab") as out:
            self.proc = subprocess.Popen(
                self.argv, env=self.env, stdout=out, stderr=subprocess.STDOUT, cwd=self.cwd
            )
        wait_for(self._ready, timeout, f"{self.name} to answer {self.ready_path}", self)
        return self


@contextlib.contextmanager
def scratch(name: str) -> Iterator[Path]:
    with tempfile.TemporaryDirectory(prefix=f"cascade-bench-{name}-") as tmp:
        yield Path(tmp)


@contextlib.contextmanager
def valkey(tmp: Path) -> Iterator[EmbeddedRedis]:
    """A Valkey server of the benchmark's own (never the tests' or a running Cascade's)."""
    server = EmbeddedRedis(tmp / "valkey")
    server.start()
    try:
        yield server
    finally:
        server.stop()


def peer(
    config: Path,
    tmp: Path,
    *,
    webhook_url: str | None = None,
    release_seconds: float = 0.02,
    unlimited: bool = False,
) -> Process:
    port = free_port()
    argv = python(
        "-m", "bench.peer", "--port", str(port), "--config", str(config), "--secret", SECRET,
        "--release-seconds", str(release_seconds),
    )  # fmt: skip
    if webhook_url:
        argv += ["--webhook-url", webhook_url]
    if unlimited:
        argv.append("--unlimited")
    return Process("peer", argv, base_env(), port, tmp / "peer.log", "/_bench/calls")


def cascade(
    config: Path,
    redis_url: str,
    platform: Process,
    tmp: Path,
    *,
    port: int | None = None,
    workers: int = 1,
    name: str = "cascade",
    tree: Path = ROOT,
    **env: str,
) -> Process:
    """Cascade as the Procfile runs it (uvicorn, access log on), on our Valkey and peer."""
    port = port or free_port()
    settings = {
        "REDIS_URL": redis_url,
        "HEROKU_API_KEY": "bench-platform-token",
        "HEROKU_API_URL": platform.url,
        "HEROKU_WEBHOOK_SECRET": SECRET,
        "GITHUB_WEBHOOK_SECRET": SECRET,
        "GITHUB_API_URL": "http://127.0.0.1:9",  # nothing leaves the machine
        "CASCADE_WEBHOOK_TOKEN": TOKEN,
        "CASCADE_ADMIN_TOKEN": ADMIN,
        "CASCADE_CONFIG": str(config),
        "CASCADE_DATA_DIR": str(tmp / "data"),
        "CASCADE_RELOAD_SECONDS": "0",
        "CASCADE_LOG_FORMAT": "json",
        # No fallback tick or resync during a measurement: only what the benchmark sends.
        "CASCADE_TICK_SECONDS": "3600",
        "CASCADE_RESYNC_SECONDS": "3600",
    }
    settings.update(env)
    argv = python("-m", "uvicorn", "app.main:app", "--port", str(port))
    argv += ["--timeout-graceful-shutdown", "10", "--workers", str(workers)]
    log = tmp / f"{name}.log"
    return Process(name, argv, base_env(**settings), port, log, "/readyz", cwd=tree)


def in_process(
    redis_url: str, config: Path, tmp: Path, **overrides: Any
) -> AbstractAsyncContextManager[Runtime]:
    """Cascade in this process on the in-process sandbox, quiet, its start-up reconciles done:
    for counting calls and timing ticks (`run_loop` runs the benchmark around it)."""
    values: dict[str, Any] = {
        "admin_token": "bench",
        "heroku_webhook_secret": "bench",
        "resync_seconds": 900,
        "log_level": "WARNING",
        "log_format": "json",
    }
    settings = make_settings(redis_url, tmp, config=config, **(values | overrides))
    return settled(settings, startup_timeout=600, shutdown_timeout=60)


def run_loop(main: Coroutine[Any, Any, T]) -> T:
    """On uvloop, as uvicorn runs Cascade (uvicorn[standard] brings it), else asyncio's loop."""
    try:
        import uvloop
    except ImportError:  # pragma: no cover - uvicorn[standard] installs it
        return asyncio.run(main)
    return uvloop.run(main)


def ceiling(tmp: Path, *, workers: int = 1, port: int | None = None) -> Process:
    """The same server serving a bare FastAPI endpoint that only reads the body."""
    port = port or free_port()
    argv = python("-m", "uvicorn", "bench.ceiling:app", "--port", str(port))
    argv += ["--timeout-graceful-shutdown", "10", "--workers", str(workers)]
    return Process("ceiling", argv, base_env(), port, tmp / "ceiling.log", "/healthz")


@contextlib.contextmanager
def running(*processes: Process, timeout: float = 120) -> Iterator[None]:
    started: list[Process] = []
    try:
        for process in processes:
            started.append(process.start(timeout))
        yield
    finally:
        for process in reversed(started):
            process.stop()


def pids(process: Process) -> list[int]:
    """The process and its children (uvicorn's workers), for memory and CPU readings."""
    assert process.proc is not None
    found, todo = [], [process.proc.pid]
    while todo:
        pid = todo.pop()
        found.append(pid)
        with contextlib.suppress(OSError):
            children = Path(f"/proc/{pid}/task/{pid}/children").read_text().split()
            todo += [int(c) for c in children]
    return found


def rss_mb(pid: int) -> float:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) / 1024
    raise RuntimeError(f"no VmRSS for {pid}")


def cpu_seconds(pid: int) -> float:
    """User + system CPU time a live process has used so far."""
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def get(process: Process, path: str, **params: str) -> httpx.Response:
    response = httpx.get(process.url + path, params=params, timeout=30)
    response.raise_for_status()
    return response


def wait_quiet(
    process: Process, peer: Process | None = None, timeout: float = 600, calls: int = 0
) -> None:
    """Until Cascade's start-up reconciles are over: the peer has seen at least `calls`
    calls (every worker's catch-up) and neither Cascade's reconcile count nor the peer's
    call count has moved for 1.5 s (each reading from whichever worker answers)."""
    deadline = time.monotonic() + timeout
    last, still = None, 0.0
    while time.monotonic() < deadline:
        reading = (_reconciles(process), _calls(peer) if peer else 0)
        still = still + 0.25 if reading == last else 0.0
        if still >= 1.5 and reading[1] >= calls:
            return
        last = reading
        time.sleep(0.25)
    raise AssertionError(
        f"{process.name} did not settle after start-up\n{process.output()[-3000:]}"
    )


def _calls(peer: Process) -> int:
    total: int = httpx.get(peer.url + "/_bench/calls", timeout=30).json()["total"]
    return total


def _reconciles(process: Process) -> float:
    text = httpx.get(process.url + "/metrics", timeout=30).text
    return sum(
        float(line.rsplit(" ", 1)[1])
        for line in text.splitlines()
        if line.startswith("cascade_reconcile_duration_seconds_count")
    )


def ensure_wrk() -> str:
    """Debian's wrk, installed with apt-get when missing (as root, or through sudo)."""
    found = shutil.which("wrk")
    if found:
        return found
    sudo = [] if os.geteuid() == 0 else ["sudo"]
    print("bench: installing wrk (apt-get install wrk)", file=sys.stderr)
    subprocess.run([*sudo, "apt-get", "update", "-qq"], check=True)
    env = {**os.environ, "DEBIAN_FRONTEND": "noninteractive"}
    subprocess.run([*sudo, "apt-get", "install", "-y", "-qq", "wrk"], check=True, env=env)
    found = shutil.which("wrk")
    if not found:
        raise RuntimeError("wrk is still missing after apt-get install wrk")
    return found


@dataclass(frozen=True)
class WrkResult:
    requests: int
    seconds: float
    rate: float
    p50_ms: float
    p99_ms: float
    errors: int  # socket errors, timeouts and non-2xx answers
    non_2xx: int
    cpu_seconds: float  # the generator's own CPU time: its ceiling is requests / this
    server_cpu: float  # CPU time the watched server processes used during the run

    @property
    def server_us(self) -> float:
        """Server CPU per answered request, in µs: steadier than a rate on a busy machine."""
        return self.server_cpu / self.requests * 1e6 if self.requests else float("nan")


def wrk(
    url: str,
    script: Path,
    *,
    seconds: float,
    connections: int = 8,
    threads: int = 1,
    env: dict[str, str] | None = None,
    watch: list[int] | None = None,
) -> WrkResult:
    """One wrk run with a Lua script; latency percentiles and errors from its summary."""
    out = Path(tempfile.mkstemp(prefix="wrk-", suffix=".json")[1])
    argv = [ensure_wrk(), "-t", str(threads), "-c", str(connections), "-d", f"{round(seconds)}s"]
    argv += ["--timeout", "5s", "-s", str(script), url]
    watched = watch or []
    cpu_before = sum(cpu_seconds(pid) for pid in watched)
    proc = subprocess.Popen(
        argv,
        env={**os.environ, **(env or {}), "WRK_SUMMARY": str(out)},
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        cwd=ROOT,
    )
    _, status, usage = os.wait4(proc.pid, 0)
    server_cpu = sum(cpu_seconds(pid) for pid in watched) - cpu_before
    text = proc.stdout.read().decode() if proc.stdout else ""
    proc.returncode = os.waitstatus_to_exitcode(status)
    if proc.returncode != 0 or not out.exists() or not out.read_text().strip():
        raise RuntimeError(f"wrk failed ({proc.returncode}):\n{text}")
    import json

    summary = json.loads(out.read_text())
    out.unlink()
    errors = sum(summary["errors"].values())
    return WrkResult(
        requests=summary["requests"],
        seconds=summary["duration_us"] / 1e6,
        rate=summary["requests"] / (summary["duration_us"] / 1e6),
        p50_ms=summary["p50_us"] / 1000,
        p99_ms=summary["p99_us"] / 1000,
        errors=errors,
        non_2xx=summary["errors"]["status"],
        cpu_seconds=usage.ru_utime + usage.ru_stime,
        server_cpu=server_cpu,
    )
