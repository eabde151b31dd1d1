"""Fault injection on the small test config (marker `faults`, `make test-faults`): runners
SIGKILLed again and again, every kind of file the pipeline reads damaged one at a time, a
full disk and a read-only results folder. What was tried and what came of it is printed at
the end of the session (tests/faultkit.py REPORT)."""

from __future__ import annotations

import os
import random
import re
import shlex
import shutil
import signal
import subprocess
import time
from pathlib import Path

import pytest

from .conftest import (
    BIN,
    dvc_workspace,
    make_workspace,
    run,
    tables_without_cost,
    tiny_config,
    workspace_env,
)
from .faultkit import DAMAGES, REPORT, command_line, damage, descendants, remount, tmpfs
from .test_recovery import without_timing

pytestmark = [pytest.mark.faults, pytest.mark.slow]

SNAKEMAKE = [str(BIN / "snakemake"), "--cores", "2", "results/tables.md"]
RUNNERS = {
    "snakemake": (SNAKEMAKE, make_workspace),
    "dvc": ([str(BIN / "dvc"), "repro"], dvc_workspace),
}
STAGES = ("prepare", "pretrain", "transfer", "tables")
SEED = 23
TABLES = "results/tables.md"
TASK = "digits_syn-to-digits_uci"
RUN = f"results/runs/quick/baselines/finetune/{TASK}/seed0"
SOURCE = "results/pretrained/quick/small_vgg/digits_syn"
SPLITS = "data/prepared/quick/digits_syn"


def metrics_of(root: Path) -> dict[str, dict]:
    return {
        str(p.relative_to(root)): without_timing(p)
        for p in sorted((root / "results").rglob("metrics.json"))
    }


@pytest.fixture(scope="module")
def reference(tmp_path_factory) -> Path:
    """The small config built by one uninterrupted Snakemake run."""
    root = make_workspace(tmp_path_factory.mktemp("reference") / "repo", tiny_config())
    run(SNAKEMAKE, root)
    return root


def running_stages(pid: int) -> list[str]:
    """The pipeline steps running below `pid`, e.g. `transfer baselines scratch ... 0 1`."""
    found = set()
    for child in descendants(pid):
        words = command_line(child).split()
        for index, word in enumerate(words):
            if word in STAGES and any(w.endswith("tlrepro") for w in words[:index]):
                found.add(" ".join(words[index:]).split(" >")[0])
    return sorted(found)


def kill_at(command: list[str], root: Path, stage: str, delay: float) -> str | None:
    """Run `command` until a `stage` step has run for `delay` s, then SIGKILL the runner and
    all below it; None if it finished first (nothing left of that stage to kill)."""
    process = subprocess.Popen(
        command,
        cwd=root,
        env=workspace_env(root),
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
        start_new_session=True,
    )
    seen = None
    try:
        while process.poll() is None:
            running = running_stages(process.pid)
            if seen is None and any(step.startswith(stage) for step in running):
                seen = time.monotonic()
            if seen is not None and time.monotonic() - seen >= delay:
                os.killpg(process.pid, signal.SIGKILL)
                process.wait()
                return f"{delay:.2f} s into {stage} (running: {'; '.join(running) or 'none'})"
            time.sleep(0.02)
        assert process.returncode == 0, f"{command} failed before it was killed"
        return None
    finally:
        if process.poll() is None:
            os.killpg(process.pid, signal.SIGKILL)
            process.wait()


@pytest.mark.parametrize("runner", RUNNERS)
def test_killed_at_random_moments_in_a_row_then_the_same_tables(runner, reference, tmp_path):
    command, workspace = RUNNERS[runner]
    root = workspace(tmp_path / "repo", tiny_config())
    rng = random.Random(f"{SEED}-{runner}")
    moments = []
    for stage in STAGES:
        moment = kill_at(command, root, stage, rng.uniform(0.0, 2.5))
        if moment is not None:
            moments.append(moment)
    run(command, root)
    assert tables_without_cost(root / TABLES) == tables_without_cost(reference / TABLES)
    assert metrics_of(root) == metrics_of(reference)
    REPORT.append(f"{runner}: killed {len(moments)} times in a row (seed {SEED}), then finished:")
    REPORT.extend(f"  kill {i}: {moment}" for i, moment in enumerate(moments, 1))
    REPORT.append(f"  -> {TABLES} byte-identical to an uninterrupted run's, metrics equal")
    assert len(moments) >= 3, moments


READERS = {
    f"{SPLITS}/train.safetensors": ["pretrain", "small_vgg", "digits_syn"],
    f"{SPLITS}/manifest.json": ["pretrain", "small_vgg", "digits_syn"],
    f"{SOURCE}/model.safetensors": ["transfer", "baselines", "finetune", TASK, "0"],
    f"{SOURCE}/metrics.json": ["transfer", "baselines", "finetune", TASK, "0"],
    f"{RUN}/metrics.json": ["tables"],
    f"{RUN}/log.csv": ["tables"],
}
"""Each kind of file the pipeline reads, and the step that reads it."""


def refusal(root: Path, path: str, step: list[str]) -> str:
    """The one line the reading step fails with; it must name the file and the rebuild."""
    result = run([str(BIN / "tlrepro"), "--no-progress", *step], root, check=False)
    lines = result.stderr.strip().splitlines()
    assert result.returncode == 2 and len(lines) == 1, result.stderr
    assert lines[0].startswith(f"tlrepro {step[0]}: error: {path}: "), lines[0]
    assert f"rebuild it with `snakemake --cores all --force {path}` (or `dvc repro`)" in lines[0]
    return lines[0]


def test_every_damaged_input_is_refused_and_its_rebuild_command_works(reference, tmp_path):
    rng = random.Random(SEED)
    for path, step in READERS.items():
        for how in DAMAGES:
            root = tmp_path / f"{Path(path).name}-{how}"
            shutil.copytree(reference, root, symlinks=True)
            done = damage(root / path, how, rng)
            line = refusal(root, path, step)
            REPORT.append(f"damaged {path}: {done} -> refused: {line.split(': ', 3)[-1][:90]}")
            if how == "flip":  # the rebuild the message names, then the whole pipeline
                rebuild = shlex.split(re.search(r"`(snakemake [^`]+)`", line).group(1))
                run([str(BIN / rebuild[0]), *rebuild[1:]], root)
                run(SNAKEMAKE, root)
                assert tables_without_cost(root / TABLES) == tables_without_cost(reference / TABLES)
                REPORT.append(f"  -> rebuilt by `{shlex.join(rebuild)}`: same tables")
            shutil.rmtree(root)


def test_dvc_rebuilds_a_damaged_source_model(reference, tmp_path):
    root = dvc_workspace(tmp_path / "repo", tiny_config())
    run([str(BIN / "dvc"), "repro"], root)
    model = root / SOURCE / "model.safetensors"
    done = damage(model, "truncate", random.Random(SEED))
    refusal(root, f"{SOURCE}/model.safetensors", READERS[f"{SOURCE}/model.safetensors"])
    again = run([str(BIN / "dvc"), "repro"], root).stdout
    assert tables_without_cost(root / TABLES) == tables_without_cost(reference / TABLES)
    REPORT.append(f"dvc: {SOURCE}/model.safetensors {done} -> `dvc repro` restored it")
    assert "model.safetensors" not in run([str(BIN / "dvc"), "status"], root).stdout, again


def test_a_full_disk_and_a_read_only_results_folder_then_space_returns(reference, tmp_path):
    root = tmp_path / "repo"
    shutil.copytree(reference, root, symlinks=True)
    folder = root / Path(RUN).parent.parent  # every run of one method
    shutil.rmtree(folder)
    # Snakemake rebuilds no target that exists for inputs it lacks: the tables go too
    tables = [root / TABLES, root / "results" / "tables-quick.md"]
    for path in tables:
        path.unlink()
    with tmpfs(folder, "24k"):
        failed = run(SNAKEMAKE, root, check=False)
        said = failed.stdout + failed.stderr + read_logs(root)
        assert failed.returncode != 0
        where = re.escape(str(Path(RUN).parent.parent))
        match = re.search(rf"cannot write ({where}\S+): no space left on device", said)
        assert match, said
        assert not [p for p in folder.rglob("*") if p.name.endswith(".tmp")], "half-written"
        REPORT.append(f"full disk (24k tmpfs over {folder.relative_to(root)}): {match.group(0)}")
        remount(folder, "size=64m")
        run(SNAKEMAKE, root)
        assert tables_without_cost(root / TABLES) == tables_without_cost(reference / TABLES)
        REPORT.append("  -> space returned: the same command finished, same tables")
        for done in folder.rglob("metrics.json"):
            done.unlink()
        for path in tables:
            path.unlink()
        remount(folder, "ro")
        failed = run(SNAKEMAKE, root, check=False)
        said = failed.stdout + failed.stderr + read_logs(root)
        assert failed.returncode != 0
        # Snakemake checks its outputs first ("Write-protected output files", each named);
        # a job that gets further says "cannot write <file>: read-only file system"
        said_so = re.search(r"Write-protected output files|cannot write \S+: read-only", said)
        assert said_so, said[-3000:]
        named = sorted(set(re.findall(rf"{where}[^\s,]+", said[said_so.start() :])))
        assert named, said[-3000:]
        REPORT.append(f"read-only {folder.relative_to(root)}: '{said_so.group(0)}', naming {named}")
        remount(folder, "rw")
        run(SNAKEMAKE, root)
        assert tables_without_cost(root / TABLES) == tables_without_cost(reference / TABLES)
        REPORT.append("  -> writable again: the same command finished, same tables")


def read_logs(root: Path) -> str:
    return "".join(p.read_text(errors="replace") for p in (root / "logs").rglob("*.log"))
