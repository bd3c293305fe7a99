"""The webhook senders as the hostile tests see them: one line each, and what they may be sent.

A sender is its route, the setting that authenticates it, how a delivery proves itself
(Heroku's base64 HMAC, GitHub's hex HMAC, the shared token) and the headers it carries.
Adding a sender to the tests is one line in `SENDERS`; its real samples are read from
`tests/fixtures/<name>/`. A sender whose route is not in the app's OpenAPI yet is skipped.
"""

import copy
import json
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import urlencode

from hypothesis import strategies as st

from tests import signing
from tests.conftest import FIXTURES

Json = Any
Headers = dict[str, str]
Params = dict[str, str]
# A delivery's credentials: (headers, query parameters), from the body and the secret.
Credentials = Callable[[bytes, str], tuple[Headers, Params]]


def heroku_hmac(body: bytes, secret: str) -> tuple[Headers, Params]:
    return {"Heroku-Webhook-Hmac-SHA256": signing.heroku(body, secret)}, {}


def github_hmac(body: bytes, secret: str) -> tuple[Headers, Params]:
    return {"X-Hub-Signature-256": signing.github(body, secret)}, {}


def bearer(body: bytes, secret: str) -> tuple[Headers, Params]:
    return {"Authorization": f"Bearer {secret}"}, {}


def query_token(body: bytes, secret: str) -> tuple[Headers, Params]:
    return {}, {"token": secret}


def _github_event(sample: str | None) -> str:
    """`push-with-new-branch.json` was a `push` delivery: the fixture names its event first."""
    return (sample or "push").split("-")[0]


HEADER_TEXT = st.text(st.characters(min_codepoint=0x20, max_codepoint=0x7E), max_size=40)
GITHUB_EVENTS = ("push", "status", "check_suite", "ping", "check_run", "workflow_run")


def github_headers(sample: str | None) -> st.SearchStrategy[Headers]:
    """X-GitHub-Event (mostly the sample's own, sometimes another or garbage) and a delivery id."""
    own = _github_event(sample)
    event = st.one_of(st.just(own), st.just(own), st.sampled_from(GITHUB_EVENTS), HEADER_TEXT)
    delivery = st.one_of(st.uuids().map(str), HEADER_TEXT)
    return st.fixed_dictionaries({"X-GitHub-Event": event, "X-GitHub-Delivery": delivery})


def no_headers(sample: str | None) -> st.SearchStrategy[Headers]:
    return st.just({})


@dataclass(frozen=True)
class Sender:
    name: str  # its module in app/webhooks/ and its folder of samples in tests/fixtures/
    path: str
    setting: str  # the Settings field holding its secret (unset: every delivery is refused)
    ways: tuple[Credentials, ...]  # each way a sender may authenticate
    headers: Callable[[str | None], st.SearchStrategy[Headers]] = no_headers
    form_field: str | None = None  # also delivered as a form with the JSON in this field
    samples: dict[str, Json] = field(default_factory=dict, compare=False, repr=False)

    @property
    def setting_name(self) -> str:
        return {"webhook_token": "CASCADE_WEBHOOK_TOKEN"}.get(self.setting, self.setting.upper())

    def credentials(self, body: bytes, secret: str, way: int = 0) -> tuple[Headers, Params]:
        return self.ways[way % len(self.ways)](body, secret)


def _samples(name: str) -> dict[str, Json]:
    found = {p.name: json.loads(p.read_text()) for p in sorted((FIXTURES / name).glob("*.json"))}
    if name == "heroku":  # point the releases at a configured stage, or they are only ignored
        for payload in found.values():
            payload["data"]["app"]["name"] = "api-qa"
    return found


def _sender(name: str, setting: str, *ways: Credentials, **more: Any) -> Sender:
    return Sender(name, f"/webhooks/{name}", setting, ways, samples=_samples(name), **more)


# fmt: off
SENDERS: tuple[Sender, ...] = (
    _sender("heroku", "heroku_webhook_secret", heroku_hmac),
    _sender("github", "github_webhook_secret", github_hmac, headers=github_headers),
    _sender("librato", "webhook_token", query_token, bearer, form_field="payload"),
    _sender("alertmanager", "webhook_token", bearer, query_token),
    _sender("status", "webhook_token", query_token, bearer),
)
# fmt: on

# What the services file of these tests names, so that the samples reach past "ignored":
# the GitHub samples' repository and branch, the alert names of the Librato and
# Alertmanager samples.
SERVICES = """
[[service]]
name = "api"
pipeline = "api"
stages = ["api-qa", "api-st", "api-prod"]
repo = "Codertocat/Hello-World"
branch = "master"
require_checks = true
alerts = ["collectd.high.load", "alert.name", "Alert_name", "a.test.name", "High CPU Temperature"]
min_age = "1h"

[[service]]
name = "web"
pipeline = "web"
stages = ["web-dev", "web-prod"]
incident_systems = ["Apps"]
"""


# bodies ----------------------------------------------------------------------------------

EDGES: tuple[Json, ...] = (
    None, True, False, 0, -1, 1, 2**31, 2**63, -(2**63) - 1, 10**30, -(10**30), 1e308, -1e308,
    0.5, float("nan"), float("inf"), "", " ", "0", "-1", "null", "x" * 5000, "\u0000", "🙂",
    "\ud7ff", "1970-01-01T00:00:00Z", "9999-12-31T23:59:59Z", "0001-01-01", "2024-02-30",
    "not a date", "refs/heads/", "0" * 40, [], {}, [None], {"": None},
)  # fmt: skip
SCALARS = st.one_of(
    st.none(),
    st.booleans(),
    st.integers(),
    st.floats(),  # NaN and infinities too: Python's json writes and reads them
    st.text(max_size=30),
    st.sampled_from(EDGES),
)
JSON_VALUES = st.recursive(
    SCALARS,
    lambda children: st.one_of(
        st.lists(children, max_size=4),
        st.dictionaries(st.text(max_size=12), children, max_size=4),
    ),
    max_leaves=12,
)


def _places(node: Json, trail: tuple[Any, ...] = ()) -> Iterator[tuple[Any, ...]]:
    """Every path into a JSON document, the root `()` first."""
    yield trail
    if isinstance(node, dict):
        for key, value in node.items():
            yield from _places(value, (*trail, key))
    elif isinstance(node, list):
        for index, value in enumerate(node):
            yield from _places(value, (*trail, index))


def _mutate(doc: Json, where: tuple[Any, ...], how: str, value: Json) -> Json:
    if not where:
        return value
    *parents, last = where
    node = doc
    for step in parents:
        node = node[step]
    if how == "delete":
        del node[last]
    else:
        node[last] = value
    return doc


@st.composite
def mutations(draw: st.DrawFn, samples: dict[str, Json]) -> tuple[str, Json]:
    """A real sample with a few of its values replaced by edge cases or deleted."""
    name = draw(st.sampled_from(sorted(samples)))
    doc = copy.deepcopy(samples[name])
    for _ in range(draw(st.integers(1, 3))):
        places = list(_places(doc))
        where = draw(st.sampled_from(places[1:] if len(places) > 1 else places))
        how = draw(st.sampled_from(("replace", "replace", "delete"))) if where else "replace"
        value = draw(st.one_of(st.sampled_from(EDGES), JSON_VALUES))
        doc = _mutate(doc, where, how, copy.deepcopy(value))  # EDGES holds [] and {}
    return name, doc


def nested(depth: int) -> bytes:
    return b'{"a":' * depth + b"1" + b"}" * depth


RAW_BYTES = st.one_of(
    st.binary(max_size=300),
    st.integers(1, 200_000).map(lambda n: b"[" * n + b"]" * n),  # deeper than Python recurses
    st.integers(1, 100_000).map(nested),
    st.sampled_from([b"", b"{", b"nul", b"\xff\xfe{}", b'{"a":1}{"a":2}', b"\x00" * 10]),
)


def encode(doc: Json) -> bytes:
    return json.dumps(doc).encode()


def as_form(sender: Sender, body: bytes) -> bytes:
    assert sender.form_field is not None
    return urlencode({sender.form_field: body.decode("utf-8", "surrogatepass")}).encode()


@dataclass(frozen=True)
class Delivery:
    kind: str  # "json", "bytes", "sample", for the figures
    body: bytes
    headers: Headers
    way: int  # which of the sender's ways of authenticating


@st.composite
def deliveries(draw: st.DrawFn, sender: Sender, kind: str) -> Delivery:
    """A correctly authenticated delivery of `kind`: arbitrary JSON, bytes, a mutated sample."""
    sample: str | None = None
    if kind == "json":
        body = encode(draw(JSON_VALUES))
    elif kind == "bytes":
        body = draw(RAW_BYTES)
    else:
        sample, doc = draw(mutations(sender.samples))
        body = encode(doc)
    headers = dict(draw(sender.headers(sample)))
    if sender.form_field and kind != "bytes" and draw(st.booleans()):
        body = as_form(sender, body)
        headers["Content-Type"] = "application/x-www-form-urlencoded"
    else:
        headers["Content-Type"] = draw(st.sampled_from(["application/json", "text/plain", ""]))
    return Delivery(kind, body, headers, draw(st.integers(0, len(sender.ways) - 1)))
