"""`tlrepro estimate` and the requests training jobs derive from it (tlrepro.plan.estimate)."""

from __future__ import annotations

from pathlib import Path
from types import SimpleNamespace

import pandas as pd
import pytest
import yaml

from tlrepro.cli import main
from tlrepro.config.load import load_config
from tlrepro.plan.estimate import COLUMNS, calibration_of, pretrain_requests, requests
from tlrepro.plan.jobs import plan_jobs
from tlrepro.runners import slurm

from .conftest import REPO

GROUPS = ("gradmf_mnist_split", "cmkd_digits")
LENET = ("scratch", "finetune", "joint", "pcgrad", "gradmf_coded", "gradmf_drawn", "gradmf_release")
H200 = "NVIDIA H200"
SINFO = "gpu01|gpu*|16|256000|gpu:h200:1|12:00:00\n"  # 720 min


def calibration(ms_per_image: float) -> pd.DataFrame:
    """GPU rows (training only, as from docs/measured) for every LeNet method, one CPU row."""
    rows = [
        {
            "model": "lenet",
            "image_size": 28,  # GradMF's MNIST split at the release's 28 px
            "method_key": key,
            "device": H200,
            "batch_size": 64,
            "train_ms_per_image": ms_per_image,
            "machine": H200,
            "commit": "abc1234",
            "source": "test",
        }
        for key in LENET
    ]
    rows.append({**rows[1], "device": "CPU", "eval_ms_per_image": 0.5, "peak_host_mb": 800,
                 "model_mb": 0.2, "resume_mb": 0.5, "machine": "a CPU"})  # fmt: skip
    return pd.DataFrame(rows, columns=COLUMNS)


@pytest.fixture
def small_config(tmp_path: Path):
    """The repository's paper profile cut to two groups, and a calibration file beside it."""

    def write(ms_per_image: float) -> Path:
        config = yaml.safe_load((REPO / "config" / "config.yaml").read_text())
        paper = config["profiles"]["paper"]
        paper["groups"] = {name: paper["groups"][name] for name in GROUPS}
        config["profile"] = "paper"
        path = tmp_path / "config.yaml"
        path.write_text(yaml.safe_dump(config, sort_keys=False))
        calibration(ms_per_image).to_csv(tmp_path / "calibration.csv", index=False)
        return path

    return write


def bill_rows(text: str) -> dict[str, list[str]]:
    rows = {}
    for line in text.splitlines():
        cells = [cell.strip() for cell in line.strip("|").split("|")]
        if line.startswith("| ") and cells[0] in (*GROUPS, "total"):
            rows[cells[0]] = cells[1:]
    return rows


def test_estimate_prints_a_bill_per_group_and_a_total(small_config, capsys):
    config = small_config(0.01)
    assert main(["--config", str(config), "estimate"]) == 0
    out = capsys.readouterr().out
    rows = bill_rows(out)
    assert list(rows) == [*GROUPS, "total"]
    header = next(line for line in out.splitlines() if line.startswith("| group"))
    columns = [cell.strip() for cell in header.strip("|").split("|")][1:]
    split, cmkd, total = (dict(zip(columns, rows[name], strict=True)) for name in rows)
    # 7 methods x 3 seeds, 1 seed a job; 30 epochs x 50 steps x 64 images, x2 for 2 streams
    assert (split["jobs"], split["runs"]) == ("21", "21")
    assert split["train images"] == f"{3 * (2 * 96_000 + 5 * 192_000):,}"
    assert split[f"GPU-h train ({H200})"] == "0.01"  # 3.46 M images at 0.01 ms
    assert split[f"GPU-h eval ({H200})"] == "unmeasured"  # no evaluation in the GPU rows
    assert cmkd[f"GPU-h train ({H200})"] == "unmeasured"
    assert total[f"GPU-h train ({H200})"] == "0.01 + 45 runs unmeasured"
    assert split["download GB"] == "0.01"  # MNIST's 11.6 MB, once for both halves
    assert "No NVIDIA H200 row (its runs are unmeasured there): clip_rn50 32 px cmkd;" in out
    assert "- NVIDIA H200: NVIDIA H200 at commit(s) abc1234 (7 rows; test)" in out


def jobs_of(config: Path):
    jobs = plan_jobs(load_config(config))
    return {(job.first.group, job.first.method_key, job.seeds): job for job in jobs.jobs}, jobs


def test_a_longer_job_asks_for_more_time_and_unmeasured_jobs_for_the_profiles(small_config):
    config = small_config(5.0)
    by_key, jobs = jobs_of(config)
    calibrated = calibration_of(config)
    finetune, joint, cmkd = (
        requests(jobs.plan, by_key[key], calibrated)
        for key in (
            ("gradmf_mnist_split", "finetune", (0,)),
            ("gradmf_mnist_split", "joint", (0,)),  # two streams: twice the images
            ("cmkd_digits", "cmkd", (0,)),
        )
    )
    # finetune: 96,000 training images + 30 x (3,060 val + 5,139 test) evaluated, 5 ms each
    # (evaluation bounded by the training cost), x2 safety: 57 min
    assert finetune.estimated and finetune.runtime == 57
    assert joint.runtime > finetune.runtime
    assert (cmkd.estimated, cmkd.runtime, cmkd.mem_mb) == (False, 720, 32000)  # resources.train


def test_a_source_pretraining_is_sized_from_the_method_it_resembles(small_config):
    """Supervised pretraining costs what `scratch` costs per image (same model and size);
    CLIP's zero-shot "pretraining" has no calibrated row here and keeps the fixed request."""
    sized = {}
    for ms in (5.0, 10.0):
        config = small_config(ms)
        _, jobs = jobs_of(config)
        plan, calibrated = jobs.plan, calibration_of(config)
        sized[ms] = {
            key: pretrain_requests(plan, job, calibrated) for key, job in plan.pretrains.items()
        }
    lenet = next(key for key in sized[5.0] if key[0] == "lenet")
    clip = next(key for key in sized[5.0] if key[0] == "clip_rn50")
    assert sized[5.0][lenet].estimated and sized[10.0][lenet].runtime > sized[5.0][lenet].runtime
    assert (sized[5.0][clip].estimated, sized[5.0][clip].runtime) == (False, 720)


def test_a_job_no_partition_can_hold_is_refused_before_submission(small_config):
    # at 60 ms an image, x2: finetune asks for 684 min, GradMF (drawn, two streams) for 876
    config = small_config(60.0)
    by_key, jobs = jobs_of(config)
    calibrated = calibration_of(config)

    def job(key):
        asked = requests(jobs.plan, by_key[key], calibrated)
        resources = {"runtime": asked.runtime, "mem_mb": 4000, "gpu": 1}
        return SimpleNamespace(
            rule=SimpleNamespace(name="transfer"), threads=4, is_local=False, resources=resources
        )

    fits = job(("gradmf_mnist_split", "finetune", (0,)))
    slurm.check_jobs([fits], ["printf", "%s", SINFO])
    too_long = job(("gradmf_mnist_split", "gradmf_drawn", (0,)))
    with pytest.raises(slurm.ClusterTooSmallError, match="nothing was submitted"):
        slurm.check_jobs([fits, too_long], ["printf", "%s", SINFO])


def test_a_transductive_run_is_costed_on_every_target_image():
    """The office CMKD groups test on the whole target domain each epoch (and the source
    trains on all but its val carve-out): the estimate counts those images."""
    from tlrepro.plan.estimate import _train_size, images, split_sizes
    from tlrepro.plan.runs import build_plan

    plan = build_plan(load_config(REPO / "config" / "config.yaml", "paper"))
    run = next(r for r in plan.runs if r.group == "cmkd_office31_rn50" and r.method_key == "cmkd")
    assert run.protocol == "transductive"
    target, source = split_sizes(plan, run.task.target), split_sizes(plan, run.task.source)
    if target is None or source is None:
        pytest.skip("Office-31's split sizes are not known here")
    _, evaluated = images(plan, run)
    assert evaluated == run.training.epochs * (source["val"] + sum(target.values()))
    assert _train_size(plan, run, "source") == source["train"] + source["test"]
    assert _train_size(plan, run, "target") == sum(target.values())
