"""Reloading the services file (`app.config.reload`) in a running, in-process Cascade.

The sandbox grows the pipelines a reloaded file adds, so a new service can be promoted
end to end. SIGHUP is exercised on a real process in `tests/e2e/test_production.py`.
"""

import logging
from datetime import UTC, datetime
from pathlib import Path

import pytest

from app.config.catalog import ConfigProblem
from app.config.reload import differences, stamp
from app.config.services import Service, ServicesConfig
from tests.factories import WEB
from tests.inprocess import ADMIN, Cascade, Start, eventually

API = """
[[service]]
name = "api"
pipeline = "api"
stages = ["api-qa", "api-st"]
min_age = "0s"
"""
BROKEN = API + '\n[[service]]\nname = "web"\npipeline = "web"\nstagez = ["web-dev"]\n'
A = "a" * 40


@pytest.fixture
def services(tmp_path: Path) -> Path:
    path = tmp_path / "services.toml"
    write(path, API)
    return path


def write(path: Path, text: str) -> None:
    path.write_text(text)


async def reload(cascade: Cascade) -> tuple[int, dict[str, object]]:
    response = await cascade.client.post("/reload", headers=ADMIN)
    return response.status_code, response.json()


async def promoted(cascade: Cascade, service: str, app: str, commit: str) -> bool:
    return await cascade.stage_commit(service, app) == commit


async def test_a_new_service_is_promoted_after_a_reload(
    start_cascade: Start, services: Path
) -> None:
    cascade = await start_cascade(config_path=services, reload_seconds=0)
    assert [s["name"] for s in (await cascade.status())["services"]] == ["api"]
    write(services, API + WEB)
    code, body = await reload(cascade)
    assert code == 200, body
    assert (body["added"], body["removed"], body["changed"]) == (["web"], [], [])
    assert body["services"] == ["api", "web"]
    await cascade.settle()
    assert cascade.runtime.sandbox is not None
    await cascade.runtime.sandbox.deploy("web-dev", A)
    await eventually(lambda: promoted(cascade, "web", "web-prod", A), "A promoted to web-prod", 30)

    async def settled() -> bool:
        kinds = [e["kind"] for e in await cascade.events(service="web")]
        return "promotion.succeeded" in kinds

    await eventually(settled, "the promotion recorded as succeeded", 30)


async def test_a_broken_file_is_refused_and_the_old_one_keeps_running(
    start_cascade: Start, services: Path, caplog: pytest.LogCaptureFixture
) -> None:
    cascade = await start_cascade(config_path=services, reload_seconds=0)
    write(services, BROKEN)
    with caplog.at_level(logging.ERROR, logger="app.config.reload"):
        code, body = await reload(cascade)
    assert code == 422
    detail = str(body["detail"])
    for named in (str(services), '"web"', '"stagez"'):  # the file, the service, the field
        assert named in detail
    assert "still running the previous file" in detail
    (line,) = [r.getMessage() for r in caplog.records if r.name == "app.config.reload"]
    for said in ("NOT reloaded", '"stagez"', "(1 services)"):
        assert said in line
    assert [s["name"] for s in (await cascade.status())["services"]] == ["api"]
    assert cascade.runtime.sandbox is not None
    await cascade.runtime.sandbox.deploy("api-qa", A)  # the old configuration still promotes
    await eventually(lambda: promoted(cascade, "api", "api-st", A), "A promoted to api-st", 30)


async def test_a_refused_reload_shows_in_status_until_a_good_one(
    start_cascade: Start, services: Path
) -> None:
    cascade = await start_cascade(config_path=services, reload_seconds=0)
    assert (await cascade.status())["config_problem"] is None
    write(services, BROKEN)
    before = datetime.now(UTC)
    assert (await reload(cascade))[0] == 422
    problem = (await cascade.status())["config_problem"]
    assert problem["path"] == str(services)
    assert '"stagez"' in problem["message"]
    assert '"web"' in problem["message"]
    assert before <= datetime.fromisoformat(problem["at"]) <= datetime.now(UTC)
    found = cascade.runtime.catalog.problem  # what the dashboard reads
    assert isinstance(found, ConfigProblem)
    assert found.message == problem["message"]
    write(services, API)  # put back as it was: unchanged, and no longer a problem
    code, body = await reload(cascade)
    assert (code, body["detail"]) == (200, "unchanged")
    assert (await cascade.status())["config_problem"] is None
    write(services, BROKEN)
    assert (await reload(cascade))[0] == 422
    write(services, API + WEB)  # a good new file clears it too
    assert (await reload(cascade))[0] == 200
    assert cascade.runtime.catalog.problem is None
    assert (await cascade.status())["config_problem"] is None


async def test_the_file_is_watched(start_cascade: Start, services: Path) -> None:
    cascade = await start_cascade(config_path=services, reload_seconds=0.05)

    async def names() -> list[str] | None:
        found = [s["name"] for s in (await cascade.status())["services"]]
        return found if found == ["api", "web"] else None

    write(services, API + WEB)
    await eventually(names, "the watcher to load the new file")
    write(services, BROKEN)  # refused: still the two services
    await eventually(lambda: _counted(cascade, "refused"), "the watcher to refuse the broken file")
    assert await names() == ["api", "web"]


async def test_an_unchanged_file_changes_nothing(start_cascade: Start, services: Path) -> None:
    cascade = await start_cascade(config_path=services, reload_seconds=0)
    before = cascade.runtime.catalog.config
    code, body = await reload(cascade)
    assert (code, body["detail"]) == (200, "unchanged")
    assert cascade.runtime.catalog.config is before


async def test_a_changed_service_reads_its_pipeline_again(
    start_cascade: Start, services: Path
) -> None:
    cascade = await start_cascade(config_path=services, reload_seconds=0)
    assert "api" in cascade.runtime.reconciler.topologies.known
    write(services, API.replace('"api-st"]', '"api-st", "api-prod"]'))
    code, body = await reload(cascade)
    assert (code, body["changed"]) == (200, ["api"])
    await cascade.settle()
    status = await cascade.json("/status/api")
    assert [s["app"] for s in status["stages"]] == ["api-qa", "api-st", "api-prod"]
    assert cascade.runtime.reconciler.config is cascade.runtime.catalog


async def test_a_removed_service_is_gone(start_cascade: Start, services: Path) -> None:
    write(services, API + WEB)
    cascade = await start_cascade(config_path=services, reload_seconds=0)
    write(services, API)
    code, body = await reload(cascade)
    assert (code, body["removed"]) == (200, ["web"])
    assert (await cascade.client.get("/status/web")).status_code == 404


async def test_reload_needs_the_admin_token(start_cascade: Start, services: Path) -> None:
    cascade = await start_cascade(config_path=services, reload_seconds=0)
    write(services, API + WEB)
    response = await cascade.client.post("/reload")
    assert response.status_code == 401
    assert [s["name"] for s in (await cascade.status())["services"]] == ["api"]


def test_differences_name_added_removed_and_changed() -> None:
    path = Path("x.toml")
    old = ServicesConfig(path, (Service("a", "a"), Service("b", "b"), Service("c", "c")))
    new = ServicesConfig(path, (Service("a", "a"), Service("c", "c2"), Service("d", "d")))
    assert differences(old, new) == (("d",), ("b",), ("c",))


def test_stamp_changes_when_the_file_is_replaced(tmp_path: Path) -> None:
    path = tmp_path / "f.toml"
    assert stamp(path) is None
    path.write_text("one")
    first = stamp(path)
    replacement = tmp_path / "g.toml"
    replacement.write_text("two")
    replacement.replace(path)  # as editors and Kubernetes config maps do
    assert stamp(path) not in (None, first)


async def _counted(cascade: Cascade, result: str) -> bool:
    registry = cascade.runtime.metrics.registry
    sample = registry.get_sample_value("cascade_config_reloads_total", {"result": result})
    return bool(sample)
