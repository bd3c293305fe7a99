"""The dashboard in a real headless Chromium (Debian's, driven by Playwright).

Two Cascade processes share one Redis and one sandbox platform: the sandbox's
webhooks reach the first, which promotes; the browser reads the page of the
second, so every live change crosses processes. The page is never reloaded
(a marker on `window` must survive). Screenshots go to the test's folder and to
test-output/ (dashboard.png; fleet.png, the fleet of 100 services at 1400 by 900,
is the one docs/fleet.png is copied from).
"""

import re
import shutil
from collections.abc import Callable, Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import httpx
import pytest
from playwright.sync_api import Browser, Page, expect, sync_playwright

from tests.e2e import harness
from tests.e2e.conftest import Cluster

CHROMIUM = Path("/usr/bin/chromium")
ARGS = [
    "--headless=new",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
]
OUTPUT = Path(__file__).resolve().parents[2] / "test-output"
SERVICES = """
[[service]]
name = "api"
pipeline = "api"
stages = ["api-qa", "api-st", "api-prod"]
min_age = "0s"
[service.stage_min_age]
"api-prod" = "1h"

[[service]]
name = "web"
pipeline = "web"
stages = ["web-dev", "web-prod"]
min_age = "0s"
"""
A, B = "a1" * 20, "b2" * 20
FLEET = 100  # services, of five stages each
STAGES = ("dev", "qa", "st", "va", "prod")
WIDE = {"width": 1400, "height": 900}
NEEDS_ME = {"blocked", "failed", "paused"}
ALERT_TOKEN = "e2e-alert-token"
AA = 4.5
# Every element showing text of its own: its colour against the first opaque background
# behind it, as WCAG 2.1 computes contrast.
CONTRASTS = """() => {
  const rgb = (c) => {
    const p = c.match(/[\\d.]+/g).map(Number);
    return p.length > 3 ? p : [...p, 1];
  };
  const channel = (v) => {
    v /= 255;
    return v <= 0.04045 ? v / 12.92 : ((v + 0.055) / 1.055) ** 2.4;
  };
  const lum = ([r, g, b]) => 0.2126 * channel(r) + 0.7152 * channel(g) + 0.0722 * channel(b);
  const behind = (el) => {
    for (let e = el; e; e = e.parentElement) {
      const c = rgb(getComputedStyle(e).backgroundColor);
      if (c[3] > 0) return c;
    }
    return [255, 255, 255, 1];
  };
  const found = [];
  for (const el of document.querySelectorAll("body *")) {
    const own = [...el.childNodes].some((n) => n.nodeType === 3 && n.textContent.trim());
    const style = getComputedStyle(el);
    if (!own || style.visibility === "hidden" || !el.getClientRects().length) continue;
    const [hi, lo] = [lum(rgb(style.color)), lum(behind(el))].sort((a, b) => b - a);
    const ratio = (hi + 0.05) / (lo + 0.05);
    found.push({ text: el.textContent.trim().slice(0, 60), cls: String(el.className), ratio });
  }
  return found;
}"""


@pytest.fixture
def browser() -> Iterator[Browser]:
    if not CHROMIUM.exists():
        pytest.fail(
            "Debian's chromium is missing: `make test` installs it (apt-get install chromium)"
        )
    with sync_playwright() as playwright:
        launched = playwright.chromium.launch(executable_path=str(CHROMIUM), args=ARGS)
        yield launched
        launched.close()


def shot(page: Page, tmp_path: Path) -> Path:
    path = tmp_path / "dashboard.png"
    page.screenshot(path=str(path), full_page=True)
    OUTPUT.mkdir(exist_ok=True)
    shutil.copy(path, OUTPUT / "dashboard.png")
    return path


def stage(page: Page, app: str, commit: str) -> Any:
    return page.locator(f'.stage[data-app="{app}"][data-commit="{commit}"]')


def low_contrast(page: Page) -> tuple[int, list[dict[str, Any]]]:
    found: list[dict[str, Any]] = page.evaluate(CONTRASTS)
    return len(found), [f for f in found if f["ratio"] < AA]


def pause(process: harness.Process, **body: Any) -> None:
    response = httpx.post(process.url + "/pause", json=body, headers=harness.admin())
    assert response.status_code == 201, response.text


def test_a_promotion_and_a_pause_appear_live_in_the_browser(
    cluster_factory: Callable[..., Cluster], browser: Browser, tmp_path: Path
) -> None:
    cluster = cluster_factory(SERVICES)
    worker = cluster.start_cascade()  # the sandbox's webhooks arrive here
    shown = cluster.start_cascade(port=harness.free_port(), name="cascade-page")
    page = browser.new_page(viewport={"width": 1280, "height": 900})
    errors: list[str] = []
    page.on("pageerror", lambda error: errors.append(str(error)))
    page.goto(shown.url + "/")
    expect(page.locator("#live")).to_have_attribute("data-state", "live")
    page.evaluate("window.cascadeMarker = 'not reloaded'")

    # every stage of every service, with its commit
    status = harness.get(shown, "/status")
    for service in status["services"]:
        expect(page.locator(f"#title-{service['name']}")).to_have_text(service["name"])
        for each in service["stages"]:
            cell = stage(page, each["app"], each["commit"])
            expect(cell).to_have_count(1)
            expect(cell).to_contain_text(each["commit"][:7])
            expect(cell).to_contain_text(f"v{each['release']['version']}")

    # a promotion, seen as it happens
    cluster.deploy("api-qa", A)
    expect(stage(page, "api-st", A)).to_have_count(1, timeout=30_000)
    transit = page.locator('.transit[data-to="api-prod"]')
    expect(transit).to_have_attribute("data-commit", A)
    expect(transit.locator(".badge")).to_contain_text("waiting")
    expect(page.locator("#gate-api-api-prod-age")).to_contain_text("opens in")  # calm, not ✕

    # a pause posted to the other process: its banner appears here
    until = (datetime.now(UTC) + timedelta(hours=2)).isoformat()
    pause(worker, reason="browser test", by="e2e", until=until)
    banner = page.locator(".banner-paused")
    expect(banner).to_contain_text("Everything is paused: browser test — by e2e", timeout=10_000)
    expect(banner.locator("[data-countdown]")).to_have_text("1h 59m", timeout=5_000)

    # a second commit behind the first: two in flight, each shown where it is
    cluster.deploy("api-qa", B)
    expect(stage(page, "api-qa", B)).to_have_count(1, timeout=30_000)
    flight = page.locator("#service-api .flight")
    expect(flight).to_contain_text("2 commits on the way")
    expect(flight).to_contain_text(f"{B[:7]} api-qa → api-st")
    expect(flight).to_contain_text(f"{A[:7]} api-st → api-prod")
    expect(page.locator('.transit[data-to="api-st"]')).to_have_attribute("data-commit", B)

    # a service's detail opens from the keyboard; each gate's reason shows on focus and on hover
    page.locator("#open-api").focus()
    page.keyboard.press("Enter")
    expect(page.locator("#detail-api")).to_be_visible()
    expect(page.locator("#open-api")).to_have_attribute("aria-expanded", "true")
    for _ in range(60):
        page.keyboard.press("Tab")
        if page.evaluate("document.activeElement.classList.contains('chip')"):
            break
    focused = page.locator(".chip:focus")
    expect(focused).to_have_count(1)
    expect(focused.locator(".tip")).to_be_visible()
    expect(focused.locator(".tip")).not_to_be_empty()
    page.keyboard.press("Escape")
    expect(focused.locator(".tip")).to_be_hidden()
    page.evaluate("document.activeElement.blur()")
    age = page.locator("#gate-api-api-prod-age")
    age.hover()
    expect(age.locator(".tip")).to_be_visible()
    expect(age.locator(".tip")).to_contain_text("needs 1h in api-st")

    checked, failing = low_contrast(page)  # with a tooltip showing, too
    assert checked > 40
    assert failing == []
    assert shot(page, tmp_path).stat().st_size > 10_000
    assert page.evaluate("window.cascadeMarker") == "not reloaded"
    assert errors == []


def test_pause_and_resume_from_the_page_with_the_admin_token(
    cluster_factory: Callable[..., Cluster], browser: Browser
) -> None:
    cluster = cluster_factory(SERVICES)
    process = cluster.start_cascade()
    page = browser.new_page()
    requests: list[str] = []
    page.on("request", lambda request: requests.append(request.url))
    page.goto(process.url + "/")
    expect(page.locator("#live")).to_have_attribute("data-state", "live")
    form = page.locator("#pause-form")
    result = page.locator("#control-result")

    form.locator("[name=token]").fill("not-the-token")
    form.locator("[name=reason]").fill("from the page")
    form.get_by_role("button", name="Pause").click()
    expect(result).to_contain_text("Refused (401)")
    assert harness.get(process, "/status")["paused"] is None

    form.locator("[name=token]").fill(harness.ADMIN)
    form.locator("[name=service]").select_option("web")
    form.locator("[name=until]").fill("30m")
    form.locator("[name=by]").fill("pat")
    form.get_by_role("button", name="Pause").click()
    expect(result).to_have_text("Paused service web.")
    expect(page.locator("#service-web .mark-paused")).to_contain_text("from the page — by pat")
    paused = harness.get(process, "/status/web")["paused"]
    assert paused["reason"] == "from the page"
    left = datetime.fromisoformat(paused["until"]) - datetime.now(UTC)
    assert timedelta(minutes=29) < left <= timedelta(minutes=30)

    form.get_by_role("button", name="Resume").click()
    expect(result).to_have_text("Resumed service web.")
    expect(page.locator("#service-web .mark-paused")).to_have_count(0)
    assert harness.ADMIN not in " ".join(requests)  # the token travels in a header only


def test_the_page_is_whole_without_javascript(
    cluster_factory: Callable[..., Cluster], browser: Browser
) -> None:
    cluster = cluster_factory(SERVICES)
    process = cluster.start_cascade()
    pause(process, reason="no script", by="e2e")
    context = browser.new_context(java_script_enabled=False)
    page = context.new_page()
    page.goto(process.url + "/")
    for service in harness.get(process, "/status")["services"]:
        for each in service["stages"]:
            expect(stage(page, each["app"], each["commit"])).to_contain_text(each["commit"][:7])
    expect(page.locator(".banner-paused")).to_contain_text("no script")
    expect(page.locator("#pause-form")).to_be_hidden()
    expect(page.locator("#control")).to_contain_text("Pausing from this page needs JavaScript")
    expect(page.locator("#live")).to_have_attribute("data-state", "static")
    expect(page.locator("#live")).to_contain_text("reload the page to see changes")
    expect(page.locator("#detail-api")).to_be_hidden()  # a service's name links to its card
    page.locator("#open-api").click()
    expect(page.locator("#detail-api")).to_be_visible()
    expect(page.locator("#filter")).to_be_hidden()  # the filter needs the script
    context.close()


def fleet_services() -> str:
    """100 services of five stages; svc003 holds every commit an hour in each stage, svc004
    moves none while its alert fires."""  # a file the test edits while the page is open
    lines = ['[defaults]\nmin_age = "0s"\n']
    for n in range(FLEET):
        name = f"svc{n:03d}"
        apps = ", ".join(f'"{name}-{stage}"' for stage in STAGES)
        lines.append(f'[[service]]\nname = "{name}"\npipeline = "{name}"\nstages = [{apps}]\n')
        if n == 3:
            lines.append('min_age = "1h"\n')
        if n == 4:
            lines.append('alerts = ["HighErrors"]\n')
    return "\n".join(lines)


def fire(process: harness.Process, alert: str) -> None:
    """An Alertmanager notification (version 4) of `alert` firing."""
    now = datetime.now(UTC).isoformat()
    firing = {"status": "firing", "labels": {"alertname": alert}, "startsAt": now}
    body = {"version": "4", "groupKey": alert, "status": "firing", "alerts": [firing]}
    headers = {"Authorization": f"Bearer {ALERT_TOKEN}"}
    response = httpx.post(process.url + "/webhooks/alertmanager", json=body, headers=headers)
    assert response.status_code == 202, response.text


def expected_kind(service: dict[str, Any], everything: bool) -> str:
    """A service's status from `/status`, as the page's legend defines it (worst first)."""
    states = {p["state"] for p in service["promotions"]}
    if service.get("problem") or "failed" in states:
        return "failed"
    if service["paused"] or everything:
        return "paused"
    for state, kind in (("blocked", "blocked"), ("promoting", "moving"), ("waiting", "waiting")):
        if state in states:
            return kind
    return "synced"


def kinds_from_status(process: harness.Process) -> dict[str, str]:
    status = harness.get(process, "/status")
    everything = status["paused"] is not None
    return {s["name"]: expected_kind(s, everything) for s in status["services"]}


KINDS_SHOWN = """() => {
  const rows = Object.fromEntries([...document.querySelectorAll("tbody.fleet-service")]
    .map((b) => [b.id.slice("service-".length), b.dataset.kind]));
  const counts = Object.fromEntries([...document.querySelectorAll("#summary .count")]
    .map((c) => [c.dataset.kind, Number(c.querySelector("b").textContent)]));
  return { rows, counts };
}"""


def the_page_agrees_with_status(page: Page, process: harness.Process) -> dict[str, str]:
    """Each row's status and the summary's counts, once `/status` held still around a look."""
    for _ in range(100):
        before = kinds_from_status(process)
        shown = page.evaluate(KINDS_SHOWN)
        if before == shown["rows"] == kinds_from_status(process):
            counts = {kind: list(before.values()).count(kind) for kind in shown["counts"]}
            assert shown["counts"] == counts
            return before
        page.wait_for_timeout(100)
    raise AssertionError(f"the page never agreed with /status: {shown} vs {before}")


def visible_rows(page: Page) -> list[str]:
    found: list[str] = page.evaluate(
        "[...document.querySelectorAll('tbody.fleet-service')].filter((b) => !b.hidden)"
        ".map((b) => b.id.slice('service-'.length))"
    )
    return found


def test_a_fleet_of_100_services_fits_the_screen_filters_and_stays_live(
    cluster_factory: Callable[..., Cluster], browser: Browser
) -> None:
    cluster = cluster_factory(fleet_services())
    process = cluster.start_cascade(CASCADE_WEBHOOK_TOKEN=ALERT_TOKEN, CASCADE_RELOAD_SECONDS="0.2")
    cluster.wait(lambda: harness.get(process, "/status")["services"][99]["stages"][4]["commit"],
                 "every stage read")  # fmt: skip
    pause(process, reason="db migration", by="e2e", service="svc001")
    cluster.faults(fail_promotions=1)
    cluster.deploy("svc002-dev", "c3" * 20)
    cluster.wait(lambda: kinds_from_status(process)["svc002"] == "failed", "a failed promotion")
    cluster.deploy("svc003-dev", "d4" * 20)
    cluster.wait(lambda: kinds_from_status(process)["svc003"] == "waiting", "a timed wait")
    fire(process, "HighErrors")
    cluster.deploy("svc004-dev", "f6" * 20)
    cluster.wait(lambda: kinds_from_status(process)["svc004"] == "blocked", "a blocked one")

    page = browser.new_page(viewport=WIDE)
    errors: list[str] = []
    page.on("pageerror", lambda error: errors.append(str(error)))
    page.goto(process.url + "/")
    expect(page.locator("#live")).to_have_attribute("data-state", "live")
    page.evaluate("window.cascadeMarker = 'not reloaded'")

    # the table fits one screen's width, and says what /status says
    assert page.evaluate("document.documentElement.scrollWidth") <= WIDE["width"]
    expect(page.locator("tbody.fleet-service")).to_have_count(FLEET)
    kinds = the_page_agrees_with_status(page, process)
    assert [kinds[f"svc00{n}"] for n in (1, 2, 3, 4)] == ["paused", "failed", "waiting", "blocked"]
    expect(page.locator("#service-svc004 .state")).to_contain_text(
        "blocked by alerts into svc004-qa"
    )
    expect(page.locator("#summary .total")).to_have_text(f"{FLEET} services")
    expect(page.locator("#service-svc003 .state")).to_contain_text(re.compile(r"opens in (1h|59m)"))

    # a promotion, seen as it happens, without a reload
    commit = "e5" * 20
    cluster.deploy("svc000-dev", commit)
    last = page.locator(f'#service-svc000 .cell[data-app="svc000-prod"][data-commit="{commit}"]')
    expect(last).to_have_count(1, timeout=30_000)
    expect(last).to_contain_text(commit[:7])
    the_page_agrees_with_status(page, process)

    # the filter: by name, by commit, by stage, and only what needs a person
    box, mine = page.locator("#filter-text"), page.locator("#filter-mine")
    box.fill("svc04")
    assert visible_rows(page) == [f"svc04{n}" for n in range(10)]
    expect(page.locator("#filter-shown")).to_have_text(f"10 of {FLEET} shown")
    box.fill(commit[:7])
    assert visible_rows(page) == ["svc000"]
    box.fill("svc099-va")
    assert visible_rows(page) == ["svc099"]
    box.fill("")
    mine.focus()
    page.keyboard.press("Space")  # a real checkbox: the keyboard works it
    needing = sorted(name for name, kind in kinds_from_status(process).items() if kind in NEEDS_ME)
    assert needing == ["svc001", "svc002", "svc004"]
    assert visible_rows(page) == needing
    page.locator("#open-svc001").focus()
    page.keyboard.press("ArrowDown")  # from one service's name to the next shown
    expect(page.locator("#open-svc002")).to_be_focused()
    page.keyboard.press("ArrowDown")
    expect(page.locator("#open-svc004")).to_be_focused()
    mine.focus()
    page.keyboard.press("Space")
    assert len(visible_rows(page)) == FLEET

    # a row opens today's detail, and the colours keep AA contrast
    page.locator("#service-svc003 .fleet-row .state").click()
    expect(page.locator("#detail-svc003")).to_be_visible()
    expect(page.locator("#gate-svc003-svc003-qa-age")).to_contain_text("opens in")
    _checked, failing = low_contrast(page)
    assert failing == []
    page.locator("#service-svc003 .fleet-row .state").click()
    expect(page.locator("#detail-svc003")).to_be_hidden()

    OUTPUT.mkdir(exist_ok=True)
    page.mouse.move(0, 0)  # no row lit by the pointer
    page.screenshot(path=str(OUTPUT / "fleet.png"))  # the screen a person sees first

    # an edit of the services file that is refused shows at once, and goes when fixed
    good = cluster.config.read_text()
    cluster.config.write_text(good.replace('alerts = ["HighErrors"]', 'alerts = "HighErrors"'))
    banner = page.locator(".banner-config")
    expect(banner).to_contain_text("The services file was NOT reloaded", timeout=10_000)
    expect(banner).to_contain_text("Still running the previous configuration.")
    expect(banner).to_contain_text(str(cluster.config))
    cluster.config.write_text(good)
    expect(banner).to_have_count(0, timeout=10_000)
    assert page.evaluate("window.cascadeMarker") == "not reloaded"
    assert errors == []
