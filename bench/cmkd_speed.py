"""Training-step cost of CMKD and RST on the quick profile's tiny CLIP, and RST file sizes.

Prints (median of timed steps after warm-up, optimiser step included):
- cmkd / source_only: one CMKD step (32 source + 32 target images, one encoder pass)
  over one source-only step on the same 64 images' worth of source data (target <= 1.3),
  and over a source-only step on the 32 source images alone (the paper's batch);
- cmkd_rst / cmkd: the RST projection's overhead (target <= 1.15);
- from the quick profile's finished cmkd_rst runs: rst.safetensors as a fraction of the
  run's model.safetensors (the whole network) and of its encoder + head in float32.

Usage: python bench/cmkd_speed.py [--steps 30] [--threads 1] [--short] [--json FILE]
(`--short`: 2 timed steps after 1 warm-up, a smoke test of the code, not a measurement)
"""

from __future__ import annotations

import argparse
import json
import statistics
import time
from pathlib import Path

import torch
from benchlib import add_options, ratio, write_summary

from tlrepro.config.training import Training
from tlrepro.methods.base import MethodContext
from tlrepro.methods.cmkd import RST_FILE
from tlrepro.methods.registry import method_spec
from tlrepro.models.clip import tiny_clip
from tlrepro.training.experiment import build_method
from tlrepro.training.trainer import build_optimizer

RUNS = Path("results/runs/quick/clip_uda/cmkd_rst")
QUICK = {"head_lr_scale": 30.0, "ramp_steps": 40}


def step_seconds(name: str, settings: dict, batches: dict, steps: int, warmup: int = 5) -> float:
    torch.manual_seed(0)
    network = tiny_clip(10)
    network.set_class_names([str(d) for d in range(10)])
    spec = method_spec(name)
    context = MethodContext(network, spec.streams, spec.settings.model_validate(settings), 0.1)
    method = build_method(spec.cls, context, torch.device("cpu"))
    training = Training(lr=0.003, nesterov=True, weight_decay=5e-4)
    optimizer = build_optimizer(method, training)
    method.train()
    times = []
    for step in range(steps + warmup):
        began = time.perf_counter()
        optimizer.zero_grad(set_to_none=True)
        method.update({k: batches[k] for k in spec.streams}, step)
        optimizer.step()
        method.after_step()
        times.append(time.perf_counter() - began)
    return statistics.median(times[warmup:])


def rst_sizes() -> None:
    found = sorted(RUNS.glob("*/seed*/metrics.json"))
    if not found:
        print(f"no finished cmkd_rst runs under {RUNS}: run `snakemake --cores 2 group_clip_uda`")
        return
    for path in found:
        folder = path.parent
        metrics = json.loads(path.read_text())
        rst = (folder / RST_FILE).stat().st_size
        model = (folder / "model.safetensors").stat().st_size
        info = metrics["rst"]
        dense = 4 * (
            info["encoder_elements"]
            + (metrics["dsp_millions"] * 1e6 - info["changed_encoder_elements"])
        )
        print(
            f"{folder}: rst {rst / 1e3:.0f} kB = {rst / model:.3f} of model.safetensors "
            f"({model / 1e3:.0f} kB), {rst / dense:.3f} of encoder + head in float32; "
            f"changed {info['changed_encoder_elements'] / info['encoder_elements']:.1%} of the "
            f"encoder, DSP {metrics['dsp_millions']:.4f} M"
        )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--steps", type=int, default=30)
    parser.add_argument("--threads", type=int, default=1)
    parser.add_argument("--warmup", type=int, default=5)
    add_options(parser)
    args = parser.parse_args()
    if args.short:
        args.steps, args.warmup = 2, 1
    torch.set_num_threads(args.threads)
    g = torch.Generator().manual_seed(0)

    def batch(n: int) -> tuple[torch.Tensor, torch.Tensor]:
        x = torch.randn(n, 3, 32, 32, generator=g).contiguous(memory_format=torch.channels_last)
        return x, torch.randint(0, 10, (n,), generator=g)

    def timed(name: str, settings: dict, batches: dict) -> float:
        return step_seconds(name, settings, batches, args.steps, args.warmup)

    half = {"source": batch(32), "target": batch(32)}
    head = {"head_lr_scale": QUICK["head_lr_scale"]}
    source_64 = timed("clip_source_only", head, {"source": batch(64)})
    source_32 = timed("clip_source_only", head, half)
    cmkd = timed("cmkd", QUICK, half)
    rst = timed("cmkd", {**QUICK, "rst_tau": 1e-3}, half)
    print(
        f"step seconds: source_only(64) {source_64 * 1e3:.1f} ms, source_only(32) "
        f"{source_32 * 1e3:.1f} ms, cmkd(32+32) {cmkd * 1e3:.1f} ms, cmkd_rst {rst * 1e3:.1f} ms"
    )
    print(f"cmkd / source_only, same 64 images per step: {cmkd / source_64:.2f} (target <= 1.3)")
    print(f"cmkd / source_only, paper batches (32+32 vs 32): {cmkd / source_32:.2f}")
    print(f"cmkd_rst / cmkd: {rst / cmkd:.2f} (target <= 1.15)")
    write_summary(
        args,
        "cmkd_speed",
        "cpu",
        [
            ratio("cmkd / source_only, same 64 images per step", cmkd / source_64, "<= 1.3"),
            ratio("cmkd / source_only, paper batches (32+32 vs 32)", cmkd / source_32),
            ratio("cmkd_rst / cmkd", rst / cmkd, "<= 1.15"),
        ],
        {
            "ms_per_step": {
                "source_only_64": round(source_64 * 1e3, 2),
                "source_only_32": round(source_32 * 1e3, 2),
                "cmkd": round(cmkd * 1e3, 2),
                "cmkd_rst": round(rst * 1e3, 2),
            }
        },
    )
    rst_sizes()


if __name__ == "__main__":
    main()
