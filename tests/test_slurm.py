"""profiles/slurm on a real Slurm: a single-node cluster that the tests start and stop.

Marker `cluster`: `make test` leaves these out, `make test-cluster` (and CI) runs them;
they need Debian's slurmctld, slurmd, slurm-client and munge. One Snakemake run of a
small config through the profile carries most checks: every job goes through sbatch,
one transfer job is cancelled mid-run with scancel and the profile's retry resumes it,
the training jobs ask for a GPU each on a node with two, and the metrics equal those of
a local run. Two more runs have a job killed by the scheduler (its time limit, a node
failure) and resumed from its checkpoint. Every Snakemake call runs under `timeout -k`;
the cluster fixture cancels any job left, ends by PID any process of its jobs still alive,
stops exactly the daemons it started, and asserts that no process of the jobs survived.
"""

from __future__ import annotations

import os
import re
import signal
import subprocess
import time
from collections import Counter
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path

import pytest

from .conftest import BIN, make_workspace, run, tables_without_cost, tiny_config
from .slurm_cluster import PACKAGES, SlurmCluster, missing_programs, single_node_cluster
from .test_recovery import without_timing

pytestmark = [
    pytest.mark.cluster,
    pytest.mark.skipif(
        bool(missing_programs()),
        reason=f"needs Slurm ({', '.join(missing_programs())} missing: apt-get install {PACKAGES})",
    ),
]

RUN_TIMEOUT = 900  # s for one Snakemake run; `timeout -k` kills it (it ignores SIGTERM)
GPUS, NODE_CPUS = 2, 4  # more CPUs than GPUs, so that only the GPUs can hold jobs back
TRAINING = {"pretrain", "transfer"}
TASK = "digits_syn-to-digits_uci"
CANCELLED = f"results/runs/quick/baselines/scratch/{TASK}/seed0"


def cluster_config() -> dict:
    """The tiny config with one seed, training jobs declaring one GPU, and three methods
    that train from scratch, so that three GPU jobs are ready at the same moment."""
    config = tiny_config()
    quick = config["profiles"]["quick"]
    quick["resources"]["train"]["gpu"] = 1
    group = quick["groups"]["baselines"]
    group["seeds"] = [0]
    group["methods"] = {
        "scratch": {"training": {"epochs": 8}},  # long enough to be cancelled mid-run
        "scratch_lr01": {"method": "scratch", "training": {"lr": 0.1}},
        "scratch_lr002": {"method": "scratch", "training": {"lr": 0.02}},
        "finetune": {"training": {"lr": 0.01}},
    }
    return config


def snakemake(*args: str, timeout: int = RUN_TIMEOUT) -> list[str]:
    return ["timeout", "-k", "10", str(timeout), str(BIN / "snakemake"), *args]


def on_slurm(*args: str) -> list[str]:
    """A Snakemake call through the profile; targets go first, since --default-resources
    takes every word after it."""
    return snakemake(
        *args, "--profile", "profiles/slurm", "--slurm-init-seconds-before-status-checks", "2"
    )


def rule_of(job: dict[str, str]) -> str:
    """The rule a Slurm job runs, from the comment the plugin gives it."""
    return job["comment"].removeprefix("rule_").split("_wildcards_")[0]


def most_at_once(jobs: list[dict[str, str]]) -> int:
    """Most of `jobs` running at the same time, from Slurm's start and end times."""
    events = sorted(
        (datetime.fromisoformat(job[key]), step)
        for job in jobs
        for key, step in (("start", 1), ("end", -1))
    )  # at equal times the end (-1) sorts first: the next job got the freed GPU
    running = most = 0
    for _, step in events:
        running += step
        most = max(most, running)
    return most


@pytest.fixture(scope="module")
def cluster(tmp_path_factory):
    with single_node_cluster(tmp_path_factory.mktemp("slurm"), GPUS, NODE_CPUS) as started:
        yield started
    alive = [name for name, proc in started.daemons.items() if proc.poll() is None]
    assert not alive, f"still running after the cluster was stopped: {alive}"
    assert not started.job_processes(), "processes of the test's jobs outlived the cluster"


def cluster_env(cluster: SlurmCluster) -> dict[str, str]:
    return {**cluster.env, "PATH": f"{BIN}:{cluster.env['PATH']}"}


@dataclass
class SlurmRun:
    root: Path
    returncode: int
    output: str
    snapshots: list[list[dict[str, str]]]  # squeue, polled while Snakemake ran
    jobs: list[dict[str, str]]  # squeue once it had finished
    cancelled: str  # the Slurm id of the job cancelled mid-run
    left_by_cancel: set[str]  # files of the cancelled run once Slurm had killed it


@pytest.fixture(scope="module")
def slurm_run(cluster, tmp_path_factory) -> SlurmRun:
    """cluster_config() through profiles/slurm, its scratch job cancelled after its first
    epoch checkpoint."""
    root = make_workspace(tmp_path_factory.mktemp("on_slurm") / "repo", cluster_config())
    run_dir = root / CANCELLED
    snapshots, cancelled, left = [], None, set()
    with open(root / "snakemake.out", "w") as out:
        process = subprocess.Popen(
            on_slurm("results/tables.md"),
            cwd=root,
            env=cluster_env(cluster),
            stdout=out,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )
        try:
            while process.poll() is None:
                jobs = cluster.jobs()
                snapshots.append(jobs)
                states = {job["id"]: job["state"] for job in jobs}
                if cancelled is None and (run_dir / "checkpoints" / "last.pt").exists():
                    running = [j for j in jobs if f"_scratch_{TASK}" in j["comment"]]
                    if running and running[0]["state"] == "RUNNING":
                        cluster.run(["scancel", running[0]["id"]])
                        cancelled = running[0]["id"]
                elif cancelled and not left and states.get(cancelled) == "CANCELLED":
                    left = {str(p.relative_to(run_dir)) for p in run_dir.rglob("*") if p.is_file()}
                time.sleep(0.25)
        finally:  # the watcher failed: stop Snakemake too (its jobs go with the cluster)
            if process.poll() is None:
                os.killpg(process.pid, signal.SIGKILL)
                process.wait()
    assert cancelled, "the scratch run finished before it reached a checkpoint"
    return SlurmRun(
        root,
        process.returncode,
        (root / "snakemake.out").read_text(),
        snapshots,
        cluster.jobs(),
        cancelled,
        left,
    )


@pytest.fixture(scope="module")
def local_run(tmp_path_factory) -> Path:
    root = make_workspace(tmp_path_factory.mktemp("local") / "repo", cluster_config())
    run(snakemake("--cores", "2", "results/tables.md"), root)
    return root


UNSATISFIABLE = {
    # Slurm rejects this one at submission, but without saying what the node has.
    "gpus": (["--set-resources", "transfer:gpu=3"], "3 GPUs", f"{GPUS} GPUs"),
    # Without EnforcePartLimits (Slurm's default) this one would stay pending for ever.
    "cpus": (["--set-threads", "transfer=8"], "8 CPUs", f"{NODE_CPUS} CPUs"),
    "partition": (
        ["--default-resources", "slurm_partition=gpu"],
        "partition gpu, which does not exist",
        "partitions are: test",
    ),
}


@pytest.mark.parametrize("case", UNSATISFIABLE)
def test_a_request_the_cluster_cannot_satisfy_fails_at_once_saying_why(cluster, tmp_path, case):
    args, asked, has = UNSATISFIABLE[case]
    root = make_workspace(tmp_path / "repo", cluster_config())
    before = {job["id"] for job in cluster.jobs()}
    began = time.monotonic()
    result = subprocess.run(
        on_slurm("results/tables.md", *args),
        cwd=root,
        env=cluster_env(cluster),
        capture_output=True,
        text=True,
    )
    seconds = time.monotonic() - began
    output = result.stdout + result.stderr
    assert result.returncode not in (0, 124, 137), output
    assert seconds < 60, f"took {seconds:.0f} s to fail"
    assert "nothing was submitted" in output and asked in output and has in output, output
    assert {job["id"] for job in cluster.jobs()} == before, "it submitted jobs"


def test_every_job_goes_through_sbatch_asking_for_its_threads_as_cpus(slurm_run, cluster):
    assert slurm_run.returncode == 0, slurm_run.output
    submitted = re.findall(r"has been submitted with SLURM jobid (\d+)", slurm_run.output)
    jobs = {job["id"]: job for job in slurm_run.jobs}
    ours = [jobs[job_id] for job_id in submitted]
    # 4 transfer jobs, and once more the one that was cancelled
    assert Counter(rule_of(job) for job in ours) == {
        "prepare": 2,
        "pretrain": 1,
        "transfer": 5,
        "tables": 1,
    }
    assert {job["id"]: job["state"] for job in ours if job["state"] != "COMPLETED"} == {
        slurm_run.cancelled: "CANCELLED"
    }
    assert {job["cpus"] for job in ours} == {"1"}  # every rule has threads: 1 in quick
    assert not cluster.jobs("pending,running,completing,suspended"), "jobs left behind"


def test_a_cancelled_transfer_job_is_resubmitted_and_resumes_from_its_checkpoint(slurm_run):
    assert slurm_run.returncode == 0, slurm_run.output
    assert "checkpoints/last.pt" in slurm_run.left_by_cancel
    assert "metrics.json" not in slurm_run.left_by_cancel
    same_run = [j for j in slurm_run.jobs if f"_scratch_{TASK}" in j["comment"]]
    assert [j["state"] for j in sorted(same_run, key=lambda j: int(j["id"]))] == [
        "CANCELLED",
        "COMPLETED",
    ]
    log = (slurm_run.root / f"logs/quick/runs/baselines/scratch/{TASK}/seed0.log").read_text()
    assert re.search(rf"resuming from {CANCELLED}/checkpoints/last.pt after epoch [1-7]/8", log)


def test_training_jobs_get_one_gpu_each_and_no_more_than_two_run_at_once(slurm_run):
    assert slurm_run.returncode == 0, slurm_run.output
    training = [job for job in slurm_run.jobs if rule_of(job) in TRAINING]
    assert {job["gpus"] for job in training} == {"gres:gpu:1"}
    assert {job["gpus"] for job in slurm_run.jobs if rule_of(job) not in TRAINING} == {"N/A"}
    assert most_at_once(training) == GPUS
    # ...and it was the GPUs that held a ready training job back, not the CPUs:
    assert any(
        sum(int(j["cpus"]) for j in jobs if j["state"] == "RUNNING") < NODE_CPUS
        for jobs in slurm_run.snapshots
        if any(
            rule_of(j) in TRAINING and j["state"] == "PENDING" and j["reason"] == "Resources"
            for j in jobs
        )
    )


def test_metrics_equal_those_of_a_local_run(slurm_run, local_run):
    assert slurm_run.returncode == 0, slurm_run.output
    results = local_run / "results"
    metrics = sorted(p.relative_to(local_run) for p in results.rglob("metrics.json"))
    assert len(metrics) == 5  # pretrain + 4 transfer runs
    for path in metrics:
        assert without_timing(slurm_run.root / path) == without_timing(local_run / path), path
    tables = "results/tables.md"
    assert tables_without_cost(slurm_run.root / tables) == tables_without_cost(local_run / tables)


TARGET = f"{CANCELLED}/metrics.json"
SCHEDULER_FAULTS = {
    # Slurm's own kill at the job's time limit: 1 min is the least it has, so the run is
    # made long enough to reach it; the job ends as TIMEOUT and the next invocation resumes
    "time_limit": (150, ["--set-resources", "transfer:runtime=1"]),
    # the node dies: set down, every process of its jobs killed (by PID), back up at once;
    # Slurm requeues the job (its default, JobRequeue=1) or the next invocation reruns it
    "node_failure": (8, []),
}


def one_run_config(epochs: int) -> dict:
    """cluster_config() down to its scratch run, with `epochs` epochs."""
    config = cluster_config()
    group = config["profiles"]["quick"]["groups"]["baselines"]
    group["methods"] = {"scratch": {"training": {"epochs": epochs}}}
    return config


def node_state(cluster: SlurmCluster) -> str:
    return cluster.run(["sinfo", "--noheader", "--format=%T"]).stdout.strip()


@pytest.mark.parametrize("fault", SCHEDULER_FAULTS)
def test_a_job_the_scheduler_kills_resumes_from_its_checkpoint_with_the_same_metrics(
    cluster, tmp_path, fault
):
    epochs, args = SCHEDULER_FAULTS[fault]
    local = make_workspace(tmp_path / "local", one_run_config(epochs))
    run(snakemake("--cores", "2", TARGET), local)
    root = make_workspace(tmp_path / "repo", one_run_config(epochs))
    checkpoint = root / CANCELLED / "checkpoints" / "last.pt"
    env = cluster_env(cluster)
    earlier = {j["id"] for j in cluster.jobs()}

    def scratch_jobs() -> list[dict[str, str]]:
        return [
            j
            for j in cluster.jobs()
            if f"_scratch_{TASK}" in j["comment"] and j["id"] not in earlier
        ]

    first = subprocess.Popen(
        on_slurm(TARGET, "--retries", "0", *args),
        cwd=root,
        env=env,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
        start_new_session=True,
    )
    killed: list[int] = []
    try:
        while first.poll() is None:
            if fault == "node_failure" and not killed and checkpoint.exists() and scratch_jobs():
                cluster.set_node("down")
                killed = cluster.end_job_processes()
                if node_state(cluster).startswith(("down", "drain")):
                    cluster.set_node("resume")
            time.sleep(0.25)
    finally:
        if first.poll() is None:
            os.killpg(first.pid, signal.SIGKILL)
            first.wait()
    states = [j["state"] for j in scratch_jobs()]
    if fault == "time_limit":
        assert first.returncode not in (0, 124, 137) and states == ["TIMEOUT"], states
    else:
        assert killed, "the node failed before any process of the job could be killed"
    if not (root / TARGET).exists():  # not requeued by Slurm: the next invocation resumes
        assert checkpoint.exists()
        cluster.wait_until(lambda: node_state(cluster) == "idle", "the node back", timeout=60)
        second = subprocess.run(on_slurm(TARGET), cwd=root, env=env, capture_output=True, text=True)
        assert second.returncode == 0, second.stdout + second.stderr
    log = "".join(p.read_text() for p in (root / "logs").rglob("*.log"))
    resumed = re.search(rf"resuming from {CANCELLED}/checkpoints/last.pt after epoch (\d+)", log)
    assert resumed and 1 <= int(resumed.group(1)) < epochs, log
    assert without_timing(root / TARGET) == without_timing(local / TARGET)
    assert not cluster.job_processes(), "a process of the killed job survived"


def test_per_seed_jobs_give_the_metrics_of_one_job_per_method_and_task(cluster, tmp_path):
    """`seeds_per_job: 1` (the paper profile's layout) on Slurm: one job per seed, each
    with the metrics that the quick layout's single job for all seeds gives locally."""

    def config(per_job: int | str) -> dict:
        config = one_run_config(3)
        config["profiles"]["quick"]["seeds_per_job"] = per_job
        config["profiles"]["quick"]["groups"]["baselines"]["seeds"] = [0, 1]
        return config

    local = make_workspace(tmp_path / "local", config("all"))
    run(snakemake("--cores", "2", "results/tables.md"), local)
    root = make_workspace(tmp_path / "repo", config(1))
    earlier = {j["id"] for j in cluster.jobs()}
    result = subprocess.run(
        on_slurm("results/tables.md"),
        cwd=root,
        env=cluster_env(cluster),
        capture_output=True,
        text=True,
    )
    assert result.returncode == 0, result.stdout + result.stderr
    ours = [j for j in cluster.jobs() if j["id"] not in earlier]
    scratch = [j for j in ours if f"_scratch_{TASK}" in j["comment"]]
    assert len(scratch) == 2 and {j["state"] for j in scratch} == {"COMPLETED"}, scratch
    logs = root / "logs/quick/runs/baselines/scratch" / TASK
    assert sorted(p.name for p in logs.glob("*.log")) == ["seed0.log", "seed1.log"]
    for seed in (0, 1):
        path = f"{CANCELLED.removesuffix('seed0')}seed{seed}/metrics.json"
        assert without_timing(root / path) == without_timing(local / path), path
    tables = "results/tables.md"
    assert tables_without_cost(root / tables) == tables_without_cost(local / tables)
