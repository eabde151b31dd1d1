"""Per-image training and evaluation costs for `tlrepro estimate` (config/calibration.csv).

    python bench/calibrate.py measure --profile quick --out config/calibration.csv
    python bench/calibrate.py measure --profile paper --batch-size 4 --out config/calibration.csv
    python bench/calibrate.py from-summary docs/measured/h200.json --out config/calibration.csv

`measure` times a few trainer steps and one evaluation pass of every (model, image size,
method key) a profile runs, on random images (no download), and records peak memory and
the sizes of the model and of the resume checkpoint. `from-summary` turns the step times
of `bench/gpu_check.py methods` in a measured summary into rows of its GPU (training only:
that benchmark times no evaluation, and no memory). Each row names the machine and commit
it was measured on; `--out` replaces the rows of the same key and device in the file
(`measure`: after every row).
"""

from __future__ import annotations

import argparse
import contextlib
import json
import resource
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import pandas as pd
import torch
from benchlib import add_options, cpu_model, machine, write_summary
from gpu_check import classes, random_set, run_method

from tlrepro.config.load import load_config
from tlrepro.plan.estimate import COLUMNS, KEY, read_calibration
from tlrepro.plan.layout import CHECKPOINT
from tlrepro.plan.runs import Plan, RunJob, build_plan
from tlrepro.training.trainer import _autocast_for, evaluate, fit


def reset_peak(device: torch.device) -> None:
    """Start the peak memory afresh (Linux: VmHWM; CUDA: the allocator's peak)."""
    # elsewhere the peak is the process's so far (getrusage): an upper bound
    with contextlib.suppress(OSError):
        Path("/proc/self/clear_refs").write_text("5")
    if device.type == "cuda":
        torch.cuda.reset_peak_memory_stats(device)


def peak_host_mb() -> float:
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith("VmHWM:"):
            return int(line.split()[1]) / 1024
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def distinct_runs(plan: Plan, groups: list[str] | None) -> dict[tuple[str, int, str], RunJob]:
    """The first run of each (model, image size, method key) of the plan's groups."""
    runs: dict[tuple[str, int, str], RunJob] = {}
    for run in plan.runs:
        if groups is None or run.group in groups:
            key = (run.model, plan.image_size(run.task.target), run.method_key)
            runs.setdefault(key, run)
    return runs


def measure(run: RunJob, plan: Plan, device: torch.device, args) -> dict[str, Any]:
    torch.manual_seed(0)
    reset_peak(device)
    method = run_method(run, device)
    batch = args.batch_size or run.training.batch_size
    augment = run.training.augment
    streams = {}
    for name in run.spec.streams:
        dataset = run.task.target if name == "target" else run.task.source
        streams[name] = random_set(
            2 * batch, plan.image_size(dataset), len(classes(dataset)), device, augment
        )
    size = plan.image_size(run.task.target)
    tiny = random_set(2, size, 2, device, augment)
    training = run.training.updated(
        {"epochs": 2, "steps_per_epoch": args.steps, "batch_size": batch}
    )
    with tempfile.TemporaryDirectory() as folder:
        sets = {"val": tiny, "test": tiny}
        history = fit(method, streams, sets, training, Path(folder), 0, "", progress=False)
        resume_mb = (Path(folder) / CHECKPOINT).stat().st_size / 2**20
    images = random_set(args.eval_images, size, len(classes(run.task.target)), device, augment)
    began = time.perf_counter()
    evaluate(
        method, images, run.training.eval_batch_size, _autocast_for(device, run.training.autocast)
    )
    eval_seconds = time.perf_counter() - began
    state = method.saved_state()
    cuda = device.type == "cuda"
    return {
        "batch_size": batch,
        "train_ms_per_image": 1000 * history[-1]["seconds"] / (args.steps * batch * len(streams)),
        "eval_ms_per_image": 1000 * eval_seconds / args.eval_images,
        "peak_host_mb": peak_host_mb(),
        "peak_accelerator_mb": torch.cuda.max_memory_allocated(device) / 2**20 if cuda else None,
        "model_mb": sum(t.numel() * t.element_size() for t in state.values()) / 2**20,
        "resume_mb": resume_mb,
    }


def cmd_measure(args: argparse.Namespace) -> list[dict[str, Any]]:
    device = torch.device(args.device)
    plan = build_plan(load_config(args.config, args.profile))
    about = machine(device)
    name = about["device"]
    host = f"{name}, {about['cpu']}" if device.type == "cuda" else about["cpu"]
    rows = []
    for (model, size, method_key), run in distinct_runs(plan, args.groups).items():
        figures = measure(run, plan, device, args)
        rows.append(
            {
                **dict(zip(KEY, (model, size, method_key, name), strict=True)),
                **figures,
                "machine": f"{host}, {args.threads} thread(s)",
                "commit": about["commit"],
                "source": f"bench/calibrate.py measure --profile {args.profile}",
            }
        )
        print(
            f"{model} {size} px {method_key} on {name}: "
            f"{figures['train_ms_per_image']:.3g} ms/image training, "
            f"{figures['eval_ms_per_image']:.3g} ms/image evaluation, "
            f"peak {figures['peak_host_mb']:.0f} MB host (batch {figures['batch_size']})"
        )
        sys.stdout.flush()
        if args.out:  # after every row: a run stopped at a time limit keeps what it measured
            merge(args.out, rows[-1:])
    return rows


def cmd_from_summary(args: argparse.Namespace) -> list[dict[str, Any]]:
    """GPU rows from `gpu_check methods` step times: ms per step / images per step."""
    summary = json.loads(args.summary.read_text())
    plan = build_plan(load_config(args.config, "paper"))
    rows = []
    for bench in summary.get("benches", [summary]):
        if bench["bench"] != "gpu_check_methods":
            continue
        about = bench["machine"]
        for group, figures in bench["figures"]["groups"].items():
            task = figures["task"]  # the image size is the timed task's
            runs = {r.method_key: r for r in plan.runs if (r.group, r.task.name) == (group, task)}
            for method_key, ms in figures["ms_per_step"].items():
                if method_key not in runs:
                    continue
                run = runs[method_key]
                per_step = figures["batch_size"] * len(run.spec.streams)
                key = (figures["model"], plan.image_size(run.task.target), method_key)
                rows.append(
                    {
                        **dict(zip(KEY, (*key, about["device"]), strict=True)),
                        "batch_size": figures["batch_size"],
                        "train_ms_per_image": ms / per_step,
                        "machine": f"{about['device']}, {about['cpu']}, "
                        f"{about['threads']} thread(s)",
                        "commit": about["commit"],
                        "source": f"{args.summary.as_posix()} (gpu_check methods)",
                    }
                )
    unique = {tuple(row[k] for k in KEY): row for row in rows}  # a group timed twice: once
    for row in unique.values():
        print(
            f"{row['model']} {row['image_size']} px {row['method_key']} on {row['device']}: "
            f"{row['train_ms_per_image']:.3g} ms/image training"
        )
    return list(unique.values())


def merge(path: Path, rows: list[dict[str, Any]]) -> None:
    """Write `rows` into the calibration file, replacing those of the same key."""
    new = pd.DataFrame(rows, columns=COLUMNS).set_index(KEY)
    old = read_calibration(path)
    merged = pd.concat([old[~old.index.isin(new.index)], new]).sort_index()
    merged.reset_index()[COLUMNS].to_csv(path, index=False, float_format="%.5g")
    print(f"wrote {len(new)} rows into {path} ({len(merged)} in all)")


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("command", choices=["measure", "from-summary"])
    parser.add_argument("summary", nargs="?", type=Path, help="from-summary: a measured summary")
    parser.add_argument("--config", type=Path, default=Path("config/config.yaml"))
    parser.add_argument("--profile", default="quick")
    parser.add_argument("--groups", nargs="*", help="the profile's groups (default: all)")
    parser.add_argument("--device", default="cpu")
    parser.add_argument("--steps", type=int, default=2, help="timed training steps per row")
    parser.add_argument("--batch-size", type=int, help="instead of the run's (to save time)")
    parser.add_argument("--eval-images", type=int, default=64)
    parser.add_argument("--threads", type=int, default=1)
    parser.add_argument("--out", type=Path, help="calibration file to merge the rows into")
    add_options(parser)
    args = parser.parse_args()
    if args.short:
        args.device, args.steps, args.threads, args.eval_images = "cpu", 1, 1, 8
        args.batch_size, args.groups = 4, args.groups or ["gradmf"]
    torch.set_num_threads(args.threads)
    print(f"{args.command} on {args.device}, {cpu_model()}, torch {torch.__version__}")
    if args.command == "measure":
        rows = cmd_measure(args)
    else:
        rows = cmd_from_summary(args)
        if args.out:
            merge(args.out, rows)
    write_summary(args, "calibrate", args.device, [], {"rows": rows})
    return 0


if __name__ == "__main__":
    sys.exit(main())
