"""A source model's quality bar: judged after its pretraining, checked before every transfer
run that starts from it."""

from __future__ import annotations

from typing import Any

from tlrepro import storage
from tlrepro.errors import TlreproError
from tlrepro.plan.layout import CHECKPOINT, METRICS_FILE
from tlrepro.plan.runs import PretrainJob

SOURCE_ACCURACY = "source_accuracy"
"""metrics.json key of a pretraining's quality check (`judge_source`); tables read it."""


class SourceModelError(TlreproError, RuntimeError):
    """A source model that failed its quality bar: it must not feed any transfer run."""


def _what_to_try(job: PretrainJob) -> str:
    where = f"profiles.{job.profile}.pretrain"
    return (
        f"Try more epochs ({where}.models.{job.model}.training.epochs), another seed "
        f"({where}.seed), or, if the bar is too strict for your machine, a lower "
        f"{where}.models.{job.model}.min_accuracy in a copy of the config (snakemake "
        "--configfile COPY, tlrepro --config COPY)"
    )


def judge_source(
    job: PretrainJob, history: list[dict[str, float]], zero_shot: bool
) -> dict[str, Any]:
    """The quality check of a source model: the final model (the one saved, hence the last
    epoch, not the best one) against the bar, on the source validation split.

    The bar is deliberately not part of the pretraining's identity (PretrainJob.identity),
    so Snakemake's params and DVC's see no change when it moves: lowering or raising it
    never retrains a model that passes. It is judged again wherever it matters: by the
    pretraining (a failed one keeps its resume state, so a rerun with a lower bar judges
    the same trained weights without training again) and, against the current config, by
    every transfer run that loads the source model (`check_source`). A raised bar does not
    make the runners redo finished transfer runs either: whatever reports them must compare
    the recorded accuracy with the current bar."""
    last = history[-1]
    return {
        "split": "val",
        "epoch": int(last["epoch"]),
        "measure": "zero-shot accuracy" if zero_shot else "accuracy",
        "accuracy": last["val_acc"],
        "min_accuracy": job.min_accuracy,
        "passed": last["val_acc"] >= job.min_accuracy,
    }


def _below_bar_message(job: PretrainJob, verdict: dict[str, Any]) -> str:
    return (
        f"source model {job.model} on {job.dataset} reached {verdict['accuracy']:.1%} "
        f"{verdict['measure']} on the source validation split, below its bar "
        f"min_accuracy {job.min_accuracy:.1%}"
    )


def source_verdict(
    job: PretrainJob, zero_shot: bool, history: list[dict[str, float]]
) -> tuple[dict[str, Any], SourceModelError | None]:
    """A pretraining's post-fit judgement: its metrics entry (`judge_source`) and, when it
    failed the bar, the error it ends with. The failure's record stays; its model file
    goes, and its resume state stays, for a rerun with a lower bar to judge again."""
    verdict = judge_source(job, history, zero_shot)
    if verdict["passed"]:
        return {SOURCE_ACCURACY: verdict}, None
    return {SOURCE_ACCURACY: verdict}, SourceModelError(
        f"{_below_bar_message(job, verdict)}, so it is not saved as a source model and no "
        f"transfer run can start from it. {_what_to_try(job)}. The trained state stays in "
        f"{job.folder / CHECKPOINT}: a rerun with a lower bar judges it without retraining."
    )


def check_source(job: PretrainJob) -> None:
    """Refuse a source checkpoint that did not finish or is below its (current) bar."""
    metrics_file = job.folder / METRICS_FILE
    rerun = f"`tlrepro pretrain {job.model} {job.dataset}`"
    if not metrics_file.exists():
        raise SourceModelError(
            f"{job.checkpoint}: no {METRICS_FILE} beside it, so its pretraining did not "
            f"finish; run {rerun} (Snakemake and DVC do so for you)"
        )
    verdict = storage.read_json(metrics_file).get(SOURCE_ACCURACY)
    if verdict is None:
        raise SourceModelError(
            f"{metrics_file} records no source accuracy (pretrained before quality bars "
            f"existed); run {rerun} again"
        )
    if not verdict["passed"]:
        raise SourceModelError(
            f"refusing to start from {job.checkpoint}: its pretraining failed its bar "
            f"({metrics_file}): {_below_bar_message(job, verdict)}. {_what_to_try(job)}; "
            f"then run {rerun} (with a lower bar it judges the trained model again "
            "without retraining it)."
        )
    if verdict["accuracy"] < job.min_accuracy:
        raise SourceModelError(
            f"refusing to start from {job.checkpoint}: {_below_bar_message(job, verdict)} "
            f"({metrics_file}); it passed the bar of {verdict['min_accuracy']:.1%} it was "
            f"trained under, the config's is higher now. {_what_to_try(job)}."
        )
    if not job.checkpoint.exists():
        raise SourceModelError(f"{job.checkpoint} is missing; run {rerun}")
    storage.verified(job.checkpoint)
