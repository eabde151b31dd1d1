"""CUDA checks of the trainer and the step time of every paper method (bench/gpu_check.sh).

    python bench/gpu_check.py paths      # bf16 autocast, channels_last, device-resident data
    python bench/gpu_check.py methods    # each paper group's methods: step time / fine-tuning

Both print one line per finding; without a CUDA device they say so and exit 0 (`--short`
runs them on the CPU as a smoke test: `methods --short` is `methods --device cpu --groups
gradmf_mnist_split --steps 2`). `--json FILE` writes the findings as a summary
(bench/benchlib.py) for bench/measured.py.
Models are built with random weights (no download: a GPU node may have no network), at
the paper profile's batch sizes and image sizes.
"""

from __future__ import annotations

import argparse
import inspect
import json
import sys
import tempfile
from pathlib import Path
from typing import Any

import torch
from benchlib import add_options, ratio, write_summary

from tlrepro.config.load import load_config
from tlrepro.config.training import Training
from tlrepro.data import standin
from tlrepro.data.registry import dataset_spec
from tlrepro.methods.base import Method, MethodContext
from tlrepro.models.base import Classifier
from tlrepro.models.registry import build_model, model_spec
from tlrepro.plan.runs import RunJob, build_plan, shares_labels
from tlrepro.registry import load_object
from tlrepro.training.experiment import build_method
from tlrepro.training.trainer import TensorSet, fit

CHANNELS_LAST = torch.channels_last
BASELINES = ("finetune", "source_only", "he_init", "scratch")
"""The fine-tuning-like method a group's ratios are taken against (the first it has)."""


def classes(dataset: str) -> tuple[str, ...]:
    """The dataset's class names (the stand-in's where only a download would tell)."""
    spec = dataset_spec(dataset)
    if spec.classes is not None:
        return spec.classes
    names = standin.CLASSES[spec.kwargs.get("name") or spec.kwargs["archive"]]
    return names[slice(*spec.class_range)] if spec.class_range else names


def offline(name: str) -> dict[str, Any]:
    """Random weights where the model would download its published ones (a model that
    ships its weights, as EfficientNet-Lite0 does, takes no `download`)."""
    spec = model_spec(name)
    accepts = inspect.signature(load_object(spec.target)).parameters
    return {"download": False} if "download" in spec.options and "download" in accepts else {}


def random_set(n: int, size: int, n_classes: int, device: torch.device, augment: str):
    generator = torch.Generator().manual_seed(0)
    images = torch.randint(0, 256, (n, 3, size, size), generator=generator, dtype=torch.uint8)
    labels = torch.randint(0, n_classes, (n,), generator=generator)
    return TensorSet.create(images, labels, [0.5] * 3, [0.25] * 3, device, augment)


def build_network(model: str, names: tuple[str, ...] | None, n_classes: int | None):
    network = build_model(model, n_classes, **offline(model))
    if names is not None:
        network.set_class_names(names)
    return network


def run_method(run: RunJob, device: torch.device) -> Method:
    """The run's method as `tlrepro.training.experiment.run_transfer` builds it, random weights."""
    target = classes(run.task.target)
    network = build_network(run.model, target, len(target))
    source_model: Classifier | None = None
    if run.spec.uses_source_model:
        if run.zoo_source_model is not None:
            source_model = build_network(run.zoo_source_model, None, None)
        else:
            source = classes(run.task.source)
            source_model = build_network(run.pretrain.model, source, len(source))
        source_model = source_model.to(device, memory_format=CHANNELS_LAST)
    context = MethodContext(
        network,
        run.spec.streams,
        run.settings,
        run.training.label_smoothing,
        source_model=source_model,
        shared_labels=shares_labels(run.task),
        # GradMF's release schedule alternates by epoch: here an epoch of one step, so the
        # timed steps mix its source and GradMF epochs
        steps_per_epoch=run.training.steps_per_epoch or 1,
    )
    return build_method(run.spec.cls, context, device)


def step_seconds(run: RunJob, plan, device: torch.device, steps: int) -> float:
    """Seconds per trainer step (the second of two epochs, after warm-up)."""
    torch.manual_seed(0)
    method = run_method(run, device)
    augment = run.training.augment
    batch = run.training.batch_size
    streams = {}
    for name in run.spec.streams:
        dataset = run.task.target if name == "target" else run.task.source
        n_classes = len(classes(dataset))
        size = plan.image_size(dataset)
        streams[name] = random_set(2 * batch, size, n_classes, device, augment)
    tiny = random_set(2, plan.image_size(run.task.target), 2, device, augment)
    training = run.training.updated({"epochs": 2, "steps_per_epoch": steps})
    with tempfile.TemporaryDirectory() as folder:
        sets = {"val": tiny, "test": tiny}
        history = fit(method, streams, sets, training, Path(folder), 0, "", progress=False)
    return history[-1]["seconds"] / steps


def cmd_methods(args: argparse.Namespace, device: torch.device) -> None:
    plan = build_plan(load_config(args.config, "paper"))
    timed: dict[str, float] = {}
    ratios: list[dict[str, Any]] = []
    groups: dict[str, Any] = {}
    for group_name in args.groups or plan.groups():
        runs = [
            r for r in plan.runs if r.group == group_name and r.seed == plan.seeds(group_name)[0]
        ]
        first_task = runs[0].task.name
        runs = [r for r in runs if r.task.name == first_task]
        seconds = {}
        for run in runs:
            key = json.dumps(
                [
                    run.model,
                    run.method,
                    run.settings.record(),
                    run.training.record(),
                    run.task.name,
                ],
                sort_keys=True,
            )
            if key not in timed:
                timed[key] = step_seconds(run, plan, device, args.steps)
            seconds[run.method_key] = timed[key]
        baseline = next((b for b in BASELINES if b in seconds), next(iter(seconds)))
        batch = runs[0].training.batch_size
        print(f"{group_name} ({runs[0].model}, batch {batch}, {first_task}):")
        for key, value in seconds.items():
            times = value / seconds[baseline]
            print(f"  {key:16s} {1000 * value:9.1f} ms/step  x{times:.2f} {baseline}")
            if key != baseline:
                ratios.append(ratio(f"{group_name}: {key} / {baseline}", times, group=group_name))
        groups[group_name] = {
            "model": runs[0].model,
            "batch_size": batch,
            "task": first_task,
            "baseline": baseline,
            "ms_per_step": {k: round(1000 * v, 3) for k, v in seconds.items()},
        }
        sys.stdout.flush()
        # after every group: a run stopped at its time limit keeps the groups it timed
        write_summary(args, "gpu_check_methods", device, ratios, {"groups": groups})


CHECKS: list[tuple[str, bool]] = []


def check(name: str, ok: bool, detail: str = "") -> bool:
    CHECKS.append((name, bool(ok)))
    print(f"{'PASS' if ok else 'FAIL'}  {name}{': ' + detail if detail else ''}")
    return ok


def cmd_paths(args: argparse.Namespace, device: torch.device) -> bool:
    """The trainer's CUDA path: data and batches stay on the device in channels_last, steps
    run under bf16 autocast (float32 on the CPU), evaluation returns float32 logits, and a
    run resumes from its checkpoint."""
    from tlrepro.methods.erm_settings import ERMSettings
    from tlrepro.training.trainer import _autocast_for, evaluate

    results = []
    for augment in ("none", "shift_flip", "decathlon_crop", "clip"):
        data = random_set(8, 72, 10, device, augment)
        generator = torch.Generator().manual_seed(0)
        x, y = data.batch(torch.arange(8, device=device), augment, generator)
        results.append(
            check(
                f"batch on the device, channels_last ({augment})",
                x.device.type == device.type
                and y.device.type == device.type
                and x.is_contiguous(memory_format=CHANNELS_LAST),
                f"{tuple(x.shape)} on {x.device}",
            )
        )
    strong, _ = data.batch(torch.arange(8, device=device), "clip", generator, strong=True)
    results.append(check("FixMatch strong view on the device", strong.device.type == device.type))

    network = build_model("resnet18", 10)
    method = build_method(
        "tlrepro.methods.erm:ERM", MethodContext(network, ("target",), ERMSettings()), device
    )
    conv = network.body.conv1
    results.append(
        check(
            "model in channels_last",
            conv.weight.is_contiguous(memory_format=CHANNELS_LAST)
            and conv.weight.device.type == device.type,
        )
    )
    dtypes = []
    hook = conv.register_forward_hook(lambda module, inputs, output: dtypes.append(output.dtype))
    data = random_set(64, 64, 10, device, "shift_flip")
    training = Training(steps_per_epoch=3, batch_size=16, augment="shift_flip")
    with tempfile.TemporaryDirectory() as folder:

        def train(epochs: int) -> list[dict[str, float]]:
            sets = {"val": data, "test": data}
            run = training.updated({"epochs": epochs})
            return fit(method, {"target": data}, sets, run, Path(folder), 0, "x", False, print)

        history = train(1)
        expected = torch.bfloat16 if device.type == "cuda" else torch.float32
        results.append(check(f"training in {expected}", dtypes[0] == expected, str(dtypes[0])))
        loss, _ = evaluate(method, data, 32, _autocast_for(device, training.autocast))
        finite = torch.isfinite(torch.tensor([loss, history[0]["train_loss"]])).all()
        results.append(check("finite training and evaluation losses", bool(finite)))
        resumed = train(2)
        results.append(
            check("a run resumes on the device", len(resumed) == 2 and resumed[0] == history[0])
        )
    hook.remove()
    checks = [{"name": name, "passed": passed} for name, passed in CHECKS]
    write_summary(args, "gpu_check_paths", device, [], {"checks": checks})
    return all(results)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("command", choices=["paths", "methods"])
    parser.add_argument("--config", type=Path, default=Path("config/config.yaml"))
    parser.add_argument("--device", default="cuda" if torch.cuda.is_available() else None)
    parser.add_argument("--steps", type=int, default=10, help="timed steps per method")
    parser.add_argument("--groups", nargs="*", help="paper groups to time (default: all)")
    parser.add_argument("--threads", type=int, default=4)
    add_options(parser)
    args = parser.parse_args()
    if args.short:
        args.device, args.steps, args.threads = "cpu", 2, 1
        args.groups = args.groups or ["gradmf_mnist_split"]
    if args.device is None:
        print(f"SKIP  {args.command}: no CUDA device (torch {torch.__version__})")
        return 0
    torch.set_num_threads(args.threads)
    device = torch.device(args.device)
    name = torch.cuda.get_device_name(device) if device.type == "cuda" else "CPU"
    print(f"{args.command} on {name}, torch {torch.__version__}")
    if args.command == "paths":
        return 0 if cmd_paths(args, device) else 1
    cmd_methods(args, device)
    return 0


if __name__ == "__main__":
    sys.exit(main())
