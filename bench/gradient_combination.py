"""Step time of GradMF and PCGrad divided by joint training, on the same model and batches.

A step is what the trainer does per step: zero the gradients, `update` (two
forwards, the backward passes and, except for joint, the gradient combination),
the optimiser step. Methods are timed in interleaved rounds and the median round
is kept, so a busy machine slows all of them alike. Run from the repository root:

    python bench/gradient_combination.py                     # small_vgg, CPU
    python bench/gradient_combination.py --model resnet50 --size 224 --batch-size 32 --device cuda
    python bench/gradient_combination.py --short     # smoke: 1 round of 2 steps, 4 images, CPU
"""

from __future__ import annotations

import argparse
import contextlib
import statistics
import time

import torch
from benchlib import add_options, ratio, write_summary

from tlrepro.methods.base import MethodContext
from tlrepro.methods.registry import method_spec
from tlrepro.models.registry import build_model
from tlrepro.training.experiment import build_method

METHODS = {
    "joint": ("joint", {}),
    "pcgrad": ("pcgrad", {}),
    "gradmf (coded)": ("gradmf", {"variant": "coded"}),
    "gradmf (drawn, K=5)": ("gradmf", {"variant": "drawn", "max_steps": 5}),
}


def sync(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--model", default="small_vgg")
    parser.add_argument("--size", type=int, default=32)
    parser.add_argument("--batch-size", type=int, default=32, help="per stream")
    parser.add_argument("--steps", type=int, default=20, help="per round")
    parser.add_argument("--rounds", type=int, default=7)
    parser.add_argument("--threads", type=int, default=1)
    parser.add_argument("--device", default="cpu")
    add_options(parser)
    args = parser.parse_args()
    if args.short:
        args.model, args.size, args.batch_size, args.device = "small_vgg", 32, 4, "cpu"
        args.steps, args.rounds = 2, 1
    torch.set_num_threads(args.threads)
    device = torch.device(args.device)
    autocast = (
        (lambda: torch.autocast("cuda", dtype=torch.bfloat16))
        if device.type == "cuda"
        else contextlib.nullcontext
    )

    generator = torch.Generator().manual_seed(0)
    batches = [
        {
            stream: (
                torch.randn(args.batch_size, 3, args.size, args.size, generator=generator)
                .to(device)
                .contiguous(memory_format=torch.channels_last),
                torch.randint(0, 10, (args.batch_size,), generator=generator).to(device),
            )
            for stream in ("target", "source")
        }
        for _ in range(args.steps)
    ]
    runners = {}
    for name, (method_name, overrides) in METHODS.items():
        torch.manual_seed(0)
        spec = method_spec(method_name)
        context = MethodContext(
            build_model(args.model, 10),
            ("target", "source"),
            spec.settings.model_validate(overrides),
            source_model=build_model(args.model, 10),
            shared_labels=True,
        )
        method = build_method(spec.cls, context, device)
        method.train()
        optimizer = torch.optim.SGD(method.parameters(), lr=1e-3, momentum=0.9)
        runners[name] = (method, optimizer)

    def run_round(name: str) -> float:
        method, optimizer = runners[name]
        sync(device)
        began = time.perf_counter()
        for step, batch in enumerate(batches):
            optimizer.zero_grad(set_to_none=True)
            with autocast():
                method.update(batch, step)
            optimizer.step()
        sync(device)
        return (time.perf_counter() - began) / len(batches)

    for name in runners:  # warm-up
        run_round(name)
    times: dict[str, list[float]] = {name: [] for name in runners}
    for _ in range(args.rounds):
        for name in runners:
            times[name].append(run_round(name))

    parameters = sum(p.numel() for p in runners["joint"][0].parameters())
    print(
        f"model {args.model} ({parameters / 1e6:.2f} M parameters), {args.size} px, "
        f"batch {args.batch_size} per stream, device {device}, threads {args.threads}, "
        f"median of {args.rounds} rounds x {args.steps} steps"
    )
    joint = statistics.median(times["joint"])
    print(f"{'method':<22}{'ms/step':>10}{'/ joint':>10}")
    ratios, ms = [], {}
    for name, values in times.items():
        median = statistics.median(values)
        print(f"{name:<22}{median * 1e3:>10.2f}{median / joint:>10.3f}")
        ms[name] = round(median * 1e3, 3)
        if name != "joint":
            what = f"{name} / joint, {args.model} {args.size} px"
            ratios.append(ratio(what, median / joint, "<= 1.1"))
    write_summary(args, "gradient_combination", device, ratios, {"ms_per_step": ms})


if __name__ == "__main__":
    main()
