"""SIGKILL a runner in the middle of a training job; the same command then finishes the work."""

from __future__ import annotations

import os
import signal
import subprocess
import time
from pathlib import Path

import pytest

from tlrepro import storage
from tlrepro.plan.layout import LOG_FILE

from .conftest import BIN, built_config, dvc_workspace, make_workspace, run, tables_without_cost

pytestmark = pytest.mark.slow


COMMANDS = {
    "snakemake": ([str(BIN / "snakemake"), "--cores", "2", "results/tables.md"], make_workspace),
    "dvc": ([str(BIN / "dvc"), "repro"], dvc_workspace),
}


def without_timing(metrics_file: Path) -> dict:
    """The metrics, less what measures time: the timing, and the recorded sha256 of log.csv
    (whose `seconds` column is timing too)."""
    metrics = storage.read_json(metrics_file)
    metrics.pop("timing")
    metrics.get(storage.FILES, {}).pop(LOG_FILE, None)
    return metrics


def finished_runs(root: Path) -> dict[str, int]:
    return {str(p): p.stat().st_mtime_ns for p in (root / "results").rglob("metrics.json")}


def kill_during_training(command: list[str], root: Path) -> Path:
    """Start `command`, wait for a run with an epoch checkpoint but no metrics, kill it all."""
    env = {**os.environ, "PATH": f"{BIN}{os.pathsep}{os.environ['PATH']}"}
    process = subprocess.Popen(
        command,
        cwd=root,
        env=env,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
        start_new_session=True,
    )
    deadline = time.time() + 300
    try:
        while time.time() < deadline:
            assert process.poll() is None, "the runner finished before it could be killed"
            for checkpoint in (root / "results").rglob("checkpoints/last.pt"):
                run_dir = checkpoint.parent.parent
                if not (run_dir / "metrics.json").exists():
                    os.killpg(process.pid, signal.SIGKILL)
                    process.wait()
                    return run_dir
            time.sleep(0.02)
        raise AssertionError("no training job reached an epoch checkpoint in time")
    finally:
        if process.poll() is None:
            os.killpg(process.pid, signal.SIGKILL)


@pytest.mark.long
@pytest.mark.parametrize("runner", ["snakemake", "dvc"])
def test_killed_runner_resumes_and_ends_with_the_same_tables(runner, tmp_path, built):
    command, workspace = COMMANDS[runner]
    root = workspace(tmp_path / "repo", built_config())
    killed_run = kill_during_training(command, root)
    assert not (killed_run / "metrics.json").exists()
    done_before = finished_runs(root)

    rerun = run(command, root)
    assert tables_without_cost(root / "results" / "tables.md") == tables_without_cost(
        built / "results" / "tables.md"
    )
    reference_run = built / killed_run.relative_to(root)
    assert without_timing(killed_run / "metrics.json") == without_timing(
        reference_run / "metrics.json"
    )
    after = finished_runs(root)
    assert all(after[path] == mtime for path, mtime in done_before.items()), "redid finished runs"
    # The interrupted run continued from its checkpoint instead of starting over.
    logs = (
        rerun.stdout + rerun.stderr + "".join(p.read_text() for p in (root / "logs").rglob("*.log"))
    )
    assert f"resuming from {killed_run.relative_to(root)}/checkpoints/last.pt" in logs
