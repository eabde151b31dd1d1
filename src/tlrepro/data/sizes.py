"""The known sizes of the registry's datasets, for estimates made before anything is
downloaded (`tlrepro estimate`): images per official split, classes, and the download.

Prepared datasets need none of this: their manifest says how many images each split
holds. A dataset absent here, or a size not listed, is "unknown" to the estimate.
Kept out of `tlrepro.data.registry`, which every job's code fingerprint includes.
"""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class Known:
    splits: dict[str, int]
    """Images per official split, before the config's options carve or cut them."""
    classes: int
    download_mb: float | None = 0.0
    """What preparing it downloads (0: generated or shipped by an installed package;
    None: unknown, e.g. an archive placed by hand). Shared downloads are counted once."""
    collection: str = ""
    """The download it comes from, when several datasets share one (MNIST's halves)."""
    size_option: str | None = None
    """The option that sets its training images (rendered datasets)."""


_MNIST = {"download_mb": 11.6, "collection": "MNIST"}
_CALTECH = {"download_mb": 1183.0, "collection": "Caltech256"}
_OFFICE31 = {"download_mb": None, "collection": "office31"}
_OFFICE_HOME = {"download_mb": None, "collection": "office_home"}

KNOWN: dict[str, Known] = {
    # quick profile: generated or shipped by installed packages
    "digits_syn": Known({}, 10, size_option="n_images"),
    "letters_syn": Known({}, 10, size_option="n_images"),
    "digits_uci": Known({"train": 1797}, 10),
    "mnist_5k": Known({"train": 5000}, 10),
    "mnist_5k_0to4": Known({"train": 2500}, 5),
    "mnist_5k_5to9": Known({"train": 2500}, 5),
    # Debian's package when installed, else torchvision's download (gzip files)
    "fashion_mnist": Known({"train": 60000, "test": 10000}, 10, 30.0),
    # paper profile (torchvision's official splits; downloads as their archives)
    "mnist": Known({"train": 60000, "test": 10000}, 10, **_MNIST),
    "mnist_0to4": Known({"train": 30596, "test": 5139}, 5, **_MNIST),
    "mnist_5to9": Known({"train": 29404, "test": 4861}, 5, **_MNIST),
    "svhn": Known({"train": 73257, "test": 26032}, 10, 246.0),
    "usps": Known({"train": 7291, "test": 2007}, 10, 8.4),
    "cifar10": Known({"train": 50000, "test": 10000}, 10, 163.0),
    "cifar100": Known({"train": 50000, "test": 10000}, 100, 161.0, "CIFAR100"),
    "cifar100_decathlon": Known({"train": 50000, "test": 10000}, 100, 161.0, "CIFAR100"),
    "fgvc_aircraft": Known({"train": 3334, "val": 3333, "test": 3333}, 100, 2625.0),
    "food101": Known({"train": 75750, "test": 25250}, 101, 4996.0),
    "caltech256_decathlon": Known({"train": 30607}, 257, **_CALTECH),
    # Caltech-256's halves (GradMF's A/B): their image counts are not listed here
    "caltech256_a": Known({}, 128, **_CALTECH),
    "caltech256_b": Known({}, 128, **_CALTECH),
    "pet_images": Known({"train": 25000}, 2, 787.0),
    "office31_amazon": Known({"train": 2817}, 31, **_OFFICE31),
    "office31_webcam": Known({"train": 795}, 31, **_OFFICE31),
    "office31_dslr": Known({"train": 498}, 31, **_OFFICE31),
    "office_home_art": Known({"train": 2427}, 65, **_OFFICE_HOME),
    "office_home_clipart": Known({"train": 4365}, 65, **_OFFICE_HOME),
    "office_home_product": Known({"train": 4439}, 65, **_OFFICE_HOME),
    "office_home_real_world": Known({"train": 4357}, 65, **_OFFICE_HOME),
}
