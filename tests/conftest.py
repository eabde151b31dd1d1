"""Shared fixtures: a tiny, fast config and a scratch copy of the repository to run it in."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
import yaml

REPO = Path(__file__).resolve().parents[1]
BIN = Path(sys.executable).parent


def tiny_config() -> dict:
    """The quick profile shrunk to seconds: 300 rendered digits, 3 epochs, 2 seeds."""
    config = yaml.safe_load((REPO / "config" / "config.yaml").read_text())
    quick = config["profiles"]["quick"]
    quick["runtime"]["progress"] = False
    quick["datasets"] = {
        "digits_syn": {"n_images": 300, "val_fraction": 0.2, "test_fraction": 0.2, "seed": 0},
        "digits_uci": {"val_fraction": 0.2, "test_fraction": 0.3, "seed": 0},
    }
    quick["pretrain"]["training"]["epochs"] = 1
    # One epoch on 180 images learns little: no quality bar here (tests/test_gates.py has it).
    quick["pretrain"]["min_accuracy"] = 0.0
    for entry in quick["pretrain"]["models"].values():
        entry.pop("min_accuracy", None)
    quick["groups"] = {
        "baselines": {
            "title": "Tiny baselines",
            "model": "small_vgg",
            "tasks": ["digits_syn-to-digits_uci"],
            "seeds": [0, 1],
            "training": {"epochs": 3, "batch_size": 64, "lr": 0.05, "augment": "shift"},
            "methods": {"scratch": {}, "finetune": {"training": {"lr": 0.01}}},
        }
    }
    return config


def built_config() -> dict:
    """The tiny config plus one two-stream method, so that the end-to-end tests cover a
    source head, two samplers and the training-statistics figure."""
    config = tiny_config()
    config["profiles"]["quick"]["groups"]["baselines"]["methods"]["gradmf"] = {
        "settings": {"variant": "drawn"}
    }
    return config


def make_workspace(root: Path, config: dict | None = None) -> Path:
    """A copy of the pipeline files (not results) with `config` as its config."""
    root.mkdir(parents=True, exist_ok=True)
    for name in ("Snakefile", "rules", "profiles", "config"):
        source = REPO / name
        if source.is_dir():
            shutil.copytree(source, root / name)
        else:
            shutil.copy(source, root / name)
    if config is not None:
        (root / "config" / "config.yaml").write_text(yaml.safe_dump(config, sort_keys=False))
    return root


def run(cmd: list[str], cwd: Path, check: bool = True, **kwargs) -> subprocess.CompletedProcess:
    env = {**os.environ, "PATH": f"{BIN}{os.pathsep}{os.environ['PATH']}"}
    result = subprocess.run(cmd, cwd=cwd, env=env, capture_output=True, text=True, **kwargs)
    if check and result.returncode != 0:
        raise AssertionError(
            f"{cmd} failed ({result.returncode}):\n{result.stdout}\n{result.stderr}"
        )
    return result


@pytest.fixture
def workspace(tmp_path: Path) -> Path:
    return make_workspace(tmp_path / "repo", tiny_config())


@pytest.fixture(scope="session")
def built(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """`built_config()` built once by `snakemake --cores 2` (copy it before changing it)."""
    root = make_workspace(tmp_path_factory.mktemp("built") / "repo", built_config())
    run([str(BIN / "snakemake"), "--cores", "2", "results/tables.md"], root)
    return root
