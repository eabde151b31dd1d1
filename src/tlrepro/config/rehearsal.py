"""The rehearsal profile: the paper profile, shrunk until it runs end to end on a CPU.

Asked for by name (`tlrepro --profile rehearsal`, `snakemake --config profile=rehearsal`)
and derived here from the config's `paper` profile whenever the config does not define
a `rehearsal` profile itself, so that it follows every edit of the paper profile. It
keeps the paper's groups, methods, models, recipes (optimiser, schedule, augmentation,
method settings), reported tables and claims, and shrinks only what the rules below
name. Its numbers mean nothing; that every job runs does.
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any

from tlrepro.errors import ConfigError
from tlrepro.models.registry import model_spec
from tlrepro.plan.layout import Task

NAME = "rehearsal"


BASE = "paper"

# --- the shrink rules -----------------------------------------------------------------
SEEDS = 1
"""Each group's first seed only."""
TRAINING_CAPS = {"epochs": 1, "steps_per_epoch": 2, "batch_size": 4}
"""Upper bounds on every training block (groups, methods, pretraining): two optimiser steps
of four images and one evaluation. A value already below its cap (zero-shot's single
step) is kept; `steps_per_epoch: null` (a pass over the data) becomes the cap."""
IMAGE_SIZE_KEPT = 72
"""Dataset image sizes up to this are kept: the 32 px sets and the Visual Decathlon's 72 px
(ResNet-26 trains on 64 px crops of them, as in the paper)."""
IMAGE_SIZE_SHRUNK = 32
"""Larger ones (224 px ImageNet-style sets, Office-Home's 256 px) are stored at 32 px: a 224 px
VGG16 or ResNet-152 step takes seconds per image on this CPU. Every architecture accepts
32 px (torchvision's nets pool adaptively); CLIP's preprocessing still makes 224 px views,
which its shrunk tower resizes (MODEL_SHRINK)."""
MODEL_SHRINK: dict[str, Any] = {"download": False, "image_size": 32}
"""Construction options for the models that take them (their ModelSpec's `options`):
random weights instead of downloads (model-zoo VGG16/ResNet-50, OpenAI CLIP), and CLIP image
towers built for 32 px inputs (ViT-B/16: 2x2 patches; RN50: a 1x1 attention pool)."""
MIN_ACCURACY = 0.0
"""Every source model's quality bar: two steps from random weights learn nothing, and the
rehearsal checks that the gate runs, not that it passes."""
SPLIT_FRACTION = 0.01
"""Every carved val/test fraction: one image per class, the least a stratified split takes."""
MIN_TRAIN_PER_CLASS = 2
"""Training images per class of a stand-in, unless a group keeps more of its target."""
EVAL_IMAGES = 16
"""Images in each official val/test split of a stand-in (the classes in turn, so not every
class of FGVC-Aircraft's 100): evaluation is most of a SpotTune run's CPU time."""
TASKS = "cover"
"""Which tasks of a group are kept: "all", or "cover": in the config's order, those that
bring a dataset the kept ones do not use yet, so every dataset of the group is read (the
Office-Home CLIP groups: 3 of 12 tasks). All 12 x 5 x 2 Office-Home jobs, at ~10 s of CPU
each, would alone take longer than the whole covered rehearsal."""
RUNTIME = {"device": "auto", "torch_threads": 1, "progress": False}
RESOURCES = {
    "prepare": {"gpu": 0, "mem_mb": 2000, "runtime": 10},
    "train": {"gpu": 0, "mem_mb": 4000, "runtime": 10},
    "tables": {"gpu": 0, "mem_mb": 1000, "runtime": 5},
}
# ---------------------------------------------------------------------------------------

DESCRIPTION = (
    "Rehearsal of the paper profile (derived by tlrepro.config.rehearsal): generated stand-in "
    "datasets, random weights, two training steps, one seed. Checks that every job runs; "
    "its numbers mean nothing."
)


def shrink_training(training: dict[str, Any]) -> dict[str, Any]:
    shrunk = dict(training)
    for key, cap in TRAINING_CAPS.items():
        value = training.get(key)
        shrunk[key] = cap if value is None else min(value, cap)
    return shrunk


def covering_tasks(tasks: Iterable[str]) -> list[str]:
    if TASKS == "all":
        return list(tasks)
    kept, seen = [], set()
    for task in tasks:
        parsed = Task.parse(task)
        datasets = {parsed.source, parsed.target}
        if not datasets <= seen:
            kept.append(task)
            seen |= datasets
    return kept


def shrink_group(group: dict[str, Any]) -> dict[str, Any]:
    methods = {
        key: {**entry, "training": shrink_training(entry["training"])}
        if "training" in entry
        else dict(entry)
        for key, entry in group["methods"].items()
    }
    shrunk = {
        **group,
        "tasks": covering_tasks(group["tasks"]),
        "seeds": list(group["seeds"][:SEEDS]),
        "training": shrink_training(group.get("training", {})),
        "methods": methods,
    }
    if "task_training" in group:  # a task's own keys come last: capped too
        shrunk["task_training"] = {
            task: shrink_training(block)
            for task, block in group["task_training"].items()
            if task in shrunk["tasks"]
        }
    return shrunk


def _train_per_class(name: str, groups: dict[str, dict[str, Any]]) -> int:
    """Enough training images for every group that keeps N per class of this target."""
    needed = [
        group.get("target_train_per_class") or 0
        for group in groups.values()
        if any(Task.parse(task).target == name for task in group["tasks"])
    ]
    return max([MIN_TRAIN_PER_CLASS, *needed])


def shrink_dataset(name: str, options: dict[str, Any], groups: dict[str, Any]) -> dict[str, Any]:
    """The stand-in of a dataset: its options with carved splits of one image per class, a
    smaller image size, and per-class counts that leave `_train_per_class` after carving."""
    shrunk = dict(options)
    carved = 0
    for key in ("val_fraction", "test_fraction"):
        if key in options:
            shrunk[key] = SPLIT_FRACTION
            carved += 1
    if options.get("image_size", 0) > IMAGE_SIZE_KEPT:
        shrunk["image_size"] = IMAGE_SIZE_SHRUNK
    shrunk["standin"] = {
        "train_per_class": _train_per_class(name, groups) + carved,
        "eval_images": EVAL_IMAGES,
    }
    return shrunk


def _models(profile: dict[str, Any]) -> set[str]:
    named = set(profile["pretrain"].get("models", {}))
    for group in profile["groups"].values():
        named |= {group["model"], group.get("source_model", group["model"])}
    return named


def derive(paper: dict[str, Any]) -> dict[str, Any]:
    """The rehearsal profile of a (schema-valid) paper profile."""
    groups = {name: shrink_group(group) for name, group in paper["groups"].items()}
    pretrain = paper["pretrain"]
    per_model = {
        name: {
            **entry,
            **({"training": shrink_training(entry["training"])} if "training" in entry else {}),
            **({"min_accuracy": MIN_ACCURACY} if "min_accuracy" in entry else {}),
        }
        for name, entry in pretrain.get("models", {}).items()
    }
    model_options = {
        name: {key: value for key, value in MODEL_SHRINK.items() if key in model_spec(name).options}
        for name in sorted(_models(paper))
        if model_spec(name).options
    }
    image_size = paper["image_size"]
    return {
        **paper,
        "description": DESCRIPTION,
        "image_size": image_size if image_size <= IMAGE_SIZE_KEPT else IMAGE_SIZE_SHRUNK,
        "runtime": dict(RUNTIME),
        "datasets": {
            name: shrink_dataset(name, options, groups)
            for name, options in paper["datasets"].items()
        },
        "model_options": model_options,
        "pretrain": {
            **pretrain,
            "training": shrink_training(pretrain["training"]),
            "min_accuracy": MIN_ACCURACY,
            "models": per_model,
        },
        "groups": groups,
        "resources": {kind: dict(values) for kind, values in RESOURCES.items()},
    }


def with_rehearsal(config: dict[str, Any]) -> dict[str, Any]:
    """`config` with the rehearsal profile added when it is the one asked for and the
    config does not define it (a config that does keeps its own); otherwise `config`."""
    profiles = config["profiles"]
    if config["profile"] != NAME or NAME in profiles:
        return config
    if BASE not in profiles:
        raise ConfigError(
            f"at 'profile': the {NAME!r} profile is derived from the {BASE!r} profile, which "
            f"this config does not define (its profiles: {', '.join(sorted(profiles))})"
        )
    return {**config, "profiles": {**profiles, NAME: derive(profiles[BASE])}}
