"""Training throughput of tlrepro's trainer against a bare PyTorch loop.

Same model, same batch size, same data on the same device; prints images/s for
both and their ratio (trainer / bare). Run from the repository root:

    python bench/trainer_overhead.py --model small_resnet --device cpu
    python bench/trainer_overhead.py --model resnet18 --device cuda --batch-size 256
    python bench/trainer_overhead.py --short     # smoke: 2 steps of 8 images on the CPU

The bare loop is what a user would write by hand with the same amenities on
CUDA (device-resident data, channels_last, bf16 autocast), so the ratio measures
what the trainer's bookkeeping (sampling, augmentation, scheduler, statistics)
costs, not what its optimisations win.
"""

from __future__ import annotations

import argparse
import contextlib
import tempfile
import time
from pathlib import Path

import torch
import torch.nn.functional as F
from benchlib import add_options, ratio, write_summary

from tlrepro.config.training import Training
from tlrepro.methods.base import MethodContext
from tlrepro.methods.registry import method_spec
from tlrepro.models.registry import build_model
from tlrepro.training.experiment import build_method
from tlrepro.training.trainer import TensorSet, fit


def synthetic_set(n: int, size: int, device: torch.device) -> TensorSet:
    generator = torch.Generator().manual_seed(0)
    images = torch.randint(0, 256, (n, 3, size, size), generator=generator, dtype=torch.uint8)
    labels = torch.randint(0, 10, (n,), generator=generator)
    return TensorSet.create(images, labels, [0.5] * 3, [0.25] * 3, device)


def sync(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize()


def bare_loop(
    model_name: str, data: TensorSet, batch_size: int, steps: int, device: torch.device
) -> float:
    model = build_model(model_name, 10).to(device, memory_format=torch.channels_last)
    optimizer = torch.optim.SGD(model.parameters(), lr=0.01, momentum=0.9)
    autocast = (
        (lambda: torch.autocast("cuda", dtype=torch.bfloat16))
        if device.type == "cuda"
        else contextlib.nullcontext
    )
    images = ((data.images.float() / 255 - data.mean) / data.std).contiguous(
        memory_format=torch.channels_last
    )

    def step(i: int) -> None:
        start = (i * batch_size) % (len(data) - batch_size)
        x, y = images[start : start + batch_size], data.labels[start : start + batch_size]
        optimizer.zero_grad(set_to_none=True)
        with autocast():
            loss = F.cross_entropy(model(x), y)
        loss.backward()
        optimizer.step()

    for i in range(min(5, steps)):  # warm-up
        step(i)
    sync(device)
    began = time.perf_counter()
    for i in range(steps):
        step(i)
    sync(device)
    return steps * batch_size / (time.perf_counter() - began)


def trainer_loop(
    model_name: str,
    data: TensorSet,
    batch_size: int,
    steps: int,
    device: torch.device,
    augment: str,
) -> float:
    spec = method_spec("finetune")
    context = MethodContext(build_model(model_name, 10), spec.streams, spec.settings())
    method = build_method(spec.cls, context, device)
    training = Training(epochs=2, batch_size=batch_size, steps_per_epoch=steps, augment=augment)
    tiny = synthetic_set(batch_size, data.images.shape[-1], device)
    with tempfile.TemporaryDirectory() as run_dir:
        history = fit(
            method,
            {"target": data},
            {"val": tiny, "test": tiny},
            training,
            Path(run_dir),
            0,
            "bench",
            progress=False,
        )
    return history[-1]["images_per_second"]  # epoch 2: after warm-up


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--model", default="small_resnet")
    parser.add_argument("--device", default="cuda" if torch.cuda.is_available() else "cpu")
    parser.add_argument("--batch-size", type=int, default=64)
    parser.add_argument("--image-size", type=int, default=32)
    parser.add_argument("--steps", type=int, default=30)
    parser.add_argument("--threads", type=int, default=1)
    add_options(parser)
    args = parser.parse_args()
    if args.short:
        args.model, args.device, args.batch_size, args.image_size = "small_resnet", "cpu", 8, 32
        args.steps = 2
    torch.set_num_threads(args.threads)
    device = torch.device(args.device)
    data = synthetic_set(args.batch_size * 8, args.image_size, device)
    bare = bare_loop(args.model, data, args.batch_size, args.steps, device)
    name = torch.cuda.get_device_name(device) if device.type == "cuda" else "CPU"
    print(f"{args.model} on {name}, batch {args.batch_size}, {args.image_size} px")
    print(f"  bare PyTorch loop        {bare:10.0f} images/s")
    ratios, figures = [], {"bare_images_per_second": round(bare, 1)}
    for augment in ("none", "shift"):
        ours = trainer_loop(args.model, data, args.batch_size, args.steps, device, augment)
        print(f"  tlrepro trainer ({augment:5}) {ours:10.0f} images/s   ratio {ours / bare:.2f}")
        figures[f"trainer_{augment}_images_per_second"] = round(ours, 1)
        ratios.append(
            ratio(f"trainer ({augment}) / bare loop, {args.model}", ours / bare, ">= 0.9")
        )
    write_summary(args, "trainer_overhead", device, ratios, figures)


if __name__ == "__main__":
    main()
