"""Cluster and GPU scheduling: the Slurm profile parses, GPUs are declared and respected,
and a Slurm run refuses requests no node can run (tests/test_slurm.py: on a real Slurm)."""

from __future__ import annotations

import re
from pathlib import Path
from types import SimpleNamespace

import pytest
import yaml

from tlrepro.runners import slurm

from .conftest import BIN, REPO, make_workspace, run, tiny_config

SNAKEMAKE = str(BIN / "snakemake")
TRAINING_RULES = ("pretrain", "transfer")


def rule_kind(name: str) -> str:
    """`transfer_exporting_rst` and the other per-signature transfer rules count as `transfer`."""
    return "transfer" if name.startswith("transfer") else name


def dry_run_resources(output: str) -> dict[str, set[str]]:
    """rule name -> the `gpu=` values its jobs request in a dry run."""
    requests: dict[str, set[str]] = {}
    rule = None
    for line in output.splitlines():
        if match := re.match(r"(?:local)?rule (\w+):", line):
            rule = rule_kind(match.group(1))
        elif rule and (gpu := re.search(r"resources: .*\bgpu=(\d+)", line)):
            requests.setdefault(rule, set()).add(gpu.group(1))
    return requests


def test_slurm_profile_parses_and_training_jobs_request_a_gpu(tmp_path):
    pytest.importorskip("snakemake_executor_plugin_slurm")
    config = yaml.safe_load((REPO / "config" / "config.yaml").read_text())
    root = make_workspace(tmp_path / "repo", config)
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
            rule = rule_kind(match.group(1))
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
@pytest.mark.long
def test_resources_gpu_1_serialises_the_training_jobs(tmp_path):
    config = tiny_config()
    config["profiles"]["quick"]["resources"]["train"]["gpu"] = 1  # declared; runs on the CPU
    root = make_workspace(tmp_path / "repo", config)
    run([SNAKEMAKE, "results/tables.md", "--cores", "2", "--resources", "gpu=1"], root)
    assert max_concurrent_training(snakemake_log(root)) == 1


SINFO = """\
cpu01|short*|32|128000|(null)|4:00:00
cpu01|long|32|128000|(null)|7-00:00:00
gpu01|gpu|16|256000|gpu:a100:4(S:0-1)|2-00:00:00
gpu02|gpu|16|256000|gpu:v100:2,mps:100|2-00:00:00
"""


def request(**asked) -> slurm.Request:
    defaults = {"rule": "transfer", "partition": None, "cpus": 1, "mem_mb": 4000, "gpus": 0}
    return slurm.Request(**(defaults | {"minutes": 60} | asked))


def test_sinfo_nodes_with_their_gpus_and_partition_time_limits():
    nodes = slurm.parse_sinfo(SINFO)
    assert [(n.name, n.partition, n.default, n.gpus, n.time_limit) for n in nodes] == [
        ("cpu01", "short", True, 0, 240),
        ("cpu01", "long", False, 0, 7 * 24 * 60),
        ("gpu01", "gpu", False, 4, 2 * 24 * 60),
        ("gpu02", "gpu", False, 2, 2 * 24 * 60),
    ]
    assert slurm.parse_sinfo("n|p*|2|1000|gpu:2|infinite")[0].time_limit == float("inf")


@pytest.mark.parametrize(
    "asked",
    [{}, {"partition": "long", "minutes": 24 * 60}, {"partition": "gpu", "gpus": 4}],
    ids=["default partition", "long partition", "the larger GPU node"],
)
def test_requests_some_node_can_run_pass(asked):
    assert slurm.unsatisfiable([request(**asked)], slurm.parse_sinfo(SINFO)) == []


@pytest.mark.parametrize(
    ("asked", "says"),
    [
        ({"gpus": 1}, "0 GPUs"),  # the default partition has no GPUs
        ({"partition": "gpu", "gpus": 8}, "4 GPUs, 2880 min and 1 node with 16 CPUs"),
        ({"partition": "gpu", "gpus": 1, "cpus": 64}, "16 CPUs"),
        ({"minutes": 24 * 60}, "240 min"),  # longer than the default partition allows
        ({"mem_mb": 10**6}, "128000 MB"),
        ({"partition": "a100"}, "the cluster's partitions are: gpu, long, short"),
    ],
)
def test_a_request_no_node_can_run_is_named_with_what_the_partition_has(asked, says):
    problems = slurm.unsatisfiable([request(**asked)] * 2, slurm.parse_sinfo(SINFO))
    assert len(problems) == 1 and problems[0].startswith("rule transfer (2 jobs) asks for")
    assert says in problems[0]


def test_without_a_default_partition_any_node_will_do():
    nodes = slurm.parse_sinfo(SINFO.replace("short*", "short"))
    assert slurm.unsatisfiable([request(gpus=4)], nodes) == []


def job(threads=1, local=False, **resources):
    return SimpleNamespace(
        rule=SimpleNamespace(name="transfer"), threads=threads, is_local=local, resources=resources
    )


def test_a_jobs_request_is_read_like_the_slurm_plugin_writes_sbatch_options():
    assert slurm.request_of(job(threads=2, mem_mb=4000, runtime=90, gpu=1)) == request(
        cpus=2, gpus=1, minutes=90
    )
    assert slurm.request_of(
        job(threads=2, cpus_per_task=8, mem_mb_per_cpu=1000, gres="gpu:a100:2")
    ) == request(cpus=8, mem_mb=8000, gpus=2, minutes=0)
    assert slurm.request_of(job(slurm_partition="gpu", mem_mb=1)).partition == "gpu"
