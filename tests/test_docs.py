"""The docs hold together: every relative link in README.md and docs/ resolves, every repository file
they cite exists, and the package's docstrings cite only files that are in the repository."""

from __future__ import annotations

import ast
import importlib
import io
import re
import tokenize
from collections.abc import Iterator
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
PAGES = [ROOT / "README.md", *sorted((ROOT / "docs").glob("*.md"))]
#: Top-level directories whose files the docs name as ``dir/...``.
TOP = ("pytest_asiai", "tests", "suites", "scripts", "benchmarks", "docs", "schemas")
LINK = re.compile(r"(?<!!)\[[^\]]*\]\(([^)\s]+)\)")
CITED = re.compile(rf"(?<![\w./-])((?:{'|'.join(TOP)})/[\w./*-]*)")
#: Files outside this repository that docstrings once cited, and the phrasing that pointed there.
OUTSIDE = re.compile(r"\.\./shared/|(?<![\w/])(?:asiai-protocol|real-engines)\.md|\bdiges[t] §|\basia[i] §")


def _prose(page: Path) -> Iterator[tuple[int, str]]:
    """Lines outside fenced code blocks (code shows commands and files of the user's project)."""
    fenced = False
    for number, line in enumerate(page.read_text(encoding="utf-8").splitlines(), start=1):
        if line.lstrip().startswith("```"):
            fenced = not fenced
        elif not fenced:
            yield number, line


def dead_links(page: Path, root: Path = ROOT) -> list[str]:
    """Relative link targets of a Markdown page that are not files or directories of the repository."""
    dead = []
    for number, line in _prose(page):
        for target in LINK.findall(line):
            if re.match(r"[a-z][a-z0-9+.-]*:", target) or target.startswith("#"):
                continue  # an absolute URL or an anchor on the same page
            path = (page.parent / target.split("#", 1)[0]).resolve()
            if not path.exists():
                dead.append(f"{page.relative_to(root)}:{number}: {target}")
    return dead


def missing_citations(page: Path, root: Path = ROOT) -> list[str]:
    """Repository paths a page names (``pytest_asiai/…``, ``tests/…``) that do not exist.

    Placeholders (``<kind>``, ``{cache_dir}``) are not paths; ``*`` is a glob that must match; a pytest
    node id (``file.py::test``) names its file."""
    missing = []
    for number, line in _prose(page):
        for cited in CITED.findall(line):
            cited = cited.split("::", 1)[0].rstrip(".,;:")
            if not cited or any(c in line[line.find(cited) :][: len(cited) + 1] for c in "<{"):
                continue
            exists = any(root.glob(cited)) if "*" in cited else (root / cited).exists()
            if not exists:
                missing.append(f"{page.relative_to(root)}:{number}: {cited}")
    return missing


@pytest.mark.parametrize("page", PAGES, ids=lambda p: str(p.relative_to(ROOT)))
def test_every_relative_link_resolves(page: Path) -> None:
    assert dead_links(page) == []


@pytest.mark.parametrize("page", PAGES, ids=lambda p: str(p.relative_to(ROOT)))
def test_every_cited_repository_file_exists(page: Path) -> None:
    assert missing_citations(page) == []


def _resolves(dotted: str) -> bool:
    """``pytest_asiai.a.b.name``: the longest importable module, then attributes."""
    parts = dotted.split(".")
    for i in range(len(parts), 0, -1):
        try:
            obj: object = importlib.import_module(".".join(parts[:i]))
        except ImportError:
            continue
        return all((obj := getattr(obj, part, None)) is not None for part in parts[i:])
    return False


def test_every_dotted_name_in_the_docs_imports() -> None:
    """``pytest_asiai.gates.evaluate`` and the like, as the docs name them, exist."""
    names = {n for page in PAGES for _, line in _prose(page) for n in re.findall(r"pytest_asiai(?:\.\w+)+", line)}
    assert sorted(n for n in names if not _resolves(n)) == []


def _explanations(module: Path) -> str:
    """A module's docstrings and comments: where it cites (string literals may be test data)."""
    source = module.read_text(encoding="utf-8")
    nodes = [ast.parse(source), *ast.walk(ast.parse(source))]
    docs = [ast.get_docstring(n) or "" for n in nodes if isinstance(n, ast.Module | ast.ClassDef | ast.FunctionDef)]
    comments = [t.string for t in tokenize.generate_tokens(io.StringIO(source).readline) if t.type == tokenize.COMMENT]
    return "\n".join(docs + comments)


def test_the_package_cites_docs_that_exist() -> None:
    missing = [
        f"{module.relative_to(ROOT)}: {cited}"
        for module in sorted((ROOT / "pytest_asiai").rglob("*.py"))
        for cited in sorted(set(re.findall(r"(?<![\w/])docs/[\w-]+\.md", _explanations(module))))
        if not (ROOT / cited).exists()
    ]
    assert missing == []


def test_the_package_cites_no_file_outside_the_repository() -> None:
    """The facts once cited from ../shared/ live in docs/asiai-protocol.md and docs/real-engines.md."""
    outside = [
        f"{module.relative_to(ROOT)}:{number}: {line.strip()}"
        for module in sorted((ROOT / "pytest_asiai").rglob("*.py"))
        for number, line in enumerate(module.read_text(encoding="utf-8").splitlines(), start=1)
        if OUTSIDE.search(line)
    ]
    assert outside == [], "cite docs/asiai-protocol.md or docs/real-engines.md instead"


def _headings(page: Path) -> list[str]:
    """A page's headings without their section numbers (``### 3.9 Tiers`` is ``Tiers``)."""
    titles = [line.lstrip("#").strip().replace("`", "") for _, line in _prose(page) if line.startswith("#")]
    return [re.sub(r"^\d+(\.\d+)*\.? ", "", title) for title in titles]


def test_every_cited_section_exists() -> None:
    """``(README, "Writing gates")`` and ``docs/first-run.md, "A fast first run"`` in the package and
    the scripts name a heading of that page (a heading may continue after the cited words)."""
    cite = re.compile(r'\b(README|docs/[\w-]+\.md)(?:\.md)?,?\s(?:section\s)?"([^"]+)"')
    sources = [*sorted((ROOT / "pytest_asiai").rglob("*.py")), *sorted((ROOT / "scripts").iterdir())]
    wrong = []
    for source in sources:
        for page_name, cited in cite.findall(source.read_text(encoding="utf-8", errors="replace")):
            section = " ".join(cited.split())
            page = ROOT / ("README.md" if page_name == "README" else page_name)
            if not page.exists() or not any(h.startswith(section) for h in _headings(page)):
                wrong.append(f"{source.relative_to(ROOT)}: {page_name}, {section!r}")
    assert wrong == []


def test_the_checks_catch_a_dead_link_and_a_missing_file(tmp_path: Path) -> None:
    (tmp_path / "docs").mkdir()
    (tmp_path / "docs" / "architecture.md").write_text("# here\n", encoding="utf-8")
    (tmp_path / "pytest_asiai").mkdir()
    (tmp_path / "pytest_asiai" / "plugin.py").write_text("", encoding="utf-8")
    (tmp_path / "tests").mkdir()
    (tmp_path / "tests" / "test_hostile_matrix.py").write_text("", encoding="utf-8")
    page = tmp_path / "docs" / "page.md"
    page.write_text(
        "[gone](nowhere.md) [ok](architecture.md#here) [web](https://example.org/x.md) [top](#here)\n"
        "`pytest_asiai/no_such_module.py`, `pytest_asiai/plugin.py`, `tests/test_hostile_*.py`,\n"
        "`pytest_asiai/engines/<kind>.py`, tests/test_hostile_matrix.py::test_x.\n"
        "```\ntests/not_checked_in_code.py [gone](nowhere.md)\n```\n",
        encoding="utf-8",
    )
    assert dead_links(page, tmp_path) == ["docs/page.md:1: nowhere.md"]
    assert missing_citations(page, tmp_path) == ["docs/page.md:2: pytest_asiai/no_such_module.py"]
