"""Every reference in the repository's text resolves inside the repository (or is a public URL).

Checked in every tracked text file: markdown files, paths under the repository's top-level directories,
test files named without their directory, pytest node ids (``path::name``), numbered sections (``§2``)
of the repository's own markdown files, and a markdown link's ``#anchor``: a heading of the page it names, as
GitHub spells the heading's anchor.
Private notes outside the repository must never be cited: their facts belong in ``docs/`` with public sources.
"""

from __future__ import annotations

import posixpath
import re
import subprocess
from collections.abc import Iterable
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
#: Text that must not appear at all (spelled in two parts so this file does not match itself).
FORBIDDEN = ("shared" + "/reference",)
#: Data, not prose: recorded Kiwoom answers.
SKIP_SUFFIXES = frozenset({".jsonl", ".png", ".jpg", ".ico", ".woff", ".woff2", ".ttf", ".otf"})

_URL = re.compile(r"[a-z][a-z0-9+.-]*://[^\s)>\]'\"`]+", re.IGNORECASE)
_MD = re.compile(r"(?<![\w./-])([\w./-]*\w\.md)\b")
_SECTION = re.compile(r"(?<![\w./-])([\w./-]*\w\.md)[`)\]]*\s+§(\d+(?:\.\d+)*)")
_BARE_TEST = re.compile(r"(?<![\w./-])(test_\w+\.py)\b")
_NODE_ID = re.compile(r"(?<![\w./-])([\w./-]+\.py)::(\w+)")
_HEADING = re.compile(r"^#{1,6}\s+(\d+(?:\.\d+)*)\.?\s", re.MULTILINE)
#: Sphinx cross-references in docstrings (``:func:`error_for```, ``:class:`~api.hub.Hub```).
_ROLE = re.compile(r":(?:func|class|meth|data|attr|exc|mod):`~?([\w.]+)`")
#: A markdown link to a heading: ``[text](<page>#anchor)`` or ``[text](#anchor)``.
_ANCHOR_LINK = re.compile(r"\]\(([^)\s#]*)#([^)\s]+)\)")
_MD_HEADING = re.compile(r"^#{1,6}\s+(.+?)\s*#*\s*$")
_DEFINED = re.compile(r"^\s*(?:(?:async\s+)?(?:def|class)\s+(\w+)|(?:self\.)?(\w+)\s*(?::[^=\n]+)?=)", re.MULTILINE)


def anchors(markdown: str) -> set[str]:
    """The anchors GitHub gives the page's headings: lower case, punctuation dropped, spaces as hyphens, and
    ``-1``, ``-2``... on repeats (headings inside code fences are not headings)."""
    found: set[str] = set()
    seen: dict[str, int] = {}
    fenced = False
    for line in markdown.splitlines():
        if line.startswith("```"):
            fenced = not fenced
        elif not fenced and (heading := _MD_HEADING.match(line)):
            text = re.sub(r"\[([^\]]*)\]\([^)]*\)", r"\1", heading.group(1)).lower()
            slug = re.sub(r"[^\w\- ]", "", text).replace(" ", "-")
            found.add(f"{slug}-{seen[slug]}" if slug in seen else slug)
            seen[slug] = seen.get(slug, 0) + 1
    return found


def repo_files(root: Path = ROOT) -> list[Path]:
    """Files a fresh clone would have: tracked plus new, not ignored (relative to ``root``)."""
    try:
        out = subprocess.run(["git", "ls-files", "-z", "--cached", "--others", "--exclude-standard"],
                             cwd=root, capture_output=True, check=True).stdout
        names = [n for n in out.decode().split("\0") if n]
    except (OSError, subprocess.CalledProcessError):  # not a checkout (e.g. an unpacked archive)
        names = [p.relative_to(root).as_posix() for p in root.rglob("*") if p.is_file()
                 and not any(part.startswith(".") or part == "__pycache__" for part in p.relative_to(root).parts[:-1])]
    return sorted(Path(n) for n in names if (root / n).is_file())


def dangling_references(root: Path, files: Iterable[Path]) -> list[str]:
    """``file:line: reason`` for every reference in ``files`` that does not resolve inside ``root``."""
    files = list(files)
    present = {f.as_posix() for f in files}
    dirs = {p.as_posix() for f in files for p in f.parents if p != Path(".")}
    top = sorted({f.parts[0] for f in files if len(f.parts) > 1})
    tops = "|".join(re.escape(t) for t in top)
    repo_path = re.compile(rf"(?<![\w./:-])((?:{tops})/[\w./-]*[\w/])") if top else None
    test_names = {f.name for f in files if f.parts[0] == "tests"}
    modules = {f.with_suffix("").as_posix().replace("/", ".").removesuffix(".__init__")
               for f in files if f.suffix == ".py"}
    packages = {m.split(".")[0] for m in modules}
    defined: set[str] = set(modules)
    for f in files:
        if f.suffix == ".py":
            for found in _DEFINED.findall((root / f).read_text(encoding="utf-8")):
                defined.update(n for n in found if n)

    def resolve(ref: str, citing: Path) -> str | None:
        """``ref`` as a repository path, read from the root or from the citing file's directory."""
        for candidate in (ref, posixpath.join(citing.parent.as_posix(), ref)):
            norm = posixpath.normpath(candidate.rstrip("/"))
            if not norm.startswith("..") and (norm in present or norm in dirs):
                return norm
        return None

    problems: list[str] = []
    for rel in files:
        if rel.suffix in SKIP_SUFFIXES:
            continue
        try:
            text = (root / rel).read_text(encoding="utf-8")
        except UnicodeDecodeError:
            continue
        for lineno, raw in enumerate(text.splitlines(), 1):
            where = f"{rel.as_posix()}:{lineno}"
            for bad in FORBIDDEN:
                if bad in raw:
                    problems.append(f"{where}: cites {bad!r}, which is outside the repository")
            line = _URL.sub(" ", raw)
            for ref in _MD.findall(line):
                if resolve(ref, rel) is None:
                    problems.append(f"{where}: {ref} is not in the repository")
            for ref, section in _SECTION.findall(line):
                doc = resolve(ref, rel)
                if doc is not None and section not in _HEADING.findall((root / doc).read_text(encoding="utf-8")):
                    problems.append(f"{where}: {ref} has no section {section}")
            if repo_path is not None:
                for ref in repo_path.findall(line):
                    if resolve(ref, rel) is None:
                        problems.append(f"{where}: {ref} does not exist")
            for name in _BARE_TEST.findall(line):
                if name not in test_names:
                    problems.append(f"{where}: no test file {name} under tests/")
            for target in _ROLE.findall(line):
                local = "." not in target or target.split(".")[0] in packages
                if local and target not in modules and target.split(".")[-1] not in defined:
                    problems.append(f"{where}: {target} is defined nowhere in the repository")
            for path, anchor in _ANCHOR_LINK.findall(line) if rel.suffix == ".md" else ():
                page = resolve(path, rel) if path else rel.as_posix()
                if page is not None and page.endswith(".md") and \
                        anchor not in anchors((root / page).read_text(encoding="utf-8")):
                    problems.append(f"{where}: {page} has no heading #{anchor}")
            for path, name in _NODE_ID.findall(line):
                target = resolve(path, rel)
                if target is None:
                    continue  # reported above as a missing path
                source = (root / target).read_text(encoding="utf-8")
                if not re.search(rf"^\s*(?:async\s+)?(?:def|class)\s+{name}\b", source, re.MULTILINE):
                    problems.append(f"{where}: {path} defines no {name}")
    return problems


def test_every_reference_resolves_inside_the_repository() -> None:
    problems = dangling_references(ROOT, repo_files())
    assert not problems, "dangling references:\n" + "\n".join(problems)


def test_the_scan_covers_code_and_docs() -> None:
    names = {f.as_posix() for f in repo_files()}
    assert {"README.md", "ARCHITECTURE.md", "api/hub.py", "publisher/kiwoom_errors.py"} <= names
    assert "docs/kiwoom-openapi.md" in names and "docs/design-figures.md" in names


# The synthetic tree below is named through these parts so that this file's own text cites nothing missing.
MD, PY, T = ".md", ".py", "tests"


@pytest.fixture
def tree(tmp_path: Path) -> Path:
    (tmp_path / "kb").mkdir()
    (tmp_path / "kb" / f"guide{MD}").write_text("# Guide\n\n## 1. Limits\n\n### 1.2 Screens\n", encoding="utf-8")
    (tmp_path / T).mkdir()
    (tmp_path / T / f"test_real{PY}").write_text("def test_exists():\n    pass\n", encoding="utf-8")
    (tmp_path / "pkg").mkdir()
    return tmp_path


def scan(root: Path, source: str, name: str = f"mod{PY}") -> list[str]:
    (root / "pkg" / name).write_text(source, encoding="utf-8")
    files = [p.relative_to(root) for p in root.rglob("*") if p.is_file()]
    return dangling_references(root, files)


@pytest.mark.parametrize("source", [
    f'"""See kb/guide{MD} §1 and kb/guide{MD} §1.2."""\n',
    f"# pinned by {T}/test_real{PY}::test_exists (test_real{PY})\n",
    f"# facts: [guide](../kb/guide{MD}), https://github.com/o/r/blob/main/notes{MD}\n",
    '"""Like :func:`test_' 'exists` and :class:`pkg.mod.Here`; not :class:`asyncio.Future`."""\n'
    'class Here:\n    pass\n',
])
def test_references_that_resolve_pass(tree: Path, source: str) -> None:
    assert scan(tree, source) == []


@pytest.mark.parametrize(("source", "reason"), [
    (f"# limits: see notes{MD} §4\n", f"notes{MD} is not in the repository"),
    (f"# see kb/guide{MD} §3\n", f"kb/guide{MD} has no section 3"),
    (f"# pinned by {T}/test_gone{PY}\n", f"{T}/test_gone{PY} does not exist"),
    (f"# pinned by test_gone{PY}\n", f"no test file test_gone{PY} under tests/"),
    (f"# see {T}/test_real{PY}::test_gone\n", f"{T}/test_real{PY} defines no test_gone"),
    (f"# from ../{FORBIDDEN[0]}/x\n", "outside the repository"),
    ('"""Raises :class:`Gone' + 'Error`."""\n', "GoneError is defined nowhere"),
])
def test_dangling_references_are_reported(tree: Path, source: str, reason: str) -> None:
    problems = scan(tree, source)
    assert problems and all(p.startswith(f"pkg/mod{PY}:1: ") for p in problems)
    assert any(reason in p for p in problems), problems


def test_links_to_headings_resolve(tree: Path) -> None:
    page = f"[limits](../kb/guide{MD}#1-limits), [screens](../kb/guide{MD}#12-screens), [top](#notes)\n\n# Notes\n"
    assert scan(tree, page, f"notes{MD}") == []


@pytest.mark.parametrize(("link", "reason"), [
    (f"[x](../kb/guide{MD}#limits)", f"kb/guide{MD} has no heading #limits"),
    ("[x](#nowhere)", f"pkg/notes{MD} has no heading #nowhere"),
])
def test_links_to_missing_headings_are_reported(tree: Path, link: str, reason: str) -> None:
    problems = scan(tree, link + "\n", f"notes{MD}")
    assert problems and all(reason in p for p in problems), problems


def test_anchors_follow_githubs_spelling() -> None:
    page = ("# The API (`api/`)\n## `GET /v1/rankings/{feed}` — the snapshot\n"
            "```\n# not a heading\n```\n## Notes\n## Notes\n")
    assert anchors(page) == {"the-api-api", "get-v1rankingsfeed--the-snapshot", "notes", "notes-1"}
