"""A result is never stale: editing code reruns exactly the jobs that run it (both runners),
a user's edited config copy drives the whole run, and switching profile builds that profile."""

from __future__ import annotations

import re
import shutil
from pathlib import Path

import pytest
import yaml

from .conftest import BIN, make_workspace, run, tiny_config
from .test_dvc import stages_run
from .test_pipeline import RUN

pytestmark = pytest.mark.slow
SNAKEMAKE = str(BIN / "snakemake")
DVC = str(BIN / "dvc")
TRAINING_RULES = {"pretrain", "transfer"}
TABLES = {"tables", "active_tables", "report_pages"}
"""What the default target rebuilds after the runs: the tables, their copies, the pages."""


def planned(root: Path, *args: str) -> list[tuple[str, str]]:
    """(rule, job wildcard or output) of every job `snakemake -n` would run."""
    dry = run([SNAKEMAKE, "-n", *args], root).stdout
    jobs = []  # the default target `all` is left out: it is always "run"
    for block in dry.split("\n\n"):
        rule = re.search(r"^(?:local)?rule (\w+):", block, re.M)
        if rule and rule.group(1) != "all":
            output = re.search(r"^\s+output: ([^,\s]+)", block, re.M)
            jobs.append((rule.group(1), output.group(1) if output else ""))
    return jobs


def rules(jobs: list[tuple[str, str]]) -> set[str]:
    return {rule for rule, _ in jobs}


def append_line(path: Path, line: str) -> str:
    original = path.read_text()
    path.write_text(original + line)
    return original


@pytest.fixture
def copy_of_built(built, tmp_path) -> Path:
    root = tmp_path / "repo"
    shutil.copytree(built, root, symlinks=True)
    return root


def test_editing_a_method_module_makes_exactly_its_runs_and_the_tables_stale(copy_of_built):
    root = copy_of_built
    module = root / "src" / "tlrepro" / "methods" / "gradmf.py"
    original = append_line(module, "# edited\n")
    jobs = planned(root)
    transfers = [output for rule, output in jobs if rule.startswith("transfer")]
    assert len(transfers) == 1 and "/baselines/gradmf/" in transfers[0], jobs
    assert rules(jobs) == {"transfer", *TABLES}
    module.write_text(original)
    dry = run([SNAKEMAKE, "-n"], root)
    assert "Nothing to be done" in dry.stdout + dry.stderr


def test_editing_the_trainer_makes_every_training_job_stale(copy_of_built):
    root = copy_of_built
    append_line(root / "src" / "tlrepro" / "training" / "trainer.py", "\n")
    jobs = planned(root)
    transfers = {output for rule, output in jobs if rule.startswith("transfer")}
    assert rules(jobs) == {"pretrain", "transfer", *TABLES}
    assert {m for m in ("scratch", "finetune", "gradmf") if any(f"/{m}/" in o for o in transfers)}
    assert len(transfers) == 3  # every (method, task) job of the config


def test_editing_the_tables_code_makes_only_the_tables_stale(copy_of_built):
    root = copy_of_built
    append_line(root / "src" / "tlrepro" / "reporting" / "tables.py", "\n")
    assert rules(planned(root)) == TABLES


def test_edited_copy_of_the_config_plans_and_runs_its_own_settings(tmp_path):
    root = make_workspace(tmp_path / "repo", tiny_config())
    repository_config = (root / "config" / "config.yaml").read_text()
    mine = yaml.safe_load(repository_config)
    group = mine["profiles"]["quick"]["groups"]["baselines"]
    group["seeds"] = [0]
    group["methods"] = {"scratch": {}}
    (tmp_path / "mine.yaml").write_text(yaml.safe_dump(mine))
    args = ["--configfile", str(tmp_path / "mine.yaml")]
    jobs = planned(root, *args)
    assert rules(jobs) == {"prepare", "transfer", *TABLES}
    run([SNAKEMAKE, "--cores", "2", *args], root)
    runs = sorted((root / "results" / "runs").rglob("metrics.json"))
    assert [p.parent.name for p in runs] == ["seed0"] and "scratch" in str(runs[0])
    assert (root / "config" / "config.yaml").read_text() == repository_config
    again = run([SNAKEMAKE, "-n", *args], root)
    assert "Nothing to be done" in again.stdout + again.stderr
    refused = run([SNAKEMAKE, "-n", *args, "--config", "image_size=1"], root, check=False)
    assert refused.returncode != 0 and "may only set `profile`" in refused.stdout + refused.stderr


def outputs_by_seed(jobs: list[tuple[str, str]]) -> set[str]:
    """method/seed<k> of every transfer job planned (its first output names the run)."""
    return {
        "/".join(Path(output).parts[4:7:2]) for rule, output in jobs if rule.startswith("transfer")
    }


def mtimes(root: Path) -> dict[str, int]:
    """Every run file (not the folders' lock files) and its mtime."""
    files = (root / "results" / "runs").rglob("*")
    return {str(p): p.stat().st_mtime_ns for p in files if p.is_file() and p.name[0] != "."}


def test_raising_the_seeds_trains_only_the_new_seeds(copy_of_built):
    """The built config has seeds 0 and 1: `seeds=3` adds seed 2 alone, and the jobs of
    seeds 0-1 (same outputs, params and command) stay current, before and after it ran."""
    root = copy_of_built
    jobs = planned(root, "--config", "seeds=3")
    methods = ("scratch", "finetune", "gradmf")
    assert outputs_by_seed(jobs) == {f"{m}/seed2" for m in methods}
    assert {rule for rule in rules(jobs) if not rule.startswith("transfer")} == TABLES
    jobs = planned(root, "--config", "seeds={baselines: 4}")
    assert outputs_by_seed(jobs) == {f"{m}/seed{s}" for m in methods for s in (2, 3)}
    before = mtimes(root)
    run([SNAKEMAKE, "--cores", "2", "scratch", "--config", "seeds=3"], root)
    after = mtimes(root)
    assert {path for path in after if after[path] != before.get(path)} == {
        str(root / RUN.format(method="scratch", seed=2).replace("metrics.json", name))
        for name in ("model.safetensors", "metrics.json", "log.csv")
    }
    jobs = planned(root, "--config", "seeds=4")
    assert outputs_by_seed(jobs) == {f"{m}/seed{s}" for m in methods for s in (2, 3)} - {
        "scratch/seed2"
    }


def test_a_job_per_seed_writes_the_same_run_folders(copy_of_built):
    root = copy_of_built
    config = yaml.safe_load((root / "config" / "config.yaml").read_text())
    config["profiles"]["quick"]["seeds_per_job"] = 1
    (root / "config" / "config.yaml").write_text(yaml.safe_dump(config, sort_keys=False))
    jobs = planned(root)
    transfers = [(rule, output) for rule, output in jobs if rule.startswith("transfer")]
    assert {rule for rule, _ in transfers} == {"transfer_seeds_0", "transfer_seeds_1"}
    assert len(transfers) == len(outputs_by_seed(jobs)) == 6
    folders = {p.parent for p in (root / "results" / "runs").rglob("metrics.json")}
    assert {(root / output).parent for _, output in transfers} == folders


def test_switching_profile_plans_that_profile_and_back(copy_of_built):
    root = copy_of_built
    config = yaml.safe_load((root / "config" / "config.yaml").read_text())
    config["profiles"]["other"] = config["profiles"]["quick"]
    (root / "config" / "config.yaml").write_text(yaml.safe_dump(config, sort_keys=False))
    jobs = planned(root, "results/tables.md", "--config", "profile=other")
    assert {"prepare", "pretrain", "transfer", "tables", "active_tables"} <= rules(jobs)
    assert all("/quick/" not in output for _, output in jobs)
    back = run([SNAKEMAKE, "-n", "results/tables.md"], root)
    assert "Nothing to be done" in back.stdout + back.stderr, back.stdout


def dvc_stale_stages(root: Path) -> set[str]:
    status = run([DVC, "status"], root).stdout
    return {line[:-1] for line in status.splitlines() if line.endswith(":") and line[0] != "\t"}


def test_dvc_sees_exactly_what_a_code_edit_affects(dvc_built, tmp_path):
    root = tmp_path / "repo"
    shutil.copytree(dvc_built, root, symlinks=True)
    assert dvc_stale_stages(root) == set()
    module = root / "src" / "tlrepro" / "methods" / "gradmf.py"
    original = append_line(module, "# edited\n")
    assert dvc_stale_stages(root) == {"transfer-baselines-gradmf-digits_syn-to-digits_uci"}
    rerun = stages_run(run([DVC, "repro"], root).stdout)
    # the tables' copies and report pages rerun only where the tables' bytes changed
    assert {"transfer-baselines-gradmf-digits_syn-to-digits_uci", "tables"} <= rerun
    assert rerun <= {
        "transfer-baselines-gradmf-digits_syn-to-digits_uci",
        "tables",
        "active-tables",
        "report-pages",
    }
    module.write_text(original)
    run([DVC, "repro"], root)
    assert dvc_stale_stages(root) == set()
    trainer = root / "src" / "tlrepro" / "training" / "trainer.py"
    original = append_line(trainer, "\n")
    stale = dvc_stale_stages(root)
    assert stale == {s for s in dvc_stages(root) if s.startswith(("pretrain-", "transfer-"))}
    trainer.write_text(original)
    append_line(root / "src" / "tlrepro" / "reporting" / "tables.py", "\n")
    assert dvc_stale_stages(root) == {"tables"}


def dvc_stages(root: Path) -> set[str]:
    return set(yaml.safe_load((root / "dvc.yaml").read_text())["stages"])
