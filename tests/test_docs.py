"""The documentation travels with the repository: a clone must not need anything beside it.

The README, docs/, the code and the config may not point to the team's private notes on
the methods (a file a clone lacks) or to any path above the repository root; every
relative link in the Markdown files must reach an existing file (and heading, when it
names one), and every `docs/<page>.md` named in a comment or docstring must exist.
"""

from __future__ import annotations

import re
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
SCANNED = ("README.md", "docs", "src", "config")
"""What a reader of the repository sees; tests/ may hold hostile paths on purpose."""
MARKDOWN = ["README.md", *sorted(p.relative_to(ROOT).as_posix() for p in ROOT.glob("docs/*.md"))]

PRIVATE_NOTES = re.compile(r"METHODS\.md")
UPWARD = re.compile(r"(?<![.\w/])(?:\.\./)+[^\s)\]`'\"]*")
"""A path that climbs with `../` (not the ellipsis of `runs/.../seed0`)."""
LINK = re.compile(r"(?<!!)\[[^\]]*\]\(([^)\s]+)\)")
DOCS_PAGE = re.compile(r"\bdocs/[\w./-]+\.md\b")
HEADING = re.compile(r"^(#{1,6})\s+(.*?)\s*#*\s*$")


def _text_files() -> list[Path]:
    files: list[Path] = []
    for name in SCANNED:
        path = ROOT / name
        candidates = [path] if path.is_file() else sorted(path.rglob("*"))
        for file in candidates:
            parts = set(file.relative_to(ROOT).parts)
            if not file.is_file() or "__pycache__" in parts:
                continue
            if any(part.endswith(".egg-info") for part in parts):
                continue
            if file.suffix in {".md", ".py", ".yaml", ".yml", ".json", ".txt", ".toml", ".smk"}:
                files.append(file)
    return files


def _anchors(markdown: Path) -> set[str]:
    """GitHub's heading anchors: lower case, punctuation dropped, spaces to hyphens,
    repeats numbered."""
    seen: dict[str, int] = {}
    anchors: set[str] = set()
    in_code = False
    for line in markdown.read_text(encoding="utf-8").splitlines():
        if line.lstrip().startswith("```"):
            in_code = not in_code
            continue
        match = HEADING.match(line)
        if in_code or not match:
            continue
        text = re.sub(r"[`*_]|\[([^\]]*)\]\([^)]*\)", r"\1", match.group(2))
        slug = re.sub(r"[^\w\- ]", "", text.strip().lower()).replace(" ", "-")
        count = seen.get(slug, 0)
        seen[slug] = count + 1
        anchors.add(slug if count == 0 else f"{slug}-{count}")
    return anchors


def test_the_scan_covers_the_docs_and_the_code():
    """Guards the two tests below against scanning nothing (a moved folder, a bad glob)."""
    names = {f.relative_to(ROOT).as_posix() for f in _text_files()}
    assert {"README.md", "docs/README.md", "config/config.yaml"} <= names
    assert any(name.startswith("src/tlrepro/") and name.endswith(".py") for name in names)
    assert "docs/README.md" in MARKDOWN


def _inside(path: Path) -> bool:
    resolved = path.resolve()
    return resolved == ROOT or ROOT in resolved.parents


def _outside_references(file: Path, line: str) -> list[str]:
    """Markdown links are relative to their page; paths in code and config to the root."""
    base = file.parent if file.suffix == ".md" else ROOT
    found = ["the team's private methods notes"] if PRIVATE_NOTES.search(line) else []
    found += [
        f"{path} is outside the repository"
        for path in UPWARD.findall(line)
        if not _inside(base / path)
    ]
    return found


@pytest.mark.parametrize("file", _text_files(), ids=lambda f: f.relative_to(ROOT).as_posix())
def test_no_reference_outside_the_repository(file: Path):
    problems = [
        f"{file.relative_to(ROOT)}:{number}: {what}: {line.strip()}"
        for number, line in enumerate(file.read_text(encoding="utf-8").splitlines(), 1)
        for what in _outside_references(file, line)
    ]
    assert not problems, "point to a page of docs/ instead:\n" + "\n".join(problems)


@pytest.mark.parametrize("name", MARKDOWN)
def test_relative_links_reach_existing_files_and_headings(name: str):
    page = ROOT / name
    broken = []
    for target in LINK.findall(page.read_text(encoding="utf-8")):
        if re.match(r"[a-z][a-z0-9+.-]*:", target):  # http:, https:, mailto:
            continue
        path, _, anchor = target.partition("#")
        resolved = (page.parent / path).resolve() if path else page
        if not _inside(resolved):
            broken.append(f"{target}: outside the repository")
        elif not resolved.exists():
            broken.append(f"{target}: no such file")
        elif anchor and resolved.suffix == ".md" and anchor not in _anchors(resolved):
            broken.append(f"{target}: {resolved.name} has no heading #{anchor}")
    assert not broken, f"{name}: broken links:\n" + "\n".join(broken)


def test_docs_pages_named_in_code_and_config_exist():
    missing = sorted(
        f"{file.relative_to(ROOT)}: {page}"
        for file in _text_files()
        for page in DOCS_PAGE.findall(file.read_text(encoding="utf-8"))
        if not (ROOT / page).is_file()
    )
    assert not missing, "these name a docs page that does not exist:\n" + "\n".join(missing)


def test_the_readme_is_for_users_and_short():
    """The README is the two commands, how to read the results and where to go next; the
    reference lives in docs/ (it had grown to 873 lines of it)."""
    readme = (ROOT / "README.md").read_text(encoding="utf-8")
    assert len(readme.splitlines()) <= 250
    assert "make tables" in readme and "make test" in readme
    linked = set(LINK.findall(readme))
    pages = {f"docs/{p.name}" for p in ROOT.glob("docs/*.md")}
    assert not pages - linked, f"pages the README does not lead to: {sorted(pages - linked)}"
