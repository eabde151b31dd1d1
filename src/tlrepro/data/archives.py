"""Image-folder datasets fetched by URL + sha256, or placed by hand.

Office-31 and Office-Home have no stable direct download (their authors share
them through file-hosting pages), so they are placed by hand or fetched from a
URL that the user pins in the config with its sha256. A missing folder gets an
error that names the layout expected.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import torch

from tlrepro.data.fetch import extract, fetch
from tlrepro.data.prepare import RawSplits

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
    marker = spec["marker"].format(domain=domain)
    candidates = [unpacked, *(p for p in unpacked.rglob("*") if p.is_dir())]
    found = next((p for p in candidates if (p / marker).is_dir()), None)
    if found is None:
        raise FileNotFoundError(
            f"{options['url']} unpacked to {unpacked} without the layout {_layout(spec, domain)}"
        )
    found.rename(root / spec["top"])


def image_folder(
    folder: Path, image_size: int
) -> tuple[tuple[str, ...], torch.Tensor, torch.Tensor, int]:
    """Classes = sorted sub-folder names in label order; unreadable images are skipped."""
    from PIL import Image, UnidentifiedImageError
    from torchvision.transforms.v2 import functional as F

    classes = tuple(sorted(p.name for p in folder.iterdir() if p.is_dir()))
    images, labels, skipped = [], [], 0
    for label, name in enumerate(classes):
        for path in sorted((folder / name).iterdir()):
            try:
                with Image.open(path) as image:
                    tensor = F.pil_to_tensor(image.convert("RGB"))
            except (UnidentifiedImageError, OSError):
                skipped += 1
                continue
            images.append(F.resize(tensor, [image_size, image_size], antialias=True))
            labels.append(label)
    return classes, torch.stack(images), torch.tensor(labels, dtype=torch.int64), skipped


def build(
    options: dict[str, Any],
    image_size: int,
    raw_root: Path,
    archive: str,
    domain: str | None = None,
) -> RawSplits:
    spec = LAYOUTS[archive]
    root = Path(options.get("root") or raw_root)
    folder = (root / spec["top"] / spec["inner"].format(domain=domain)).resolve()
    if not folder.is_dir() and options.get("url"):
        _download(options, raw_root, root, spec, domain)
    if not folder.is_dir():
        raise FileNotFoundError(
            f"{archive}{'/' + domain if domain else ''} not found at {folder}. Expected layout: "
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
