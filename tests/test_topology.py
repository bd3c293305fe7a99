import pytest

from app.topology import order_stages


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
