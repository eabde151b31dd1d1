"""Before a Slurm run submits anything: can the cluster run every job it asks for?

Slurm rejects some impossible requests at submission ("Requested node configuration is
not available": more GPUs than any node has) but leaves others pending for ever (more
CPUs than the partition's nodes have, or a longer time limit than the partition's, on a
cluster without `EnforcePartLimits`), and Snakemake then waits for ever. Neither says what
the cluster has. `check_jobs` compares each job's request, worked out the way
snakemake-executor-plugin-slurm writes its sbatch options, with the nodes `sinfo` lists,
and fails with both.
"""

from __future__ import annotations

import math
import re
import subprocess
from collections import Counter
from collections.abc import Iterable
from dataclasses import dataclass

from tlrepro.errors import TlreproError

SINFO = ["sinfo", "--Node", "--noheader", "--format=%N|%P|%c|%m|%G|%l"]
GPU_GRES = re.compile(r"(?:^|,)gpu(?::[^:,()]+)?:(\d+)")


class ClusterTooSmallError(TlreproError, RuntimeError):
    """Some job asks for more than any node of its partition has."""


@dataclass(frozen=True)
class Node:
    name: str
    partition: str
    default: bool  # the partition jobs go to without `slurm_partition`
    cpus: int
    mem_mb: int
    gpus: int
    time_limit: float  # minutes, inf when unlimited

    def has(self) -> str:
        limit = "no time limit" if math.isinf(self.time_limit) else f"{self.time_limit:g} min"
        return f"{_count(self.cpus, 'CPU')}, {self.mem_mb} MB, {_count(self.gpus, 'GPU')}, {limit}"


@dataclass(frozen=True)
class Request:
    """What one job asks Slurm for."""

    rule: str
    partition: str | None
    cpus: int
    mem_mb: int
    gpus: int
    minutes: float

    def describe(self) -> str:
        return (
            f"{_count(self.cpus, 'CPU')}, {self.mem_mb} MB, {_count(self.gpus, 'GPU')},"
            f" {self.minutes:g} min in {self.partition or 'the default partition'}"
        )

    def fits(self, node: Node) -> bool:
        return (
            self.cpus <= node.cpus
            and self.mem_mb <= node.mem_mb
            and self.gpus <= node.gpus
            and self.minutes <= node.time_limit
        )


def _count(n: int, unit: str) -> str:
    return f"{n} {unit}{'' if n == 1 else 's'}"


def _minutes(value: str) -> float:
    from snakemake_executor_plugin_slurm.utils import parse_time_to_minutes

    return math.inf if value.lower() in ("infinite", "unlimited") else parse_time_to_minutes(value)


def parse_sinfo(text: str) -> list[Node]:
    """Nodes from `sinfo --Node` in the `SINFO` format: one line per node and partition."""
    nodes = []
    for line in text.splitlines():
        if not line.strip():
            continue
        name, partition, cpus, mem, gres, limit = line.split("|")
        nodes.append(
            Node(
                name=name,
                partition=partition.rstrip("*"),
                default=partition.endswith("*"),
                cpus=int(cpus.rstrip("+")),
                mem_mb=int(mem.rstrip("+")),
                gpus=sum(int(count) for count in GPU_GRES.findall(gres)),
                time_limit=_minutes(limit),
            )
        )
    return nodes


def unsatisfiable(requests: Iterable[Request], nodes: list[Node]) -> list[str]:
    """One line per distinct request that no node of its partition can ever run."""
    partitions = sorted({node.partition for node in nodes})
    problems = []
    for request, count in Counter(requests).items():
        candidates = [
            node
            for node in nodes
            if (node.partition == request.partition if request.partition else node.default)
        ] or ([] if request.partition else nodes)
        if any(request.fits(node) for node in candidates):
            continue
        jobs = _count(count, "job")
        if not candidates:
            problems.append(
                f"rule {request.rule} ({jobs}) asks for partition {request.partition}, which "
                f"does not exist; the cluster's partitions are: {', '.join(partitions)}"
            )
            continue
        kinds: dict[str, Counter[str]] = {}
        for node in candidates:
            kinds.setdefault(node.partition, Counter())[node.has()] += 1
        offered = "; ".join(
            f"partition {partition} has "
            + " and ".join(f"{_count(n, 'node')} with {has}" for has, n in counts.items())
            for partition, counts in kinds.items()
        )
        problems.append(f"rule {request.rule} ({jobs}) asks for {request.describe()}; {offered}")
    return problems


def request_of(job) -> Request:
    """A Snakemake job's request, as the Slurm plugin turns it into sbatch options."""
    res = job.resources
    cpus = res.get("cpus_per_task") or job.threads
    mem_mb = res.get("mem_mb_per_cpu", 0) * cpus or res.get("mem_mb") or 0
    gpus = res.get("gpu") or sum(int(n) for n in GPU_GRES.findall(str(res.get("gres") or "")))
    runtime = res.get("runtime")
    return Request(
        rule=job.rule.name,
        partition=res.get("slurm_partition") or None,
        cpus=int(cpus),
        mem_mb=int(mem_mb),
        gpus=int(gpus),
        minutes=_minutes(str(runtime)) if runtime else 0,
    )


def check_jobs(jobs: Iterable, sinfo: list[str] = SINFO) -> None:
    """Raise `ClusterTooSmallError` naming every request the cluster cannot run."""
    requests = [request_of(job) for job in jobs if not job.is_local]
    if not requests:
        return
    result = subprocess.run(sinfo, capture_output=True, text=True, timeout=60)
    if result.returncode != 0:
        raise ClusterTooSmallError(
            f"cannot ask Slurm what its nodes have: {' '.join(sinfo)} failed with "
            f"{result.stderr.strip() or result.returncode}"
        )
    problems = unsatisfiable(requests, parse_sinfo(result.stdout))
    if problems:
        raise ClusterTooSmallError(
            "Slurm cannot run these jobs (nothing was submitted):\n  - "
            + "\n  - ".join(problems)
            + "\nLower the request (config/config.yaml: resources.<kind>.gpu/mem_mb/runtime,"
            " runtime.torch_threads for the CPUs of training jobs) or pick a partition that"
            " has such nodes (--default-resources slurm_partition=<name>)."
        )
