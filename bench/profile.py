"""Where Cascade's time goes under load: py-spy samples a running process (`--profile`).

py-spy (the optional `bench` extra) attaches to the Cascade worker while wrk sends it
Heroku deliveries, and records folded stacks; `summary` turns them into the share of
samples that passed through each of Cascade's own functions and each library.
"""

import shutil
import subprocess
import sys
from collections import Counter
from pathlib import Path

LIBRARIES = {
    "redis/": "redis-py",
    "uvicorn/": "uvicorn",
    "starlette/": "starlette",
    "fastapi/": "fastapi",
    "pydantic": "pydantic",
    "logging/": "logging",
    "asyncio/": "asyncio",
    "apscheduler/": "apscheduler",
    "prometheus_client/": "prometheus-client",
    "httptools": "httptools",
    "json/": "json",
}


def py_spy() -> str | None:
    found = shutil.which("py-spy") or str(Path(sys.executable).with_name("py-spy"))
    return found if Path(found).exists() else None


def record(pid: int, seconds: float, out: Path) -> subprocess.Popen[bytes]:
    """Start sampling `pid` for `seconds` (100 Hz, folded stacks to `out`)."""
    tool = py_spy()
    if tool is None:
        raise RuntimeError("py-spy is missing: pip install -e '.[bench]'")
    argv = [tool, "record", "--pid", str(pid), "--duration", str(round(seconds))]
    argv += ["--rate", "200", "--format", "raw", "--output", str(out), "--nonblocking"]
    return subprocess.Popen(argv, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)


def summary(
    folded: Path, top: int = 12
) -> tuple[int, list[tuple[str, float]], list[tuple[str, float]]]:
    """(samples, Cascade functions by inclusive share, libraries by inclusive share)."""
    ours: Counter[str] = Counter()
    libraries: Counter[str] = Counter()
    total = 0
    for line in folded.read_text().splitlines():
        stack, _, count = line.rpartition(" ")
        if not count.isdigit():
            continue
        n = int(count)
        total += n
        frames = stack.split(";")
        if any("idle" in f or "select (selectors.py" in f for f in frames[-1:]):
            continue
        seen_ours: set[str] = set()
        seen_libs: set[str] = set()
        for frame in frames:
            name, _, where = frame.partition(" (")
            if "app/" in where and "app/main.py" not in where:
                module = where.split("app/", 1)[1].split(":")[0].removesuffix(".py")
                seen_ours.add(f"app.{module.replace('/', '.')}.{name}")
            for marker, library in LIBRARIES.items():
                if marker in where:
                    seen_libs.add(library)
        for key in seen_ours:
            ours[key] += n
        for key in seen_libs:
            libraries[key] += n
    share = 100 / total if total else 0.0
    return (
        total,
        [(k, v * share) for k, v in ours.most_common(top)],
        [(k, v * share) for k, v in libraries.most_common(top)],
    )
