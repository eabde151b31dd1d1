"""What a run cost, recorded beside its results (metrics.json's `timing`): the tables
put each method's cost next to its accuracy, and the estimates are checked against it."""

from __future__ import annotations

import platform
import resource
import time
from functools import cache
from pathlib import Path
from typing import Any

import torch


class Meter:
    """Wall, CPU and accelerator seconds and peak memory from its creation to `record`."""

    def __init__(self, device: torch.device) -> None:
        self.device = device
        self.wall = time.perf_counter()
        self.cpu = time.process_time()
        if device.type == "cuda":
            torch.cuda.reset_peak_memory_stats(device)

    def record(self) -> dict[str, Any]:
        """The usage so far. Peak host memory is the process's (getrusage): for the later
        seeds of a multi-seed job, the job's peak so far. Accelerator seconds are the
        seconds the run held the GPU (its wall time there), 0 on the CPU. A resumed run
        counts only what its last process did."""
        wall = time.perf_counter() - self.wall
        cuda = self.device.type == "cuda"
        return {
            "wall_seconds": wall,
            "cpu_seconds": time.process_time() - self.cpu,
            "accelerator_seconds": wall if cuda else 0.0,
            "peak_host_mb": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024,
            "peak_accelerator_mb": (
                torch.cuda.max_memory_allocated(self.device) / 2**20 if cuda else None
            ),
            "device": torch.cuda.get_device_name(self.device) if cuda else "CPU",
            "machine": machine(self.device),
        }


@cache
def cpu_model() -> str:
    """The CPU's model name as the kernel reports it (`/proc/cpuinfo`)."""
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                return line.partition(":")[2].strip()
    except OSError:
        pass
    return platform.processor() or "unknown CPU"


def machine(device: torch.device) -> str:
    """What ran a job, as figures and tables name it: the same code gives other numbers
    on another CPU."""
    threads = torch.get_num_threads()
    host = f"{cpu_model()}, {threads} torch thread{'s' if threads > 1 else ''}"
    if device.type == "cuda":
        return f"{torch.cuda.get_device_name(device)} (host {host})"
    return host
