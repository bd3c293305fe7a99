"""The services-file loader against Hypothesis: a ServicesConfig or a ConfigError, nothing else.

Three kinds of file: documents of the right shape with values drawn from plausible and
hostile ones (every known key, some unknown ones, tables where lists belong, huge
numbers, NaN, bad cron and time zones), arbitrary text, and arbitrary bytes. Whatever
the file, `load_services` returns a config or raises ConfigError naming the file.
"""

import json
import math
import tomllib
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from app.config.services import ConfigError, ServicesConfig, load_services
from tests.figures import Figure, record
from tests.hostile.conftest import EXAMPLES

pytestmark = pytest.mark.reliability

# TOML ---------------------------------------------------------------------------------


def _key(name: str) -> str:
    return _value(name)


def _value(value: Any) -> str:
    """A TOML value: JSON's string escapes are TOML's, and so are its lists, nearly."""
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, int):
        return str(value)
    if isinstance(value, float):
        if math.isnan(value):
            return "nan"
        if math.isinf(value):
            return "inf" if value > 0 else "-inf"
        return repr(value)
    if isinstance(value, str):  # TOML wants DEL escaped and no surrogate-pair escapes
        return json.dumps(value, ensure_ascii=False).replace("\x7f", "\\u007f")
    if isinstance(value, list):
        return "[" + ", ".join(_value(v) for v in value) + "]"
    if isinstance(value, dict):
        return "{" + ", ".join(f"{_key(k)} = {_value(v)}" for k, v in value.items()) + "}"
    raise TypeError(value)


def to_toml(document: dict[str, Any]) -> str:
    """`defaults` as a table, `service` and `freeze` as arrays of tables, the rest inline."""
    lines = []
    for key, value in document.items():
        if key == "defaults" and isinstance(value, dict):
            lines.append("[defaults]")
            lines += [f"{_key(k)} = {_value(v)}" for k, v in value.items()]
        elif key in ("service", "freeze") and isinstance(value, list) and value:
            if all(isinstance(item, dict) for item in value):
                for item in value:
                    lines.append(f"[[{key}]]")
                    lines += [f"{_key(k)} = {_value(v)}" for k, v in item.items()]
                continue
            lines.insert(0, f"{_key(key)} = {_value(value)}")
        else:
            lines.insert(0, f"{_key(key)} = {_value(value)}")
    return "\n".join(lines) + "\n"


# documents ------------------------------------------------------------------------------
# A document is drawn valid, then up to two of its values are swapped for hostile ones (and
# now and then an unknown key is added), so that the loader's every check is reached.

TEXT = st.text(max_size=20)
WORDS = st.from_regex(r"[A-Za-z][A-Za-z0-9 ._-]{0,15}", fullmatch=True)
ANYTHING = st.recursive(
    st.one_of(st.booleans(), st.integers(), st.floats(), TEXT),
    lambda inner: st.lists(inner, max_size=3) | st.dictionaries(TEXT, inner, max_size=3),
    max_leaves=6,
)
NAMES = st.sampled_from(["api", "web", "a", "x-1", "api.v2", "Z_9"])
APPS = st.sampled_from(["api-qa", "api-st", "api-prod", "web-dev", "web-prod", "w1"])
DURATIONS = st.one_of(
    st.sampled_from(["30m", "1h30m", "2d", "90s", "90", "0", "0s", "1.5"]),
    st.integers(0, 10**6),
    st.floats(0, 10**6),
)
CRONS = st.sampled_from(["0 15 * * FRI", "*/15 * * * *", "0 0 31 2 *", "0 9-17 * JAN-MAR 1-5"])
ZONES = st.sampled_from(["UTC", "Europe/Paris", "America/Los_Angeles"])
URLS = st.sampled_from(["https://ci.example.com/ok", "http://127.0.0.1:9/x"])
HOSTILE: dict[str, st.SearchStrategy[Any]] = {
    "name": st.sampled_from(["", " ", "a/b", "ÿ", "-lead", "a b"]) | ANYTHING,
    "stages": st.sampled_from([[], ["one"], ["a", "a"], [1, 2], "api-qa"]) | ANYTHING,
    "repo": st.sampled_from(["acme", "a/b/c", "/", "ac me/x"]) | ANYTHING,
    "urls": st.sampled_from([["http://[::1"], ["ftp://x"], ["https://"], [""]]) | ANYTHING,
    "duration": st.one_of(
        st.sampled_from(["", "1x", "h", "-1", "99999999999999999999d", "1e400", "nan", "1h-1m"]),
        st.integers(-(10**30), 10**30),
        st.floats(),
        ANYTHING,
    ),
    "cron": st.one_of(
        st.sampled_from(["* * * * * *", "61 * * * *", "0 0 * * 8", "*/0 * * * *", "a-b * * * *"]),
        st.lists(
            st.sampled_from(["*", "0", "*/0", "1-5", "MON-FRI", "JAN", "99", "ﬀ"]), max_size=6
        ).map(" ".join),
        ANYTHING,
    ),
    "timezone": st.sampled_from(
        ["Mars/Base", "../etc", "/etc/passwd", "Europe/", "UTC\x00", "a" * 5000, "", "."]
    )
    | ANYTHING,
    "any": ANYTHING,
}
HOSTILE_FOR = {  # which hostile values each field gets; the rest get anything at all
    "name": "name", "pipeline": "name", "services": "stages", "stages": "stages", "repo": "repo",
    "urls": "urls", "min_age": "duration", "duration": "duration", "cron": "cron",
    "timezone": "timezone",
}  # fmt: skip


def rarely(draw: st.DrawFn, one_in: int) -> bool:
    return bool(draw(st.sampled_from(range(one_in))) == one_in // 2)


def corrupt(draw: st.DrawFn, table: dict[str, Any], unknown: str) -> dict[str, Any]:
    if table and rarely(draw, 4):
        key = draw(st.sampled_from(sorted(table)))
        table[key] = draw(HOSTILE[HOSTILE_FOR.get(key, "any")])
    if rarely(draw, 12):
        table[unknown] = draw(ANYTHING)
    return table


def optional(draw: st.DrawFn, values: dict[str, st.SearchStrategy[Any]]) -> dict[str, Any]:
    chosen = draw(st.lists(st.sampled_from(sorted(values)), unique=True))
    return {key: draw(values[key]) for key in chosen}


@st.composite
def services(draw: st.DrawFn, name: str) -> dict[str, Any]:
    stages = draw(st.lists(APPS, min_size=2, max_size=4, unique=True))
    table = {"name": name, "pipeline": draw(NAMES), "stages": stages}
    table |= optional(
        draw,
        {
            "repo": st.sampled_from(["acme/api", "Codertocat/Hello-World"]),
            "branch": st.sampled_from(["main", "master", "release/1"]),
            "alerts": st.lists(WORDS, max_size=3),
            "urls": st.lists(URLS, max_size=2),
            "incident_systems": st.lists(WORDS, max_size=3),
            "require_checks": st.booleans(),
            "min_age": DURATIONS,
            "stage_min_age": st.dictionaries(st.sampled_from(stages[1:]), DURATIONS, max_size=2),
            "stage_alerts": st.dictionaries(
                st.sampled_from(stages), st.lists(WORDS, max_size=2), max_size=2
            ),
            "halt_window": DURATIONS,
            "rollback": st.booleans(),
        },
    )
    if "repo" in table:
        table |= optional(
            draw, {"commit_statuses": st.booleans(), "github_deployments": st.booleans()}
        )
    return corrupt(draw, table, "unknown_field")


@st.composite
def freezes(draw: st.DrawFn, names: list[str]) -> dict[str, Any]:
    table = {"cron": draw(CRONS), "duration": draw(DURATIONS), "reason": draw(WORDS)}
    table |= optional(
        draw, {"timezone": ZONES, "services": st.lists(st.sampled_from(names), max_size=2)}
    )
    return corrupt(draw, table, "surprise")


@st.composite
def documents(draw: st.DrawFn) -> dict[str, Any]:
    names = draw(st.lists(NAMES, min_size=1, max_size=3, unique=True))
    defaults = optional(
        draw,
        {
            "min_age": DURATIONS,
            "branch": st.sampled_from(["main", "trunk"]),
            "require_checks": st.booleans(),
            "incident_systems": st.lists(WORDS, max_size=2),
            "halt_window": DURATIONS,
        },
    )
    document: dict[str, Any] = {
        "defaults": corrupt(draw, defaults, "max_age"),
        "service": [draw(services(name)) for name in names],
        "freeze": draw(st.lists(freezes(names), max_size=2)),
    }
    if rarely(draw, 12):  # a table where an array of tables belongs, and so on
        document[draw(st.sampled_from(["defaults", "service", "freeze", "extra"]))] = draw(ANYTHING)
    return document


KINDS: dict[str, st.SearchStrategy[bytes]] = {
    "documents": documents().map(to_toml).map(str.encode),
    "text": st.text(max_size=400).map(str.encode),
    "bytes": st.binary(max_size=400),
}


def load(path: Path, content: bytes) -> tuple[str, str | None]:
    """("config" | "refused" | "escaped", what escaped)."""
    path.write_bytes(content)
    try:
        result = load_services(path)
    except ConfigError as error:
        if str(path) not in str(error):
            return "escaped", f"a ConfigError that does not name the file: {error}"
        return "refused", None
    except Exception as error:
        return "escaped", f"{type(error).__name__}: {error}"
    assert isinstance(result, ServicesConfig)
    return "config", None


@pytest.mark.parametrize("kind", sorted(KINDS))
def test_any_file_gives_a_config_or_a_config_error(tmp_path: Path, kind: str) -> None:
    path = tmp_path / "cascade-hostile.toml"
    outcomes: dict[str, int] = {"config": 0, "refused": 0, "escaped": 0}
    decided: Callable[[bytes], None]

    @settings(settings.get_profile("hostile"), max_examples=EXAMPLES * 4)  # cheap: no I/O
    @given(KINDS[kind])
    def decided(content: bytes) -> None:
        outcome, escaped = load(path, content)
        outcomes[outcome] += 1
        assert escaped is None, f"{escaped}\nfile:\n{content.decode(errors='replace')}"

    try:
        decided()
    finally:
        record(
            Figure(
                area="hostile input",
                check=f"services file loader: {kind}",
                cases=sum(outcomes.values()),
                note=(
                    f"{outcomes['config']} loaded, {outcomes['refused']} ConfigError,"
                    f" {outcomes['escaped']} other exceptions (must be 0)"
                ),
            )
        )


def test_the_toml_writer_round_trips() -> None:
    document = {
        "defaults": {"min_age": "30m", "require_checks": False},
        "service": [{"name": "api", "stages": ["a", "b"], "stage_min_age": {"b": 90.5}}],
        "freeze": [{"cron": "0 15 * * FRI", "duration": float("inf")}],
    }
    assert tomllib.loads(to_toml(document))["service"] == document["service"]
