"""The dashboard (`GET /`), its live stream, the change feed behind it, and its colours.

Cascade runs in-process on the sandbox, on the session's real Redis, as in
tests/api/test_routes.py; the stream is read from a real uvicorn server in the same loop,
because an ASGI test transport buffers whole responses. The page is parsed as
HTML, and compared with `/status`, which it must never contradict.
"""

import asyncio
import re
import socket
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from datetime import UTC, datetime, timedelta
from html.parser import HTMLParser
from pathlib import Path
from typing import Any

import httpx
import pytest
import redis.asyncio as redis
import respx
import uvicorn
from fastapi import FastAPI

from app.api import dashboard
from app.config.catalog import ConfigProblem
from app.core.models import Pause
from app.storage import keys
from app.storage.client import connect
from app.storage.live import EVERYTHING, Live
from tests.dora_history import history, seed
from tests.factories import refuse_the_platform_token
from tests.inprocess import ADMIN, Cascade, Start, cascades, eventually, in_future

ROOT = Path(__file__).resolve().parents[2]
CSS = ROOT / "app" / "static" / "dashboard.css"
AA = 4.5  # WCAG 2.1 AA, normal text
NON_TEXT = 3.0  # WCAG 2.1 AA, focus rings and other non-text contrast
Json = dict[str, Any]


@pytest.fixture
async def start(
    redis_client: "redis.Redis",  # flushes Redis first
    redis_url: str,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
) -> AsyncIterator[Start]:
    async with cascades(redis_url, tmp_path, monkeypatch) as start:
        yield start


def services_file(tmp_path: Path, body: str) -> Path:
    path = tmp_path / "services.toml"
    path.write_text(body)
    return path


class Page(HTMLParser):
    """The elements of a page, each as (tag, attributes, the text inside it)."""

    VOID = frozenset({"meta", "link", "input", "br", "img", "hr"})

    def __init__(self, html: str) -> None:
        super().__init__()
        self.elements: list[tuple[str, dict[str, str], list[str]]] = []
        self._open: list[int] = []
        self.feed(html)

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        self.elements.append((tag, {k: v or "" for k, v in attrs}, []))
        if tag not in self.VOID:
            self._open.append(len(self.elements) - 1)

    def handle_endtag(self, tag: str) -> None:
        if self._open:
            self._open.pop()

    def handle_data(self, data: str) -> None:
        for index in self._open:
            self.elements[index][2].append(data)

    def find(self, **attrs: str) -> list[tuple[str, dict[str, str], str]]:
        """Elements having every attribute given (`class_` matches one class of several)."""
        wanted = {k.rstrip("_").replace("_", "-"): v for k, v in attrs.items()}
        found = []
        for tag, have, texts in self.elements:
            ok = all(
                v in have.get(k, "").split() if k == "class" else have.get(k) == v
                for k, v in wanted.items()
            )
            if ok:
                found.append((tag, have, " ".join("".join(texts).split())))
        return found

    def one(self, **attrs: str) -> tuple[str, dict[str, str], str]:
        found = self.find(**attrs)
        assert len(found) == 1, f"{len(found)} elements with {attrs}"
        return found[0]

    def by_id(self, ident: str) -> tuple[str, dict[str, str], str]:
        return self.one(id=ident)


async def page(cascade: Cascade) -> Page:
    response = await cascade.client.get("/")
    assert response.status_code == 200, response.text
    assert response.headers["content-type"].startswith("text/html")
    return Page(response.text)


def transit_html(html: str, to: str) -> str:
    """The part of a service's card between two stages: what moves into `to`."""
    start = html.index(f'data-to="{to}"')
    return html[start : html.index('<li class="stage"', start)]


async def promotions(cascade: Cascade, service: str, count: int) -> list[Json] | None:
    found: list[Json] = (await cascade.json(f"/status/{service}"))["promotions"]
    return found if len(found) == count and all(p["commit"] for p in found) else None


# what the page shows -------------------------------------------------------------------


async def test_every_stage_with_its_commit_release_and_age(start: Start) -> None:
    cascade = await start()
    status = await cascade.status()
    shown = await page(cascade)
    for service in status["services"]:
        title = shown.by_id(f"title-{service['name']}")
        assert title[2] == service["name"]
        for stage in service["stages"]:
            _tag, attrs, text = shown.one(class_="stage", data_app=stage["app"])
            assert attrs["data-commit"] == stage["commit"]
            assert stage["app"] in text
            assert stage["commit"][:7] in text
            assert stage["commit"] not in text  # the short form is what people read
            assert f"v{stage['release']['version']}" in text
            ages = {datetime.fromisoformat(a["datetime"]) for _t, a, _x in shown.find(data_ago="")}
            assert datetime.fromisoformat(stage["release"]["created_at"]) in ages
    # stages in promotion order, a transit cell between each two
    api = [a["data-app"] for _t, a, _x in shown.find(class_="stage") if "api" in a["data-app"]]
    assert api == ["api-qa", "api-st", "api-prod"]
    transits = [a["data-to"] for _t, a, _x in shown.find(class_="transit")]
    assert transits == ["api-st", "api-prod", "web-prod"]
    assert all("up to date" in text for _t, _a, text in shown.find(class_="transit"))


COMMIT = "a1" * 20


async def a_commit_waiting(start: Start, commit: str) -> tuple[Cascade, Json]:
    """A commit on api-qa that waits an hour (min_age) to move on to api-st: its promotion."""
    cascade = await start(min_age="1h")
    assert cascade.runtime.sandbox is not None
    await cascade.runtime.sandbox.deploy("api-qa", commit)
    (moving,) = await eventually(lambda: promotions(cascade, "api", 1), "a waiting promotion")
    return cascade, moving


async def test_a_commit_on_its_way_shows_each_gate_with_its_reason(start: Start) -> None:
    cascade, moving = await a_commit_waiting(start, COMMIT)
    assert moving["state"] == "waiting"
    shown = await page(cascade)
    _tag, transit, text = shown.one(class_="transit", data_to="api-st")
    assert transit["data-commit"] == COMMIT
    assert "state-waiting" in transit["class"].split()
    assert COMMIT[:7] in text
    badge = shown.one(class_="badge-waiting")[2]
    assert "◷" in badge  # an icon and a word, never colour alone
    assert "waiting" in badge
    by_name = {g["name"]: g for g in moving["gates"]}
    assert set(by_name) == {"allow", "age"}
    for name, gate in by_name.items():
        _tag, chip, chip_text = shown.by_id(f"gate-api-api-st-{name}")
        assert chip["tabindex"] == "0"  # reachable with the keyboard
        assert name in chip_text
        tip = shown.by_id(chip["aria-describedby"])
        assert tip[1]["role"] == "tooltip"
        assert tip[2] == gate["reason"]
    allow = shown.by_id("gate-api-api-st-allow")
    assert "gate-open" in allow[1]["class"].split()
    assert allow[2].startswith("✓ allow open")
    # a timed wait is calm: no red ✕ "closed", it says when it opens, and says it once
    age = shown.by_id("gate-api-api-st-age")
    assert "gate-timed" in age[1]["class"].split()
    assert re.match(r"◷ age opens in (1h|59m \d+s) ", age[2])
    assert "closed" not in age[2].replace(by_name["age"]["reason"], "")
    assert "moves on" not in text
    in_transit = Page(transit_html((await cascade.client.get("/")).text, "api-st"))
    countdowns = [
        datetime.fromisoformat(a["datetime"]) for _t, a, _x in in_transit.find(data_countdown="")
    ]
    assert countdowns == [datetime.fromisoformat(by_name["age"]["opens_at"])]
    assert datetime.fromisoformat(moving["opens_at"]) in countdowns
    flights = [text for _tag, _attrs, text in shown.find(class_="flight")]
    assert flights[0] == f"1 commit on the way: {COMMIT[:7]} api-qa → api-st (waiting)"
    assert flights[1] == "Every stage runs the same commit."


async def test_a_blocked_commit_says_why(start: Start) -> None:
    cascade = await start(min_age="0s")
    assert cascade.runtime.sandbox is not None
    body = {"reason": "freeze", "by": "ops"}  # no end: nobody knows when it moves
    assert (await cascade.client.post("/pause", json=body, headers=ADMIN)).status_code == 201
    commit = "c3" * 20
    await cascade.runtime.sandbox.deploy("api-qa", commit)
    (moving,) = await eventually(lambda: promotions(cascade, "api", 1), "a blocked promotion")
    assert moving["state"] == "blocked"
    shown = await page(cascade)
    _tag, transit, _text = shown.one(class_="transit", data_to="api-st")
    assert "state-blocked" in transit["class"].split()
    badge = shown.one(class_="badge-blocked")[2]
    assert badge == "⊘ blocked"
    assert shown.one(class_="why")[2] == moving["reason"]
    allow = shown.by_id("gate-api-api-st-allow")
    assert allow[2].startswith("✕ allow closed")
    assert shown.find(class_="opens") == []  # no countdown where nobody knows when


async def test_several_commits_in_flight_each_show_where_they_are(
    start: Start, tmp_path: Path
) -> None:
    config = services_file(
        tmp_path,
        '[[service]]\nname = "api"\npipeline = "api"\nstages = ["api-qa", "api-st", "api-prod"]\n'
        'min_age = "4s"\n[service.stage_min_age]\n"api-prod" = "1h"\n',
    )
    cascade = await start(config_path=config)
    assert cascade.runtime.sandbox is not None
    first, second = "f1" * 20, "f2" * 20
    await cascade.runtime.sandbox.deploy("api-qa", first)
    await eventually(
        lambda: _runs(cascade, "api-st", first), "the first commit on api-st", timeout=20
    )
    await cascade.runtime.sandbox.deploy("api-qa", second)
    moving = await eventually(lambda: promotions(cascade, "api", 2), "two commits in flight")
    assert {(p["from"], p["commit"]) for p in moving} == {("api-qa", second), ("api-st", first)}
    shown = await page(cascade)
    assert shown.one(class_="transit", data_to="api-st")[1]["data-commit"] == second
    assert shown.one(class_="transit", data_to="api-prod")[1]["data-commit"] == first
    flight = shown.one(class_="flight")[2]
    assert "2 commits on the way" in flight
    assert f"{second[:7]} api-qa → api-st" in flight
    assert f"{first[:7]} api-st → api-prod" in flight


async def _runs(cascade: Cascade, app: str, commit: str) -> bool:
    return await cascade.stage_commit("api", app) == commit


async def test_commits_link_to_github_when_the_service_names_a_repo(
    start: Start, tmp_path: Path
) -> None:
    config = services_file(
        tmp_path,
        '[[service]]\nname = "api"\npipeline = "api"\nstages = ["api-qa", "api-st"]\n'
        'repo = "acme/api"\n\n[[service]]\nname = "web"\npipeline = "web"\n'
        'stages = ["web-dev", "web-prod"]\n',
    )
    cascade = await start(config_path=config)
    status = await cascade.status()
    shown = await page(cascade)
    links = {a["href"] for _t, a, _x in shown.find(class_="commit") if "href" in a}
    api_commit = status["services"][0]["stages"][0]["commit"]
    assert links == {f"https://github.com/acme/api/commit/{api_commit}"}
    web = shown.one(class_="stage", data_app="web-dev")
    assert "github.com" not in str(web)


# the fleet table -----------------------------------------------------------------------


async def test_the_fleet_table_has_a_row_a_service_and_a_cell_a_stage(start: Start) -> None:
    cascade = await start()
    status = await cascade.status()
    shown = await page(cascade)
    headings = [text for tag, _a, text in shown.find() if tag == "th" and "scope" in _a][:7]
    # api: qa, st, prod; web: dev, prod: the first two positions differ, the last is prod
    assert headings == ["Service", "Status", "stage 1", "moving into stage 2", "stage 2",
                        "moving into prod", "prod"]  # fmt: skip
    for service in status["services"]:
        name = service["name"]
        _tag, body, _text = shown.by_id(f"service-{name}")
        assert body["data-kind"] == "synced"
        opener = shown.by_id(f"open-{name}")
        assert opener[2] == name
        assert opener[1]["href"] == f"#detail-{name}"  # without a script, a link to the detail
        assert opener[1]["aria-controls"] == f"detail-{name}"
        assert shown.by_id(f"detail-{name}")[0] == "tr"
        assert shown.by_id(f"card-{name}")[0] == "section"  # today's card, inside the detail
        for stage in service["stages"]:
            _tag, cell, text = shown.one(class_="cell", data_app=stage["app"])
            assert cell["data-commit"] == stage["commit"]
            assert stage["commit"][:7] in text
            assert stage["commit"] not in text
    summary = shown.by_id("summary")[2]
    assert summary.startswith("2 services")
    assert "✓ 2 up to date" in summary
    assert "✕ 0 failed" in summary
    states = [text for _tag, _a, text in shown.find(class_="state")]
    assert states == ["✓ up to date", "✓ up to date"]
    # the app's name is said where the heading does not say it
    assert shown.one(class_="cell", data_app="api-qa")[2].endswith("api-qa")
    assert not shown.one(class_="cell", data_app="api-prod")[2].endswith("api-prod")


async def test_a_timed_wait_is_calm_and_says_when_it_opens(start: Start) -> None:
    cascade, moving = await a_commit_waiting(start, COMMIT)
    shown = await page(cascade)
    body = shown.by_id("service-api")[1]
    assert body["data-kind"] == "waiting"
    assert COMMIT in body["data-search"].split()  # the filter finds it by its commit
    state = shown.find(class_="state")[0][2]
    assert re.fullmatch(r"◷ waiting opens in (1h|59m \d+s)", state)
    (move,) = [m for m in shown.find(class_="move") if "title" in m[1]]  # not the legend's
    assert move[1]["class"].split() == ["move", "kind-waiting"]  # blue-grey, not red
    assert move[2].startswith(f"◷ {COMMIT[:7]} →")
    assert "moving to api-st: waiting" in move[2]
    assert "◷ 1 waiting" in shown.by_id("summary")[2]
    waits = {datetime.fromisoformat(a["datetime"]) for _t, a, _x in shown.find(data_countdown="")}
    assert datetime.fromisoformat(moving["opens_at"]) in waits


async def test_a_paused_service_is_counted_as_needing_a_person(start: Start) -> None:
    cascade = await start()
    body = {"reason": "db migration", "by": "bo", "service": "web"}
    assert (await cascade.client.post("/pause", json=body, headers=ADMIN)).status_code == 201
    shown = await page(cascade)
    assert shown.by_id("service-web")[1]["data-kind"] == "paused"
    assert shown.by_id("service-api")[1]["data-kind"] == "synced"
    assert "‖ 1 paused" in shown.by_id("summary")[2]
    assert "‖ paused db migration" in [t for _tag, _a, t in shown.find(class_="state")]
    mine = shown.by_id("filter-mine")[1]
    assert mine["type"] == "checkbox"  # a real control: the keyboard reaches it
    assert "blocked, failed, paused" in shown.one(class_="filter")[2]


async def test_a_refused_reload_of_the_services_file_has_a_red_banner(start: Start) -> None:
    cascade = await start()
    assert (await page(cascade)).find(class_="banner-config") == []
    at = datetime.now(UTC) - timedelta(minutes=3)
    problem = ConfigProblem(
        message="/srv/services.toml: service 'api': stages: must be a list.",  # as said
        path="/srv/services.toml",
        at=at,
    )
    cascade.runtime.catalog.refused(problem)
    shown = await page(cascade)
    _tag, attrs, banner = shown.one(class_="banner-config")
    assert attrs["role"] == "alert"
    assert banner.startswith(
        "✕ The services file was NOT reloaded: /srv/services.toml: service 'api': stages: must"
        " be a list. Still running the previous configuration."
    )
    assert banner.count("/srv/services.toml") == 1  # the message names it
    assert "(refused 3m ago)" in banner
    cascade.runtime.catalog.accepted()
    assert (await page(cascade)).find(class_="banner-config") == []


async def test_sandbox_banner(start: Start) -> None:
    shown = await page(await start())
    banner = shown.one(class_="banner-sandbox")[2]
    assert "Sandbox" in banner
    assert "simulated Heroku" in banner
    assert shown.find(class_="banner-paused") == []
    assert shown.find(class_="banner-dry") == []


async def test_a_stale_signal_source_has_a_banner_and_fresh_ones_a_line(start: Start) -> None:
    cascade = await start(alertmanager_heartbeat="Watchdog")  # expected, never heard
    shown = await page(cascade)
    banner = shown.one(class_="banner-stale")[2]
    assert "alerts: never heard from alertmanager (heartbeat Watchdog)" in banner
    await cascade.runtime.store.heard("github", datetime.now(UTC))
    lines = (await page(cascade)).one(class_="sources")[2]
    assert "from github (webhook)" in lines


async def test_dry_run_banner(start: Start) -> None:
    shown = await page(await start(dry_run=True))
    assert "never promotes" in shown.one(class_="banner-dry")[2]


async def test_global_pause_banner_says_why_who_and_until_when(start: Start) -> None:
    cascade = await start()
    until = in_future(hours=2)
    body = {"reason": "incident 42", "by": "ana", "until": until}
    assert (await cascade.client.post("/pause", json=body, headers=ADMIN)).status_code == 201
    shown = await page(cascade)
    _tag, attrs, banner = shown.one(class_="banner-paused")
    assert attrs["role"] == "alert"
    assert "Everything is paused" in banner
    assert "incident 42" in banner
    assert "by ana" in banner
    assert re.search(r"· ends in (2h|1h 59m)$", banner)
    assert until[:16] not in banner  # one format: how long; the moment itself on hover
    assert datetime.fromisoformat(until) in {
        datetime.fromisoformat(a["datetime"]) for _t, a, _x in shown.find(data_countdown="")
    }
    assert shown.find(class_="is-paused") == []  # no service is paused on its own
    await cascade.client.delete("/pause", headers=ADMIN)
    assert (await page(cascade)).find(class_="banner-paused") == []


async def test_a_paused_service_is_marked_with_reason_and_author(start: Start) -> None:
    cascade = await start()
    body = {"reason": "db migration", "by": "bo", "service": "web"}
    assert (await cascade.client.post("/pause", json=body, headers=ADMIN)).status_code == 201
    shown = await page(cascade)
    web = shown.by_id("card-web")
    assert "is-paused" in web[1]["class"].split()
    mark = shown.one(class_="mark-paused")[2]
    assert "Paused" in mark
    assert "db migration" in mark
    assert "by bo" in mark
    assert "until someone resumes" in mark
    assert "is-paused" not in shown.by_id("card-api")[1]["class"].split()
    assert shown.find(class_="banner-paused") == []


async def test_recent_events_newest_first(start: Start) -> None:
    cascade = await start()
    for reason in ("first", "second"):
        body = {"reason": reason, "service": "api"}
        await cascade.client.post("/pause", json=body, headers=ADMIN)
    shown = await page(cascade)
    events = shown.by_id("events")[2]
    rows = [text for tag, _a, text in shown.find() if tag == "tr" and text in events][1:]
    assert "service api paused: second" in rows[0]
    assert "service api paused: first" in rows[1]
    assert "‖ paused" in rows[0]


async def test_the_delivery_metrics_panel_has_each_stage_s_figures(start: Start) -> None:
    cascade = await start()
    await seed(cascade.runtime, history(datetime.now(UTC) - timedelta(days=2)))
    shown = await page(cascade)
    assert "last 30 days" in shown.by_id("dora-title")[2]
    rows = {a["data-stage"]: text for tag, a, text in shown.find() if "data-stage" in a}
    # tests.dora_history over 30 days, c0 in: api-st's leads 600 .. 3600 and c0's 86400 s
    # (p50 = 3rd of 6 = 1800, p90 = 6th); api-prod's 3600, 7200, 9000, 90000 (2nd, 4th).
    cells = ["api-st", "7", "30m", "1d", "14% (1 of 7)", "- (1 open)"]
    assert rows["api-st"] == "".join(cells)  # the row's text: its cells' side by side
    assert rows["api-prod"] == "".join(["api-prod", "4", "2h", "1d 1h", "25% (1 of 4)", "2h"])
    assert rows["web-prod"] == "".join(["web-prod", "0", "-", "-", "-", "-"])


async def test_pause_form_only_where_writes_are_possible(start: Start) -> None:
    with_token = await page(await start())
    _tag, form, _text = with_token.by_id("pause-form")
    assert "hidden" in form  # shown by the script, which sends the token as a header
    assert "action" not in form  # so it never lands in a URL
    assert "method" not in form
    token = with_token.one(name="token")[1]
    assert token["type"] == "password"
    assert token["autocomplete"] == "off"
    options = [a["value"] for tag, a, _t in with_token.find() if tag == "option"]
    assert options == ["", "api", "web"]


async def test_no_pause_form_without_an_admin_token(
    start: Start, respx_mock: respx.MockRouter
) -> None:
    # outside the sandbox (that Platform API refuses the token): the sandbox makes a token
    platform = {"heroku_api_key": "a-platform-token", "heroku_api_url": "http://127.0.0.1:9"}
    refuse_the_platform_token(respx_mock)  # at once: no retries with back-off
    shown = await page(await start(admin_token=None, **platform))
    assert shown.find(id="pause-form") == []
    assert "set CASCADE_ADMIN_TOKEN" in shown.by_id("control")[2]


async def test_secrets_appear_nowhere(start: Start) -> None:
    secrets = {
        "admin_token": "admin-sekrit-1",
        "heroku_webhook_secret": "hook-sekrit-2",
        "slack_webhook_url": "http://127.0.0.1:9/slack-sekrit-3",
        "webhook_token": "token-sekrit-4",
    }
    cascade = await start(**secrets)
    bodies = [(await cascade.client.get(path)).text for path in ("/", "/status", "/events")]
    for name in ("dashboard.js", "dashboard.css"):
        bodies.append((await cascade.client.get(f"/static/{name}")).text)
    async with served(cascade.app) as url, stream(url) as events:
        bodies += [await events.next() for _ in range(4)]
    for value in secrets.values():
        assert not any(value in body for body in bodies)
    assert not any("sekrit" in body for body in bodies)


async def test_static_files_are_versioned_and_cached(start: Start) -> None:
    cascade = await start()
    shown = await page(cascade)
    css = shown.one(rel="stylesheet")[1]["href"]
    script = next(a["src"] for tag, a, _t in shown.find() if tag == "script")
    assert re.fullmatch(r"static/dashboard\.css\?v=[0-9a-f]{12}", css)
    assert re.fullmatch(r"static/dashboard\.js\?v=[0-9a-f]{12}", script)
    for url, kind in ((css, "text/css"), (script, "text/javascript")):
        response = await cascade.client.get("/" + url)
        assert response.status_code == 200
        assert response.headers["content-type"].startswith(kind)
        assert "max-age" in response.headers["cache-control"]
    assert (await cascade.client.get("/static/../main.py")).status_code == 404
    assert (await cascade.client.get("/static/nope.js")).status_code == 404


# the live stream -----------------------------------------------------------------------


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


@asynccontextmanager
async def served(app: FastAPI) -> AsyncIterator[str]:
    """Serve an app whose lifespan already runs with a real uvicorn, in this event loop."""
    port = free_port()
    config = uvicorn.Config(app, port=port, lifespan="off", log_config=None, access_log=False)
    server = uvicorn.Server(config)
    task = asyncio.create_task(server.serve())
    await eventually(lambda: _started(server), "uvicorn to start")
    try:
        yield f"http://127.0.0.1:{port}"
    finally:
        server.should_exit = True
        await asyncio.wait_for(task, timeout=10)


async def _started(server: uvicorn.Server) -> bool:
    return server.started


class Stream:
    """The `swap` events of one open dashboard stream, as the HTML each carries."""

    def __init__(self, lines: AsyncIterator[str]) -> None:
        self.lines = lines

    async def next(self, timeout: float = 10) -> str:
        return await asyncio.wait_for(self._next(), timeout)

    async def _next(self) -> str:
        kind, data = "", []
        async for line in self.lines:
            if line.startswith("event:"):
                kind = line.partition(":")[2].strip()
            elif line.startswith("data:"):
                data.append(line.partition(":")[2].removeprefix(" "))
            elif not line and kind == "swap":
                return "\n".join(data)
            elif not line:
                kind, data = "", []
        raise AssertionError("the stream ended")

    async def until(self, part: str, check: str, timeout: float = 10) -> str:
        """The next version of element `part` whose HTML contains `check`."""

        async def wait() -> str:
            while True:
                html = await self._next()
                if f'id="{part}"' in html.split(">", 1)[0] and check in html:
                    return html

        return await asyncio.wait_for(wait(), timeout)


@asynccontextmanager
async def stream(url: str) -> AsyncIterator[Stream]:
    async with (
        httpx.AsyncClient(timeout=httpx.Timeout(10, read=None)) as client,
        client.stream("GET", url + "/dashboard/stream") as response,
    ):
        assert response.status_code == 200
        assert response.headers["content-type"].startswith("text/event-stream")
        yield Stream(response.aiter_lines())


def part_id(html: str) -> str:
    match = re.match(r'\s*<\w+ id="([^"]+)"', html)
    assert match, html[:200]
    return match.group(1)


async def test_the_stream_sends_every_part_then_only_what_changed(start: Start) -> None:
    cascade = await start()
    async with served(cascade.app) as url, stream(url) as events:
        first = [await events.next() for _ in range(4)]
        assert [part_id(html) for html in first] == [
            "banners",
            "service-api",
            "service-web",
            "events",
        ]
        body = {"reason": "careful", "service": "web"}
        assert (await cascade.client.post("/pause", json=body, headers=ADMIN)).status_code == 201
        changed = {part_id(html): html for html in [await events.next(), await events.next()]}
        assert set(changed) == {"service-web", "events"}  # the banner and api did not change
        assert "careful" in changed["service-web"]
        assert "is-paused" in changed["service-web"]
        assert "service web paused: careful" in changed["events"]


async def test_the_stream_shows_a_promotion_as_it_happens(start: Start) -> None:
    cascade = await start(min_age="0s")
    assert cascade.runtime.sandbox is not None
    commit = "b7" * 20
    async with served(cascade.app) as url, stream(url) as events:
        for _ in range(4):
            await events.next()
        await cascade.runtime.sandbox.deploy("api-qa", commit)
        html = await events.until("service-api", f'data-app="api-prod" data-commit="{commit}"')
    shown = Page(html)
    for app in ("api-qa", "api-st", "api-prod"):
        assert shown.one(class_="stage", data_app=app)[1]["data-commit"] == commit


async def test_the_stream_shows_a_global_pause_from_the_api(start: Start) -> None:
    cascade = await start()
    async with served(cascade.app) as url, stream(url) as events:
        for _ in range(4):
            await events.next()
        body = {"reason": "incident 7", "by": "cy"}
        assert (await cascade.client.post("/pause", json=body, headers=ADMIN)).status_code == 201
        banner = await events.until("banners", "Everything is paused")
        assert "incident 7" in banner
        assert "by cy" in banner
        await cascade.client.delete("/pause", headers=ADMIN)
        lifted = await events.until("banners", "Sandbox")
        assert "Everything is paused" not in lifted


async def test_the_stream_shows_a_refused_reload_though_no_feed_announces_it(
    start: Start, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(dashboard, "QUIET_SECONDS", 0.2)
    cascade = await start()
    async with served(cascade.app) as url, stream(url) as events:
        for _ in range(4):
            await events.next()
        problem = ConfigProblem(message="bad stages", path="/srv/s.toml", at=datetime.now(UTC))
        cascade.runtime.catalog.refused(problem)
        banner = await events.until("banners", "NOT reloaded", timeout=5)
        assert "bad stages" in banner
        cascade.runtime.catalog.accepted()
        cleared = await events.until("banners", "Sandbox", timeout=5)
        assert "NOT reloaded" not in cleared


# the change feed -----------------------------------------------------------------------


def test_pages_are_told_of_a_service_only_when_what_they_show_changed(
    redis_client: "redis.Redis",
) -> None:
    live = Live(redis_client)
    assert live.redraws("api", 1)
    assert not live.redraws("api", 1)  # a reconcile that changed nothing shown tells no one
    assert live.redraws("api", 2)
    assert not live.redraws("api", None)  # nothing looked at
    live.forget_shown()  # Redis lost Cascade's data: the next look tells the pages
    assert live.redraws("api", 2)


async def test_a_change_published_by_one_process_reaches_the_pages_of_another(
    redis_client: "redis.Redis", redis_url: str
) -> None:
    here, there = Live(connect(redis_url)), Live(connect(redis_url))
    try:
        async with here.watch() as page_a, here.watch() as page_b:
            await there.changed("api")
            await there.changed(None)
            for page_changes in (page_a, page_b):
                seen: set[str] = set()
                while seen != {"api", EVERYTHING}:
                    seen |= await asyncio.wait_for(page_changes.next(), 5)
    finally:
        for live in (here, there):
            await live.stop()
            await live.redis.aclose()


async def test_a_lost_subscription_redraws_everything(
    redis_client: "redis.Redis", redis_url: str
) -> None:
    live = Live(connect(redis_url))
    try:
        async with live.watch() as changes:
            await redis_client.execute_command("CLIENT", "KILL", "TYPE", "pubsub")
            assert await asyncio.wait_for(changes.next(), 5) == {EVERYTHING}

            async def news() -> set[str] | None:
                await redis_client.publish(keys.LIVE, "web")
                try:
                    touched = await asyncio.wait_for(changes.next(), 0.2)
                except TimeoutError:
                    return None
                return touched if "web" in touched else None

            await eventually(news, "news once subscribed again")
    finally:
        await live.stop()
        await live.redis.aclose()


# colours -------------------------------------------------------------------------------


def luminance(hex_colour: str) -> float:
    """WCAG 2.1 relative luminance of a #rrggbb colour."""
    channels = [int(hex_colour[i : i + 2], 16) / 255 for i in (1, 3, 5)]
    linear = [c / 12.92 if c <= 0.04045 else ((c + 0.055) / 1.055) ** 2.4 for c in channels]
    return 0.2126 * linear[0] + 0.7152 * linear[1] + 0.0722 * linear[2]


def contrast(a: str, b: str) -> float:
    high, low = sorted((luminance(a), luminance(b)), reverse=True)
    return (high + 0.05) / (low + 0.05)


@pytest.mark.parametrize(
    ("a", "b", "expected"),
    [("#000000", "#ffffff", 21.0), ("#ffffff", "#ffffff", 1.0), ("#777777", "#ffffff", 4.48)],
    ids=["black-on-white", "same", "grey-just-below-aa"],
)
def test_contrast_formula(a: str, b: str, expected: float) -> None:
    assert contrast(a, b) == pytest.approx(expected, abs=0.01)


def css_rules() -> tuple[dict[str, str], list[tuple[str, dict[str, str]]]]:
    """The stylesheet's custom properties, and every rule with its declarations resolved."""
    css = re.sub(r"/\*.*?\*/", "", CSS.read_text(), flags=re.S)
    rules = []
    for selector, body in re.findall(r"([^{}]+)\{([^{}]*)\}", css):
        pairs = [d.split(":", 1) for d in body.split(";") if ":" in d]
        rules.append((selector.strip(), {k.strip(): v.strip() for k, v in pairs}))
    variables = {k: v for sel, decls in rules if sel == ":root" for k, v in decls.items()}

    def resolve(value: str) -> str:
        return re.sub(r"var\((--[\w-]+)\)", lambda m: variables.get(m.group(1), m.group(0)), value)

    return variables, [(s, {k: resolve(v) for k, v in d.items()}) for s, d in rules]


def colour(value: str | None) -> str | None:
    found = re.search(r"#[0-9a-fA-F]{6}\b", value or "")
    return found.group(0).lower() if found else None


def test_every_text_colour_pair_in_the_stylesheet_meets_aa() -> None:
    variables, rules = css_rules()
    surfaces = [variables["--bg"], variables["--card"]]  # what a rule without its own sits on
    checked = []
    for selector, declarations in rules:
        text = colour(declarations.get("color"))
        back = colour(declarations.get("background") or declarations.get("background-color"))
        if text and back:
            pairs = [(text, back)]
        elif text:
            pairs = [(text, surface) for surface in surfaces]
        elif back:
            pairs = [(variables["--text"], back)]  # inherits the body's text colour
        else:
            continue
        for fg, bg in pairs:
            checked.append(selector)
            ratio = contrast(fg, bg)
            assert ratio >= AA, f"{selector}: {fg} on {bg} is {ratio:.2f}:1"
    chips = [s for s in checked if s.startswith((".gate-", ".badge-", ".banner-", ".mark-"))]
    assert len(chips) >= 12  # every state's chip, badge, banner and mark was among them
    for surface in surfaces:
        assert contrast(variables["--focus"], surface) >= NON_TEXT


def test_each_colour_means_one_thing() -> None:
    """A status has a colour of its own, and a chip, badge or banner of the same meaning has
    that colour too: a timed wait is the calm one, never red; only failures are red."""
    _variables, rules = css_rules()
    back = {s: colour(d.get("background") or d.get("background-color")) for s, d in rules}
    kinds = ("moving", "waiting", "blocked", "paused", "failed")
    own = {kind: back[f".kind-{kind}"] for kind in kinds}
    assert len(set(own.values())) == len(kinds)
    same = {
        ".gate-timed": "waiting", ".badge-waiting": "waiting",
        ".gate-closed": "blocked", ".gate-unknown": "blocked", ".badge-blocked": "blocked",
        ".banner-stale": "blocked",
        ".badge-promoting": "moving",
        ".banner-paused": "paused",
        ".badge-failed": "failed", ".banner-config": "failed", ".mark-problem": "failed",
        ".mark-halted": "failed",  # an auto-halt is a change that failed
    }  # fmt: skip
    for selector, kind in same.items():
        assert back[selector] == own[kind], f"{selector} is not the colour of {kind}"
    red = [s for s, colour_ in back.items() if colour_ == own["failed"]]
    assert set(red) == {".kind-failed", *(s for s, k in same.items() if k == "failed")}


async def test_a_halt_by_cascade_is_shown_apart_from_a_persons_pause(start: Start) -> None:
    cascade = await start()
    reason = "auto-halt: alert HighErrorRate started firing 40s after abc1234 reached api-st"
    halt = Pause(reason=reason, created_at=datetime.now(UTC), by="cascade", service="web")
    assert await cascade.runtime.store.halt("web-prod", "abc1234", halt)
    shown = await page(cascade)
    web = shown.by_id("card-web")
    assert "is-halted" in web[1]["class"].split()
    assert "is-paused" not in web[1]["class"].split()
    mark = shown.one(class_="mark-halted")[2]
    assert "Halted by Cascade" in mark
    assert reason in mark
    assert "POST /retry" in mark
    assert shown.find(class_="mark-paused") == []
