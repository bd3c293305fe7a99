"""The README and docs/: every relative link leads somewhere, and CI runs the README's command.

Pages move (developer material left the README for docs/); a link that points at a file
or a heading that is gone is found here rather than by a reader.
"""

import re
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
PAGES = sorted([ROOT / "README.md", *(ROOT / "docs").glob("*.md")])
FENCE = re.compile(r"^(```|~~~).*?^\1", re.MULTILINE | re.DOTALL)
TARGET = re.compile(r"\]\(([^)\s]+)\)")


def prose(page: Path) -> str:
    """The page without code: a `](x)` in a code block or span is not a link."""
    return re.sub(r"`[^`\n]*`", "", FENCE.sub("", page.read_text()))


def anchors(page: Path) -> set[str]:
    """GitHub's ids for the page's headings: lower case, punctuation dropped, spaces to -."""
    headings = re.findall(r"^#{1,6} +(.+?) *$", FENCE.sub("", page.read_text()), re.MULTILINE)
    return {re.sub(r"[^\w\- ]", "", h.strip().lower()).replace(" ", "-") for h in headings}


def links(page: Path) -> list[str]:
    return [t for t in TARGET.findall(prose(page)) if not re.match(r"[a-z]+:", t)]


@pytest.mark.parametrize("page", PAGES, ids=[str(p.relative_to(ROOT)) for p in PAGES])
def test_every_relative_link_resolves(page: Path) -> None:
    broken = []
    for link in links(page):
        path, _, anchor = link.partition("#")
        target = (page.parent / path).resolve() if path else page
        named = target.relative_to(ROOT).as_posix() if target.is_relative_to(ROOT) else link
        if not target.exists():
            broken.append(f"{link}: no such file")
            continue
        if anchor and target.suffix == ".md" and anchor not in anchors(target):
            broken.append(f"{link}: no heading #{anchor} in {named}")
    assert broken == []


def test_the_link_reader_sees_links_and_headings(tmp_path: Path) -> None:
    page = tmp_path / "page.md"
    page.write_text(
        "## The `cascade` command\n\nSee [a](other.md#x), [b](https://x.test), `[c](not.md)`.\n"
        "```sh\n# not a heading [d](nor.md)\n```\n### Polling (`STATUS_API_URL`)\n"
    )
    assert links(page) == ["other.md#x"]
    assert anchors(page) == {"the-cascade-command", "polling-status_api_url"}


def test_the_readme_is_short_and_leads_with_the_picture() -> None:
    readme = (ROOT / "README.md").read_text()
    assert len(readme.splitlines()) <= 230
    headings = re.findall(r"^## (.+)$", FENCE.sub("", readme), re.MULTILINE)
    assert headings[:4] == ["Quick start", "On Heroku in ten minutes", "Configuration",
                            "Operating it"]  # fmt: skip
    assert readme.index("![Cascade's fleet view](docs/fleet.png)") < readme.index("## Quick")


def test_ci_runs_the_readme_s_test_command() -> None:
    """`.ci/run` is "the README's test command": both must name the same one."""
    ci = (ROOT / ".ci" / "run").read_text().strip().splitlines()[-1]
    readme = (ROOT / "README.md").read_text()
    quick = readme.split("## Quick start", 1)[1].split("\n## ", 1)[0]
    assert ci == "make test"
    assert re.search(rf"^{ci}\s", quick, re.MULTILINE), "the Quick start names CI's command"
