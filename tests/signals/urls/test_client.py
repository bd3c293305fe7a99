"""The URL prober (`app.signals.urls.client`) against respx routes, and once against a real
local server."""

import asyncio
import base64
import threading
import time
from collections.abc import AsyncIterator, Iterator
from datetime import timedelta
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import httpx
import pytest
import respx

from app.config.settings import Settings
from app.signals.urls.client import UrlProber
from app.signals.urls.facts import NOT_CHECKED, UrlCheck
from tests.factories import NOW, service

CI = "https://ci.example.com/status/api"
SMOKE = "https://smoke.example.com/ok"
FRESH = timedelta(seconds=10)


@pytest.fixture
async def prober() -> AsyncIterator[UrlProber]:
    made = UrlProber(FRESH, timeout=0.5)
    yield made
    await made.aclose()


@pytest.fixture
def web() -> Iterator[respx.MockRouter]:
    with respx.mock(assert_all_called=False) as router:
        yield router


@pytest.mark.parametrize(
    ("answer", "status", "phrase", "error"),
    [
        pytest.param(httpx.Response(200), 200, "OK", None, id="200"),
        pytest.param(httpx.Response(500), 500, "Internal Server Error", None, id="500"),
        pytest.param(httpx.Response(599), 599, "", None, id="unregistered-status"),
        pytest.param(httpx.ReadTimeout("read"), None, "", "timed out after 0.5s", id="timeout"),
        pytest.param(
            httpx.RemoteProtocolError("Server disconnected without sending a response."),
            None,
            "",
            "the connection closed without an answer"
            " (Server disconnected without sending a response.)",
            id="closed",
        ),
    ],
)
async def test_what_a_url_answered(
    prober: UrlProber,
    web: respx.MockRouter,
    answer: httpx.Response | Exception,
    status: int | None,
    phrase: str,
    error: str | None,
) -> None:
    web.get(CI).mock(side_effect=[answer])
    (check,) = await prober.gather(service(urls=(CI,)), NOW)
    assert check == UrlCheck(CI, status, error, NOW, NOW + FRESH, phrase)


async def test_a_refused_connection_says_so() -> None:
    # respx replaces an error's cause, so this one goes through httpx's own mock transport
    def refused(request: httpx.Request) -> httpx.Response:
        error = ConnectionRefusedError(111, "Connect call failed ('10.0.0.1', 443)")
        raise httpx.ConnectError("All connection attempts failed", request=request) from error

    prober = UrlProber(FRESH, transport=httpx.MockTransport(refused))
    try:
        (check,) = await prober.gather(service(urls=(CI,)), NOW)
    finally:
        await prober.aclose()
    assert check == UrlCheck(CI, None, "connection refused", NOW, NOW + FRESH)


async def test_a_slow_answer_times_out_in_all(prober: UrlProber, web: respx.MockRouter) -> None:
    async def slow(request: httpx.Request) -> httpx.Response:
        await asyncio.sleep(5)
        return httpx.Response(200)

    web.get(CI).mock(side_effect=slow)
    (check,) = await prober.gather(service(urls=(CI,)), NOW)
    assert (check.status, check.error) == (None, "timed out after 0.5s")


async def test_every_url_of_a_service_is_probed_at_once(
    prober: UrlProber, web: respx.MockRouter
) -> None:
    both = asyncio.Barrier(2)  # each answer waits for the other request to arrive

    async def meet(request: httpx.Request) -> httpx.Response:
        await asyncio.wait_for(both.wait(), 0.4)
        return httpx.Response(200)

    web.get(CI).mock(side_effect=meet)
    web.get(SMOKE).mock(side_effect=meet)
    checks = await prober.gather(service(urls=(CI, SMOKE)), NOW)
    assert [(c.url, c.status) for c in checks] == [(CI, 200), (SMOKE, 200)]


async def test_a_fresh_answer_is_reused_by_every_service(
    prober: UrlProber, web: respx.MockRouter
) -> None:
    route = web.get(CI).mock(side_effect=[httpx.Response(500), httpx.Response(200)])
    first = await prober.gather(service("api", urls=(CI,)), NOW)
    again = await prober.gather(service("web", urls=(CI,)), NOW + FRESH - timedelta(seconds=1))
    assert again == first
    assert route.call_count == 1
    (later,) = await prober.gather(service("api", urls=(CI,)), NOW + FRESH)
    assert (later.status, later.checked_at, route.call_count) == (200, NOW + FRESH, 2)


async def test_overlapping_probes_of_one_url_share_one_request(
    prober: UrlProber, web: respx.MockRouter
) -> None:
    release = asyncio.Event()

    async def held(request: httpx.Request) -> httpx.Response:
        await release.wait()
        return httpx.Response(503)

    route = web.get(CI).mock(side_effect=held)
    waiting = [
        asyncio.create_task(prober.gather(service(name, urls=(CI,)), NOW))
        for name in ("api", "web", "worker")
    ]
    await asyncio.sleep(0.05)
    release.set()
    answers = await asyncio.gather(*waiting)
    assert route.call_count == 1
    assert {a[0].status for a in answers} == {503}


async def test_one_caller_giving_up_does_not_cancel_the_shared_probe(
    prober: UrlProber, web: respx.MockRouter
) -> None:
    release = asyncio.Event()

    async def held(request: httpx.Request) -> httpx.Response:
        await release.wait()
        return httpx.Response(200)

    route = web.get(CI).mock(side_effect=held)
    impatient = asyncio.create_task(prober.gather(service(urls=(CI,)), NOW))
    patient = asyncio.create_task(prober.gather(service(urls=(CI,)), NOW))
    await asyncio.sleep(0.05)
    impatient.cancel()
    release.set()
    (check,) = await patient
    assert (check.status, route.call_count) == (200, 1)


async def test_without_fetch_only_the_cache_is_read(
    prober: UrlProber, web: respx.MockRouter
) -> None:
    route = web.get(CI).mock(return_value=httpx.Response(500))
    svc = service(urls=(CI, SMOKE))
    assert await prober.gather(svc, NOW, fetch=False) == (
        UrlCheck(CI, None, NOT_CHECKED, None),
        UrlCheck(SMOKE, None, NOT_CHECKED, None),
    )
    assert route.call_count == 0
    await prober.gather(service(urls=(CI,)), NOW)
    long_after = NOW + 10 * FRESH  # the last answer, even stale: the status page shows it
    (ci, smoke) = await prober.gather(svc, long_after, fetch=False)
    assert (ci.status, ci.checked_at, smoke.error) == (500, NOW, NOT_CHECKED)
    assert route.call_count == 1


async def test_a_service_without_urls_probes_nothing(prober: UrlProber) -> None:
    assert await prober.gather(service(), NOW) == ()
    assert await prober.gather(service(), NOW, fetch=False) == ()


async def test_redirects_are_not_followed(prober: UrlProber, web: respx.MockRouter) -> None:
    web.get(CI).mock(return_value=httpx.Response(302, headers={"Location": "/login?next=/api"}))
    login = web.get("https://ci.example.com/login").mock(return_value=httpx.Response(200))
    (check,) = await prober.gather(service(urls=(CI,)), NOW)
    assert (check.status, check.phrase) == (302, "Found")
    assert check.location == "https://ci.example.com/login?next=/api"
    assert login.call_count == 0


async def test_userinfo_is_sent_as_basic_auth_and_kept_out_of_errors(
    prober: UrlProber, web: respx.MockRouter
) -> None:
    secret_url = "https://bot:s3cret@ci.example.com/status/api"
    route = web.get(CI).mock(return_value=httpx.Response(200))
    (check,) = await prober.gather(service(urls=(secret_url,)), NOW)
    assert check.status == 200
    sent = route.calls.last.request.headers["Authorization"]
    assert sent == "Basic " + base64.b64encode(b"bot:s3cret").decode()

    def leaky(request: httpx.Request) -> httpx.Response:
        raise httpx.ConnectError(f"cannot reach {secret_url}", request=request)

    route.mock(side_effect=leaky)
    (failed,) = await prober.gather(service(urls=(secret_url,)), NOW + FRESH)
    assert failed.error == f"ConnectError: cannot reach {CI}"


def test_from_settings_caches_for_signal_retry_seconds() -> None:
    made = UrlProber.from_settings(Settings(signal_retry_seconds=3))
    assert made.fresh_for == timedelta(seconds=3)
    assert made.timeout == 5.0
    asyncio.run(made.aclose())


# --- a real server -----------------------------------------------------------------------------


class Answers(BaseHTTPRequestHandler):
    def do_GET(self) -> None:
        if self.path == "/slow":
            time.sleep(2)
        status = {"/ok": 200, "/broken": 500, "/moved": 301}.get(self.path, 404)
        self.send_response(status)
        if status == 301:
            self.send_header("Location", "/ok")
        self.send_header("Content-Length", "0")
        self.end_headers()

    def log_message(self, format: str, *args: object) -> None:
        pass


@pytest.fixture
def server() -> Iterator[str]:
    httpd = ThreadingHTTPServer(("127.0.0.1", 0), Answers)
    httpd.daemon_threads = True
    thread = threading.Thread(target=httpd.serve_forever, daemon=True)
    thread.start()
    yield f"http://127.0.0.1:{httpd.server_address[1]}"
    httpd.shutdown()
    httpd.server_close()
    thread.join()


async def test_against_a_real_server(server: str) -> None:
    closed = ThreadingHTTPServer(("127.0.0.1", 0), Answers)  # bound, then closed: refuses
    nobody = f"http://127.0.0.1:{closed.server_address[1]}/ok"
    closed.server_close()
    prober = UrlProber(FRESH, timeout=0.5)
    try:
        urls = (f"{server}/ok", f"{server}/broken", f"{server}/moved", f"{server}/slow", nobody)
        checks = await prober.gather(service(urls=urls), NOW)
    finally:
        await prober.aclose()
    answered = [(c.status, c.phrase, c.location, c.error) for c in checks]
    assert answered == [
        (200, "OK", None, None),
        (500, "Internal Server Error", None, None),
        (301, "Moved Permanently", f"{server}/ok", None),
        (None, "", None, "timed out after 0.5s"),
        (None, "", None, "connection refused"),
    ]
