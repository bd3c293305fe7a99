"""Run the reliability suite and write its figures to RELIABILITY.md: `make reliability`.

Runs `pytest -m reliability` with CASCADE_FIGURES pointing at a scratch file, then turns
the figures the tests recorded (`tests/figures.py`) into the table of RELIABILITY.md.
The tests assert their own invariants; this only reports what they tried and saw.
"""

import json
import os
import platform
import subprocess
import sys
import tempfile
import time
from collections import defaultdict
from datetime import UTC, datetime
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
from tests.simulation.run import SOAK_TITLE, section  # noqa: E402

COLUMNS = ("cases", "faults", "promotions", "duplicates", "five_xx", "secrets")
HEADERS = (
    "cases tried",
    "faults injected",
    "promotions made",
    "duplicates (must be 0)",
    "5xx seen (must be 0)",
    "secrets found (must be 0)",
)


def main() -> int:
    with tempfile.TemporaryDirectory() as scratch:
        figures = Path(scratch) / "figures.jsonl"
        started = time.monotonic()
        result = subprocess.run(
            [sys.executable, "-m", "pytest", "-m", "reliability", "-q", "-p", "no:cacheprovider"],
            cwd=ROOT,
            env={**os.environ, "CASCADE_FIGURES": str(figures)},
            check=False,
        )
        seconds = time.monotonic() - started
        rows = (
            [json.loads(line) for line in figures.read_text().splitlines()]
            if figures.exists()
            else []
        )
    path = ROOT / "RELIABILITY.md"
    soak = _section(path.read_text(), SOAK_TITLE) if path.exists() else ""
    path.write_text(render(rows, result.returncode, seconds) + soak)
    print(f"RELIABILITY.md written: {len(rows)} checks, pytest exit {result.returncode}")
    return result.returncode


def render(rows: list[dict[str, object]], exit_code: int, seconds: float) -> str:
    totals: dict[str, int] = defaultdict(int)
    lines = [
        "# Reliability: what was tried against Cascade, and what happened",
        "",
        "Written by `make reliability` (`scripts/reliability.py`), which runs the tests marked",
        "`reliability` (they run in CI too, in `make test`) and collects what each one recorded.",
        "Every test asserts its invariants itself; this file only reports the figures.",
        "",
        f"- run: {datetime.now(UTC).isoformat(timespec='seconds')}, {seconds:.0f} s,"
        f" pytest exit code {exit_code} ({'all passed' if exit_code == 0 else 'FAILURES'})",
        f"- machine: {platform.platform()}, {os.cpu_count()} CPUs,"
        f" Python {platform.python_version()}",
        "",
        "| area | check | " + " | ".join(HEADERS) + " | note |",
        "| --- | --- | " + " | ".join("---:" for _ in HEADERS) + " | --- |",
    ]
    for row in sorted(rows, key=lambda r: (str(r["area"]), str(r["check"]))):
        values = [int(row.get(c, 0) or 0) for c in COLUMNS]  # type: ignore[call-overload]
        for column, value in zip(COLUMNS, values, strict=True):
            totals[column] += value
        cells = " | ".join(str(v) for v in values)
        lines.append(f"| {row['area']} | {row['check']} | {cells} | {row.get('note', '')} |")
    cells = " | ".join(f"**{totals[c]}**" for c in COLUMNS)
    lines.append(f"| **total** | {len(rows)} checks | {cells} | |")
    for row in rows:
        if row.get("area") == "simulation" and row.get("details"):
            how = (
                "`tests/simulation` in `make test`: three Cascade processes on one Valkey, the"
                " sandbox world and a virtual clock, driven by a seeded scheduler through"
                " interleavings and faults; the invariants are checked after every step."
            )
            lines += ["", section("The simulation", row["details"], how).rstrip()]
    return "\n".join(lines) + "\n"


def _section(text: str, title: str) -> str:
    """The section of that title in `text` (to the next one), with its heading; else ""."""
    _, found, rest = text.partition(f"\n## {title}\n")
    if not found:
        return ""
    end = rest.find("\n## ")
    return f"\n## {title}\n" + (rest[:end] if end >= 0 else rest).rstrip() + "\n"


if __name__ == "__main__":
    sys.exit(main())
