"""End to end through Snakemake on a tiny config: the DAG, partial reruns, scheduling."""

from __future__ import annotations

import re
import shutil
import time
from pathlib import Path

import pytest

from tlrepro import storage

from .conftest import BIN, built_config, make_workspace, run, tiny_config

pytestmark = pytest.mark.slow
SNAKEMAKE = str(BIN / "snakemake")
RUN = "results/runs/quick/baselines/{method}/digits_syn-to-digits_uci/seed{seed}/metrics.json"


def outputs(root: Path) -> dict[str, float]:
    """Every result file (not Snakemake's markers of directory outputs) and its mtime."""
    return {
        str(p.relative_to(root)): p.stat().st_mtime_ns
        for p in sorted((root / "results").rglob("*"))
        if p.is_file() and not p.name.startswith(".")
    }


def accuracies(root: Path) -> dict[str, dict]:
    return {
        str(p.relative_to(root)): storage.read_json(p)["protocols"]
        for p in sorted((root / "results" / "runs").rglob("metrics.json"))
    }


def test_builds_tables_from_every_run(built):
    tables = (built / "results" / "tables.md").read_text()
    assert "Tiny baselines" in tables and "digits_syn→digits_uci" in tables
    assert len(accuracies(built)) == 6  # 3 methods x 2 seeds
    assert (built / "results" / "figures" / "quick" / "baselines.png").stat().st_size > 1000
    assert (built / "results" / "figures" / "quick" / "baselines-stats.png").stat().st_size > 1000
    assert "figures/quick/baselines-stats.png" in tables
    assert tables == (built / "results" / "tables-quick.md").read_text()
    for rule in ("prepare", "pretrain", "runs"):
        assert any((built / "logs" / "quick" / rule).rglob("*.log"))
    assert any((built / "benchmarks" / "quick").rglob("*.tsv"))


def test_nothing_to_do_after_a_complete_run(built):
    began = time.perf_counter()
    result = run([SNAKEMAKE, "-n", "results/tables.md"], built)
    assert "Nothing to be done" in result.stdout + result.stderr
    assert time.perf_counter() - began < 10


def test_forcerun_of_one_run_redoes_only_its_job_and_the_tables(built, tmp_path):
    """A job is one (group, method, task) with all its seeds: forcing seed 1 of finetune
    reruns finetune's seeds on that task, and nothing else but the tables."""
    root = tmp_path / "copy"
    shutil.copytree(built, root, symlinks=True)
    before = outputs(root)
    target = RUN.format(method="finetune", seed=1)
    run([SNAKEMAKE, "--cores", "2", "results/tables.md", "--forcerun", target], root)
    after = outputs(root)
    changed = {path for path in before if after.get(path) != before[path]}
    run_folder = str(Path(target).parent.parent)
    assert {p for p in changed if not p.startswith(run_folder)} == {
        "results/tables.md",
        "results/tables.csv",
        "results/claims.csv",
        "results/tables-quick.md",
        "results/tables-quick.csv",
        "results/claims-quick.csv",
        "results/figures/quick/baselines.png",
        "results/figures/quick/baselines-stats.png",
    }
    assert any(p.startswith(run_folder) for p in changed)


def test_named_targets_plan_only_their_runs(tmp_path):
    root = make_workspace(tmp_path / "repo", tiny_config())
    dry = run([SNAKEMAKE, "-n", "scratch"], root).stdout
    planned = set(re.findall(r"results/runs/\S+/metrics\.json", dry))
    assert planned == {RUN.format(method="scratch", seed=s) for s in (0, 1)}
    assert "rule pretrain" not in dry
    dry = run([SNAKEMAKE, "-n", "group_baselines"], root).stdout
    assert {RUN.format(method=m, seed=s) for m in ("scratch", "finetune") for s in (0, 1)} <= set(
        re.findall(r"results/runs/\S+/metrics\.json", dry)
    )


@pytest.mark.long
def test_one_core_gives_the_same_results_as_two(built, tmp_path):
    root = make_workspace(tmp_path / "repo", built_config())
    run([SNAKEMAKE, "--cores", "1", "results/tables.md"], root)
    assert accuracies(root) == accuracies(built)
