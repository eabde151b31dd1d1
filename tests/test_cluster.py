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


def snakemake_log(root: Path) -> str:
    return max((root / ".snakemake" / "log").glob("*.snakemake.log")).read_text()


def test_without_a_gpu_limit_training_jobs_do_run_in_parallel(built):
    assert max_concurrent_training(snakemake_log(built)) == 2  # the check below can fail


@pytest.mark.slow
def test_resources_gpu_1_serialises_the_training_jobs(tmp_path):
    config = tiny_config()
    config["profiles"]["quick"]["resources"]["train"]["gpu"] = 1  # declared; runs on the CPU
    root = make_workspace(tmp_path / "repo", config)
    run([SNAKEMAKE, "results/tables.md", "--cores", "2", "--resources", "gpu=1"], root)
    assert max_concurrent_training(snakemake_log(root)) == 1
