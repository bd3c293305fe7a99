"""GitHub deployments: the client's two calls and the services file's setting."""

from pathlib import Path

import httpx
import pytest
import respx

from app.services import ConfigError, load_services
from app.sources.github import GitHubClient, GitHubError

GITHUB = "https://github.test/api/v3"
TOKEN = "ghs_0123456789abcdefghij"


# the client and the services file -----------------------------------------------------------


async def test_the_client_refuses_an_answer_without_a_deployment() -> None:
    with respx.mock(base_url=GITHUB) as mock:
        mock.post("/repos/acme/api/deployments").mock(
            side_effect=[
                httpx.Response(202, json={"message": "Auto-merged master into topic-branch"}),
                httpx.Response(422, json={"message": "No ref found for: abc"}),
            ]
        )
        client = GitHubClient(GITHUB, TOKEN)
        for expected in ("202 without a deployment id", "422 No ref found for: abc"):
            with pytest.raises(GitHubError, match=expected) as caught:
                await client.create_deployment(
                    "acme/api",
                    "abc",
                    environment="x",
                    description="y",
                    production=False,
                    payload={},
                )
            assert TOKEN not in str(caught.value)
        await client.aclose()


@pytest.mark.parametrize(
    ("text", "wanted"),
    [
        pytest.param('repo = "acme/api"\ngithub_deployments = true\n', True, id="on"),
        pytest.param('repo = "acme/api"\n', False, id="off-by-default"),
    ],
)
def test_github_deployments_setting(tmp_path: Path, text: str, wanted: bool) -> None:
    path = tmp_path / "services.toml"
    path.write_text(f'[[service]]\nname = "api"\npipeline = "api"\n{text}')
    [service] = load_services(path).services
    assert service.github_deployments is wanted


def test_github_deployments_need_a_repo(tmp_path: Path) -> None:
    path = tmp_path / "services.toml"
    path.write_text('[[service]]\nname = "api"\npipeline = "api"\ngithub_deployments = true\n')
    with pytest.raises(ConfigError, match=r'"api": field "github_deployments": needs "repo"'):
        load_services(path)
