"""Each peer `cascade check` tries, tried as Cascade would use it: one finding per item.

Redis with a PING (a cluster node: every slot served, every master answering); the
Platform API the way Cascade reads it (`topology.load` through `HerokuClient`); GitHub,
Librato, the status feed and each service URL with a plain GET. Each finding says what is
wrong and how to fix it; nothing is written anywhere, and no secret is printed.
"""

import asyncio
import logging
from dataclasses import dataclass
from pathlib import Path

import httpx

from app.config.services import Service, ServicesConfig
from app.config.settings import Settings
from app.engine import topology
from app.heroku.client import HerokuClient, HerokuError
from app.storage.client import (
    UNAVAILABLE,
    UnsupportedRedis,
    cluster_problem,
    connect,
    connect_cluster,
    is_cluster_node,
)

OK, PROBLEM, NOTE = "✓", "✗", "-"
TIMEOUT_SECONDS = 10.0
URL_TIMEOUT_SECONDS = 5.0
FIX_REDIS = "check REDIS_URL (redis:// or rediss://, password) and that the server is up"


@dataclass(frozen=True)
class Finding:
    mark: str  # OK, PROBLEM, or NOTE (skipped, or worth knowing)
    item: str
    text: str

    def line(self) -> str:
        return f"{self.mark} {self.item}: {self.text}"


async def redis(settings: Settings) -> list[Finding]:
    if settings.redis_url is None:
        where = settings.data_dir / "redis"
        return [Finding(NOTE, "Redis", f"REDIS_URL not set: Cascade runs its own, data in {where}")]
    url = settings.redis_url.get_secret_value()
    try:
        client = connect(url)
    except UnsupportedRedis as error:
        return [Finding(PROBLEM, "Redis", str(error))]
    try:
        if await asyncio.wait_for(is_cluster_node(url), TIMEOUT_SECONDS):
            return [await _cluster(url)]
        await asyncio.wait_for(client.ping(), TIMEOUT_SECONDS)  # on its database
    except UNAVAILABLE as error:  # TimeoutError is an OSError
        return [Finding(PROBLEM, "Redis", f"no answer ({type(error).__name__}): {FIX_REDIS}")]
    finally:
        await client.aclose()
    return [Finding(OK, "Redis", "REDIS_URL answers: one server")]


async def _cluster(url: str) -> Finding:
    """A Redis Cluster: every slot served, as the node says, and every master answers, at
    the address the cluster gives for it (the client is sent there)."""
    try:
        problem = await asyncio.wait_for(cluster_problem(url), TIMEOUT_SECONDS)
        if problem is not None:
            return Finding(PROBLEM, "Redis", f"REDIS_URL is a node of {problem}")
        cluster = connect_cluster(url)
    except UnsupportedRedis as error:
        return Finding(PROBLEM, "Redis", str(error))
    except UNAVAILABLE as error:
        return Finding(PROBLEM, "Redis", f"no answer ({type(error).__name__}): {FIX_REDIS}")
    try:
        await asyncio.wait_for(cluster.initialize(), TIMEOUT_SECONDS)
        masters = cluster.get_primaries()
        await asyncio.wait_for(
            asyncio.gather(*(cluster.ping(target_nodes=node) for node in masters)),
            TIMEOUT_SECONDS,
        )
    except UNAVAILABLE as error:
        why = (
            f"REDIS_URL is a node of a Redis Cluster whose masters do not all answer"
            f" ({type(error).__name__}) at the addresses it gives for them: check that every"
            " node is up and reachable from here (cluster-announce-ip)"
        )
        return Finding(PROBLEM, "Redis", why)
    finally:
        await cluster.aclose()
    text = f"REDIS_URL answers: a node of a Redis Cluster of {len(masters)} masters"
    return Finding(OK, "Redis", f"{text}, every slot served")


async def heroku(settings: Settings, config: ServicesConfig) -> list[Finding]:
    """The token and each service's pipeline; the client's own error lines are quieted."""
    heroku_log = logging.getLogger("app.heroku.transport")
    level, heroku_log.level = heroku_log.level, logging.CRITICAL  # its findings say it all
    try:
        return await _heroku(settings, config)
    finally:
        heroku_log.setLevel(level)


async def over_http(settings: Settings, config: ServicesConfig) -> list[Finding]:
    """GitHub, Librato, the status feed and every service URL, through one HTTP client."""
    async with httpx.AsyncClient(timeout=URL_TIMEOUT_SECONDS) as http:
        found = await _github(settings, config, http)
        found += await _librato(settings, config, http)
        found += await _status_feed(settings, http)
        found += await _urls(config, http)
    return found


async def _heroku(settings: Settings, config: ServicesConfig) -> list[Finding]:
    if settings.heroku_api_key is None:
        text = "HEROKU_API_KEY not set: Cascade runs on the sandbox, a simulated Heroku"
        return [Finding(NOTE, "Heroku", text)]
    api = settings.heroku_api_url
    client = HerokuClient(
        api,
        settings.heroku_api_key.get_secret_value(),
        timeout=TIMEOUT_SECONDS,
        max_retries=1,
        backoff=0.2,
    )
    pipelines: list[Finding] = []
    accepted = False
    try:
        for service in config.services:
            item = f"pipeline {service.pipeline}"
            try:
                stages, _releases = await topology.load(client, service)
            except topology.TopologyError as error:
                accepted = True
                fix = f'fix "stages" of service "{service.name}" in {config.path}'
                pipelines.append(Finding(PROBLEM, item, f"{error}: {fix}"))
                continue
            except HerokuError as error:
                if error.status == 401:
                    fix = "create one (heroku authorizations:create) and set HEROKU_API_KEY"
                    return [Finding(PROBLEM, "Heroku token", f"refused by {api} (401): {fix}")]
                if error.status is None:
                    fix = "check HEROKU_API_URL and the network"
                    return [Finding(PROBLEM, "Heroku", f"cannot reach {api} ({error}): {fix}")]
                accepted = True
                pipelines.append(Finding(PROBLEM, item, _pipeline_fix(error, service, config.path)))
                continue
            accepted = True
            flow = " → ".join(stages.stages)
            pipelines.append(Finding(OK, item, f"service {service.name}: {flow}"))
    finally:
        await client.aclose()
    head = [Finding(OK, "Heroku token", f"accepted by {api}")] if accepted else []
    return head + pipelines


def _pipeline_fix(error: HerokuError, service: Service, path: Path) -> str:
    if error.status == 404:
        return (
            f'not found, or the token cannot see it: check "pipeline" of service'
            f' "{service.name}" in {path} (heroku pipelines lists them)'
        )
    if error.status == 403:
        return "the token may not read it: use a token of a member of the pipeline's team"
    return f"{error} (HTTP {error.status})"


async def _github(
    settings: Settings, config: ServicesConfig, http: httpx.AsyncClient
) -> list[Finding]:
    repos = [s for s in config.services if s.repo]
    api = settings.github_api_url.rstrip("/")
    headers = {"Accept": "application/vnd.github+json"}
    found: list[Finding] = []
    if settings.github_token is not None:
        headers["Authorization"] = f"Bearer {settings.github_token.get_secret_value()}"
        answer = await _get(http, f"{api}/rate_limit", headers=headers)
        if isinstance(answer, str) or answer.status_code != 200:
            why = answer if isinstance(answer, str) else f"HTTP {answer.status_code}"
            fix = "create a token that can read the repositories and set GITHUB_TOKEN"
            return [Finding(PROBLEM, "GitHub token", f"refused by {api} ({why}): {fix}")]
        found.append(Finding(OK, "GitHub token", f"accepted by {api}"))
    elif repos:
        text = "GITHUB_TOKEN not set: 60 requests an hour, and private repositories stay unseen"
        found.append(Finding(NOTE, "GitHub", text))
    else:
        return [Finding(NOTE, "GitHub", "no service names a repo: skipped")]
    for service in repos:
        answer = await _get(http, f"{api}/repos/{service.repo}", headers=headers)
        item = f"repo {service.repo}"
        if not isinstance(answer, str) and answer.status_code == 200:
            found.append(Finding(OK, item, f"readable (service {service.name})"))
            continue
        why = answer if isinstance(answer, str) else f"HTTP {answer.status_code}"
        fix = (
            f'check "repo" of service "{service.name}" in {config.path},'
            " and that the token may read it"
        )
        found.append(Finding(PROBLEM, item, f"not readable ({why}): {fix}"))
    return found


async def _librato(
    settings: Settings, config: ServicesConfig, http: httpx.AsyncClient
) -> list[Finding]:
    user, token = settings.librato_user, settings.librato_token
    if user is None and token is None:
        alerts = any(s.every_alert for s in config.services)
        text = "not configured: alerts come from webhooks only" if alerts else "not configured"
        return [Finding(NOTE, "Librato", text)]
    if user is None or token is None:
        missing = "LIBRATO_USER" if user is None else "LIBRATO_TOKEN"
        return [Finding(PROBLEM, "Librato", f"{missing} is not set: set both or neither")]
    api = settings.librato_api_url.rstrip("/")
    auth = (user, token.get_secret_value())
    answer = await _get(http, f"{api}/v1/alerts", params={"length": "1"}, auth=auth)
    if isinstance(answer, str) or answer.status_code != 200:
        why = answer if isinstance(answer, str) else f"HTTP {answer.status_code}"
        fix = "check LIBRATO_USER and LIBRATO_TOKEN (a token that may read alerts)"
        return [Finding(PROBLEM, "Librato", f"refused by {api} ({why}): {fix}")]
    return [Finding(OK, "Librato", f"credentials accepted by {api}")]


async def _status_feed(settings: Settings, http: httpx.AsyncClient) -> list[Finding]:
    url = settings.status_api_url
    if not url:
        return [Finding(NOTE, "status feed", "STATUS_API_URL not set: skipped")]
    answer = await _get(http, url)
    if isinstance(answer, str) or answer.status_code != 200:
        why = answer if isinstance(answer, str) else f"HTTP {answer.status_code}"
        fix = "STATUS_API_URL should be a Statuspage summary.json or Heroku's current-status"
        return [Finding(PROBLEM, "status feed", f"{url}: {why}: {fix}")]
    try:
        body = answer.json()
    except ValueError:
        body = None
    if not isinstance(body, dict):
        return [Finding(PROBLEM, "status feed", f"{url} answered, but not with a JSON object")]
    return [Finding(OK, "status feed", f"{url} answers")]


async def _urls(config: ServicesConfig, http: httpx.AsyncClient) -> list[Finding]:
    pairs = [(s, url) for s in config.services for url in s.urls]
    answers = await asyncio.gather(*(_get(http, url) for _s, url in pairs))
    found = []
    for (service, url), answer in zip(pairs, answers, strict=True):
        item = f"url {url}"
        if not isinstance(answer, str) and answer.status_code == 200:
            found.append(Finding(OK, item, f"answers 200 (service {service.name})"))
            continue
        why = answer if isinstance(answer, str) else f"answers HTTP {answer.status_code}"
        fix = f"the urls gate of service {service.name} stays closed until it answers 200"
        found.append(Finding(PROBLEM, item, f"{why}: {fix}"))
    return found


async def _get(
    http: httpx.AsyncClient,
    url: str,
    *,
    headers: dict[str, str] | None = None,
    params: dict[str, str] | None = None,
    auth: tuple[str, str] | None = None,
) -> httpx.Response | str:
    """The response, or why there was none (a timeout, a refused connection)."""
    try:
        return await http.get(url, headers=headers, params=params, auth=auth)
    except httpx.TimeoutException:
        return f"no answer within {URL_TIMEOUT_SECONDS:.0f}s"
    except httpx.HTTPError as error:
        return f"cannot connect ({type(error).__name__})"
