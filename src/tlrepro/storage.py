"""Atomic file outputs and checksums.

Every file the pipeline produces goes through `atomic_output`: it is written
under a temporary name in the same folder and renamed into place only when
complete, so a killed job never leaves a half-written file that a runner could
take for a finished one. Every file it reads back is checked before use: JSON files carry
the sha256 of their content, a finished job's metrics.json the sha256 of every other file
it wrote (`verified`), and a file that fails its check raises `DamagedFileError`, naming
the command that rebuilds it. A write that fails for want of space or permission raises
`StorageError` naming the file.
"""

from __future__ import annotations

import contextlib
import errno
import hashlib
import json
import os
import secrets
import stat
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from tlrepro.errors import BusyError, DamagedFileError, StorageError
from tlrepro.plan.layout import METRICS_FILE

WRITE_FAULTS = {
    errno.ENOSPC: "no space left on device",
    errno.EDQUOT: "disk quota exceeded",
    errno.EROFS: "read-only file system",
    errno.EACCES: "permission denied",
    errno.EPERM: "operation not permitted",
}
SEAL = "_sha256"
"""The key of a JSON object's own checksum (`write_json`); `read_json` checks and drops it."""
FILES = "files"
"""The key of a finished job's metrics.json that maps each other file it wrote to its sha256."""


def _write_fault(error: BaseException) -> str | None:
    """What the OS said, when `error` (or what it was raised from: torch wraps the OSError
    of a full disk in a RuntimeError) is a failed write the user can fix."""
    while error is not None:
        if isinstance(error, OSError) and error.errno in WRITE_FAULTS:
            return WRITE_FAULTS[error.errno]
        error = error.__cause__ or error.__context__
    return None


@contextlib.contextmanager
def _reporting_write_faults(path: Path) -> Iterator[None]:
    try:
        yield
    except StorageError:
        raise
    except Exception as error:
        fault = _write_fault(error)
        if fault is None:
            raise
        raise StorageError(path, fault) from error


@contextlib.contextmanager
def atomic_output(path: str | os.PathLike) -> Iterator[Path]:
    """Yield a temporary path next to `path`; rename it onto `path` on success.

    The file gets the mode the umask gives any new file: the rename keeps the temporary
    file's mode, and both `tempfile.mkstemp` and some writers (safetensors) make it 0o600,
    which would hide the results from colleagues on a shared file system."""
    path = Path(path)
    tmp = path.with_name(f".{path.name}.{secrets.token_hex(8)}.tmp")
    with _reporting_write_faults(path):
        path.parent.mkdir(parents=True, exist_ok=True)
        fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o666)
        mode = stat.S_IMODE(os.fstat(fd).st_mode)  # 0o666 less the umask, read unchanged
        os.close(fd)
        try:
            yield tmp
            os.chmod(tmp, mode)
            with open(tmp, "rb") as handle:
                os.fsync(handle.fileno())
            os.replace(tmp, path)
        finally:
            tmp.unlink(missing_ok=True)


@contextlib.contextmanager
def exclusive(folder: str | os.PathLike, wait: bool = False) -> Iterator[None]:
    """Hold an OS lock on `folder` (released by the kernel even on SIGKILL); with `wait`,
    queue behind the holder instead of failing."""
    import fcntl

    folder = Path(folder)
    with _reporting_write_faults(folder / ".lock"):
        folder.mkdir(parents=True, exist_ok=True)
        handle = open(folder / ".lock", "w")  # noqa: SIM115 (closed by the `with` below)
    with handle:
        try:
            fcntl.flock(handle, fcntl.LOCK_EX if wait else fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            raise BusyError(
                f"{folder} is being written by another process; wait for it "
                "to finish (or stop it) and run again"
            ) from None
        yield


def write_text(path: str | os.PathLike, text: str) -> None:
    with atomic_output(path) as tmp:
        tmp.write_text(text, encoding="utf-8")


def _digest(payload: Any) -> str:
    return hashlib.sha256(json.dumps(payload, sort_keys=True).encode()).hexdigest()


def write_json(path: str | os.PathLike, payload: Any) -> None:
    """An object gets its own sha256 under `SEAL`: a flipped digit is still valid JSON."""
    if isinstance(payload, dict):
        payload = {**payload, SEAL: _digest(payload)}
    write_text(path, json.dumps(payload, indent=2, sort_keys=True) + "\n")


def read_json(path: str | os.PathLike) -> Any:
    """The JSON in `path`, refused if it does not parse or no longer matches its seal (files
    written before seals existed, and other tools' files, have none)."""
    try:
        payload = json.loads(Path(path).read_text(encoding="utf-8"))
    except (UnicodeDecodeError, json.JSONDecodeError) as error:
        raise DamagedFileError(path, f"not valid JSON, truncated or corrupt ({error})") from None
    if isinstance(payload, dict) and SEAL in payload:
        seal = payload.pop(SEAL)
        if seal != _digest(payload):
            raise DamagedFileError(path, "its content no longer matches its checksum (corrupt)")
    return payload


def sha256_file(path: str | os.PathLike, chunk_size: int = 1 << 20) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as handle:
        while chunk := handle.read(chunk_size):
            digest.update(chunk)
    return digest.hexdigest()


def verified(path: str | os.PathLike) -> Path:
    """`path`, a file of a finished job, once its sha256 matches the one the job recorded in
    the metrics.json beside it (a file with no such record, e.g. an export copied out of its
    run folder, is returned unchecked)."""
    path = Path(path)
    record = path.parent / METRICS_FILE
    expected = read_json(record).get(FILES, {}).get(path.name) if record.exists() else None
    if expected is not None and sha256_file(path) != expected:
        raise DamagedFileError(
            path, f"its sha256 differs from the one {path.parent / METRICS_FILE} recorded"
        )
    return path


def record_files(folder: Path) -> dict[str, str]:
    """The sha256 of each file a job left in `folder` (not its metrics, its hidden files or
    its resume state), for its metrics.json under `FILES`."""
    return {
        p.name: sha256_file(p)
        for p in sorted(Path(folder).iterdir())
        if p.is_file() and p.name != METRICS_FILE and not p.name.startswith(".")
    }


def save_tensors(path: str | os.PathLike, tensors: dict, metadata: dict[str, str] | None = None):
    """Save a flat dict of tensors in the safetensors format (no pickle), atomically; written
    from Python, so that a full disk raises the OSError that names it."""
    from safetensors.torch import save

    with atomic_output(path) as tmp:
        tmp.write_bytes(save({k: v.contiguous() for k, v in tensors.items()}, metadata=metadata))


def load_tensors(path: str | os.PathLike, device: str = "cpu") -> dict:
    from safetensors import SafetensorError
    from safetensors.torch import load_file

    try:
        return load_file(str(path), device=device)
    except SafetensorError as error:
        raise DamagedFileError(
            path, f"not a readable safetensors file, truncated or corrupt ({error})"
        ) from None
