"""The repository's shape: README's map matches the tree, no import cycle, no overlong function.

These are the checks that keep the code a place to learn from: a reader can find every file from the
map, can read the modules in an order (a cycle has no first module), and can read each function in one
screen (or is told in a comment why it must be longer).
"""

from __future__ import annotations

import ast
import re
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
SOURCE_FOLDERS = ("tinygan", "benchmarks", "examples", "tests")
MAX_FUNCTION_LINES = 60
#: A function longer than MAX_FUNCTION_LINES carries a comment starting with this, saying why.
LONG_MARK = "# Long:"
READERS = ("learner", "user", "contributor")


# ------------------------------------------------------------------------------------------------
# Import cycles
# ------------------------------------------------------------------------------------------------


def module_files() -> dict[str, Path]:
    """Every Python file of the repository by its module name (``tinygan.run.cli``, ``benchmarks.speed``)."""
    modules = {}
    for folder in SOURCE_FOLDERS:
        for path in sorted((ROOT / folder).rglob("*.py")):
            parts = path.relative_to(ROOT).with_suffix("").parts
            if parts[-1] == "__init__":
                parts = parts[:-1]
            modules[".".join(parts)] = path
    return modules


def imported_modules(name: str, path: Path, modules: dict[str, Path]) -> set[str]:
    """The repository's modules that ``name`` imports, at its top or inside a function.

    ``from package import thing`` imports the package (its ``__init__`` runs) and, when ``thing`` is
    a module, that module too. A bare ``import helper`` in a script's folder is that folder's file, as
    Python finds it when the script runs.
    """
    folder = ".".join(path.relative_to(ROOT).parent.parts)
    found = set()
    for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
        if isinstance(node, ast.Import):
            targets = [alias.name for alias in node.names]
        elif isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
            targets = [node.module] + [f"{node.module}.{alias.name}" for alias in node.names]
        else:
            continue
        for target in targets:
            for candidate in (target, f"{folder}.{target}"):
                if candidate in modules and candidate != name:
                    found.add(candidate)
    return found


def find_cycle(graph: dict[str, set[str]]) -> list[str] | None:
    """One import cycle of ``graph`` as a path ``[a, b, ..., a]``, or None (depth-first search)."""
    state: dict[str, str] = {}  # "open" while on the current path, "done" once fully explored
    path: list[str] = []

    def visit(node: str) -> list[str] | None:
        state[node] = "open"
        path.append(node)
        for neighbour in sorted(graph[node]):
            if state.get(neighbour) == "open":
                return path[path.index(neighbour) :] + [neighbour]
            if neighbour not in state and (cycle := visit(neighbour)):
                return cycle
        path.pop()
        state[node] = "done"
        return None

    for node in sorted(graph):
        if node not in state and (cycle := visit(node)):
            return cycle
    return None


def test_no_module_imports_a_module_that_imports_it_back() -> None:
    modules = module_files()
    graph = {name: imported_modules(name, path, modules) for name, path in modules.items()}
    assert "tinygan.run.cli" in graph["tinygan.__main__"]  # the scan sees imports at all
    cycle = find_cycle(graph)
    assert cycle is None, "import cycle: " + " -> ".join(cycle or [])


def test_the_cycle_finder_finds_a_loop_and_only_a_loop() -> None:
    assert find_cycle({"a": {"b"}, "b": {"c"}, "c": set()}) is None
    assert find_cycle({"a": {"b"}, "b": {"c"}, "c": {"a"}}) == ["a", "b", "c", "a"]
    assert find_cycle({"a": {"b"}, "b": {"b2"}, "b2": {"b"}}) == ["b", "b2", "b"]


# ------------------------------------------------------------------------------------------------
# Function length
# ------------------------------------------------------------------------------------------------


def long_functions(path: Path) -> list[str]:
    """Functions of ``path`` longer than MAX_FUNCTION_LINES (docstring aside) with no ``# Long:``
    comment saying why."""
    source = path.read_text(encoding="utf-8")
    lines = source.splitlines()
    found = []
    for node in ast.walk(ast.parse(source)):
        if isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef)):
            body = lines[node.lineno - 1 : node.end_lineno]
            if ast.get_docstring(node) is not None:  # the docstring is read, not run: not counted
                docstring = node.body[0]
                del body[docstring.lineno - node.lineno : docstring.end_lineno - node.lineno + 1]
            if len(body) > MAX_FUNCTION_LINES and not any(
                line.strip().startswith(LONG_MARK) for line in body
            ):
                found.append(
                    f"{path.relative_to(ROOT)}:{node.lineno} {node.name} ({len(body)} lines)"
                )
    return found


@pytest.mark.parametrize("folder", ["tinygan", "benchmarks", "examples"])
def test_functions_fit_a_screen_outside_the_kernels(folder: str) -> None:
    too_long = [
        entry
        for path in sorted((ROOT / folder).rglob("*.py"))
        if "kernels" not in path.relative_to(ROOT).parts
        for entry in long_functions(path)
    ]
    assert not too_long, "longer than a screen, with no '# Long:' comment: " + "; ".join(too_long)


def test_the_length_check_counts_lines_and_reads_the_mark(tmp_path: Path) -> None:
    body = "\n".join(f"    x{i} = {i}" for i in range(MAX_FUNCTION_LINES))
    path = ROOT / "tests" / "_layout_probe.py"  # inside ROOT, for the relative path in the message
    try:
        path.write_text(
            f"def long():\n{body}\n\n\ndef marked():\n    {LONG_MARK} a table\n{body}\n"
        )
        assert [entry.split()[1] for entry in long_functions(path)] == ["long"]
    finally:
        path.unlink()


# ------------------------------------------------------------------------------------------------
# README's map
# ------------------------------------------------------------------------------------------------


def readme_map() -> dict[str, str]:
    """The map in README.md (the code block under "## Map"): path -> the line that describes it.

    Each line is ``PATH  what it is (readers)``, indented two spaces per folder level under the
    folder line above it; a folder's path ends with ``/``.
    """
    text = (ROOT / "README.md").read_text(encoding="utf-8")
    section = re.search(r"^## Map\b.*?^```\n(.*?)^```", text, re.M | re.S)
    assert section, "README.md has no '## Map' section with a code block"
    entries: dict[str, str] = {}
    folders: list[str] = []
    for line in section.group(1).splitlines():
        depth = (len(line) - len(line.lstrip(" "))) // 2
        token = line.split()[0]
        del folders[depth:]
        path = "".join(folders) + token
        entries[path.rstrip("/")] = line
        if token.endswith("/"):
            folders.append(token)
    return entries


def expected_map_entries() -> set[str]:
    """What the map must name: the repository's top level, the package's top level and one level
    inside each of its subpackages (data files and caches aside)."""

    def listed(folder: Path) -> set[str]:
        return {
            str(child.relative_to(ROOT))
            for child in folder.iterdir()
            if not child.name.startswith((".", "_")) or child.name == "__main__.py"
            if child.name != "__pycache__" and (child.is_dir() or child.suffix == ".py")
        }

    top = {"README.md", "pyproject.toml"} | {
        folder for folder in ("tinygan", "examples", "tests", "benchmarks", "docs")
    }
    package = listed(ROOT / "tinygan")
    inside = set()
    for entry in package:
        if (ROOT / entry).is_dir() and (ROOT / entry / "__init__.py").exists():
            inside |= listed(ROOT / entry)
    return top | package | inside


def test_readme_map_matches_the_tree() -> None:
    entries = readme_map()
    missing_on_disk = sorted(path for path in entries if not (ROOT / path).exists())
    assert not missing_on_disk, f"README's map names what does not exist: {missing_on_disk}"
    missing_in_map = sorted(expected_map_entries() - set(entries))
    assert not missing_in_map, f"README's map leaves out: {missing_in_map}"


def test_every_map_line_says_who_reads_it() -> None:
    reader = "|".join(READERS)
    pattern = re.compile(rf"\((?:{reader})(?:, (?:{reader}))*\)$")
    unmarked = [line.strip() for line in readme_map().values() if not pattern.search(line)]
    assert not unmarked, f"map lines without (learner/user/contributor): {unmarked}"
