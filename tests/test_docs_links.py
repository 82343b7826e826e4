"""The README and docs/ pages link to each other by file and section: every relative link and every
``docs/PAGE.md#anchor`` that the code's messages and docstrings cite must resolve (GitHub's heading anchors)."""

import re
from pathlib import Path

import pytest

from helpers import ROOT

PAGES = [ROOT / "README.md", *sorted((ROOT / "docs").glob("*.md"))]


def heading_anchors(page: Path) -> set[str]:
    """GitHub's anchors of a page's headings: lower case, punctuation but ``-`` and ``_`` dropped, spaces as ``-``,
    a repeated heading suffixed ``-1``, ``-2``, ...; lines inside code fences are not headings."""
    anchors: set[str] = set()
    seen: dict[str, int] = {}
    fence = False
    for line in page.read_text().splitlines():
        if line.startswith("```"):
            fence = not fence
        elif not fence and re.match(r"#{1,6} ", line):
            slug = re.sub(r"[^\w\- ]", "", line.lstrip("#").strip().lower()).replace(" ", "-")
            n = seen.get(slug, 0)
            seen[slug] = n + 1
            anchors.add(slug if n == 0 else f"{slug}-{n}")
    return anchors


def markdown_links(page: Path) -> list[str]:
    """The targets of ``[text](target)`` links outside code fences, web addresses left out."""
    targets: list[str] = []
    fence = False
    for line in page.read_text().splitlines():
        if line.startswith("```"):
            fence = not fence
        elif not fence:
            targets += [t for t in re.findall(r"\]\(([^)\s]+)\)", line) if not re.match(r"[a-z]+://", t)]
    return targets


def test_heading_anchors_follow_github_rules(tmp_path):
    page = tmp_path / "p.md"
    page.write_text("# Title\n## Many checkpoints: --executor ray\n```\n# not a heading\n```\n"
                    "### Choosing the checkpoint to keep: `sslmon select`\n## Safety\n## Safety\n")
    assert heading_anchors(page) == {"title", "many-checkpoints---executor-ray", "safety", "safety-1",
                                     "choosing-the-checkpoint-to-keep-sslmon-select"}


@pytest.mark.parametrize("page", PAGES, ids=lambda p: p.name)
def test_every_link_resolves(page):
    broken = []
    for target in markdown_links(page):
        path, _, anchor = target.partition("#")
        file = (page.parent / path).resolve() if path else page
        if not file.exists():
            broken.append(target)
        elif anchor and file.suffix == ".md" and anchor not in heading_anchors(file):
            broken.append(target)
    assert broken == []


def test_sections_cited_by_the_code_exist():
    cited = {m for f in [*(ROOT / "sslmon").rglob("*.py"), *(ROOT / "tests").glob("*.py")]
             for m in re.findall(r"docs/([a-z][\w-]*\.md)#([a-z0-9][\w-]*)", f.read_text())}
    assert cited  # the code does cite sections (e.g. the --rank-by help)
    broken = [f"{p}#{a}" for p, a in cited if not (ROOT / "docs" / p).is_file() or a not in heading_anchors(ROOT / "docs" / p)]
    assert sorted(broken) == []


def test_readme_is_a_users_page():
    """Issue 20 item 8: the README stays short; the depth lives in docs/ pages it links to."""
    readme = ROOT / "README.md"
    assert len(readme.read_text().splitlines()) <= 300
    linked = {t.partition("#")[0] for t in markdown_links(readme)}
    assert {"docs/commands.md", "docs/options.md", "docs/metrics.md", "docs/safety.md", "docs/api.md"} <= linked
