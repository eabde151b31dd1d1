"""What every script in bench/ shares: the `--short` and `--json` options, the machine a
figure was measured on, and the machine-readable summary (`bench/measured.py` renders
docs/measured.md from these summaries).

A summary is one JSON object:

    {"bench": "trainer_overhead", "short": false, "args": {...},
     "machine": {"device": "NVIDIA H200", "cpu": "...", "threads": 4, "torch": "2.11.0",
                 "cuda": "13.0", "commit": "c54686e", "python": "3.12.3"},
     "ratios": [{"name": "...", "value": 0.97, "target": ">= 0.9"}], "figures": {...}}

`ratios` are what a benchmark is judged by (method against fine-tuning or the bare loop,
on the same model and batch); `figures` keeps the absolute timings beside them, for the
record only.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import subprocess
from pathlib import Path
from typing import Any

import torch

from tlrepro.training.usage import cpu_model

COMMIT_VARIABLE = "TLREPRO_COMMIT"
"""Where the commit comes from when the code runs outside a git checkout (an exported tree)."""


def add_options(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--short",
        action="store_true",
        help="smoke mode: a couple of steps, one round, the smallest sizes, on the CPU",
    )
    parser.add_argument("--json", type=Path, help="write a machine-readable summary here")


def commit() -> str:
    if os.environ.get(COMMIT_VARIABLE):
        return os.environ[COMMIT_VARIABLE]
    try:
        out = subprocess.run(
            ["git", "rev-parse", "--short", "HEAD"],
            capture_output=True,
            text=True,
            check=True,
            cwd=Path(__file__).parent,
        ).stdout.strip()
        dirty = subprocess.run(
            ["git", "status", "--porcelain", "--untracked-files=no"],
            capture_output=True,
            text=True,
            cwd=Path(__file__).parent,
        ).stdout.strip()
        return f"{out}{'+dirty' if dirty else ''}"
    except (OSError, subprocess.CalledProcessError):
        return "unknown"


def machine(device: torch.device | str | None = None) -> dict[str, Any]:
    device = torch.device(device or "cpu")
    cuda = device.type == "cuda"
    return {
        "device": torch.cuda.get_device_name(device) if cuda else "CPU",
        "cpu": cpu_model(),
        "cores": os.cpu_count(),
        "threads": torch.get_num_threads(),
        "torch": torch.__version__,
        "cuda": torch.version.cuda if cuda else None,
        "python": platform.python_version(),
        "commit": commit(),
    }


def write_summary(
    args: argparse.Namespace,
    bench: str,
    device: torch.device | str | None,
    ratios: list[dict[str, Any]],
    figures: dict[str, Any] | None = None,
) -> None:
    """Write the summary to `args.json` when given (nothing otherwise)."""
    if not getattr(args, "json", None):
        return
    options = {
        k: (str(v) if isinstance(v, Path) else v) for k, v in vars(args).items() if k != "json"
    }
    summary = {
        "bench": bench,
        "short": bool(getattr(args, "short", False)),
        "args": options,
        "machine": machine(device),
        "ratios": ratios,
        "figures": figures or {},
    }
    args.json.parent.mkdir(parents=True, exist_ok=True)
    args.json.write_text(json.dumps(summary, indent=1) + "\n")


def ratio(name: str, value: float, target: str | None = None, **extra: Any) -> dict[str, Any]:
    return {"name": name, "value": round(float(value), 4), "target": target, **extra}
