"""Downloads that are verified before they are used.

A download goes to a temporary file beside its destination, is checked for
truncation and against its pinned sha256, and only then renamed into place:
a corrupt or partial file is never seen under the real name.
"""

from __future__ import annotations

import http.client
import logging
import shutil
import sys
import tarfile
import tempfile
import urllib.request
import zipfile
from pathlib import Path

from tlrepro import storage
from tlrepro.errors import ChecksumError, TlreproError

log = logging.getLogger(__name__)


class UnpinnedDownloadError(TlreproError, ValueError):
    """A download was asked for without a sha256 to check it against."""


class DownloadError(TlreproError, OSError):
    """The network failed: the server is unreachable, refused, reset, or sent too little."""


def verify_file(path: Path, sha256: str) -> None:
    actual = storage.sha256_file(path)
    if actual != sha256.lower():
        raise ChecksumError(
            f"{path}: sha256 is {actual}, expected {sha256}. The file is corrupt or truncated; "
            "delete it and download it again."
        )


def fetch(
    url: str, dest: Path, sha256: str | None, *, allow_unpinned: bool = False, progress: bool = True
) -> Path:
    """Download `url` to `dest` unless a verified copy is already there."""
    dest = Path(dest)
    sha256 = sha256.lower() if sha256 is not None else None
    if sha256 is None and not allow_unpinned:
        raise UnpinnedDownloadError(
            f"refusing to download {url} without a pinned sha256: set `sha256` in the dataset's "
            "config entry (or pass allow_unpinned=True once to learn it)"
        )
    if dest.exists() and sha256 is not None and storage.sha256_file(dest) == sha256:
        return dest
    from tqdm.auto import tqdm

    with storage.atomic_output(dest) as tmp:
        try:
            with urllib.request.urlopen(url) as response, open(tmp, "wb") as out:
                expected_size = int(response.headers.get("Content-Length") or 0) or None
                with tqdm(
                    total=expected_size,
                    unit="B",
                    unit_scale=True,
                    desc=dest.name,
                    disable=not progress,
                    file=sys.stderr,
                ) as bar:
                    while chunk := response.read(1 << 20):
                        out.write(chunk)
                        bar.update(len(chunk))
        except (OSError, http.client.HTTPException) as error:  # URLError, resets, IncompleteRead
            raise DownloadError(
                f"download of {url} failed: {error}. Check the network (or the URL); "
                "nothing was written."
            ) from error
        received = tmp.stat().st_size
        if expected_size is not None and received != expected_size:
            raise DownloadError(
                f"download of {url} is truncated: {received} of {expected_size} bytes"
            )
        actual = storage.sha256_file(tmp)
        if sha256 is None:
            log.warning("%s has sha256 %s: pin it in the config", url, actual)
        elif actual != sha256:
            raise ChecksumError(
                f"download of {url} has sha256 {actual}, expected {sha256}; "
                f"nothing was written to {dest}. Check the URL and the pinned checksum."
            )
    return dest


def _safe_members(names: list[str], dest: Path) -> None:
    root = dest.resolve()
    for name in names:
        target = (root / name).resolve()
        if target != root and root not in target.parents:
            raise ValueError(f"archive member {name!r} would be written outside {dest}")


def extract(archive: Path, dest_dir: Path) -> Path:
    """Unpack a .zip or .tar(.gz) into `dest_dir`, all at once or not at all."""
    dest_dir = Path(dest_dir)
    dest_dir.parent.mkdir(parents=True, exist_ok=True)
    staging = Path(tempfile.mkdtemp(prefix=f".{dest_dir.name}.", dir=dest_dir.parent))
    try:
        if zipfile.is_zipfile(archive):
            with zipfile.ZipFile(archive) as bundle:
                _safe_members(bundle.namelist(), staging)
                bundle.extractall(staging)
        else:
            with tarfile.open(archive) as bundle:
                _safe_members(bundle.getnames(), staging)
                bundle.extractall(staging, filter="data")
        if dest_dir.exists():
            shutil.rmtree(dest_dir)
        staging.rename(dest_dir)
    finally:
        shutil.rmtree(staging, ignore_errors=True)
    return dest_dir
