"""Shared fixtures: a tiny, fast config and a scratch copy of the repository to run it in."""

from __future__ import annotations

import os
import re
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
import yaml

REPO = Path(__file__).resolve().parents[1]
BIN = Path(sys.executable).parent
TEST_CONFIG = REPO / ".test" / "config.yaml"


def pytest_terminal_summary(terminalreporter) -> None:
    """The fault suites' account of what they tried (faults, kill points, files, outcomes)."""
    from .faultkit import REPORT

    if REPORT:
        terminalreporter.section("faults injected")
        for line in REPORT:
            terminalreporter.write_line(line)


def tiny_config() -> dict:
    """The small test config (.test/config.yaml): the quick profile shrunk to seconds,
    300 rendered digits, 3 epochs, 2 seeds; a fresh copy each call."""
    return yaml.safe_load(TEST_CONFIG.read_text())


def built_config() -> dict:
    """The tiny config plus one two-stream method, so that the end-to-end tests cover a
    source head, two samplers and the training-statistics figure."""
    config = tiny_config()
    config["profiles"]["quick"]["groups"]["baselines"]["methods"]["gradmf"] = {
        "settings": {"variant": "drawn"}
    }
    return config


def families_config() -> dict:
    """The built config plus one run of each method family that exports a file (TLVFC's
    transfer report, CMKD+RST's sparse checkpoint), so that sharing through a DVC remote
    is tested with every kind of output a run writes."""
    config = built_config()
    quick = config["profiles"]["quick"]
    short = {"epochs": 1, "steps_per_epoch": 2, "batch_size": 16}
    quick["groups"]["families"] = {
        "title": "One run of each exporting family",
        "model": "small_resnet_deep",
        "source_model": "small_vgg",
        "tasks": ["digits_syn-to-digits_uci"],
        "seeds": [0],
        "training": short,
        "methods": {"tlvfc": {}},
    }
    quick["groups"]["clip"] = {
        "title": "Tiny CLIP with RST",
        "model": "tiny_clip",
        "tasks": ["digits_syn-to-digits_uci"],
        "seeds": [0],
        "training": {**short, "lr": 0.003},
        "methods": {
            "cmkd_rst": {
                "method": "cmkd",
                "settings": {"rst_tau": 0.001, "ramp_steps": 2, "head_lr_scale": 30},
            }
        },
    }
    quick["pretrain"].setdefault("models", {})["tiny_clip"] = {"training": {"epochs": 1}}
    return config


def make_workspace(root: Path, config: dict | None = None) -> Path:
    """A copy of the pipeline files and the package's code (not results) with `config` as
    its config; `run` makes commands in it import that copy of the code."""
    root.mkdir(parents=True, exist_ok=True)
    shutil.copytree(
        REPO / "src" / "tlrepro",
        root / "src" / "tlrepro",
        ignore=shutil.ignore_patterns("__pycache__"),
    )
    for name in ("Snakefile", "rules", "profiles", "config", "report"):
        source = REPO / name
        if source.is_dir():
            shutil.copytree(source, root / name)
        else:
            shutil.copy(source, root / name)
    if config is not None:
        (root / "config" / "config.yaml").write_text(yaml.safe_dump(config, sort_keys=False))
    return root


def workspace_env(cwd: Path) -> dict[str, str]:
    """The environment of a command in `cwd`: the venv's tools, and the workspace's own copy
    of the package where it has one (so that tests can edit code without touching ours)."""
    env = {**os.environ, "PATH": f"{BIN}{os.pathsep}{os.environ['PATH']}"}
    if (Path(cwd) / "src" / "tlrepro").is_dir():
        env["PYTHONPATH"] = str(Path(cwd).resolve() / "src")
    return env


def run(cmd: list[str], cwd: Path, check: bool = True, **kwargs) -> subprocess.CompletedProcess:
    env = workspace_env(cwd)
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
    """`built_config()` built once by `snakemake --cores 2`, default target: the tables and
    the report pages (copy it before changing it)."""
    root = make_workspace(tmp_path_factory.mktemp("built") / "repo", built_config())
    run([str(BIN / "snakemake"), "--cores", "2"], root)
    return root


def dvc_workspace(root: Path, config: dict) -> Path:
    """A git + DVC repository holding the pipeline, its code and `config`."""
    make_workspace(root, config)
    shutil.copy(REPO / ".gitignore", root / ".gitignore")
    run([str(BIN / "tlrepro"), "dvc-plan"], root)
    run(["git", "init", "-q"], root)
    run([str(BIN / "dvc"), "init", "-q"], root)
    for name in (".dvcignore", ".dvc/config"):
        shutil.copy(REPO / name, root / name)
    return root


@pytest.fixture(scope="session")
def dvc_built(tmp_path_factory) -> Path:
    """`families_config()` reproduced once by `dvc repro` on a fresh repository."""
    root = dvc_workspace(tmp_path_factory.mktemp("dvc") / "repo", families_config())
    first = run([str(BIN / "dvc"), "repro"], root)
    assert "Running stage 'tables'" in first.stdout
    return root


COST_COLUMN = "cost (mean run)"  # tlrepro.reporting.markdown.COST
COMPUTE_RATIO = re.compile(r" at [0-9.e+]+x the compute")


def tables_without_cost(path: Path) -> list[str]:
    """tables.md less what measures time (the cost column, each claim's compute ratio),
    cell by cell: two runs of the same code and config agree on everything else, byte for
    byte, but not on how long they took."""
    lines, drop = [], None
    for line in path.read_text(encoding="utf-8").splitlines():
        if not line.startswith("|"):
            lines.append(line)
            drop = None
            continue
        cells = [COMPUTE_RATIO.sub("", cell).strip() for cell in line.strip("|").split("|")]
        if drop is None and COST_COLUMN in cells:
            drop = cells.index(COST_COLUMN)
        if drop is not None:
            del cells[drop]
        lines.append("|".join(cells))
    return lines
