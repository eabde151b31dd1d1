"""DVC runs the same DAG as Snakemake: parity, repro, push/pull, and a no-op second run."""

from __future__ import annotations

import re
import shutil
from pathlib import Path

import pytest
import yaml

from tlrepro.config.load import load_config
from tlrepro.plan.jobs import plan_jobs
from tlrepro.runners.dvc_stages import DVC_FILE, PARAMS_FILE, render

from .conftest import BIN, REPO, dvc_workspace, run, tiny_config

DVC = str(BIN / "dvc")
SNAKEMAKE = str(BIN / "snakemake")


def commit_all(root: Path, message: str) -> None:
    run(["git", "add", "-A"], root)
    run(["git", "-c", "user.name=t", "-c", "user.email=t@t", "commit", "-qm", message], root)


def dvc_outputs(root: Path) -> set[str]:
    from dvc.repo import Repo

    with Repo(str(root)) as repo:
        return {
            str(Path(out.fs_path).relative_to(root))
            for stage in repo.index.stages
            for out in stage.outs
        }


def snakemake_outputs(root: Path, dvc_folders: set[str], *args: str) -> set[str]:
    """Snakemake's output files, those inside a folder DVC tracks whole named by the folder."""
    summary = run([SNAKEMAKE, "--summary", *args], root).stdout  # the default: everything
    files = {line.split("\t")[0] for line in summary.splitlines()[1:] if line.strip()}
    return {next((d for d in dvc_folders if f.startswith(f"{d}/")), f) for f in files}


def test_committed_dvc_files_match_the_config_and_the_code(monkeypatch):
    monkeypatch.chdir(REPO)
    config_file = Path("config/config.yaml")
    dvc_text, params_text = render(plan_jobs(load_config(config_file)), config_file)
    message = "lags behind config/config.yaml or the package: run `make dvc-plan` and commit it"
    assert DVC_FILE.read_text() == dvc_text, f"{DVC_FILE} {message}"
    assert PARAMS_FILE.read_text() == params_text, f"{PARAMS_FILE} {message}"


def test_what_dvc_parses_on_every_status_stays_small():
    """DVC reads the params file once per stage and keeps each value in dvc.lock: a value
    is a digest, not the identity's JSON (which made a no-op `dvc status` twice as slow)."""
    params = yaml.safe_load(PARAMS_FILE.read_text())
    values = [value for section in params.values() for value in section.values()]
    assert values and all(re.fullmatch(r"[0-9a-f]{16}", value) for value in values), values


def test_dvc_parses_its_yaml_with_libyaml():
    """ruamel.yaml 0.19 installs its C parser only with an extra (`ruamel.yaml[oldlibyaml]`
    in pyproject.toml); without it the pure-Python parser is half of a no-op `dvc status`."""
    from ruamel.yaml.main import CParser

    assert CParser is not None, "ruamel.yaml.clib is not installed: run `make setup`"


@pytest.mark.parametrize("profile", ["quick", "paper"])
def test_dvc_and_snakemake_declare_the_same_outputs(tmp_path, profile):
    config = yaml.safe_load((REPO / "config" / "config.yaml").read_text())
    root = dvc_workspace(tmp_path / "repo", {**config, "profile": profile})
    declared = dvc_outputs(root)
    assert declared == snakemake_outputs(root, {f"results/figures/{profile}"})


@pytest.mark.parametrize("seeds_per_job", ["all", 1])
def test_both_runners_declare_the_same_outputs_with_seeds_added(tmp_path, seeds_per_job):
    config = tiny_config()
    config["profiles"]["quick"]["seeds_per_job"] = seeds_per_job
    root = dvc_workspace(tmp_path / "repo", config)
    run([str(BIN / "tlrepro"), "--seeds", "3", "dvc-plan"], root)
    stages = yaml.safe_load((root / "dvc.yaml").read_text())["stages"]
    assert stages["transfer-baselines-scratch-digits_syn-to-digits_uci-seed2"]["cmd"].endswith(
        "--seeds baselines=3 transfer baselines scratch digits_syn-to-digits_uci 2"
    )
    declared = dvc_outputs(root)
    assert declared == snakemake_outputs(root, {"results/figures/quick"}, "--config", "seeds=3")
    assert {p for p in declared if "/seed2/" in p}


def stages_run(output: str) -> set[str]:
    return {line.split("'")[1] for line in output.splitlines() if line.startswith("Running stage")}


@pytest.mark.slow
@pytest.mark.long
def test_repro_then_push_clone_pull_and_both_runners_are_up_to_date(dvc_built, tmp_path):
    root = tmp_path / "repo"
    shutil.copytree(dvc_built, root, symlinks=True)
    assert "Tiny baselines" in (root / "results" / "tables.md").read_text()
    again = run([DVC, "repro"], root).stdout
    assert stages_run(again) == set() and "up to date" in again
    assert "metrics.json" in run([DVC, "metrics", "show"], root).stdout

    run([DVC, "remote", "add", "-d", "local", str(tmp_path / "remote")], root)
    run([DVC, "push"], root)
    commit_all(root, "pipeline and its lock")
    clone = tmp_path / "clone"
    run(["git", "clone", "-q", str(root), str(clone)], tmp_path)
    # What `make pull` does: fetch, let DVC confirm it all matches, adopt the mtimes.
    run([DVC, "pull"], clone)
    run([DVC, "status", "--quiet"], clone)
    run([SNAKEMAKE, "--touch", "--cores", "1", "results/tables.md"], clone)
    after_pull = run([DVC, "repro"], clone).stdout
    assert stages_run(after_pull) == set(), after_pull
    result = run([SNAKEMAKE, "-n", "results/tables.md"], clone)
    assert "Nothing to be done" in result.stdout + result.stderr, result.stdout
    assert (clone / "results" / "tables.md").read_text() == (
        root / "results" / "tables.md"
    ).read_text()
    exported = {p.name for p in (clone / "results" / "runs").rglob("*") if p.is_file()}
    assert {"transfer_report.json", "rst.safetensors"} <= exported


@pytest.mark.slow
@pytest.mark.long
def test_repro_of_one_run_one_method_or_one_dataset_reruns_only_that(dvc_built, tmp_path):
    root = tmp_path / "repo"
    shutil.copytree(dvc_built, root, symlinks=True)
    one = "transfer-baselines-scratch-digits_syn-to-digits_uci"
    assert stages_run(run([DVC, "repro", "--force", "--single-item", one], root).stdout) == {one}
    # the copies of the tables and the report pages rerun only if the tables' bytes changed
    assert (
        {"tables"}
        <= stages_run(run([DVC, "repro"], root).stdout)
        <= {
            "tables",
            "active-tables",
            "report-pages",
        }
    )
    method = run(
        [DVC, "repro", "--dry", "--force", "--single-item", "--glob", "transfer-*-finetune-*"], root
    ).stdout
    assert stages_run(method) == {"transfer-baselines-finetune-digits_syn-to-digits_uci"}
    dataset = stages_run(
        run([DVC, "repro", "--dry", "--force", "--downstream", "prepare-digits_syn"], root).stdout
    )
    assert "prepare-digits_uci" not in dataset
    assert {"prepare-digits_syn", "pretrain-small_vgg-digits_syn", "tables"} <= dataset
    assert not any("scratch" in stage for stage in dataset)
