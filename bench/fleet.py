"""A fleet of N services x S stages: its services file, and a warm Redis for it.

A cold start reads every pipeline from the Platform API (three calls, plus one per
source app for its history, plus slugs): for 1,000 services that is more than Heroku's
4,500-call hour. The scale, memory and intake benchmarks start warm instead: `seed`
writes what a cold start would have learnt (topology, stage views, history, resync
marks) into Redis, with the app's own key layout and encodings (`app.storage.keys`,
`app.core.models`), from the peer's world. A seeded fleet is in the middle of a rollout:
stage i runs commit i, every adjacent pair differs and waits on its age gate (1 h), so a
reconcile evaluates every gate of every pair.
"""

import hashlib
from collections.abc import Iterable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import redis
from pydantic import TypeAdapter

from app.core.models import Release, ReleaseStatus, StageView
from app.engine import topology as topo
from app.storage import keys
from bench import procs
from bench.payloads import github_push_template, heroku_release_template

_stage = TypeAdapter(StageView)


@dataclass(frozen=True)
class Fleet:
    services: int
    stages: int
    prefix: str = "svc"
    repo: str | None = None  # a GitHub repository the first service follows (its main)

    def name(self, i: int) -> str:
        return f"{self.prefix}{i:05d}"

    def apps(self, i: int) -> list[str]:
        return [f"{self.name(i)}-s{j}" for j in range(self.stages)]

    def names(self) -> list[str]:
        return [self.name(i) for i in range(self.services)]

    def write(self, path: Path, *, min_age: str = "1h", extra: str = "") -> Path:
        lines = [f'[defaults]\nmin_age = "{min_age}"\n', extra]
        for i in range(self.services):
            stages = ", ".join(f'"{app}"' for app in self.apps(i))
            name = self.name(i)
            follows = f'repo = "{self.repo}"\n' if i == 0 and self.repo else ""
            lines.append(
                f'[[service]]\nname = "{name}"\npipeline = "{name}"\nstages = [{stages}]\n'
                + follows
            )
        path.write_text("\n".join(lines))
        return path


def commit_of(app: str, stage: int) -> str:
    """The commit a seeded stage runs: 40 hex digits, one per (service, stage)."""
    return hashlib.sha256(f"{app}:{stage}".encode()).hexdigest()[:40]


def seed(
    url: str,
    fleet: Fleet,
    state: dict[str, Any],
    resync_seconds: float,
    slugs: dict[str, str] | None = None,
) -> dict[str, str]:
    """Write the fleet's warm view into Redis; returns app -> the commit it runs there.

    `slugs` (slug id -> commit, the peer's `/_bench/slugs`) fills the slug cache too.
    """
    pipelines = {p["name"]: p["id"] for p in state["pipelines"]}
    apps = state["apps"]
    now = datetime.now(UTC)
    client = redis.Redis.from_url(url, decode_responses=True)
    runs: dict[str, str] = {}
    pipe = client.pipeline(transaction=False)
    for slug_id, commit in (slugs or {}).items():
        pipe.set(keys.artifact("slug", slug_id), commit)
    for i in range(fleet.services):
        name, stage_apps = fleet.name(i), fleet.apps(i)
        ids = {app: apps[app]["id"] for app in stage_apps}
        topology = topo.Topology(pipelines[name], tuple(stage_apps), ids)
        pipe.set(keys.topology(name), topo.codec.dump_json(topology).decode())
        pipe.set(keys.resynced(name), "1", px=int(resync_seconds * 1000))
        for j, app in enumerate(stage_apps):
            commit = commit_of(app, j)
            runs[app] = commit
            release = Release(
                id=f"00000000-0000-4000-8000-{i:06d}{j:06d}",
                app=app,
                version=100,  # newer than the peer's v1: its catch-up read changes nothing
                status=ReleaseStatus.SUCCEEDED,
                commit=commit,
                created_at=now - timedelta(minutes=10),
                app_id=ids[app],
            )
            pipe.set(keys.stage(name, app), _stage.dump_json(StageView(app, release)))
            if j + 1 < len(stage_apps):  # a source: its commit is new, the target's was here
                target = commit_of(stage_apps[j + 1], j + 1)
                history = {commit: (now - timedelta(minutes=10)).timestamp()}
                history[target] = (now - timedelta(days=1)).timestamp()
                pipe.zadd(keys.history(name, app), history)
                pipe.zadd(keys.positions(name, app), {commit: 100, target: 50})  # app.core.order
                pipe.set(keys.history_loaded(name, app), "1")
        if len(pipe) > 5000:
            pipe.execute()
    pipe.execute()
    client.close()
    return runs


def apps_file(path: Path, fleet: Fleet, state: dict[str, Any], runs: dict[str, str]) -> Path:
    """`name id commit` per app, for the wrk script's Heroku deliveries."""
    lines = (
        f"{app} {state['apps'][app]['id']} {runs[app]}"
        for i in range(fleet.services)
        for app in fleet.apps(i)
    )
    path.write_text("\n".join(lines) + "\n")
    return path


def chunks(items: list[str], size: int) -> Iterable[list[str]]:
    for start in range(0, len(items), size):
        yield items[start : start + size]


@dataclass(frozen=True)
class Seeded:
    """A fleet on its own Valkey and peer, seeded as a warm Cascade would have left Redis."""

    tmp: Path
    redis_url: str
    config: Path
    peer: procs.Process
    apps: Path  # one line per stage app: what the signed deliveries name
    heroku: Path  # a Heroku release delivery template
    github: Path  # a GitHub push delivery template


@contextmanager
def seeded(name: str, fleet: Fleet) -> Iterator[Seeded]:
    """The set-up every load benchmark shares: scratch dir, Valkey, peer running, Redis seeded."""
    with procs.scratch(name) as tmp, procs.valkey(tmp) as redis_server:
        config = fleet.write(tmp / "cascade.toml")
        peer = procs.peer(config, tmp, unlimited=True)
        with procs.running(peer):
            state = procs.get(peer, "/_sandbox/state").json()
            slugs = procs.get(peer, "/_bench/slugs").json()
            runs = seed(redis_server.url, fleet, state, 3600, slugs)
            apps = apps_file(tmp / "apps.txt", fleet, state, runs)
            del state, runs  # the memory benchmark measures what is left
            heroku, github = tmp / "heroku.json", tmp / "github.json"
            heroku.write_text(heroku_release_template())
            github.write_text(github_push_template(fleet.repo or "acme/bench"))
            yield Seeded(tmp, redis_server.url, config, peer, apps, heroku, github)
