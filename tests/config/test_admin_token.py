"""The sandbox's admin token file: made once per data directory, private, read locally only."""

from pathlib import Path

import pytest

from app.config import admin_token


def test_it_is_made_once_private_and_kept(tmp_path: Path) -> None:
    data = tmp_path / "data"
    made = admin_token.sandbox_token(data)
    assert (data / "admin-token").stat().st_mode & 0o777 == 0o600
    assert len(made.get_secret_value()) >= 32
    assert admin_token.sandbox_token(data) == made  # a restart keeps it
    assert admin_token.sandbox_token(tmp_path / "other") != made  # one per data directory
    assert [p.name for p in data.iterdir()] == ["admin-token"]  # no draft left behind


@pytest.mark.parametrize(
    ("url", "found"),
    [
        ("http://localhost:8000", True),
        ("http://127.0.0.1:8123", True),
        ("http://[::1]:8000", True),
        ("https://cascade.example.com", False),
        ("http://10.0.0.7:8000", False),
    ],
    ids=["localhost", "ipv4-loopback", "ipv6-loopback", "remote", "lan"],
)
def test_the_client_reads_it_for_a_cascade_on_this_machine_only(
    tmp_path: Path, url: str, found: bool
) -> None:
    made = admin_token.sandbox_token(tmp_path)
    assert admin_token.for_client(url, tmp_path) == (made if found else None)


def test_no_file_no_token(tmp_path: Path) -> None:
    assert admin_token.for_client("http://localhost:8000", tmp_path) is None
