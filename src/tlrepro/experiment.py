"""Assemble one job (source pretraining or a transfer run) from the plan and run it.

This is where data, model, initialisation and method meet; the trainer never
sees the config, and a method never reads a file.
"""

from __future__ import annotations

import contextlib
import time
from pathlib import Path
from typing import Any

import torch

from tlrepro import codebase, storage
from tlrepro.convergence import Criterion, not_applicable
from tlrepro.data.prepare import PreparedDataset, class_subset, load_prepared
from tlrepro.errors import PipelineError
from tlrepro.layout import MANIFEST, METRICS_FILE, MODEL_FILE, prepared_dir
from tlrepro.methods.base import Method, MethodContext
from tlrepro.methods.registry import method_spec
from tlrepro.methods.settings import Settings
from tlrepro.models.base import Classifier, head_classes, split_head
from tlrepro.models.registry import build_model, model_spec
from tlrepro.plan import Plan, PretrainJob, RunJob, identity_digest, shares_labels
from tlrepro.registry import load_object
from tlrepro.selection import select_epochs
from tlrepro.train import CHECKPOINT, TensorSet, epoch_steps, fit
from tlrepro.usage import Meter

CHANNELS_LAST = torch.channels_last


def resolve_device(name: str) -> torch.device:
    if name == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    if name == "cuda" and not torch.cuda.is_available():
        raise RuntimeError(
            "the profile asks for device 'cuda' but no GPU is visible; "
            "set runtime.device to auto or cpu"
        )
    return torch.device(name)


def configure_torch(plan: Plan) -> torch.device:
    """Fixed thread count and deterministic kernels: results must not depend on scheduling."""
    runtime = plan.profile.get("runtime", {})
    torch.set_num_threads(runtime.get("torch_threads", 1))
    device = resolve_device(runtime.get("device", "auto"))
    if device.type == "cpu":
        # What torch.use_deterministic_algorithms(True) does, minus its import of
        # torch._inductor (~1.8 s of CPU in every job; nothing here compiles).
        torch._C._set_deterministic_algorithms(True)
    return device


def _tensor_set(
    data: PreparedDataset,
    split: str,
    device: torch.device,
    augment: str,
    index: torch.Tensor | None = None,
) -> TensorSet:
    """A split on the device; `augment` (the job's) decides its normalisation (CLIP's own
    preprocessing for "clip", else the dataset's statistics)."""
    images, labels = data.splits[split]
    if index is not None:
        images, labels = images[index], labels[index]
    return TensorSet.create(images, labels, data.mean, data.std, device, augment)


def _data_hashes(plan: Plan, names: list[str]) -> dict[str, Any]:
    return {
        name: storage.read_json(prepared_dir(plan.profile_name, name) / MANIFEST)["splits"]
        for name in names
    }


def _metrics(
    history: list[dict[str, float]],
    selection_split: str,
    run_info: dict[str, Any],
    settings: dict[str, Any],
    digest: str,
    convergence: dict[str, Any],
    meter: Meter,
    protocols: tuple[str, ...] = (),
) -> dict[str, Any]:
    seconds = sum(row["seconds"] for row in history)
    images = sum(row["images_per_second"] * row["seconds"] for row in history)
    return {
        "run": run_info,
        "protocols": select_epochs(history, selection_split, protocols),
        "epochs": len(history),
        "convergence": convergence,
        "settings": settings,
        "timing": {
            "train_seconds": seconds,
            "images_per_second": images / max(seconds, 1e-9),
            **meter.record(),
            "finished_at": time.strftime("%Y-%m-%dT%H:%M:%S"),
        },
        "fingerprint": digest,
    }


def _convergence(plan: Plan, method: Method, history: list[dict[str, float]]):
    if not method.trains:
        return not_applicable()
    criterion = Criterion.from_config(plan.profile.get("convergence"))
    return criterion.judge([row["val_acc"] for row in history])


def _record(method: Method, folder: Path, metrics: dict[str, Any]) -> dict[str, Any]:
    """Write the model, then the metrics (the completion marker), then drop the resume state."""
    state = method.saved_state()
    storage.save_tensors(folder / MODEL_FILE, {k: v.detach().cpu() for k, v in state.items()})
    metrics = {**metrics, **method.export(folder)}
    _write_metrics(folder, metrics)
    resume_state = folder / CHECKPOINT
    resume_state.unlink(missing_ok=True)
    with contextlib.suppress(OSError):  # not empty: an unreadable checkpoint kept aside
        resume_state.parent.rmdir()
    return metrics


def _write_metrics(folder: Path, metrics: dict[str, Any]) -> None:
    """metrics.json, the completion marker, with the sha256 of the files it completes."""
    storage.write_json(
        folder / METRICS_FILE, {**metrics, storage.FILES: storage.record_files(folder)}
    )


def pretraining_settings(job: PretrainJob) -> Settings:
    """The settings of the model's pretraining (`Pretraining.settings_for`)."""
    return model_spec(job.model).pretraining.settings_for(job.weights)


SOURCE_ACCURACY = "source_accuracy"
"""metrics.json key of a pretraining's quality check (`judge_source`); tables read it."""


class SourceModelError(PipelineError, RuntimeError):
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


def run_pretrain(plan: Plan, job: PretrainJob, progress: bool = True) -> dict[str, Any]:
    """Train the source model on its dataset, selected on the source validation split; fail,
    leaving no model file, when the final model is below the job's quality bar."""
    device = configure_torch(plan)
    meter = Meter(device)
    data = load_prepared(prepared_dir(plan.profile_name, job.dataset))
    torch.manual_seed(job.seed)
    options = job.options if job.weights is None else {**job.options, "weights": job.weights}
    network = build_model(job.model, len(data.classes), **options)
    network.set_class_names(data.classes)
    method = build_method(
        model_spec(job.model).pretraining.cls,
        MethodContext(
            network, ("source",), pretraining_settings(job), job.training["label_smoothing"]
        ),
        device,
    )
    digest = identity_digest(
        {
            **job.identity,
            "data": _data_hashes(plan, [job.dataset]),
            "code": codebase.fingerprint(job.code_files),
        }
    )
    info = {
        "profile": job.profile,
        "kind": "pretrain",
        "model": job.model,
        "dataset": job.dataset,
        "seed": job.seed,
    }
    augment = job.training["augment"]
    history = fit(
        method,
        {"source": _tensor_set(data, "train", device, augment)},
        {
            "val": _tensor_set(data, "val", device, augment),
            "test": _tensor_set(data, "test", device, augment),
        },
        job.training,
        job.folder,
        job.seed,
        digest,
        progress,
    )
    # CLIP models (contrastive or zero-shot "pretraining") are judged by zero-shot accuracy.
    zero_shot = model_spec(job.model).pretraining.zero_shot
    verdict = judge_source(job, history, zero_shot)
    metrics = {
        **_metrics(
            history,
            "source_val",
            info,
            {"training": job.training},
            digest,
            _convergence(plan, method, history),
            meter,
        ),
        SOURCE_ACCURACY: verdict,
    }
    if verdict["passed"]:
        return _record(method, job.folder, metrics)
    # The record of the failure, and no model file beside it; the resume state stays, so
    # that a rerun with a lower bar judges these weights again without retraining.
    job.checkpoint.unlink(missing_ok=True)
    _write_metrics(job.folder, metrics)
    raise SourceModelError(
        f"{_below_bar_message(job, verdict)}, so it is not saved as a source model and no "
        f"transfer run can start from it. {_what_to_try(job)}. The trained state stays in "
        f"{job.folder / CHECKPOINT}: a rerun with a lower bar judges it without retraining."
    )


def load_source_model(
    job: RunJob, device: torch.device, state: dict[str, torch.Tensor] | None
) -> Classifier:
    """The source network with its own head: as the pretraining run left it (`state`, its
    checkpoint), or as the model zoo ships it (`source_weights: model`)."""
    if job.zoo_source_model is not None:
        network = build_model(job.zoo_source_model, None, **job.options_for(job.zoo_source_model))
        return network.to(device, memory_format=CHANNELS_LAST)
    assert job.pretrain is not None and state is not None
    classes = head_classes(split_head(state)[1])
    network = build_model(job.pretrain.model, classes, **job.pretrain.options)
    network.load_state_dict(state)
    return network.to(device, memory_format=CHANNELS_LAST)


def build_method(cls: str, context: MethodContext, device: torch.device) -> Method:
    """The method `cls` (`module:Class`) built from `context`, on `device` in channels-last
    layout: the one way source pretrainings, transfer runs and the registry-wide test build
    a method."""
    method = load_object(cls)(context)
    return method.to(device, memory_format=CHANNELS_LAST)


def run_transfer(plan: Plan, job: RunJob, progress: bool = True) -> dict[str, Any]:
    if job.pretrain is not None:
        check_source(job.pretrain)
    device = configure_torch(plan)
    meter = Meter(device)
    spec = method_spec(job.method)
    target = load_prepared(prepared_dir(plan.profile_name, job.task.target))
    source = (
        load_prepared(prepared_dir(plan.profile_name, job.task.source))
        if job.task.source in job.datasets
        else None
    )
    shared_labels = shares_labels(job.task)
    if shared_labels and source is not None and source.classes != target.classes:
        raise ValueError(
            f"the dataset registry gives {job.task.source} and {job.task.target} one label "
            f"space ({source.label_space}), but their prepared classes differ; correct "
            "their label_space in tlrepro/data/registry.py"
        )

    torch.manual_seed(job.seed)
    network = build_model(job.model, len(target.classes), **job.options_for(job.model))
    identity: dict[str, Any] = {
        **job.identity,
        "data": _data_hashes(plan, job.datasets),
        "code": codebase.fingerprint(job.code_files),
    }
    source_state = None  # the source checkpoint, read once for the body and the source net
    if job.pretrain is not None:
        identity["source_checkpoint"] = storage.sha256_file(job.pretrain.checkpoint)
        source_state = storage.load_tensors(job.pretrain.checkpoint)
    if spec.init == "source" and source_state is not None:
        network.load_body(source_state, job.pretrain.checkpoint)
    # else (`source_weights: model`) the zoo model is the group's model: built above with
    # its own pretrained weights and a new head, it already starts from the source weights
    network.set_class_names(target.classes)
    target_index = None
    if job.target_train_per_class is not None or job.target_train_fraction is not None:
        target_index = class_subset(
            target.splits["train"][1],
            job.target_train_per_class,
            job.target_train_fraction,
            job.seed,
            "target_train_per_class",
        )
    augment = job.training["augment"]
    streams = {"target": _tensor_set(target, "train", device, augment, target_index)}
    if source is not None:
        streams["source"] = _tensor_set(source, "train", device, augment)
    # built after the streams (whose epoch length it is given): neither draws from torch's
    # global generator, so the source model's initialisation sees the same state as before
    context = MethodContext(
        network,
        spec.streams,
        job.settings,
        job.training["label_smoothing"],
        source_model=(
            load_source_model(job, device, source_state) if spec.uses_source_model else None
        ),
        shared_labels=shared_labels,
        steps_per_epoch=epoch_steps(job.training, len(streams[spec.streams[0]])),
    )
    method = build_method(spec.cls, context, device)

    selection_data = source if spec.selection == "source_val" else target
    val_index = None
    if job.target_val_per_class is not None and selection_data is target:
        # the max-val protocol's N-shot groups: N validation images per class too (at most,
        # as the release's make_small_dataset copies up to N files of a class)
        val_index = class_subset(
            target.splits["val"][1],
            job.target_val_per_class,
            None,
            job.seed,
            "target_val_per_class",
            at_most=True,
        )
    val = _tensor_set(selection_data, "val", device, augment, val_index)
    info = {
        "profile": job.profile,
        "kind": "transfer",
        "group": job.group,
        "method": job.method,
        "method_key": job.method_key,
        "label": job.label,
        "task": job.task.name,
        "source": job.task.source,
        "target": job.task.target,
        "seed": job.seed,
        "model": job.model,
    }
    digest = identity_digest(identity)
    history = fit(
        method,
        {name: streams[name] for name in spec.streams},
        {"val": val, "test": _tensor_set(target, "test", device, augment)},
        job.training,
        job.folder,
        job.seed,
        digest,
        progress,
    )
    settings = {
        "training": job.training,
        "settings": job.settings.record(),
        "target_train_per_class": job.target_train_per_class,
        "target_train_fraction": job.target_train_fraction,
    }
    convergence = _convergence(plan, method, history)
    if job.target_val_per_class is not None:  # only then: other runs' metrics stay as they were
        settings["target_val_per_class"] = job.target_val_per_class
    metrics = _metrics(
        history, spec.selection, info, settings, digest, convergence, meter, job.protocols
    )
    return _record(method, job.folder, metrics)
