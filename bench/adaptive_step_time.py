"""Training-step time of SpotTune and MultiTune relative to plain fine-tuning, same batch.

Prints the median time of one training step (forward, backward, optimiser step)
of `spottune`, `multitune` and `linear_probe` divided by that of `finetune`, on
the same ResNet-26 and the same batch (targets: spottune <= 2.6, multitune <= 2.2),
then the training time of each method in the quick profile's `adaptive_*` groups
as recorded in their metrics.json (when those runs exist). Run from the repository root:

    python bench/adaptive_step_time.py                                  # CPU, narrow, 32 px
    python bench/adaptive_step_time.py --model resnet26 --size 64 --batch-size 128 --device cuda
    python bench/adaptive_step_time.py --short       # smoke: 2 steps of 4 images, CPU
"""

from __future__ import annotations

import argparse
import contextlib
import statistics
import time
from collections import defaultdict
from collections.abc import Callable
from pathlib import Path

import torch
from benchlib import add_options, ratio, write_summary

from tlrepro import storage
from tlrepro.config.training import Training
from tlrepro.methods.base import MethodContext
from tlrepro.methods.registry import method_spec
from tlrepro.models.registry import build_model
from tlrepro.training.experiment import build_method
from tlrepro.training.trainer import build_optimizer

METHODS = ("finetune", "linear_probe", "spottune", "multitune")
TARGETS = {"spottune": 2.6, "multitune": 2.2}


def make_step(name: str, args: argparse.Namespace, device: torch.device) -> Callable[[], None]:
    """One training step of `name` on a fixed batch, with one host sync at its end."""
    torch.manual_seed(0)
    spec = method_spec(name)
    network = build_model(args.model, 10)
    method = build_method(spec.cls, MethodContext(network, spec.streams, spec.settings()), device)
    optimizer = build_optimizer(method, Training(lr=0.01, momentum=0.9, weight_decay=5e-4))
    generator = torch.Generator().manual_seed(0)
    x = torch.randn(args.batch_size, 3, args.size, args.size, generator=generator).to(device)
    x = x.contiguous(memory_format=torch.channels_last)
    y = torch.randint(0, 10, (args.batch_size,), generator=generator).to(device)
    autocast = (
        (lambda: torch.autocast("cuda", dtype=torch.bfloat16))
        if device.type == "cuda"
        else contextlib.nullcontext
    )
    method.train()

    def step() -> None:
        optimizer.zero_grad(set_to_none=True)
        with autocast():
            stats = method.update({"target": (x, y)}, 0)
        optimizer.step()
        stats["loss"].item()

    return step


def step_seconds(args: argparse.Namespace, device: torch.device) -> dict[str, float]:
    """Median step time per method; the methods take turns step by step, so a change in the
    machine's load (shared CPUs) hits all of them alike instead of biasing the ratios."""
    steps = {name: make_step(name, args, device) for name in METHODS}
    times: dict[str, list[float]] = {name: [] for name in METHODS}
    for round_index in range(args.warmup + args.steps):
        for name, step in steps.items():
            began = time.perf_counter()
            step()
            if round_index >= args.warmup:
                times[name].append(time.perf_counter() - began)
    return {name: statistics.median(values) for name, values in times.items()}


def quick_profile_times() -> dict[str, dict[str, list[float]]]:
    """{group: {method: [train_seconds per run]}} from results/runs/quick/adaptive_*."""
    found: dict[str, dict[str, list[float]]] = defaultdict(lambda: defaultdict(list))
    for path in sorted(Path("results/runs/quick").glob("adaptive_*/*/*/seed*/metrics.json")):
        metrics = storage.read_json(path)
        run = metrics["run"]
        found[run["group"]][run["method_key"]].append(metrics["timing"]["train_seconds"])
    return found


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--model", default="resnet26_narrow")
    parser.add_argument("--size", type=int, default=32)
    parser.add_argument("--batch-size", type=int, default=48)
    parser.add_argument("--steps", type=int, default=30)
    parser.add_argument("--warmup", type=int, default=5)
    parser.add_argument("--device", default="cpu")
    parser.add_argument("--threads", type=int, default=1)
    add_options(parser)
    args = parser.parse_args()
    if args.short:
        args.model, args.size, args.batch_size, args.device = "resnet26_narrow", 32, 4, "cpu"
        args.steps, args.warmup = 2, 1
    torch.set_num_threads(args.threads)
    device = torch.device(args.device)
    print(
        f"{args.model}, {args.size} px, batch {args.batch_size}, {device}, median of {args.steps}"
    )
    seconds = step_seconds(args, device)
    ratios = []
    for name in METHODS:
        value = seconds[name] / seconds["finetune"]
        target = f" (target <= {TARGETS[name]})" if name in TARGETS else ""
        print(f"  {name:13s} {1000 * seconds[name]:8.2f} ms/step  x{value:.2f} finetune{target}")
        if name != "finetune":
            bound = f"<= {TARGETS[name]}" if name in TARGETS else None
            ratios.append(ratio(f"{name} / finetune, {args.model} {args.size} px", value, bound))
    ms = {name: round(1000 * value, 3) for name, value in seconds.items()}
    write_summary(args, "adaptive_step_time", device, ratios, {"ms_per_step": ms})
    times = quick_profile_times()
    if times:
        print("quick profile, training seconds per run (mean over seeds, evaluation excluded):")
        for group, methods in times.items():
            cells = ", ".join(f"{m} {statistics.mean(t):.2f}" for m, t in methods.items())
            print(f"  {group}: {cells}")


if __name__ == "__main__":
    main()
