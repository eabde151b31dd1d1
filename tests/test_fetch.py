"""Downloads are verified before use; bad ones leave nothing behind."""

from __future__ import annotations

import hashlib
import http.server
import socket
import threading
import zipfile
from pathlib import Path
from typing import ClassVar

import pytest
import torch

from tlrepro.data import archives, torchvision_sets
from tlrepro.data.fetch import (
    ChecksumError,
    DownloadError,
    UnpinnedDownloadError,
    extract,
    fetch,
)
from tlrepro.data.prepare import load_prepared, prepare_dataset

PAYLOAD = b"tlrepro test archive " * 1000
GOOD_SHA = hashlib.sha256(PAYLOAD).hexdigest()


class Handler(http.server.SimpleHTTPRequestHandler):
    requests: ClassVar[list[str]] = []

    def do_GET(self):
        Handler.requests.append(self.path)
        if self.path == "/truncated.bin":
            self.send_response(200)
            self.send_header("Content-Length", str(len(PAYLOAD) * 2))
            self.end_headers()
            self.wfile.write(PAYLOAD)
            self.wfile.flush()
            self.close_connection = True
            return
        super().do_GET()

    def log_message(self, *args):
        pass


@pytest.fixture
def server(tmp_path):
    served = tmp_path / "served"
    served.mkdir()
    (served / "good.bin").write_bytes(PAYLOAD)
    Handler.requests = []
    httpd = http.server.ThreadingHTTPServer(
        ("127.0.0.1", 0), lambda *a, **k: Handler(*a, directory=str(served), **k)
    )
    thread = threading.Thread(target=httpd.serve_forever, daemon=True)
    thread.start()
    yield f"http://127.0.0.1:{httpd.server_address[1]}"
    httpd.shutdown()
    httpd.server_close()


def leftovers(folder: Path) -> list[str]:
    return sorted(p.name for p in folder.iterdir()) if folder.exists() else []


def test_good_download_lands_and_is_not_fetched_twice(server, tmp_path):
    dest = tmp_path / "dl" / "good.bin"
    assert fetch(f"{server}/good.bin", dest, GOOD_SHA, progress=False).read_bytes() == PAYLOAD
    fetch(f"{server}/good.bin", dest, GOOD_SHA, progress=False)
    assert Handler.requests == ["/good.bin"]
    assert leftovers(dest.parent) == ["good.bin"]


def test_wrong_checksum_is_rejected_and_leaves_nothing(server, tmp_path):
    dest = tmp_path / "dl" / "good.bin"
    wrong = "0" * 64
    with pytest.raises(ChecksumError) as error:
        fetch(f"{server}/good.bin", dest, wrong, progress=False)
    assert wrong in str(error.value) and GOOD_SHA in str(error.value)
    assert leftovers(dest.parent) == []


def test_truncated_download_is_rejected_and_leaves_nothing(server, tmp_path):
    dest = tmp_path / "dl" / "truncated.bin"
    with pytest.raises(DownloadError, match="truncated"):
        fetch(f"{server}/truncated.bin", dest, GOOD_SHA, progress=False)
    assert leftovers(dest.parent) == []


def test_unreachable_server_is_a_download_error_not_a_checksum_error(tmp_path):
    with socket.socket() as probe:  # a port nothing listens on
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    dest = tmp_path / "dl" / "good.bin"
    with pytest.raises(DownloadError, match=r"failed.*Check the network"):
        fetch(f"http://127.0.0.1:{port}/good.bin", dest, GOOD_SHA, progress=False)
    assert leftovers(dest.parent) == []


def test_file_urls_and_unpinned_refusal(tmp_path):
    source = tmp_path / "local.bin"
    source.write_bytes(PAYLOAD)
    dest = tmp_path / "dl" / "copy.bin"
    assert fetch(source.as_uri(), dest, GOOD_SHA, progress=False).read_bytes() == PAYLOAD
    with pytest.raises(UnpinnedDownloadError, match="pinned sha256"):
        fetch(source.as_uri(), tmp_path / "dl" / "other.bin", None, progress=False)


def test_extract_refuses_members_outside_the_destination(tmp_path):
    bundle = tmp_path / "evil.zip"
    with zipfile.ZipFile(bundle, "w") as archive:
        archive.writestr("../evil.txt", "x")
    with pytest.raises(ValueError, match="outside"):
        extract(bundle, tmp_path / "out")
    assert not (tmp_path / "evil.txt").exists() and not (tmp_path / "out").exists()


def test_missing_manual_dataset_names_the_expected_layout(tmp_path):
    with pytest.raises(FileNotFoundError) as error:
        archives.build({"root": str(tmp_path)}, 32, tmp_path, "office31", "amazon")
    assert "<root>/office31/amazon/images/<class>/*.jpg" in str(error.value)
    assert "sha256" in str(error.value)


def test_image_folder_archive_downloaded_verified_and_loaded(server, tmp_path):
    from PIL import Image

    bundle = tmp_path / "served" / "pets.zip"
    with zipfile.ZipFile(bundle, "w") as archive:
        for index, name in enumerate(("Cat", "Dog", "Cat", "Dog")):
            image = Image.new("RGB", (40, 30), (index * 60, 10, 200))
            path = tmp_path / f"{index}.jpg"
            image.save(path)
            archive.write(path, f"kagglecatsanddogs/PetImages/{name}/{index}.jpg")
        archive.writestr("kagglecatsanddogs/PetImages/Cat/broken.jpg", b"not a jpeg")
        archive.writestr("kagglecatsanddogs/PetImages/Dog/Thumbs.db", b"not an image at all")
        archive.writestr("kagglecatsanddogs/readme.txt", b"beside the layout")
    sha = hashlib.sha256(bundle.read_bytes()).hexdigest()
    options = {"root": str(tmp_path / "root"), "url": f"{server}/pets.zip", "sha256": sha}
    raw = archives.build(options, 16, tmp_path / "raw", "pet_images")
    images, labels = raw.splits["train"]
    assert raw.classes == ("Cat", "Dog") and images.shape == (4, 3, 16, 16)
    assert labels.tolist() == [0, 0, 1, 1] and raw.notes["unreadable_images_skipped"] == 1
    assert leftovers(tmp_path / "root") == ["PetImages"]


def test_office_home_accepts_the_real_world_folder_as_its_zip_spells_it(tmp_path):
    from PIL import Image

    for name in ("Alarm_Clock", "Backpack"):
        folder = tmp_path / "office_home" / "Real World" / name
        folder.mkdir(parents=True)
        Image.new("RGB", (20, 20), (200, 0, 0)).save(folder / "00001.jpg")
    raw = archives.build({"root": str(tmp_path)}, 8, tmp_path, "office_home", "Real_World")
    assert raw.classes == ("Alarm_Clock", "Backpack")
    assert raw.splits["train"][1].tolist() == [0, 1]


def test_torchvision_entry_converts_splits_and_classes(monkeypatch, tmp_path):
    from PIL import Image

    class Fake(list):
        classes: ClassVar[list[str]] = ["airplane", "automobile"]

    def construct(name, root, **kwargs):
        size = 3 if kwargs.get("train", True) else 2
        return Fake((Image.new("L", (8, 8), 255 * (i % 2)), i % 2) for i in range(size))

    monkeypatch.setattr(torchvision_sets, "construct", construct)
    raw = torchvision_sets.build({}, 32, tmp_path, "CIFAR10")
    assert raw.classes == ("airplane", "automobile")
    assert raw.splits["train"][0].shape == (3, 3, 32, 32)
    assert raw.splits["test"][1].tolist() == [0, 1]
    assert raw.splits["train"][0].dtype == torch.uint8


def test_a_class_range_entry_keeps_and_relabels_its_classes(monkeypatch, tmp_path):
    """mnist_5to9 from a fake MNIST: only digits 5-9, labelled 0-4, in every split."""
    from PIL import Image

    def construct(name, root, **kwargs):
        assert name == "MNIST"
        return [(Image.new("L", (8, 8), 20 * digit), digit) for digit in range(10)] * 4

    monkeypatch.setattr(torchvision_sets, "construct", construct)
    manifest = prepare_dataset("mnist_5to9", {"val_fraction": 0.25}, 8, tmp_path / "out", tmp_path)
    assert manifest["classes"] == ["5", "6", "7", "8", "9"]
    assert manifest["notes"]["class_range"] == [5, 10]
    prepared = load_prepared(tmp_path / "out")
    for split in ("train", "val", "test"):
        images, labels = prepared.splits[split]
        assert set(labels.tolist()) == set(range(5))
        # the pixel value still says which digit it was: label k came from digit k + 5
        assert torch.equal(images[:, 0, 0, 0], (20 * (labels + 5)).to(torch.uint8))
