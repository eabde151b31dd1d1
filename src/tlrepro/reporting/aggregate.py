"""Aggregate the collected runs over seeds and set them beside the papers.

The middle step of reporting (collect → aggregate → render). Every number the
tables show goes through `frame_for_csv`: `tables.csv` is that frame and the
markdown tables are pivots of it, so the two can never disagree. The figures
plot `curves` and `statistic_curves`, the per-epoch means of the runs' logs.
"""

from __future__ import annotations

import math
import os
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Annotated, Any

import pandas as pd
import yaml
from pydantic import Field, TypeAdapter, ValidationError, field_validator

from tlrepro.data.registry import DATASETS
from tlrepro.errors import TlreproError
from tlrepro.plan.layout import LOG_COLUMNS, Task
from tlrepro.reporting import claims as claims_module
from tlrepro.reporting.claims import Claim
from tlrepro.reporting.results import LOG_TAGS, GroupTable, display_task
from tlrepro.training.selection import EXTRA_PROTOCOLS, PROTOCOLS, REPORTS_VALIDATION
from tlrepro.typed import Strict, absent, problems_of

AVG = "avg"
CLAIMS_CSV_COLUMNS = ["group", "method", "baseline", *claims_module.COLUMNS]
CSV_COLUMNS = [
    "group",
    "protocol",
    "method_key",
    "method",
    "task",
    "mean",
    "std",
    "n",
    "unconverged",
    "run_seconds",
    "device",
    "kind",
    "source",
]


class ReportedFormatError(TlreproError, ValueError):
    """config/reported.yaml does not have the expected structure; names the key."""


Finite = Annotated[float, Field(allow_inf_nan=False)]


class ReportedTable(Strict):
    """One paper-reported table of config/reported.yaml (its header comment says what each
    key means). An optional key may be left out but not written as null: the tables read
    the file's own values, where a null would stand in for a label, a list or a protocol."""

    source: str
    short: str = absent()
    metric: str
    protocol: str
    note: str = absent()
    rows: dict[str, dict[str, Finite]]
    """Row label -> task -> value."""
    average_of: list[str] = absent()
    protocol_key: str = absent()
    """The protocol whose section the table stands under; absent: best_val."""

    @field_validator("protocol_key")
    @classmethod
    def _a_protocol(cls, key: str) -> str:
        """The section a table stands under must be one the tables can have."""
        if key not in {**PROTOCOLS, **EXTRA_PROTOCOLS}:
            known = ", ".join([*PROTOCOLS, *EXTRA_PROTOCOLS])
            raise ValueError(f"{key!r} is not a protocol ({known})")
        return key


REPORTED = TypeAdapter(dict[str, ReportedTable])
"""What config/reported.yaml may contain: tables by key."""


def load_reported(path: str | os.PathLike) -> dict[str, dict[str, Any]]:
    """Read config/reported.yaml, failing with every faulty key if it is malformed."""
    data = yaml.safe_load(Path(path).read_text(encoding="utf-8"))
    try:
        REPORTED.validate_python(data)
    except ValidationError as error:
        lines = "\n  ".join(problems_of(error, data))
        raise ReportedFormatError(f"{path} is not valid:\n  {lines}") from None
    return data


class UnknownReportedTableError(TlreproError, ValueError):
    """A group names a paper-reported table that config/reported.yaml does not hold."""


def reported_table(reported: Mapping[str, Any], group: GroupTable) -> dict[str, Any] | None:
    """The paper-reported table the group names, if any."""
    if group.reported is None:
        return None
    if group.reported not in reported:
        known = ", ".join(sorted(reported))
        raise UnknownReportedTableError(
            f"group {group.name!r} names reported table {group.reported!r}, "
            f"which config/reported.yaml lacks; known: {known}"
        )
    return reported[group.reported]


def devices(names: pd.Series) -> str:
    """The devices some runs ran on, as one text ("" when none recorded one)."""
    return "/".join(sorted({name for value in names.dropna() for name in value.split("/")}))


def _ours(frame: pd.DataFrame, group: GroupTable) -> pd.DataFrame:
    """Per-cell test accuracy (%) over seeds (validation accuracy under the protocols of
    REPORTS_VALIDATION), how many of those runs did not converge and
    their mean seconds on their devices, plus the avg column where complete (its count:
    the tasks' counts summed; its seconds: the mean of the tasks')."""
    runs = frame[frame["group"] == group.name]
    keys = ["protocol", "method_key", "label"]
    stats = (
        runs.assign(
            acc=runs["test_acc"].where(~runs["protocol"].isin(REPORTS_VALIDATION), runs["val_acc"])
            * 100.0,
            unconverged=~runs["converged"].astype(bool),
            run_seconds=runs["run_seconds"].astype(float),
        )
        .groupby([*keys, "task"])
        .agg(
            mean=("acc", "mean"),
            std=("acc", "std"),  # sample std (ddof=1), NaN when n=1
            n=("acc", "count"),
            unconverged=("unconverged", "sum"),
            run_seconds=("run_seconds", "mean"),
            device=("device", devices),
        )
        .reset_index()
    )
    means = stats.pivot_table(index=keys, columns="task", values="mean").reindex(
        columns=group.tasks
    )
    # skipna=False: a method missing any task gets no average.
    avg = means.mean(axis=1, skipna=False).dropna().rename("mean").to_frame()
    by_method = stats.groupby(keys)
    avg["unconverged"] = by_method["unconverged"].sum().reindex(avg.index)
    avg["run_seconds"] = by_method["run_seconds"].mean().reindex(avg.index)
    avg["device"] = by_method["device"].agg(devices).reindex(avg.index)
    return pd.concat([stats, avg.reset_index().assign(task=AVG)], ignore_index=True)


def _column(task: str, group: GroupTable, average_of: Sequence[str] = ()) -> str | None:
    """Where a reported value goes in the group's table: its task's column, or the avg
    column for `<name>-avg`, a paper's average, when the group runs exactly the tasks it
    averages: the table's `average_of` where it names them (a benchmark of some of a label
    space's tasks), else every task between the label space `<name>`'s datasets; else
    nowhere."""
    if task in group.tasks:
        return task
    space, _, suffix = task.rpartition("-")
    if suffix != AVG:
        return None
    domains = [name for name, spec in DATASETS.items() if spec.label_space == space]
    every = set(average_of) or {Task(a, b).name for a in domains for b in domains if a != b}
    return AVG if every and set(group.tasks) == every else None


def _reported(table: dict[str, Any], group: GroupTable) -> pd.DataFrame:
    """The reported values for the group's tasks and average; rows with none are dropped."""
    average_of = table.get("average_of", ())
    records = [
        {"method_key": None, "label": label, "task": column, "mean": float(value)}
        for label, cells in table["rows"].items()
        for task, value in cells.items()
        if (column := _column(task, group, average_of)) is not None
    ]
    frame = pd.DataFrame(records, columns=["method_key", "label", "task", "mean"])
    return frame.assign(protocol=table["protocol"], source=table["source"])


def _ordered(ours: pd.DataFrame, group: GroupTable) -> pd.DataFrame:
    """Sort by protocol, method and task in display order (not alphabetically)."""
    rank = {
        "protocol": [*PROTOCOLS, *EXTRA_PROTOCOLS],
        "method_key": [key for key, _ in group.methods],
        "task": [*group.tasks, AVG],
    }
    return ours.sort_values(
        list(rank), key=lambda column: column.map({v: i for i, v in enumerate(rank[column.name])})
    )


def frame_for_csv(
    frame: pd.DataFrame, groups: Sequence[GroupTable], reported: Mapping[str, Any]
) -> pd.DataFrame:
    """Long form of every table cell: ours (kind=ours) and the papers' (kind=reported).

    Ours: one row per (group, protocol, method, task) with mean/std/n of test
    accuracy in percent (validation accuracy under REPORTS_VALIDATION's protocols, e.g.
    max_val), `unconverged`, how many of the n runs did not converge, and
    `run_seconds`, their mean wall time on `device`, plus task `avg` rows where every
    task has a value.
    Reported: the paper's value as published, `protocol` saying how the paper
    selected it; no std, n, unconverged, cost or avg (those would be ours, not theirs).
    """
    parts = []
    for group in groups:
        ours = _ours(frame, group).assign(group=group.name, kind="ours", source="")
        parts.append(_ordered(ours, group))
        table = reported_table(reported, group)
        if table is not None:
            theirs = _reported(table, group)
            parts.append(
                theirs.assign(
                    group=group.name,
                    kind="reported",
                    std=math.nan,
                    n=pd.NA,
                    unconverged=pd.NA,
                    run_seconds=math.nan,
                    device="",
                )
            )
    long = pd.concat(parts, ignore_index=True).rename(columns={"label": "method"})
    return long.astype({"n": "Int64", "unconverged": "Int64"})[CSV_COLUMNS]


@dataclass(frozen=True)
class ReferenceCheck:
    """Whether a group's reference baseline reached its floor, in a sentence for the reader."""

    passed: bool
    message: str


def check_reference(frame: pd.DataFrame, group: GroupTable) -> ReferenceCheck | None:
    """The group's reference baseline against its floor, task by task (a verdict pools the
    pairs of every task, so one task where the baseline broke is enough to spoil it);
    None when the group sets no reference. A task without a run of it counts as below."""
    if group.reference is None:
        return None
    key, floor = group.reference.method, group.reference.floor
    runs = frame[
        (frame["group"] == group.name)
        & (frame["method_key"] == key)
        & (frame["protocol"] == "best_val")
    ]
    means = runs.groupby("task")["test_acc"].mean().reindex(group.tasks)
    below = means[~(means >= floor)]
    baseline = f"reference baseline {dict(group.methods)[key]} (`{key}`)"
    where = "mean test accuracy over seeds at the best validation epoch"
    if below.empty:
        lowest = means.idxmin()
        return ReferenceCheck(
            True,
            f"The {baseline} clears its floor of {floor * 100:.2f} % on every task ({where}; "
            f"lowest {means[lowest] * 100:.2f} % on {display_task(lowest)}).",
        )
    reached = ", ".join(
        f"no run on {display_task(task)}"
        if math.isnan(mean)
        else f"{mean * 100:.2f} % on {display_task(task)}"
        for task, mean in below.items()
    )
    return ReferenceCheck(
        False,
        f"Verdicts withheld: the {baseline} reached {reached} ({where}), below its floor "
        f"of {floor * 100:.2f} %. A baseline that trained this poorly says nothing about the "
        "methods compared to it.",
    )


def claims_for_csv(
    frame: pd.DataFrame,
    groups: Sequence[GroupTable],
    claims: Sequence[Claim],
    reported: Mapping[str, Any],
) -> pd.DataFrame:
    """Every group's claims tested on its runs: one row per (group, claim, protocol), with
    the methods' labels beside their keys (`CLAIMS_CSV_COLUMNS`); every verdict of a group
    whose reference baseline is below its floor is withheld, the note saying why."""
    parts = []
    for group in groups:
        tested = claims_module.evaluate(
            frame, group.name, group.claims(claims), reported, list(PROTOCOLS)
        )
        if tested.empty:
            continue
        reference = check_reference(frame, group)
        if reference is not None and not reference.passed:
            tested = tested.assign(verdict=claims_module.WITHHELD, note=reference.message)
        labels = dict(group.methods)
        parts.append(
            tested.assign(
                group=group.name,
                method=tested["method_key"].map(labels),
                baseline=tested["baseline_key"].map(labels),
            )
        )
    if not parts:
        return pd.DataFrame(columns=CLAIMS_CSV_COLUMNS)
    return pd.concat(parts, ignore_index=True)[CLAIMS_CSV_COLUMNS]


def curves(logs: pd.DataFrame) -> pd.DataFrame:
    """Learning curves in %: per (method_key, task, epoch) the mean and std over seeds of the
    test accuracy (std 0 for one seed) and the mean validation accuracy."""
    grouped = logs.groupby(["method_key", "task", "epoch"])[["test_acc", "val_acc"]]
    stats = grouped.agg(["mean", "std"]) * 100.0
    return pd.DataFrame(
        {
            "test_mean": stats[("test_acc", "mean")],
            "test_std": stats[("test_acc", "std")].fillna(0.0),
            "val_mean": stats[("val_acc", "mean")],
        }
    ).reset_index()


def statistic_curves(logs: pd.DataFrame) -> dict[str, pd.DataFrame]:
    """The statistics methods log beside the fixed columns (e.g. GradMF's gradient cosines):
    per statistic, its epoch means over seeds per (method_key, task, epoch), only where
    a method logged it. Empty when no method of the logs logs any."""
    names = [c for c in logs.columns if c not in LOG_COLUMNS and c not in LOG_TAGS]
    return {
        name: logs[logs[name].notna()]
        .groupby(["method_key", "task", "epoch"])[name]
        .mean()
        .reset_index()
        for name in names
        if logs[name].notna().any()
    }
