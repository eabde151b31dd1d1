"""Source-model quality bars: a pretraining below its `min_accuracy` fails loudly, leaves no
usable checkpoint, and no transfer run starts from it; the bar is not part of its identity."""

from __future__ import annotations

from dataclasses import replace
from pathlib import Path

import pytest
import yaml

from tlrepro import cli
from tlrepro.config.load import ConfigError, load_config, validate
from tlrepro.data.prepare import prepare_dataset
from tlrepro.plan.layout import METRICS_FILE, prepared_dir
from tlrepro.plan.runs import build_plan, fingerprint
from tlrepro.storage import read_json
from tlrepro.training.experiment import run_pretrain, run_transfer
from tlrepro.training.source_bar import SOURCE_ACCURACY, SourceModelError, check_source
from tlrepro.training.trainer import CHECKPOINT

from .conftest import BIN, REPO, make_workspace, run, tiny_config


def gated_config(min_accuracy: float) -> dict:
    """The tiny config with one pretraining step, a tiny CLIP group, and a bar for both models."""
    config = tiny_config()
    config["profiles"]["quick"]["groups"]["clip"] = {
        "model": "tiny_clip",
        "tasks": ["digits_syn-to-digits_uci"],
        "seeds": [0],
        "methods": {"zeroshot": {}},
    }
    pretrain = config["profiles"]["quick"]["pretrain"]
    pretrain["training"].update(steps_per_epoch=1)
    pretrain["models"] = {
        "small_vgg": {"min_accuracy": min_accuracy},
        "tiny_clip": {"min_accuracy": min_accuracy, "training": {"optimizer": "adamw"}},
    }
    return config


@pytest.fixture(scope="module")
def prepared(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The tiny config's datasets, prepared once for this module."""
    root = tmp_path_factory.mktemp("prepared")
    plan = build_plan(validate(gated_config(0.0)))
    for name in plan.needed_datasets():
        options, size = plan.dataset_options(name), plan.image_size(name)
        prepare_dataset(name, options, size, root / name, root / "raw")
    return root


@pytest.fixture
def workdir(tmp_path: Path, monkeypatch: pytest.MonkeyPatch, prepared: Path) -> Path:
    """A fresh working directory that sees the prepared datasets."""
    monkeypatch.chdir(tmp_path)
    for folder in prepared.iterdir():
        if folder.name != "raw":
            link = prepared_dir("quick", folder.name)
            link.parent.mkdir(parents=True, exist_ok=True)
            link.symlink_to(folder, target_is_directory=True)
    return tmp_path


def gated_plan(min_accuracy: float):
    return build_plan(validate(gated_config(min_accuracy)))


@pytest.mark.parametrize(("model", "measure"), [("small_vgg", ""), ("tiny_clip", "zero-shot ")])
def test_a_pretraining_below_its_bar_fails_and_leaves_no_checkpoint(workdir, model, measure):
    plan = gated_plan(1.0)  # one step of training cannot classify every validation image
    job = plan.pretrain(model, "digits_syn")
    with pytest.raises(SourceModelError) as error:
        run_pretrain(plan, job, progress=False)
    message = str(error.value)
    verdict = read_json(job.folder / METRICS_FILE)[SOURCE_ACCURACY]
    assert f"{model} on digits_syn reached {verdict['accuracy']:.1%} {measure}accuracy" in message
    assert "below its bar min_accuracy 100.0%" in message
    assert "more epochs" in message and "another seed" in message and "lower" in message
    assert not job.checkpoint.exists()
    assert verdict["passed"] is False and verdict["min_accuracy"] == 1.0
    assert (job.folder / CHECKPOINT).exists()  # kept, to judge again without training


def test_a_lower_bar_judges_the_failed_model_again_without_retraining(workdir):
    job = gated_plan(1.0).pretrain("small_vgg", "digits_syn")
    with pytest.raises(SourceModelError):
        run_pretrain(gated_plan(1.0), job, progress=False)
    failed = read_json(job.folder / METRICS_FILE)

    passed = run_pretrain(gated_plan(0.0), replace(job, min_accuracy=0.0), progress=False)
    # The history (and its timings) comes from the kept resume state: nothing was trained.
    assert passed["timing"]["train_seconds"] == failed["timing"]["train_seconds"]
    assert passed[SOURCE_ACCURACY]["accuracy"] == failed[SOURCE_ACCURACY]["accuracy"]
    assert passed[SOURCE_ACCURACY]["passed"] is True
    assert job.checkpoint.exists() and not (job.folder / CHECKPOINT).exists()
    assert not (job.folder / CHECKPOINT).parent.exists()  # no empty checkpoints/ left behind
    check_source(replace(job, min_accuracy=0.0))


def test_a_transfer_run_refuses_a_source_model_that_failed_its_bar(workdir):
    plan = gated_plan(1.0)
    job = plan.pretrain("small_vgg", "digits_syn")
    with pytest.raises(SourceModelError):
        run_pretrain(plan, job, progress=False)
    finetune = plan.run("baselines", "finetune", "digits_syn-to-digits_uci", 0)
    with pytest.raises(
        SourceModelError,
        match=r"refusing to start from .* failed its bar .*small_vgg on digits_syn reached",
    ):
        run_transfer(plan, finetune, progress=False)
    assert not finetune.metrics.exists()


def test_a_transfer_run_judges_its_source_by_the_current_bar(workdir):
    job = gated_plan(0.0).pretrain("small_vgg", "digits_syn")
    run_pretrain(gated_plan(0.0), job, progress=False)
    check_source(job)
    with pytest.raises(
        SourceModelError, match=r"below its bar min_accuracy 100\.0% .*it passed the bar of 0\.0%"
    ):
        check_source(replace(job, min_accuracy=1.0))  # the bar was raised since
    (job.folder / METRICS_FILE).unlink()
    with pytest.raises(SourceModelError, match="did not finish"):
        check_source(job)


def test_cli_pretrain_and_transfer_exit_non_zero_with_the_message(workdir, capsys):
    config = workdir / "config.yaml"
    config.write_text(yaml.safe_dump(gated_config(1.0)))
    base = ["--config", str(config), "--no-progress"]
    assert cli.main([*base, "pretrain", "small_vgg", "digits_syn"]) != 0
    error = capsys.readouterr().err
    assert "tlrepro pretrain: error: source model small_vgg on digits_syn" in error
    assert cli.main([*base, "transfer", "baselines", "finetune", "digits_syn-to-digits_uci"]) != 0
    assert "refusing to start from" in capsys.readouterr().err


def test_min_accuracy_is_checked_by_the_schema_and_used_per_model():
    config = tiny_config()
    pretrain = config["profiles"]["quick"]["pretrain"]
    pretrain["models"] = {"small_vgg": {"min_accuracy": 1.5}}
    with pytest.raises(ConfigError, match=r"pretrain\.models\.small_vgg\.min_accuracy"):
        validate(config)
    del pretrain["min_accuracy"]
    pretrain["models"] = {}
    with pytest.raises(
        ConfigError, match=r"at 'profiles\.quick\.pretrain': no `min_accuracy` \(it is required\)"
    ):
        validate(config)

    pretrain["min_accuracy"] = 0.25
    (job,) = build_plan(validate(config)).pretrains.values()
    assert job.min_accuracy == 0.25  # the profile's default
    pretrain["models"] = {"small_vgg": {"min_accuracy": 0.75}}
    (gated,) = build_plan(validate(config)).pretrains.values()
    assert gated.min_accuracy == 0.75
    # Not part of the identity: a new bar reruns nothing in Snakemake or DVC.
    assert fingerprint(gated.identity) == fingerprint(job.identity)


def test_every_pretraining_of_the_repository_config_has_a_meaningful_bar():
    for profile in ("quick", "paper"):
        plan = build_plan(load_config(REPO / "config" / "config.yaml", profile))
        for job in plan.pretrains.values():
            assert job.min_accuracy > 0, (profile, job.model)


@pytest.mark.slow
def test_snakemake_runs_nothing_on_a_source_model_below_its_bar(tmp_path):
    """Even with --keep-going, the runs that need the failed source model never start; the
    others do (slow: Snakemake end to end, about a minute)."""
    root = make_workspace(tmp_path / "repo", gated_config(1.0))
    result = run(
        [str(BIN / "snakemake"), "--cores", "2", "--keep-going", "results/tables.md"],
        root,
        check=False,
    )
    assert result.returncode != 0
    log = (root / "logs/quick/pretrain/small_vgg/digits_syn.log").read_text()
    assert "source model small_vgg on digits_syn reached" in log and "below its bar" in log
    folder = root / "results/runs/quick/baselines"
    assert (folder / "scratch/digits_syn-to-digits_uci/seed0/metrics.json").exists()
    assert not (folder / "finetune").exists()
    assert not (root / "results/pretrained/quick/small_vgg/digits_syn/model.safetensors").exists()
    assert not (root / "results/tables.md").exists()
