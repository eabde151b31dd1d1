"""Every fault of issue 23's table gives one line naming the file and the way forward, and a
resume checkpoint that cannot be loaded never leaves a run stuck."""

from __future__ import annotations

import json
import pickle
import random
import re
from pathlib import Path

import pytest
import torch

from tlrepro import storage
from tlrepro.cli import main
from tlrepro.errors import DamagedFileError, StorageError, TlreproError
from tlrepro.training.trainer import CHECKPOINT, save_checkpoint

from .faultkit import damage, remount, tmpfs
from .test_train import ERM, train_once, train_with, without_timing

REBUILD = "rebuild it with `snakemake --cores all --force"


def one_line(error: BaseException) -> str:
    text = str(error)
    assert "\n" not in text, text
    return text


@pytest.mark.parametrize(
    "spoil",
    [
        lambda p: damage(p, "flip", random.Random(0)),
        lambda p: damage(p, "truncate", random.Random(0)),
        lambda p: p.write_bytes(pickle.dumps({"epoch": 2})),  # a pickle that is not ours
        lambda p: torch.save({"epoch": 2}, p),  # torch's own format, without our checksum
    ],
    ids=["flipped", "truncated", "foreign-pickle", "plain-torch"],
)
def test_an_unloadable_checkpoint_is_kept_aside_and_the_run_starts_over(tmp_path, spoil):
    full, _ = train_once(tmp_path / "full", seed=0, epochs=2)
    run_dir = tmp_path / "run"
    checkpoint = run_dir / CHECKPOINT
    save_checkpoint(checkpoint, {"epoch": 1, "fingerprint": "fingerprint", "history": []})
    spoil(checkpoint)
    logged: list[str] = []
    history, _ = train_with(run_dir, 0, ERM, epochs=2, log=logged.append)
    assert without_timing(history) == without_timing(full)  # from epoch 1, not stuck
    (aside,) = checkpoint.parent.glob("last.pt.unreadable-*")
    assert re.fullmatch(r"last\.pt\.unreadable-\d{8}T\d{6}", aside.name)
    (warning,) = [line for line in logged if line.startswith("warning:")]
    assert str(checkpoint) in warning and str(aside) in warning
    assert "training again from the first epoch" in warning


def test_a_truncated_source_model_names_itself_and_the_rebuild(tmp_path):
    model = tmp_path / "results" / "model.safetensors"
    storage.save_tensors(model, {"w": torch.ones(100)})
    damage(model, "truncate", random.Random(1))
    with pytest.raises(DamagedFileError) as error:
        storage.load_tensors(model)
    assert one_line(error.value).startswith(f"{model}: not a readable safetensors file")
    assert f"{REBUILD} {model}` (or `dvc repro`)" in str(error.value)


def test_a_file_that_left_its_recorded_sha256_is_refused(tmp_path):
    storage.save_tensors(tmp_path / "model.safetensors", {"w": torch.ones(100)})
    storage.write_json(tmp_path / "metrics.json", {"files": storage.record_files(tmp_path)})
    assert storage.verified(tmp_path / "model.safetensors") == tmp_path / "model.safetensors"
    data = bytearray((tmp_path / "model.safetensors").read_bytes())
    data[-1] ^= 1  # a tensor's value: safetensors would load it
    (tmp_path / "model.safetensors").write_bytes(bytes(data))
    with pytest.raises(DamagedFileError, match=r"sha256 differs from the one .*metrics.json"):
        storage.verified(tmp_path / "model.safetensors")


def test_a_json_file_with_a_changed_digit_is_refused(tmp_path):
    path = tmp_path / "metrics.json"
    storage.write_json(path, {"accuracy": 0.5})
    assert storage.read_json(path) == {"accuracy": 0.5}
    path.write_text(path.read_text().replace("0.5", "0.6"))  # still valid JSON
    with pytest.raises(DamagedFileError, match="no longer matches its checksum"):
        storage.read_json(path)
    path.write_text('{"accuracy": 0.')
    with pytest.raises(DamagedFileError, match="not valid JSON"):
        storage.read_json(path)
    (tmp_path / "theirs.json").write_text(json.dumps({"a": 1}))  # no seal: read as is
    assert storage.read_json(tmp_path / "theirs.json") == {"a": 1}


def full_disk_writes(folder: Path) -> dict[str, Path]:
    """Each kind of write the pipeline does, into `folder`; the target of each."""
    big = torch.zeros(1 << 20)
    targets = {}
    for kind, write in {
        "checkpoint": lambda p: save_checkpoint(p, {"w": big}),
        "tensors": lambda p: storage.save_tensors(p, {"w": big}),
        "json": lambda p: storage.write_json(p, {"w": [0.0] * 300_000}),
    }.items():
        targets[kind] = folder / kind
        with pytest.raises(StorageError) as error:
            write(targets[kind])
        assert one_line(error.value).startswith(f"cannot write {targets[kind]}: ")
        targets[kind] = error.value
    return targets


def test_a_full_disk_and_a_read_only_folder_say_so_with_the_path(tmp_path):
    with tmpfs(tmp_path / "small", "1m") as folder:
        for error in full_disk_writes(folder).values():
            assert "no space left on device; nothing half-written was kept" in str(error)
        assert list(folder.iterdir()) == []
        remount(folder, "ro")
        with pytest.raises(StorageError, match="read-only file system"):
            storage.write_text(folder / "a" / "log.csv", "x")
        with (
            pytest.raises(StorageError, match=r"\.lock: read-only file system"),
            storage.exclusive(folder / "run"),
        ):
            pass


@pytest.mark.parametrize(
    "error",
    [DamagedFileError("results/x/metrics.json", "corrupt"), StorageError("results/y", "full")],
)
def test_the_cli_prints_a_fault_as_one_line_without_a_traceback(capsys, monkeypatch, error):
    assert isinstance(error, TlreproError)

    def fail(args):
        raise error

    monkeypatch.setattr("tlrepro.cli._plan", fail)
    assert main(["validate"]) == 2
    assert capsys.readouterr().err == f"tlrepro validate: error: {error}\n"


def test_a_damaged_rst_export_is_refused_before_it_touches_the_model(tmp_path):
    from tlrepro.methods.cmkd import load_rst
    from tlrepro.plan.layout import RST_FILE

    storage.save_tensors(tmp_path / RST_FILE, {"head.weight": torch.ones(4, 2)})
    storage.write_json(tmp_path / "metrics.json", {"files": storage.record_files(tmp_path)})
    damage(tmp_path / RST_FILE, "flip", random.Random(2))
    with pytest.raises(DamagedFileError, match=rf"{RST_FILE}: (its sha256|not a readable)"):
        load_rst(None, tmp_path / RST_FILE)  # type: ignore[arg-type]
