"""Image-folder datasets fetched by URL + sha256, or placed by hand.

Office-31 and Office-Home have no stable direct download (their authors share
them through file-hosting pages), so they are placed by hand or fetched from a
URL that the user pins in the config with its sha256. A missing folder gets an
error that names the layout expected.
"""

from __future__ import annotations

import shutil
from pathlib import Path
from typing import Any

import torch

from tlrepro.data.fetch import extract, fetch
from tlrepro.data.prepare import RawSplits
from tlrepro.errors import MissingFileError

IMAGE_SUFFIXES = {".jpg", ".jpeg", ".png", ".bmp", ".gif", ".ppm", ".pgm", ".tif", ".tiff", ".webp"}
LAYOUTS: dict[str, dict[str, str]] = {
    # top: folder under `root`; inner: the image folder under top; marker: proves a
    # candidate folder of an unpacked archive is `top`.
    "office31": {
        "top": "office31",
        "inner": "{domain}/images",
        "marker": "{domain}/images",
        "where": "the Office-31 archive (domain_adaptation_images), from its authors' page",
    },
    "office_home": {
        "top": "office_home",
        "inner": "{domain}",
        "marker": "{domain}",
        "where": "OfficeHomeDataset_10072016, from the Office-Home authors' page",
    },
    "pet_images": {
        "top": "PetImages",
        "inner": ".",
        "marker": "Cat",
        "where": "Microsoft's kagglecatsanddogs zip (Microsoft Download Center)",
    },
}


def _layout(spec: dict[str, str], domain: str | None) -> str:
    inner = spec["inner"].format(domain=domain)
    return f"<root>/{spec['top']}/{inner}/<class>/*.jpg".replace("/./", "/")


def _domain_names(domain: str | None) -> list[str | None]:
    """Office-Home's own zip spells the domain "Real World"; the registry says Real_World."""
    if domain is None or "_" not in domain:
        return [domain]
    return [domain, domain.replace("_", " ")]


def _find_folder(root: Path, spec: dict[str, str], domain: str | None) -> Path | None:
    for name in _domain_names(domain):
        folder = (root / spec["top"] / spec["inner"].format(domain=name)).resolve()
        if folder.is_dir():
            return folder
    return None


def _download(
    options: dict[str, Any], raw_root: Path, root: Path, spec: dict[str, str], domain: str | None
) -> None:
    """Fetch and unpack the archive, then move the folder that holds the layout into place."""
    archive = fetch(
        options["url"],
        Path(raw_root) / "downloads" / f"{spec['top']}.archive",
        options.get("sha256"),
    )
    unpacked = extract(archive, root / f".{spec['top']}.unpacked")
    markers = [spec["marker"].format(domain=name) for name in _domain_names(domain)]
    candidates = [unpacked, *(p for p in unpacked.rglob("*") if p.is_dir())]
    found = next((p for p in candidates if any((p / m).is_dir() for m in markers)), None)
    if found is None:
        raise MissingFileError(
            f"{options['url']} unpacked to {unpacked} without the layout {_layout(spec, domain)}"
        )
    found.rename(root / spec["top"])
    shutil.rmtree(unpacked, ignore_errors=True)  # what the archive held beside the layout


def image_folder(
    folder: Path, image_size: int
) -> tuple[tuple[str, ...], torch.Tensor, torch.Tensor, int]:
    """Classes = sorted sub-folder names in label order; unreadable images are skipped."""
    from PIL import Image
    from torchvision.transforms.v2 import functional as F

    classes = tuple(sorted(p.name for p in folder.iterdir() if p.is_dir()))
    files = [
        (path, label)
        for label, name in enumerate(classes)
        for path in sorted((folder / name).iterdir())
        if path.suffix.lower() in IMAGE_SUFFIXES  # not Thumbs.db and the like
    ]
    if not files:
        raise MissingFileError(f"{folder}: no images in class sub-folders")
    images = torch.empty((len(files), 3, image_size, image_size), dtype=torch.uint8)
    labels = torch.empty(len(files), dtype=torch.int64)
    kept = 0
    for path, label in files:
        try:
            with Image.open(path) as image:
                image.draft("RGB", (image_size, image_size))  # JPEG: decode at a reduced scale
                tensor = F.pil_to_tensor(image.convert("RGB"))
        except (OSError, ValueError, SyntaxError, Image.DecompressionBombError):
            continue
        images[kept] = F.resize(tensor, [image_size, image_size], antialias=True)
        labels[kept] = label
        kept += 1
    return classes, images[:kept], labels[:kept], len(files) - kept


def build(
    options: dict[str, Any],
    image_size: int,
    raw_root: Path,
    archive: str,
    domain: str | None = None,
) -> RawSplits:
    spec = LAYOUTS[archive]
    root = Path(options.get("root") or raw_root)
    folder = _find_folder(root, spec, domain)
    if folder is None and options.get("url"):
        _download(options, raw_root, root, spec, domain)
        folder = _find_folder(root, spec, domain)
    if folder is None:
        expected = root / spec["top"] / spec["inner"].format(domain=domain)
        raise MissingFileError(
            f"{archive}{'/' + domain if domain else ''} not found at {expected}. Expected layout: "
            f"{_layout(spec, domain)}. Get {spec['where']} and either unpack it there (set "
            "`root` in the dataset's config entry to the folder that holds it), or set `url` "
            "and `sha256` so the pipeline downloads and verifies it."
        )
    classes, images, labels, skipped = image_folder(folder, image_size)
    return RawSplits(
        classes,
        {"train": (images, labels)},
        notes={"source": str(folder), "unreadable_images_skipped": skipped},
    )
