from collections.abc import Callable
from datetime import timedelta
from pathlib import Path

import pytest

from app.config.services import ConfigError, Freeze, Service, load_services, parse_duration

SPEC_EXAMPLE = """
[defaults]
min_age = "30m"          # age gate: how long a commit must run in a stage before it moves on
branch = "main"          # github gate: only commits on this branch are promoted

[[service]]
name = "api"                                   # unique; used in URLs
pipeline = "api"                               # Heroku pipeline name or id
stages = ["api-qa01", "api-st01", "api-va01"]  # promotion order
repo = "acme/api"                              # enables the github gate
alerts = ["api 5xx rate", "APIHighLatency"]    # Librato alert names/ids or Alertmanager alertnames
urls = ["https://ci.example.com/status/api"]   # each must answer HTTP 200
incident_systems = ["Apps", "Data"]            # which status systems/components matter
min_age = "45m"                                # per-service override
[service.stage_min_age]                        # keyed by the target
"api-va01" = "1h"                              # have run in the stage before it

[[freeze]]                                     # a recurring freeze window
cron = "0 15 * * FRI"                          # when it starts
duration = "66h"
timezone = "America/Los_Angeles"
reason = "no weekend deploys"
services = ["api"]                             # optional; none = every service
"""

MINIMAL = """
[[service]]
name = "api"
pipeline = "api"
"""

Write = Callable[[str], Path]


@pytest.fixture
def write(tmp_path: Path) -> Write:
    """Write a services file and return its path."""

    def _write(text: str) -> Path:
        path = tmp_path / "cascade.toml"
        path.write_text(text, encoding="utf-8")
        return path

    return _write


def load_error(path: Path) -> str:
    with pytest.raises(ConfigError) as info:
        load_services(path)
    return str(info.value)


def test_spec_example_loads(write: Write) -> None:
    path = write(SPEC_EXAMPLE)
    config = load_services(path)
    assert config.path == path
    assert config.services == (
        Service(
            name="api",
            pipeline="api",
            stages=("api-qa01", "api-st01", "api-va01"),
            repo="acme/api",
            branch="main",
            alerts=("api 5xx rate", "APIHighLatency"),
            urls=("https://ci.example.com/status/api",),
            incident_systems=("Apps", "Data"),
            require_checks=False,
            min_age=timedelta(minutes=45),
            stage_min_age={"api-va01": timedelta(hours=1)},
        ),
    )
    assert config.freezes == (
        Freeze(
            cron="0 15 * * FRI",
            duration=timedelta(hours=66),
            timezone="America/Los_Angeles",
            reason="no weekend deploys",
            services=("api",),
        ),
    )
    assert config.get("api") is config.services[0]
    assert config.get("web") is None


def test_minimal_service_gets_defaults(write: Write) -> None:
    config = load_services(write(MINIMAL))
    assert config.services == (Service(name="api", pipeline="api"),)
    service = config.services[0]
    assert service.stages is None
    assert service.branch == "main"
    assert service.min_age == timedelta(minutes=30)
    assert config.freezes == ()


@pytest.mark.parametrize(
    ("value", "expected"),
    [
        ("90s", timedelta(seconds=90)),
        ("30m", timedelta(minutes=30)),
        ("1h", timedelta(hours=1)),
        ("1h30m", timedelta(hours=1, minutes=30)),
        ("2d", timedelta(days=2)),
        ("1d2h3m4s", timedelta(days=1, hours=2, minutes=3, seconds=4)),
        ("0s", timedelta(0)),
        (90, timedelta(seconds=90)),
        (0, timedelta(0)),
        (1.5, timedelta(seconds=1.5)),
        ("90", timedelta(seconds=90)),
        ("2.5", timedelta(seconds=2.5)),
    ],
    ids=[
        "seconds",
        "minutes",
        "hours",
        "hours-minutes",
        "days",
        "all-units",
        "zero-unit",
        "int",
        "int-zero",
        "float",
        "numeric-string",
        "decimal-string",
    ],
)
def test_parse_duration(value: object, expected: timedelta) -> None:
    assert parse_duration(value) == expected


@pytest.mark.parametrize(
    ("value", "message"),
    [
        ("", '"" is not a duration'),
        ("3x", '"3x" is not a duration (write 90s, 30m, 1h or 1h30m'),
        ("-5", '"-5" is not a duration'),
        (-5, "-5 is not a duration"),
        (-0.5, "-0.5 is not a duration"),
        ("30m1h", '"30m1h" is not a duration'),
        ("1h 30m", '"1h 30m" is not a duration'),
        ("h", '"h" is not a duration'),
        (True, "true is not a duration"),
        (None, "null is not a duration"),
        ([30], "[30] is not a duration"),
        (float("nan"), "NaN is not a duration"),
        (float("inf"), "too long"),
        (10**30, "too long"),
        ("99999999999d", "too long"),
    ],
    ids=[
        "empty",
        "garbage",
        "negative-string",
        "negative-int",
        "negative-float",
        "wrong-order",
        "spaces",
        "unit-only",
        "bool",
        "none",
        "list",
        "nan",
        "infinity",
        "huge-int",
        "huge-days",
    ],
)
def test_parse_duration_rejects(value: object, message: str) -> None:
    with pytest.raises(ValueError) as info:
        parse_duration(value)
    assert message in str(info.value)


@pytest.mark.parametrize(
    ("toml_value", "expected"),
    [
        ('"90s"', timedelta(seconds=90)),
        ('"1h30m"', timedelta(minutes=90)),
        ("90", timedelta(seconds=90)),
        ("2.5", timedelta(seconds=2.5)),
        ('"90"', timedelta(seconds=90)),
    ],
    ids=["unit-string", "compound-string", "toml-int", "toml-float", "numeric-string"],
)
def test_duration_forms_in_file(write: Write, toml_value: str, expected: timedelta) -> None:
    config = load_services(write(MINIMAL + f"min_age = {toml_value}\n"))
    assert config.services[0].min_age == expected


@pytest.mark.parametrize(
    ("defaults", "service", "target", "expected"),
    [
        ("", "", "b", timedelta(minutes=30)),
        ('min_age = "10m"', "", "b", timedelta(minutes=10)),
        ('min_age = "10m"', 'min_age = "20m"', "b", timedelta(minutes=20)),
        ('min_age = "10m"', 'min_age = "20m"\nstage_min_age = {c = "3h"}', "c", timedelta(hours=3)),
        (
            'min_age = "10m"',
            'min_age = "20m"\nstage_min_age = {c = "3h"}',
            "b",
            timedelta(minutes=20),
        ),
        ('min_age = "10m"', 'stage_min_age = {c = "3h"}', "b", timedelta(minutes=10)),
        ("", 'stage_min_age = {c = "3h"}', "b", timedelta(minutes=30)),
        ("min_age = 0", "", "b", timedelta(0)),
    ],
    ids=[
        "built-in-30m",
        "defaults",
        "service-over-defaults",
        "stage-over-service",
        "other-stage-uses-service",
        "other-stage-uses-defaults",
        "other-stage-uses-built-in",
        "zero-allowed",
    ],
)
def test_min_age_precedence(
    write: Write, defaults: str, service: str, target: str, expected: timedelta
) -> None:
    text = f"""
[defaults]
{defaults}

[[service]]
name = "api"
pipeline = "api"
stages = ["a", "b", "c"]
{service}
"""
    assert load_services(write(text)).services[0].min_age_for(target) == expected


@pytest.mark.parametrize(
    ("defaults", "service", "expected"),
    [
        ("", "", ("main", (), False)),
        (
            'branch = "trunk"\nincident_systems = ["Apps"]\nrequire_checks = true',
            "",
            ("trunk", ("Apps",), True),
        ),
        (
            'branch = "trunk"\nincident_systems = ["Apps"]\nrequire_checks = true',
            'branch = "release"\nincident_systems = []\nrequire_checks = false',
            ("release", (), False),
        ),
    ],
    ids=["built-in", "from-defaults", "service-overrides"],
)
def test_other_defaults(
    write: Write, defaults: str, service: str, expected: tuple[str, tuple[str, ...], bool]
) -> None:
    text = f'[defaults]\n{defaults}\n\n[[service]]\nname = "api"\npipeline = "api"\n{service}\n'
    found = load_services(write(text)).services[0]
    assert (found.branch, found.incident_systems, found.require_checks) == expected


def test_stage_min_age_without_stages_is_kept(write: Write) -> None:
    config = load_services(write(MINIMAL + '[service.stage_min_age]\n"api-prod" = "2h"\n'))
    assert config.services[0].stage_min_age == {"api-prod": timedelta(hours=2)}
    assert config.services[0].stages is None


def test_freeze_defaults(write: Write) -> None:
    text = MINIMAL + '[[freeze]]\ncron = "0 15 * * FRI"\nduration = "66h"\nreason = "weekend"\n'
    assert load_services(write(text)).freezes == (
        Freeze(cron="0 15 * * FRI", duration=timedelta(hours=66), timezone="UTC", reason="weekend"),
    )


@pytest.mark.parametrize(
    "cron",
    ["0 15 * * FRI", "*/15 9-17 * * mon-fri", "0 0 1,15 JAN,JUL *", "30 2 * * 0", "0 0 * * 7"],
    ids=["day-name", "ranges-steps-lowercase", "lists-month-names", "sunday-0", "sunday-7"],
)
def test_freeze_cron_accepted(write: Write, cron: str) -> None:
    text = MINIMAL + f'[[freeze]]\ncron = "{cron}"\nduration = "1h"\nreason = "r"\n'
    assert load_services(write(text)).freezes[0].cron == cron


def test_missing_file(tmp_path: Path) -> None:
    path = tmp_path / "nowhere.toml"
    message = load_error(path)
    assert str(path) in message
    assert "does not exist" in message
    assert "CASCADE_CONFIG" in message


def test_toml_syntax_error(write: Write) -> None:
    path = write('[[service]]\nname = "api"\npipeline = \n')
    message = load_error(path)
    assert message.startswith(f"{path}: not valid TOML")
    assert "line 3" in message


SERVICE = '[[service]]\nname = "api"\npipeline = "api"\n'
STAGES = SERVICE + 'stages = ["api-qa01", "api-st01", "api-va01"]\n'
FREEZE = SERVICE + '[[freeze]]\ncron = "0 15 * * FRI"\nduration = "66h"\nreason = "r"\n'

# Each case: file text, then what the message must say after the file path.
ERRORS: list[tuple[str, str, str]] = [
    ("empty-file", "", "no [[service]] table"),
    ("only-defaults", '[defaults]\nmin_age = "1h"\n', "no [[service]] table"),
    ("service-not-array", '[service]\nname = "api"\n', '"service" must be an array of tables'),
    ("unknown-top-level-key", "extra = 1\n" + SERVICE, 'unknown field "extra"'),
    ("unknown-top-table", "[other]\na = 1\n" + SERVICE, 'unknown field "other"'),
    (
        "unknown-service-key",
        SERVICE + 'min_agee = "1h"\n',
        'service "api": unknown field "min_agee"',
    ),
    (
        "unknown-defaults-key",
        "[defaults]\nurls = []\n" + SERVICE,
        '[defaults]: unknown field "urls"',
    ),
    ("unknown-freeze-key", FREEZE + 'when = "now"\n', 'freeze #1: unknown field "when"'),
    (
        "bad-min-age",
        SERVICE + 'min_age = "3x"\n',
        'service "api": field "min_age": "3x" is not a duration (write 90s, 30m, 1h or 1h30m',
    ),
    (
        "negative-min-age",
        SERVICE + "min_age = -5\n",
        'service "api": field "min_age": -5 is not a duration',
    ),
    (
        "bool-min-age",
        SERVICE + "min_age = true\n",
        'service "api": field "min_age": true is not a duration',
    ),
    (
        "bad-defaults-min-age",
        '[defaults]\nmin_age = "soon"\n' + SERVICE,
        '[defaults]: field "min_age": "soon" is not a duration',
    ),
    (
        "bad-defaults-branch",
        "[defaults]\nbranch = 1\n" + SERVICE,
        '[defaults]: field "branch": expected a branch name',
    ),
    ("missing-name", '[[service]]\npipeline = "api"\n', 'service #1: field "name": missing'),
    (
        "second-without-name",
        SERVICE + '[[service]]\npipeline = "web"\n',
        'service #2: field "name": missing',
    ),
    (
        "name-not-url-safe",
        '[[service]]\nname = "my api"\npipeline = "api"\n',
        'service #1: field "name": expected a URL-safe name',
    ),
    (
        "name-with-slash",
        '[[service]]\nname = "a/b"\npipeline = "api"\n',
        'service #1: field "name"',
    ),
    (
        "name-not-string",
        '[[service]]\nname = 3\npipeline = "api"\n',
        'service #1: field "name": expected',
    ),
    ("duplicate-name", SERVICE + SERVICE, 'service #2: field "name": "api" is already taken'),
    ("missing-pipeline", '[[service]]\nname = "api"\n', 'service "api": field "pipeline": missing'),
    (
        "pipeline-not-string",
        '[[service]]\nname = "api"\npipeline = 7\n',
        'service "api": field "pipeline": expected',
    ),
    (
        "empty-pipeline",
        '[[service]]\nname = "api"\npipeline = ""\n',
        'service "api": field "pipeline": expected',
    ),
    (
        "stages-not-list",
        SERVICE + 'stages = "api-qa01"\n',
        'service "api": field "stages": expected a list',
    ),
    (
        "stages-empty",
        SERVICE + "stages = []\n",
        'service "api": field "stages": expected 2 or more',
    ),
    (
        "stages-one",
        SERVICE + 'stages = ["a"]\n',
        'service "api": field "stages": expected 2 or more',
    ),
    (
        "stages-duplicate",
        SERVICE + 'stages = ["a", "b", "a"]\n',
        'field "stages": expected 2 or more distinct',
    ),
    (
        "stages-not-strings",
        SERVICE + "stages = [1, 2]\n",
        'service "api": field "stages": expected a list of app names',
    ),
    ("stages-blank", SERVICE + 'stages = ["a", " "]\n', 'service "api": field "stages"'),
    (
        "repo-no-owner",
        SERVICE + 'repo = "api"\n',
        'service "api": field "repo": expected a GitHub repository "owner/name"',
    ),
    ("repo-url", SERVICE + 'repo = "https://github.com/acme/api"\n', 'service "api": field "repo"'),
    (
        "branch-empty",
        SERVICE + 'branch = ""\n',
        'service "api": field "branch": expected a branch name',
    ),
    (
        "alerts-not-list",
        SERVICE + 'alerts = "5xx"\n',
        'service "api": field "alerts": expected a list of alert names',
    ),
    (
        "alerts-not-strings",
        SERVICE + "alerts = [1]\n",
        'service "api": field "alerts": expected a list',
    ),
    (
        "url-ftp",
        SERVICE + 'urls = ["ftp://ci.example.com"]\n',
        'field "urls": expected a list of http(s) URLs; "ftp://ci.example.com" is not one',
    ),
    ("url-garbage", SERVICE + 'urls = ["ci.example.com/status"]\n', 'service "api": field "urls"'),
    ("url-no-host", SERVICE + 'urls = ["https://"]\n', 'service "api": field "urls"'),
    (
        "incident-systems-string",
        SERVICE + 'incident_systems = "Apps"\n',
        'service "api": field "incident_systems"',
    ),
    (
        "require-checks-string",
        SERVICE + 'require_checks = "yes"\n',
        'service "api": field "require_checks": expected true or false, got "yes"',
    ),
    (
        "stage-min-age-not-table",
        SERVICE + 'stage_min_age = "1h"\n',
        'service "api": field "stage_min_age": expected a table',
    ),
    (
        "stage-min-age-unknown-target",
        STAGES + '[service.stage_min_age]\n"api-eu01" = "1h"\n',
        'field "stage_min_age": "api-eu01" is not a target stage; one of api-st01, api-va01',
    ),
    (
        "stage-min-age-first-stage",
        STAGES + '[service.stage_min_age]\n"api-qa01" = "1h"\n',
        'service "api": field "stage_min_age": "api-qa01" is not a target stage',
    ),
    (
        "stage-min-age-bad-duration",
        STAGES + '[service.stage_min_age]\n"api-va01" = "later"\n',
        'service "api": field "stage_min_age.api-va01": "later" is not a duration',
    ),
    (
        "freeze-bad-timezone",
        FREEZE + 'timezone = "Mars/Olympus"\n',
        'freeze #1: field "timezone": expected an IANA time zone such as Europe/Paris',
    ),
    (
        "freeze-timezone-path",
        FREEZE + 'timezone = "../../etc/passwd"\n',
        'freeze #1: field "timezone"',
    ),
    (
        "freeze-unknown-service",
        FREEZE + 'services = ["web"]\n',
        'freeze #1: field "services": "web" is not a service here (api)',
    ),
    (
        "freeze-services-not-list",
        FREEZE + 'services = "api"\n',
        'freeze #1: field "services": expected a list',
    ),
    (
        "freeze-missing-cron",
        SERVICE + '[[freeze]]\nduration = "1h"\nreason = "r"\n',
        'freeze #1: field "cron": missing',
    ),
    (
        "freeze-cron-four-fields",
        SERVICE + '[[freeze]]\ncron = "0 15 * FRI"\nduration = "1h"\nreason = "r"\n',
        'freeze #1: field "cron": "0 15 * FRI" has 4 fields; expected 5',
    ),
    (
        "freeze-cron-bad-chars",
        SERVICE + '[[freeze]]\ncron = "0 15 * * FRI!"\nduration = "1h"\nreason = "r"\n',
        'freeze #1: field "cron": "0 15 * * FRI!": the day-of-week field "FRI!" is not 0-7',
    ),
    (
        "freeze-cron-out-of-range",
        SERVICE + '[[freeze]]\ncron = "61 * * * *"\nduration = "1h"\nreason = "r"\n',
        'freeze #1: field "cron": "61 * * * *": the minute field "61" is not 0-59',
    ),
    (
        "freeze-cron-zero-step",
        SERVICE + '[[freeze]]\ncron = "*/0 * * * *"\nduration = "1h"\nreason = "r"\n',
        'the minute field "*/0"',
    ),
    (
        "freeze-missing-duration",
        SERVICE + '[[freeze]]\ncron = "0 15 * * FRI"\nreason = "r"\n',
        'freeze #1: field "duration": missing',
    ),
    (
        "freeze-zero-duration",
        SERVICE + '[[freeze]]\ncron = "0 15 * * FRI"\nduration = 0\nreason = "r"\n',
        'freeze #1: field "duration": expected a duration longer than 0',
    ),
    (
        "freeze-bad-duration",
        SERVICE + '[[freeze]]\ncron = "0 15 * * FRI"\nduration = "all weekend"\nreason = "r"\n',
        'freeze #1: field "duration": "all weekend" is not a duration',
    ),
    (
        "freeze-missing-reason",
        SERVICE + '[[freeze]]\ncron = "0 15 * * FRI"\nduration = "1h"\n',
        'freeze #1: field "reason": missing',
    ),
    (
        "second-freeze",
        FREEZE + '[[freeze]]\ncron = "0 15 * * FRI"\nduration = "1h"\n',
        'freeze #2: field "reason"',
    ),
]


@pytest.mark.parametrize(
    ("text", "expected"), [case[1:] for case in ERRORS], ids=[case[0] for case in ERRORS]
)
def test_errors_name_file_service_and_field(write: Write, text: str, expected: str) -> None:
    path = write(text)
    message = load_error(path)
    assert message.startswith(f"{path}: ")
    assert expected in message


def test_halt_window_and_rollback_default_and_override(write: Write) -> None:
    text = '[defaults]\nhalt_window = "10m"\n' + MINIMAL + "rollback = true\n"
    text += MINIMAL.replace('"api"', '"web"') + 'halt_window = "0s"\n'
    api, web = load_services(write(text)).services
    assert (api.halt_window, api.rollback) == (timedelta(minutes=10), True)
    assert (web.halt_window, web.rollback) == (timedelta(0), False)
    assert load_services(write(MINIMAL)).services[0].halt_window == timedelta(minutes=30)


def test_a_bad_halt_window_is_refused(write: Write) -> None:
    message = load_error(write(MINIMAL + 'halt_window = "soon"\n'))
    assert 'service "api": field "halt_window": "soon" is not a duration' in message
