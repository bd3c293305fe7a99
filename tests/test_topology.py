import pytest

from app.topology import Topology, moved, order_stages


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
