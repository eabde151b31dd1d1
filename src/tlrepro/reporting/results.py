"""Collect finished runs: the first step of reporting (collect → aggregate → render).

A results section (`GroupTable`) names its runs; this module reads what they wrote
into two long frames: `collect` one row per (run, protocol) from metrics.json,
`load_logs` one row per (run, epoch) from log.csv. `tlrepro.reporting.aggregate` works on
these frames, the renderers (`tlrepro.reporting.markdown`, `tlrepro.reporting.figures`) on what it
returns. Like the rest of the tables job it imports pandas, never torch.
"""

from __future__ import annotations

import math
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

import pandas as pd

from tlrepro import storage
from tlrepro.config.model import Reference
from tlrepro.errors import DamagedFileError, MissingFileError
from tlrepro.plan.layout import LOG_FILE, METRICS_FILE, Task
from tlrepro.training.convergence import Criterion, judge_again
from tlrepro.training.selection import EXTRA_PROTOCOLS, PROTOCOLS

if TYPE_CHECKING:
    from tlrepro.reporting.claims import Claim

RunKey = tuple[str, str, str, int]
"""(group, method_key, task, seed), the key of `run_dirs`."""

ARROW = "→"
FRAME_COLUMNS = [
    "group",
    "method_key",
    "label",
    "task",
    "seed",
    "protocol",
    "epoch",
    "val_acc",
    "test_acc",
    "selection_split",
    "dsp_millions",
    "rst_density",
    "converged",
    "convergence",
    "run_seconds",
    "device",
    "machine",
]
LOG_TAGS = ("method_key", "label", "task", "seed")
"""The columns `load_logs` adds to every run's log.csv."""


@dataclass(frozen=True)
class SourceModel:
    """Where a group's source weights come from, for the line that names them."""

    model: str
    dataset: str
    metrics: Path | None = None
    """The pretraining's metrics.json; None for model-zoo weights (`source_weights: model`)."""
    zero_shot: bool = False
    """Its pretraining evaluates a CLIP's zero-shot head: the accuracies are zero-shot."""
    parts: tuple[str, ...] = ()
    """The datasets that `dataset` combines, when it is a mix (caption_mix)."""
    targets_seen: tuple[str, ...] | None = None
    """For a mix: the group's targets whose dataset (the same builder, i.e. the same source
    files) is among its parts; () when none is. None when `dataset` is no mix."""


@dataclass(frozen=True)
class GroupTable:
    """One results section: which runs it holds and in what order they are shown."""

    name: str
    title: str
    tasks: list[str]
    methods: list[tuple[str, str]]
    """(method_key, label) in display order."""
    seeds: list[int]
    reported: str | None = None
    """Key of the paper-reported table in config/reported.yaml, if any."""
    few_target_labels: bool = False
    """Trained on a few labelled target images (target_train_per_class/_fraction set)."""
    sources: tuple[SourceModel, ...] = ()
    """The source models its methods start from or read, in first-use order."""
    reference: Reference | None = None
    """Its reference baseline and floor (config `reference`); None: no floor is set."""
    protocol: str = "held_out"
    """Which splits its runs train, select and test on (config `protocol`)."""

    protocols: tuple[str, ...] = ()
    """Its extra protocols (config `protocols`, keys of selection.EXTRA_PROTOCOLS)."""

    @property
    def all_protocols(self) -> list[str]:
        """The protocols its tables show, in order: every group's, then its own."""
        return [*PROTOCOLS, *(p for p in EXTRA_PROTOCOLS if p in self.protocols)]

    def claims(self, claims: Sequence[Claim]) -> list[Claim]:
        """The claims that compare two of this group's methods."""
        keys = [key for key, _ in self.methods]
        return [c for c in claims if c.applies_to(keys, self.few_target_labels, self.tasks)]

    def runs(self, run_dirs: Mapping[RunKey, Path]) -> Iterator[tuple[str, str, str, int, Path]]:
        """Yield (method_key, label, task, seed, run_dir) in display order.

        Combinations absent from `run_dirs` (e.g. source_only where the label
        spaces differ) are skipped: the runner decides which runs exist.
        """
        for method_key, label in self.methods:
            for task in self.tasks:
                for seed in self.seeds:
                    run_dir = run_dirs.get((self.name, method_key, task, seed))
                    if run_dir is not None:
                        yield method_key, label, task, seed, Path(run_dir)


def display_task(task: str) -> str:
    """`mnist-to-svhn` -> `mnist→svhn` for headings, in the tables and the figures."""
    if not Task.is_task(task):
        return task
    parsed = Task.parse(task)
    return f"{parsed.source}{ARROW}{parsed.target}"


def read_metrics(path: Path) -> dict[str, Any]:
    """A run's (or a pretraining's) metrics.json, which must hold every protocol."""
    if not path.is_file():
        raise MissingFileError(f"missing run output {path} (the runner should have produced it)")
    metrics = storage.read_json(path)
    missing = [p for p in PROTOCOLS if p not in metrics.get("protocols", {})]
    if missing:
        raise DamagedFileError(path, f"protocols {missing} missing under 'protocols'")
    return metrics


def judge_convergence(
    run_dir: Path, metrics: Mapping[str, Any], criterion: Criterion
) -> dict[str, Any]:
    """The run's convergence under the current criterion, from its log.csv."""
    if "convergence" not in metrics:
        raise DamagedFileError(
            run_dir / METRICS_FILE,
            "records no convergence (written before runs were judged): delete the run "
            "folder and rerun it",
        )
    val_acc = pd.read_csv(storage.verified(run_dir / LOG_FILE))["val_acc"].tolist()
    return judge_again(metrics["convergence"], val_acc, criterion)


def collect(
    groups: Sequence[GroupTable],
    run_dirs: Mapping[RunKey, Path],
    criterion: Criterion | None = None,
) -> pd.DataFrame:
    """Read every run's metrics.json: one row per (run, protocol), accuracies as fractions,
    with the run's convergence judged again under `criterion` (default: the default one)."""
    criterion = criterion or Criterion()
    rows = []
    for group in groups:
        for method_key, label, task, seed, run_dir in group.runs(run_dirs):
            metrics = read_metrics(run_dir / METRICS_FILE)
            convergence = judge_convergence(run_dir, metrics, criterion)
            timing = metrics.get("timing", {})
            for protocol in group.all_protocols:
                if protocol not in metrics["protocols"]:
                    raise ValueError(
                        f"{run_dir / METRICS_FILE}: no protocol {protocol!r}, which group "
                        f"{group.name!r} reports (computed by runs that ask for it): rerun it"
                    )
                entry = metrics["protocols"][protocol]
                rows.append(
                    {
                        "group": group.name,
                        "method_key": method_key,
                        "label": label,
                        "task": task,
                        "seed": seed,
                        "protocol": protocol,
                        "epoch": entry["epoch"],
                        "val_acc": entry["val_acc"],
                        "test_acc": entry["test_acc"],
                        "selection_split": entry.get("selection_split"),
                        "dsp_millions": metrics.get("dsp_millions", math.nan),
                        # RST's share of changed image-tower parameters (RST runs only)
                        "rst_density": metrics.get("rst", {}).get("density", math.nan),
                        "converged": convergence["converged"],
                        "convergence": convergence["reason"],
                        # the run's wall time on its device (absent before runs recorded it)
                        "run_seconds": timing.get("wall_seconds", math.nan),
                        "device": timing.get("device"),
                        "machine": timing.get("machine"),
                    }
                )
    return pd.DataFrame(rows, columns=FRAME_COLUMNS)


def load_logs(group: GroupTable, run_dirs: Mapping[RunKey, Path]) -> pd.DataFrame:
    """Every run's log.csv of the group, tagged with `LOG_TAGS`."""
    logs = [
        pd.read_csv(storage.verified(run_dir / LOG_FILE)).assign(
            method_key=key, label=label, task=task, seed=seed
        )
        for key, label, task, seed, run_dir in group.runs(run_dirs)
    ]
    if not logs:
        raise ValueError(f"group {group.name!r}: no runs to plot")
    return pd.concat(logs, ignore_index=True)
