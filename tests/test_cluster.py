"""Cluster and GPU scheduling: the Slurm profile parses, GPUs are declared and respected."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

from tlrepro.config import load_config

from .conftest import BIN, REPO, make_workspace, run, tiny_config

SNAKEMAKE = str(BIN / "snakemake")
TRAINING_RULES = ("pretrain", "transfer")


def dry_run_resources(output: str) -> dict[str, set[str]]:
    """rule name -> the `gpu=` values its jobs request in a dry run."""
    requests: dict[str, set[str]] = {}
    rule = None
    for line in output.splitlines():
        if match := re.match(r"(?:local)?rule (\w+):", line):
            rule = match.group(1)
        elif rule and (gpu := re.search(r"resources: .*\bgpu=(\d+)", line)):
            requests.setdefault(rule, set()).add(gpu.group(1))
    return requests


def test_slurm_profile_parses_and_training_jobs_request_a_gpu(tmp_path):
    pytest.importorskip("snakemake_executor_plugin_slurm")
    root = make_workspace(tmp_path / "repo", load_config(REPO / "config" / "config.yaml"))
    result = run(
        [
            SNAKEMAKE,
            "results/tables.md",
            "--profile",
            "profiles/slurm",
            "-n",
            "--config",
            "profile=paper",
        ],
        root,
    )
    requests = dry_run_resources(result.stdout + result.stderr)
    assert {rule: requests[rule] for rule in TRAINING_RULES} == {r: {"1"} for r in TRAINING_RULES}
    assert requests["prepare"] == {"0"} and requests["tables"] == {"0"}


def max_concurrent_training(log: str) -> int:
    """Most training jobs running at once, read from Snakemake's own log."""
    running: set[str] = set()
    most, rule = 0, None
    for line in log.splitlines():
        if match := re.match(r"(?:local)?rule (\w+):", line):
            rule = match.group(1)
        elif rule in TRAINING_RULES and (job := re.match(r"\s+jobid: (\d+)", line)):
            running.add(job.group(1))
            most = max(most, len(running))
            rule = None
        elif finished := re.match(r"Finished jobid: (\d+)", line):
            running.discard(finished.group(1))
    return most


@pytest.mark.slow
@pytest.mark.parametrize(("gpus", "expected"), [(None, 2), ("gpu=1", 1)])
def test_resources_gpu_1_serialises_the_training_jobs(tmp_path, gpus, expected):
    config = tiny_config()
    config["profiles"]["quick"]["resources"]["train"]["gpu"] = 1  # declared; runs on the CPU
    root = make_workspace(tmp_path / "repo", config)
    limit = ["--resources", gpus] if gpus else []
    run([SNAKEMAKE, "results/tables.md", "--cores", "2", *limit], root)
    log = max(Path(root / ".snakemake" / "log").glob("*.snakemake.log")).read_text()
    assert max_concurrent_training(log) == expected
