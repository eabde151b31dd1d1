"""Tools of the fault tests: damage a file one way or another, and mount a small tmpfs
(root only) to fill or make read-only."""

from __future__ import annotations

import contextlib
import random
import subprocess
from collections.abc import Iterator
from pathlib import Path

import pytest

DAMAGES = ("flip", "truncate")
REPORT: list[str] = []
"""What the fault suites tried and what came of it; printed after the test session."""


def damage(path: Path, how: str, rng: random.Random) -> str:
    """Flip one bit in each of 8 seeded bytes of `path` (one of the low 7: text stays ASCII,
    and a JSON file often stays valid JSON) or cut it to a seeded length short of its end;
    returns what was done, for the suite's report."""
    data = bytearray(path.read_bytes())
    if how == "flip":
        where = sorted(rng.sample(range(len(data)), min(8, len(data))))
        for index in where:
            data[index] ^= 1 << rng.randrange(7)
        path.write_bytes(bytes(data))
        return f"flipped bytes {where} of {len(data)}"
    size = rng.randrange(0, len(data))
    path.write_bytes(bytes(data[:size]))
    return f"truncated from {len(data)} to {size} bytes"


def _parents() -> dict[int, int]:
    parents: dict[int, int] = {}
    for stat in Path("/proc").glob("[0-9]*/stat"):
        with contextlib.suppress(OSError, IndexError):
            parents[int(stat.parent.name)] = int(stat.read_text().rsplit(")", 1)[1].split()[1])
    return parents


def descendants(pid: int) -> list[int]:
    """Every process below `pid`, from /proc."""
    parents = _parents()
    found, frontier = [], [pid]
    while frontier:
        kids = [child for child, parent in parents.items() if parent == frontier[-1]]
        frontier.pop()
        found += kids
        frontier += kids
    return found


def command_line(pid: int) -> str:
    with contextlib.suppress(OSError):
        return Path(f"/proc/{pid}/cmdline").read_bytes().replace(b"\0", b" ").decode()
    return ""


def mount(*args: str) -> subprocess.CompletedProcess:
    return subprocess.run(["mount", *args], capture_output=True, text=True)


@contextlib.contextmanager
def tmpfs(folder: Path, size: str) -> Iterator[Path]:
    """A tmpfs of `size` over `folder` (its content hidden meanwhile), unmounted at the end;
    skips the test, saying why, where mounting is not permitted."""
    folder.mkdir(parents=True, exist_ok=True)
    done = mount("-t", "tmpfs", "-o", f"size={size}", "tmpfs", str(folder))
    if done.returncode != 0:
        pytest.skip(f"cannot mount a tmpfs to fill (needs root and CAP_SYS_ADMIN): {done.stderr}")
    try:
        yield folder
    finally:
        subprocess.run(["umount", "-l", str(folder)], check=True)


def remount(folder: Path, option: str) -> None:
    """`ro` or `rw` for a tmpfs of `tmpfs`."""
    done = mount("-o", f"remount,{option}", str(folder))
    assert done.returncode == 0, done.stderr
