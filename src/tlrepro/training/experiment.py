"""Assemble one job (source pretraining or a transfer run) from the plan and run it.

This is where data, model, initialisation and method meet; the trainer never
sees the config, and a method never reads a file.
"""

from __future__ import annotations

import contextlib
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from functools import partial
from pathlib import Path
from typing import Any

import torch

from tlrepro import storage
from tlrepro.data.prepare import PreparedDataset, class_subset, load_prepared
from tlrepro.data.protocol import run_splits
from tlrepro.data.registry import class_prompts
from tlrepro.errors import SetupError
from tlrepro.methods.base import Method, MethodContext
from tlrepro.models.base import Classifier, head_classes, split_head
from tlrepro.models.registry import build_model, model_spec
from tlrepro.plan import codebase
from tlrepro.plan.layout import MANIFEST, METRICS_FILE, MODEL_FILE, prepared_dir
from tlrepro.plan.runs import Plan, PretrainJob, RunJob, identity_digest
from tlrepro.registry import load_object
from tlrepro.training.augment import stream_augment
from tlrepro.training.convergence import Criterion, not_applicable
from tlrepro.training.selection import select_epochs
from tlrepro.training.source_bar import check_source, source_verdict
from tlrepro.training.trainer import CHECKPOINT, TensorSet, fit
from tlrepro.training.usage import Meter

CHANNELS_LAST = torch.channels_last


def resolve_device(name: str) -> torch.device:
    if name == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    if name == "cuda" and not torch.cuda.is_available():
        raise SetupError(
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


History = list[dict[str, float]]
Judgement = Callable[[History], tuple[dict[str, Any], Exception | None]]
"""A post-fit judgement of the trained model: entries for its metrics and, when it must
not be saved, the error to end with (its record is written, its model file is not)."""


@dataclass
class Assembly:
    """What a job kind hands the one running path (`run_job`), built under the job's seed:
    its method (network included), what it trains on and is evaluated on, and what its
    metrics record."""

    method: Method
    streams: dict[str, TensorSet]
    evaluation: dict[str, TensorSet]
    """"val" (the selection split) and "test"."""
    info: dict[str, Any]
    settings: dict[str, Any]
    selection: str
    """The split the honest protocol selects on: "source_val" or "target_val"."""
    identity: dict[str, Any] = field(default_factory=dict)
    """What the job's identity lacks and only the run can read (a checkpoint's hash)."""
    protocols: tuple[str, ...] = ()
    judge: Judgement | None = None


Assemble = Callable[[torch.device, dict[str, PreparedDataset]], Assembly]


def run_job(
    plan: Plan,
    job: PretrainJob | RunJob,
    datasets: list[str],
    assemble: Assemble,
    progress: bool,
) -> dict[str, Any]:
    """The one path of every training job: configure torch, load the prepared `datasets`,
    seed, `assemble` the job's parts, fit them under the job's identity digest, then record
    the model and its metrics (or, judged unfit, its metrics alone, and fail)."""
    device = configure_torch(plan)
    meter = Meter(device)
    data = {name: load_prepared(prepared_dir(plan.profile_name, name)) for name in datasets}
    torch.manual_seed(job.seed)
    parts = assemble(device, data)
    digest = identity_digest(
        {
            **job.identity,
            "data": _data_hashes(plan, datasets),
            "code": codebase.fingerprint(job.code_files),
            **parts.identity,
        }
    )
    history = fit(
        parts.method,
        parts.streams,
        parts.evaluation,
        job.training,
        job.folder,
        job.seed,
        digest,
        progress,
    )
    convergence = _convergence(plan, parts.method, history)
    metrics = _metrics(
        history,
        parts.selection,
        parts.info,
        parts.settings,
        digest,
        convergence,
        meter,
        parts.protocols,
    )
    refusal = None
    if parts.judge is not None:
        entries, refusal = parts.judge(history)
        metrics = {**metrics, **entries}
    if refusal is None:
        return _record(parts.method, job.folder, metrics)
    (job.folder / MODEL_FILE).unlink(missing_ok=True)
    _write_metrics(job.folder, metrics)
    raise refusal


def run_pretrain(plan: Plan, job: PretrainJob, progress: bool = True) -> dict[str, Any]:
    """Train the source model on its dataset, selected on the source validation split; fail,
    leaving no model file, when the final model is below the job's quality bar."""
    return run_job(plan, job, [job.dataset], partial(_assemble_pretrain, job), progress)


def _assemble_pretrain(
    job: PretrainJob, device: torch.device, data: dict[str, PreparedDataset]
) -> Assembly:
    pretraining = model_spec(job.model).pretraining
    source = data[job.dataset]
    options = job.options if job.weights is None else {**job.options, "weights": job.weights}
    network = build_model(job.model, len(source.classes), **options)
    network.set_class_names(source.classes)
    settings = pretraining.settings_for(job.weights)
    context = MethodContext(network, ("source",), settings, job.training.label_smoothing)
    method = build_method(pretraining.cls, context, device)
    augment = job.training.augment
    return Assembly(
        method,
        {"source": _tensor_set(source, "train", device, augment)},
        {
            "val": _tensor_set(source, "val", device, augment),
            "test": _tensor_set(source, "test", device, augment),
        },
        info={
            "profile": job.profile,
            "kind": "pretrain",
            "model": job.model,
            "dataset": job.dataset,
            "seed": job.seed,
        },
        settings={"training": job.training.record()},
        selection="source_val",
        judge=partial(source_verdict, job, pretraining.zero_shot),
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
    return run_job(plan, job, job.datasets, partial(_assemble_transfer, job), progress)


def _assemble_transfer(
    job: RunJob, device: torch.device, data: dict[str, PreparedDataset]
) -> Assembly:
    spec, augment = job.spec, job.training.augment
    target, source = data[job.task.target], data.get(job.task.source)
    _check_label_space(job, source, target)
    network = build_model(job.model, len(target.classes), **job.options_for(job.model))
    identity: dict[str, Any] = {}
    source_state = None  # the source checkpoint, read once for the body and the source net
    if job.pretrain is not None:
        identity["source_checkpoint"] = storage.sha256_file(job.pretrain.checkpoint)
        source_state = storage.load_tensors(job.pretrain.checkpoint)
        if spec.init == "source":
            network.load_body(source_state, job.pretrain.checkpoint)
    # else (`source_weights: model`) the zoo model is the group's model: built above with
    # its own pretrained weights and a new head, it already starts from the source weights
    network.set_class_names(
        target.classes, class_prompts(target.label_space, target.classes, job.prompts)
    )
    train_index = _subset(job, target, "train", job.target_train_per_class)
    splits = run_splits(source, target, job.protocol, spec.selection, train_index)
    if spec.selection != "source_val" and job.target_val_per_class is not None:
        val_index = _subset(job, target, "val", job.target_val_per_class)
        splits["val"] = tuple(part[val_index] for part in splits["val"])

    def tensor_set(name: str) -> TensorSet:
        """A split on the device, normalised by its dataset's statistics (or CLIP's)."""
        from_source = name == "source" or (name == "val" and spec.selection == "source_val")
        stats = source if from_source else target
        view = stream_augment(augment, name, stats.name)
        return TensorSet.create(
            *splits[name], stats.mean, stats.std, device, augment, None if view == augment else view
        )

    streams = {name: tensor_set(name) for name in ("target", "source") if name in splits}
    val = tensor_set("val")
    # transductive: the test set is the target stream's images, not a second device copy
    shared = splits["test"] is splits["target"] and streams["target"].view is None
    test = streams["target"] if shared else tensor_set("test")
    # built after the streams (whose epoch length it is given): neither draws from torch's
    # global generator, so the source model's initialisation sees the same state as before
    context = MethodContext(
        network,
        spec.streams,
        job.settings,
        job.training.label_smoothing,
        source_model=(
            load_source_model(job, device, source_state) if spec.uses_source_model else None
        ),
        shared_labels=job.shared_labels,
        steps_per_epoch=job.training.epoch_steps(len(streams[spec.streams[0]])),
    )
    method = build_method(spec.cls, context, device)
    return Assembly(
        method,
        {name: streams[name] for name in spec.streams},
        {"val": val, "test": test},
        info={
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
        },
        settings=_transfer_settings(job),
        selection=spec.selection,
        identity=identity,
        protocols=job.protocols,
    )


def _check_label_space(
    job: RunJob, source: PreparedDataset | None, target: PreparedDataset
) -> None:
    if job.shared_labels and source is not None and source.classes != target.classes:
        raise ValueError(
            f"the dataset registry gives {job.task.source} and {job.task.target} one label "
            f"space ({source.label_space}), but their prepared classes differ; correct "
            "their label_space in tlrepro/data/registry.py"
        )


def _subset(
    job: RunJob, target: PreparedDataset, split: str, per_class: int | None
) -> torch.Tensor | None:
    """The seeded subset of a target split the run keeps, None for all of it: for training,
    `target_train_per_class` or `target_train_fraction`; for validation, the max-val
    protocol's N-shot groups' N images per class (at most, as the release's
    make_small_dataset copies up to N files of a class)."""
    fraction = job.target_train_fraction if split == "train" else None
    if per_class is None and fraction is None:
        return None
    return class_subset(
        target.splits[split][1],
        per_class,
        fraction,
        job.seed,
        f"target_{split}_per_class",
        at_most=split == "val",
    )


def _transfer_settings(job: RunJob) -> dict[str, Any]:
    settings = {
        "training": job.training.record(),
        "settings": job.settings.record(),
        "target_train_per_class": job.target_train_per_class,
        "target_train_fraction": job.target_train_fraction,
    }
    # recorded where they differ from the defaults (as in the identity)
    for key in ("protocol", "prompts"):
        if key in job.identity:
            settings[key] = job.identity[key]
    if job.target_val_per_class is not None:  # only then: other runs' metrics stay as they were
        settings["target_val_per_class"] = job.target_val_per_class
    return settings
