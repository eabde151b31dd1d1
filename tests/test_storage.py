"""Outputs appear whole or not at all, readable as the user's umask allows."""

from __future__ import annotations

import os
import stat

import pytest

from tlrepro import storage


def test_failed_write_leaves_the_previous_file_and_no_temporary(tmp_path):
    target = tmp_path / "metrics.json"
    storage.write_json(target, {"accuracy": 0.5})
    with pytest.raises(RuntimeError), storage.atomic_output(target) as tmp:
        tmp.write_text('{"accuracy": 0.')  # half written, then the job dies
        raise RuntimeError("killed")
    assert storage.read_json(target) == {"accuracy": 0.5}
    assert [p.name for p in tmp_path.iterdir()] == ["metrics.json"]


def test_failed_first_write_creates_nothing(tmp_path):
    target = tmp_path / "sub" / "model.safetensors"
    with pytest.raises(RuntimeError), storage.atomic_output(target):
        raise RuntimeError("killed")
    assert not target.exists()
    assert list(target.parent.iterdir()) == []


def test_tensors_round_trip_without_pickle(tmp_path):
    import torch

    tensors = {
        "images": torch.arange(12, dtype=torch.uint8).view(1, 3, 2, 2),
        "labels": torch.tensor([7]),
    }
    storage.save_tensors(tmp_path / "split.safetensors", tensors)
    loaded = storage.load_tensors(tmp_path / "split.safetensors")
    assert all(torch.equal(loaded[k], tensors[k]) for k in tensors)


@pytest.fixture(params=[0o022, 0o027], ids=["umask022", "umask027"])
def umask(request):
    """Run the test under the given umask, restoring the previous one after it."""
    previous = os.umask(request.param)
    yield request.param
    os.umask(previous)


def test_outputs_get_the_mode_the_umask_gives_a_new_file(tmp_path, umask):
    import torch

    (tmp_path / "plain.txt").write_text("made by open()")
    storage.write_json(tmp_path / "metrics.json", {"accuracy": 0.5})
    storage.save_tensors(tmp_path / "model.safetensors", {"w": torch.zeros(2)})
    modes = {p.name: stat.filemode(p.stat().st_mode) for p in tmp_path.iterdir()}
    expected = stat.filemode(stat.S_IFREG | (0o666 & ~umask))
    assert modes == dict.fromkeys(("plain.txt", "metrics.json", "model.safetensors"), expected)
