from dataclasses import replace
from typing import cast

import pytest

from app.engine.topology import Topology, codec, moved, on_container_stack, order_stages
from app.heroku.client import HerokuClient
from tests.factories import release


@pytest.mark.parametrize(
    ("couplings", "expected"),
    [
        ([], ()),
        (
            [("b-prod", "production"), ("a-st", "staging"), ("c-dev", "development")],
            ("c-dev", "a-st", "b-prod"),
        ),
        ([("z-st", "staging"), ("a-st", "staging"), ("m-st", "staging")], ("a-st", "m-st", "z-st")),
        (
            [("t", "test"), ("r", "review"), ("s", "staging"), ("p", "production")],
            ("s", "p"),
        ),
        (
            [("eu", "production"), ("qa", "development"), ("us", "production")],
            ("qa", "eu", "us"),
        ),
    ],
    ids=["none", "by-stage", "by-name-within-stage", "test-and-review-ignored", "mixed"],
)
def test_order_stages(couplings: list[tuple[str, str]], expected: tuple[str, ...]) -> None:
    assert order_stages(couplings) == expected


OLD = Topology("p1", ("qa", "st"), {"qa": "id-qa", "st": "id-st"})


@pytest.mark.parametrize(
    ("new", "expected"),
    [
        (OLD, ()),
        (Topology("p2", ("qa", "st"), {"qa": "id-qa", "st": "id-st"}), ()),
        (Topology("p1", ("qa", "st"), {"qa": "id-qa", "st": "new-st"}), ("st",)),
        (Topology("p2", ("qa", "st"), {"qa": "new-qa", "st": "new-st"}), ("qa", "st")),
        (Topology("p1", ("qa", "st", "prod"), {"qa": "id-qa", "st": "id-st", "prod": "x"}), ()),
    ],
    ids=["same", "pipeline-recreated-apps-kept", "one-app-recreated", "all-new", "app-added"],
)
def test_moved_names_the_apps_known_under_another_id(
    new: Topology, expected: tuple[str, ...]
) -> None:
    assert moved(OLD, new) == expected


class Stacks:
    """The one Platform API call `on_container_stack` makes, answered from a table."""

    def __init__(self, stacks: dict[str, str]) -> None:
        self.stacks, self.asked = stacks, list[str]()

    async def stack(self, app_id: str) -> str:
        self.asked.append(app_id)
        return self.stacks[app_id]


async def test_only_apps_whose_newest_release_runs_no_build_are_asked_their_stack() -> None:
    heroku = Stacks({"id-docker": "container", "id-new": "heroku-24"})
    releases = [
        release("cedar", 3, "A"),  # a slug
        replace(release("fir", 2, "A"), slug_id=None, oci_image_id="image-1"),
        replace(release("docker", 9, None), slug_id=None),
        replace(release("new", 1, None), slug_id=None),  # before its first deploy
        replace(release("elsewhere", 1, None), slug_id=None),  # not a stage
    ]
    ids = {app: f"id-{app}" for app in ("cedar", "fir", "docker", "new")}
    found = await on_container_stack(cast(HerokuClient, heroku), releases, ids)
    assert found == ("docker",)
    assert sorted(heroku.asked) == ["id-docker", "id-new"]


def test_a_topology_stored_before_stacks_were_read_loads_with_none_on_container() -> None:
    old = b'{"pipeline_id":"p1","stages":["qa","st"],"app_ids":{"qa":"i1","st":"i2"}}'
    assert codec.validate_json(old) == Topology("p1", ("qa", "st"), {"qa": "i1", "st": "i2"})
