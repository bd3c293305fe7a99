"""The dashboard in a real headless Chromium (Debian's, driven by Playwright).

Two Cascade processes share one Redis and one sandbox platform: the sandbox's
webhooks reach the first, which promotes; the browser reads the page of the
second, so every live change crosses processes. The page is never reloaded
(a marker on `window` must survive). A screenshot goes to the test's folder and
to test-output/dashboard.png.
"""

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
    expect(page.locator("#gate-api-api-prod-age")).to_contain_text("closed")

    # a pause posted to the other process: its banner appears here
    until = (datetime.now(UTC) + timedelta(hours=2)).isoformat()
    pause(worker, reason="browser test", by="e2e", until=until)
    banner = page.locator(".banner-paused")
    expect(banner).to_contain_text("Everything is paused: browser test — by e2e", timeout=10_000)
    expect(banner.locator("[data-countdown]")).to_have_text("1h59m", timeout=5_000)

    # a second commit behind the first: two in flight, each shown where it is
    cluster.deploy("api-qa", B)
    expect(stage(page, "api-qa", B)).to_have_count(1, timeout=30_000)
    flight = page.locator("#service-api .flight")
    expect(flight).to_contain_text("2 commits on the way")
    expect(flight).to_contain_text(f"{B[:7]} api-qa → api-st")
    expect(flight).to_contain_text(f"{A[:7]} api-st → api-prod")
    expect(page.locator('.transit[data-to="api-st"]')).to_have_attribute("data-commit", B)

    # each gate's reason shows on focus (from the keyboard) and on hover
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
    context.close()
