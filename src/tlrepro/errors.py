"""The faults a user can act on, as one small family shared by the config, storage and the
jobs: each message names the file (or the config key), what is wrong and the way forward,
and the CLI prints it as one line instead of a traceback."""

from __future__ import annotations

import os
from pathlib import Path


class TlreproError(Exception):
    """A fault whose message already says where and what to do."""


class ConfigError(TlreproError, ValueError):
    """The config is wrong; the message says where and how to fix it."""


class ChecksumError(TlreproError, ValueError):
    """A download or packaged file is not what its pinned checksum says it must be."""


def rebuild_command(path: str | os.PathLike) -> str:
    """How either runner rebuilds one of the pipeline's files: Snakemake reruns the job of a
    named file with --force; DVC reruns (or restores from its cache) a stage whose output
    no longer matches dvc.lock."""
    return f"`snakemake --cores all --force {path}` (or `dvc repro`)"


class DamagedFileError(TlreproError, ValueError):
    """A file the pipeline reads is corrupt, truncated or not one it wrote: never used."""

    def __init__(self, path: str | os.PathLike, problem: str):
        self.path = Path(path)
        super().__init__(f"{path}: {problem}; rebuild it with {rebuild_command(path)}")


class StorageError(TlreproError, OSError):
    """A file could not be written (full disk, read-only or unwritable folder); nothing
    half-written is left behind."""

    def __init__(self, path: str | os.PathLike, problem: str):
        self.path = Path(path)
        super().__init__(
            f"cannot write {path}: {problem}; nothing half-written was kept. Make room (or "
            f"make {Path(path).parent} writable) and run the same command again"
        )


class MissingFileError(TlreproError, FileNotFoundError):
    """A file or folder the step needs is not there (an earlier step's output, a dataset
    placed by hand, a packaged asset); the message says which step makes it."""


class WeightsError(TlreproError, ValueError):
    """A weights file (given in the config, packaged or written by a run) does not fit the
    model it is loaded into."""


class SetupError(TlreproError, RuntimeError):
    """The machine or installation cannot run the step as configured (no GPU for device:
    cuda, no usable font, the package installed from elsewhere)."""


class BusyError(TlreproError, RuntimeError):
    """Another process is writing the same output; run again once it has finished."""
