"""Which of the package's source files a job runs: part of every job's identity.

A job's code is the closure of its entry modules under the package's own
imports (found by parsing, so nothing is imported and planning stays fast).
Imports inside functions and under `TYPE_CHECKING` count too: a file a job
might run is one it depends on. Modules named only as `module:attr` strings in
the registries are entry modules of the jobs that use them, not of every job.

Snakemake sees `fingerprint(files)`, a hash of the files' bytes, as a param;
DVC lists the same files as deps and hashes the same bytes. Any edit, comments
and docstrings included, therefore makes the same jobs stale in both runners.
"""

from __future__ import annotations

import ast
import hashlib
from collections.abc import Iterable
from functools import cache
from pathlib import Path

PACKAGE = "tlrepro"
PACKAGE_DIR = Path(__file__).resolve().parents[1]


class CodeError(LookupError):
    """A module a job names is not a file of the package."""


def module_file(module: str) -> Path:
    """`tlrepro.methods.gradmf` -> its file (a package's `__init__.py`)."""
    if module != PACKAGE and not module.startswith(PACKAGE + "."):
        raise CodeError(f"{module!r} is not a module of the {PACKAGE} package")
    base = PACKAGE_DIR.joinpath(*module.split(".")[1:])
    for candidate in (base.with_suffix(".py"), base / "__init__.py"):
        if candidate.is_file():
            return candidate
    raise CodeError(f"module {module!r} has no source file under {PACKAGE_DIR}")


def _is_module(name: str) -> bool:
    try:
        module_file(name)
    except CodeError:
        return False
    return True


def _absolute(node: ast.ImportFrom, module: str, is_package: bool) -> str:
    if node.level == 0:
        return node.module or ""
    parts = module.split(".")
    anchor = parts if is_package else parts[:-1]
    anchor = anchor[: len(anchor) - (node.level - 1)]
    return ".".join([*anchor, node.module] if node.module else anchor)


@cache
def imported_modules(module: str) -> frozenset[str]:
    """The package's modules that `module` imports anywhere in its body, with the packages
    that importing them runs (`a.b.c` runs `a/__init__` and `a/b/__init__`)."""
    path = module_file(module)
    tree = ast.parse(path.read_text(), str(path))
    found: set[str] = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            names = [alias.name for alias in node.names]
        elif isinstance(node, ast.ImportFrom):
            base = _absolute(node, module, path.name == "__init__.py")
            # `from pkg import name` imports the submodule pkg.name when there is one.
            names = [base] + [f"{base}.{alias.name}" for alias in node.names]
        else:
            continue
        for name in names:
            if name.split(".")[0] == PACKAGE and _is_module(name):
                parts = name.split(".")
                found.update(".".join(parts[: i + 1]) for i in range(len(parts)))
    found.discard(module)
    return frozenset(found)


def closure(entry_modules: Iterable[str]) -> tuple[Path, ...]:
    """Every source file the entry modules run, sorted."""
    pending = list(entry_modules)
    seen: set[str] = set()
    while pending:
        module = pending.pop()
        if module in seen:
            continue
        seen.add(module)
        parts = module.split(".")
        pending.extend(".".join(parts[: i + 1]) for i in range(len(parts) - 1))
        pending.extend(imported_modules(module))
    return tuple(sorted(module_file(m) for m in seen))


@cache
def _file_digest(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


def fingerprint(files: Iterable[Path]) -> str:
    """One hash of the files' names (within the package) and bytes."""
    digest = hashlib.sha256()
    for path in sorted(files):
        digest.update(f"{path.relative_to(PACKAGE_DIR)}\0{_file_digest(path)}\n".encode())
    return digest.hexdigest()[:16]
