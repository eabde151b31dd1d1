"""Is every source pretraining of a profile above its quality bar on several seeds?

A recipe that clears its bar for one seed on one machine may not for another (a
fragile recipe ends at chance on some CPUs), so this runs every pretraining the
profile plans (`tlrepro plan`) with each of the given pretraining seeds, through
the pipeline's own `run_pretrain`, and prints per source model the accuracy
reached on each seed, its min/mean/max against the bar (`min_accuracy`), the
wall time of each pretraining, and the machine. Exit status 1 if any seed is
below its bar. Run from the repository root, on an otherwise idle machine:

    nice python bench/pretrain_seeds.py                      # quick profile, seeds 0 1 2
    nice python bench/pretrain_seeds.py --models tiny_clip --seeds 0 1 2 3 4
    python bench/pretrain_seeds.py --short   # smoke: the rehearsal's LeNet, seed 0 (seconds)

It works in a scratch folder and never touches results/; prepared datasets are
read from data/prepared/<profile>/ when present, else prepared in the scratch folder.
"""

from __future__ import annotations

import argparse
import csv
import os
import shutil
import statistics
import sys
import tempfile
import time
from dataclasses import replace
from pathlib import Path

import torch
from benchlib import add_options, ratio, write_summary

from tlrepro.config.load import DEFAULT_CONFIG, load_config
from tlrepro.data.prepare import MANIFEST, prepare_dataset
from tlrepro.plan.layout import METRICS_FILE, prepared_dir, raw_dir
from tlrepro.plan.runs import Plan, PretrainJob, build_plan
from tlrepro.storage import read_json
from tlrepro.training.experiment import run_pretrain
from tlrepro.training.source_bar import SOURCE_ACCURACY, SourceModelError
from tlrepro.training.usage import cpu_model


def provide_data(plan: Plan, repo: Path, names: set[str]) -> None:
    """Link the repository's prepared datasets into the scratch folder; prepare the others."""
    for name in sorted(names):
        target = prepared_dir(plan.profile_name, name)
        if (repo / target / MANIFEST).exists():
            target.parent.mkdir(parents=True, exist_ok=True)
            target.symlink_to(repo / target, target_is_directory=True)
        else:
            print(f"preparing {name} ...", flush=True)
            prepare_dataset(
                name, plan.dataset_options(name), plan.image_size(name), target, repo / raw_dir()
            )


def pretrain_once(plan: Plan, job: PretrainJob) -> tuple[float, float, float, list[float]]:
    """(accuracy judged against the bar, wall and CPU seconds, validation accuracy per epoch);
    the job's folder is removed afterwards, so every seed trains from scratch."""
    began, cpu_began = time.perf_counter(), time.process_time()
    try:
        accuracy = run_pretrain(plan, job, progress=False)[SOURCE_ACCURACY]["accuracy"]
    except SourceModelError:
        accuracy = read_json(job.folder / METRICS_FILE)[SOURCE_ACCURACY]["accuracy"]
    seconds, cpu_seconds = time.perf_counter() - began, time.process_time() - cpu_began
    with (job.folder / "log.csv").open() as log:
        curve = [float(row["val_acc"]) for row in csv.DictReader(log)]
    shutil.rmtree(job.folder)
    return accuracy, seconds, cpu_seconds, curve


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--config", type=Path, default=DEFAULT_CONFIG)
    parser.add_argument("--profile", default="quick")
    parser.add_argument("--seeds", type=int, nargs="+", default=[0, 1, 2])
    parser.add_argument("--models", nargs="+", help="only these source models (default: all)")
    add_options(parser)
    args = parser.parse_args()
    if args.short:  # two steps of the rehearsal profile's smallest pretraining
        args.profile, args.seeds, args.models = "rehearsal", [0], ["lenet"]
    if args.json:
        args.json = args.json.resolve()

    repo = Path.cwd()
    plan = build_plan(load_config(args.config.resolve(), args.profile))
    jobs = [j for j in plan.pretrains.values() if not args.models or j.model in args.models]
    if not jobs:
        sys.exit(f"no pretraining of {args.models} in profile {args.profile!r}")
    threads = plan.profile.get("runtime", {}).get("torch_threads", 1)
    print(
        f"CPU: {cpu_model()}; {os.cpu_count()} logical cores; torch {torch.__version__}, "
        f"{threads} intra-op thread(s) per job; profile {args.profile}; seeds {args.seeds}",
        flush=True,
    )
    all_pass = True
    ratios, figures = [], {}
    with tempfile.TemporaryDirectory(prefix="pretrain-seeds-") as scratch:
        os.chdir(scratch)
        provide_data(plan, repo, {job.dataset for job in jobs})
        for job in jobs:
            accuracies = []
            for seed in args.seeds:
                accuracy, seconds, cpu_seconds, curve = pretrain_once(plan, replace(job, seed=seed))
                accuracies.append(accuracy)
                epochs = " ".join(f"{a:.3f}" for a in curve)
                print(
                    f"  {job.model} on {job.dataset}, seed {seed}: {accuracy:.3f} "
                    f"({seconds:.1f} s wall, {cpu_seconds:.1f} s CPU; val accuracy by epoch: "
                    f"{epochs})",
                    flush=True,
                )
            passed = min(accuracies) >= job.min_accuracy
            all_pass &= passed
            what = f"{job.model} on {job.dataset}: lowest accuracy over seeds {args.seeds}"
            ratios.append(ratio(what, min(accuracies), f">= {job.min_accuracy}"))
            figures[f"{job.model} on {job.dataset}"] = accuracies
            print(
                f"{job.model} on {job.dataset}: min {min(accuracies):.3f} "
                f"mean {statistics.mean(accuracies):.3f} max {max(accuracies):.3f}, "
                f"bar {job.min_accuracy:.3f}: {'all seeds pass' if passed else 'BELOW THE BAR'}",
                flush=True,
            )
        os.chdir(repo)
    print("every seed of every source model passes" if all_pass else "some seeds fail their bar")
    write_summary(args, "pretrain_seeds", "cpu", ratios, figures)
    return 0 if all_pass else 1


if __name__ == "__main__":
    sys.exit(main())
