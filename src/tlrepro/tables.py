"""Results tables: aggregate finished runs over seeds, set them beside the papers.

Runs in the light `tables` job (no GPU, little memory), so it imports pandas,
tabulate and yaml only, never torch. Every number goes through one long-form
frame (`frame_for_csv`): `tables.csv` is that frame and the markdown tables are
pivots of it, so the two can never disagree.

Three model-selection protocols are reported for every run, in this order:
the honest one (best epoch on a validation split the method may see), the last
epoch, and the oracle that the papers' releases use (best test epoch).

Each group's section names its source model(s) with their accuracy on their
source, and ends with the papers' claims tested on its runs (`tlrepro.claims`).
"""

from __future__ import annotations

import math
import os
from collections.abc import Collection, Iterator, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pandas as pd
import yaml
from tabulate import tabulate

from tlrepro import claims as claims_module
from tlrepro import figures, figures_blocks, io
from tlrepro.claims import Claim

RunKey = tuple[str, str, str, int]
"""(group, method_key, task, seed), the key of `run_dirs`."""

PROTOCOLS: dict[str, str] = {
    "best_val": "best validation epoch (honest, the main one)",
    "last": "last epoch",
    "oracle_test": "oracle: best test epoch (as in the papers)",
}
"""Protocol key in metrics.json -> heading, in the order the tables show them."""

DSP = "DSP (M)"
MISSING = "—"
AVG = "avg"
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
]
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
    "kind",
    "source",
]


@dataclass(frozen=True)
class SourceModel:
    """Where a group's source weights come from, for the line that names them."""

    model: str
    dataset: str
    metrics: Path | None = None
    """The pretraining's metrics.json; None for model-zoo weights (`source_weights: model`)."""
    zero_shot: bool = False
    """Its pretraining evaluates a CLIP's zero-shot head: the accuracies are zero-shot."""

    def describe(self) -> str:
        """`model` on `dataset` with its source accuracies at the best validation epoch."""
        if self.metrics is None:
            return (
                f"`{self.model}` with the model zoo's weights for `{self.dataset}` "
                "(`source_weights: model`): not pretrained here, so no source accuracy of ours"
            )
        metrics = _read_metrics(self.metrics)
        best = metrics["protocols"]["best_val"]
        kind = "zero-shot accuracy" if self.zero_shot else "accuracy"
        return (
            f"`{self.model}`, source `{self.dataset}`: {kind} on the source "
            f"{best['val_acc'] * 100:.2f} % (validation), {best['test_acc'] * 100:.2f} % (test), "
            f"at its best validation epoch {best['epoch']}/{metrics['epochs']}"
        )


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

    def claims(self, claims: Sequence[Claim]) -> list[Claim]:
        """The claims that compare two of this group's methods."""
        keys = [key for key, _ in self.methods]
        return [c for c in claims if c.applies_to(keys, self.few_target_labels)]

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


@dataclass(frozen=True)
class Header:
    """Provenance printed at the top of tables.md."""

    profile: str
    seeds: list[int] | str
    commit: str
    date: str


class ReportedFormatError(ValueError):
    """config/reported.yaml does not have the expected structure; names the key."""


def display_task(task: str) -> str:
    """`mnist-to-svhn` -> `mnist→svhn` for column headings."""
    return task.replace("-to-", ARROW)


def _read_metrics(path: Path) -> dict[str, Any]:
    if not path.is_file():
        raise FileNotFoundError(f"missing run output {path} (the runner should have produced it)")
    metrics = io.read_json(path)
    missing = [p for p in PROTOCOLS if p not in metrics.get("protocols", {})]
    if missing:
        raise ValueError(f"{path}: protocols {missing} missing under 'protocols'")
    return metrics


def collect(groups: Sequence[GroupTable], run_dirs: Mapping[RunKey, Path]) -> pd.DataFrame:
    """Read every run's metrics.json: one row per (run, protocol), accuracies as fractions."""
    rows = []
    for group in groups:
        for method_key, label, task, seed, run_dir in group.runs(run_dirs):
            metrics = _read_metrics(run_dir / "metrics.json")
            for protocol in PROTOCOLS:
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
                    }
                )
    return pd.DataFrame(rows, columns=FRAME_COLUMNS)


def _ours(frame: pd.DataFrame, group: GroupTable) -> pd.DataFrame:
    """Per-cell test accuracy (%) over seeds, plus the avg column where complete."""
    runs = frame[frame["group"] == group.name]
    stats = (
        runs.assign(acc=runs["test_acc"] * 100.0)
        .groupby(["protocol", "method_key", "label", "task"])["acc"]
        .agg(mean="mean", std="std", n="count")  # std: sample std (ddof=1), NaN when n=1
        .reset_index()
    )
    means = stats.pivot_table(
        index=["protocol", "method_key", "label"], columns="task", values="mean"
    ).reindex(columns=group.tasks)
    # skipna=False: a method missing any task gets no average.
    avg = means.mean(axis=1, skipna=False).dropna().rename("mean").reset_index()
    return pd.concat([stats, avg.assign(task=AVG)], ignore_index=True)


def _column(task: str, group: GroupTable) -> str | None:
    """Where a reported value goes in the group's table: its task's column, or the avg
    column for `<label space>-avg` (a paper's average over all of a dataset's tasks) when
    the group runs every task between that label space's datasets; else nowhere."""
    if task in group.tasks:
        return task
    space, _, suffix = task.rpartition("-")
    if suffix != AVG:
        return None
    from tlrepro.data.registry import DATASETS

    domains = [name for name, spec in DATASETS.items() if spec.label_space == space]
    every = {f"{a}-to-{b}" for a in domains for b in domains if a != b}
    return AVG if every and set(group.tasks) == every else None


def _reported(table: dict[str, Any], key: str, group: GroupTable) -> pd.DataFrame:
    """The reported values for the group's tasks and average; rows with none are dropped."""
    records = [
        {"method_key": None, "label": label, "task": _column(task, group), "mean": float(value)}
        for label, cells in table["rows"].items()
        for task, value in cells.items()
        if _column(task, group) is not None
    ]
    frame = pd.DataFrame(records, columns=["method_key", "label", "task", "mean"])
    return frame.assign(
        protocol=table["protocol"], source=table["source"], short=table.get("short", key)
    )


def _reported_table(reported: Mapping[str, Any], group: GroupTable) -> dict[str, Any] | None:
    if group.reported is None:
        return None
    if group.reported not in reported:
        known = ", ".join(sorted(reported))
        raise KeyError(
            f"group {group.name!r} names reported table {group.reported!r}, "
            f"which config/reported.yaml lacks; known: {known}"
        )
    return reported[group.reported]


def frame_for_csv(
    frame: pd.DataFrame, groups: Sequence[GroupTable], reported: Mapping[str, Any]
) -> pd.DataFrame:
    """Long form of every table cell: ours (kind=ours) and the papers' (kind=reported).

    Ours: one row per (group, protocol, method, task) with mean/std/n of test
    accuracy in percent, plus task `avg` rows where every task has a value.
    Reported: the paper's value as published, `protocol` saying how the paper
    selected it; no std, n or avg (those would be ours, not theirs).
    """
    parts = []
    for group in groups:
        ours = _ours(frame, group).assign(group=group.name, kind="ours", source="")
        parts.append(_ordered(ours, group))
        table = _reported_table(reported, group)
        if table is not None:
            theirs = _reported(table, group.reported, group)
            parts.append(
                theirs.assign(group=group.name, kind="reported", std=math.nan, n=pd.NA).drop(
                    columns="short"
                )
            )
    long = pd.concat(parts, ignore_index=True).rename(columns={"label": "method"})
    return long.astype({"n": "Int64"})[CSV_COLUMNS]


def claims_for_csv(
    frame: pd.DataFrame,
    groups: Sequence[GroupTable],
    claims: Sequence[Claim],
    reported: Mapping[str, Any],
) -> pd.DataFrame:
    """Every group's claims tested on its runs: one row per (group, claim, protocol), with
    the methods' labels beside their keys (`CLAIMS_CSV_COLUMNS`)."""
    parts = []
    for group in groups:
        tested = claims_module.evaluate(
            frame, group.name, group.claims(claims), reported, list(PROTOCOLS)
        )
        if tested.empty:
            continue
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


def _ordered(ours: pd.DataFrame, group: GroupTable) -> pd.DataFrame:
    """Sort by protocol, method and task in display order (not alphabetically)."""
    rank = {
        "protocol": list(PROTOCOLS),
        "method_key": [key for key, _ in group.methods],
        "task": [*group.tasks, AVG],
    }
    return ours.sort_values(
        list(rank), key=lambda column: column.map({v: i for i, v in enumerate(rank[column.name])})
    )


def _format_cell(row: pd.Series) -> str:
    """`mean ± std (n)`; `mean (1)` for one seed; avg and reported values bare."""
    if row["kind"] == "reported":
        return f"{row['mean']:g}"  # as published, without invented precision
    if row["task"] == AVG:
        return f"{row['mean']:.2f}"
    if row["n"] == 1:
        return f"{row['mean']:.2f} (1)"
    return f"{row['mean']:.2f} ± {row['std']:.2f} ({row['n']})"


def _pivot(cells: pd.DataFrame, labels: list[str], group: GroupTable) -> pd.DataFrame:
    """Rows = labels in the given order, columns = tasks then avg, `—` where empty."""
    columns = [*group.tasks, AVG]
    if cells.empty:
        table = pd.DataFrame(index=labels, columns=columns)
    else:
        table = (
            cells.assign(cell=cells.apply(_format_cell, axis=1))
            .pivot(index="method", columns="task", values="cell")
            .reindex(index=labels, columns=columns)
        )
    return table.astype(object).fillna(MISSING)


def _with_dsp(body: pd.DataFrame, frame: pd.DataFrame, group: GroupTable) -> pd.DataFrame:
    """A `DSP (M)` column (distinct stored parameters, millions) where the methods report it."""
    runs = frame[(frame["group"] == group.name) & frame["dsp_millions"].notna()]
    if runs.empty:
        return body
    dsp = runs.groupby("label")["dsp_millions"].mean()
    return body.assign(
        **{DSP: [f"{dsp[label]:.4g}" if label in dsp else MISSING for label in body.index]}
    )


def _markdown_table(table: pd.DataFrame) -> str:
    headers = ["method", *(display_task(t) for t in table.columns)]
    return tabulate(
        table.reset_index().values.tolist(),
        headers=headers,
        tablefmt="github",
        disable_numparse=True,
        colalign=("left", *["right"] * len(table.columns)),
    )


def _selection_line(frame: pd.DataFrame, group: GroupTable) -> str | None:
    """Which validation split chose the epoch (target-val or source-val), per method if mixed."""
    runs = frame[(frame["group"] == group.name) & (frame["protocol"] == "best_val")]
    splits = (
        runs.dropna(subset=["selection_split"])
        .groupby("label", sort=False)["selection_split"]
        .unique()
    )
    if splits.empty:
        return None
    distinct = sorted({s for values in splits for s in values})
    if len(distinct) == 1:
        return f"Epoch chosen on `{distinct[0]}`."
    return (
        "Epoch chosen on: "
        + "; ".join(f"{label} `{'/'.join(sorted(values))}`" for label, values in splits.items())
        + "."
    )


def _reported_line(table: dict[str, Any], theirs: pd.DataFrame) -> str:
    note = f" Note: {table['note']}" if table.get("note") else ""
    if theirs.empty:
        return f"No paper-reported numbers for these tasks in {table['source']}.{note}"
    avg = "their avg is the paper's own" if (theirs["task"] == AVG).any() else "have no avg"
    return (
        f"Rows marked `reported:` are copied from {table['source']} "
        f"({table['metric']}; selection: {table['protocol']}). They are reported, "
        f"not computed here, and {avg}.{note}"
    )


def _sources_lines(group: GroupTable) -> list[str]:
    if not group.sources:
        return ["Source model: none (no method starts from or reads a source model)."]
    if len(group.sources) == 1:
        return [f"Source model: {group.sources[0].describe()}."]
    return ["Source models:", "", *(f"- {source.describe()}" for source in group.sources)]


def _signed(value: float) -> str:
    return MISSING if math.isnan(value) else f"{value:+.2f}"


def _claim_row(row: pd.Series, reported: Mapping[str, Any]) -> list[str]:
    if row["relation"] == "better":
        statement = f"{row['method']} > {row['baseline']}"
    else:
        statement = f"{row['method']} within ±{row['margin']:g} of {row['baseline']}"
    interval = (
        MISSING
        if math.isnan(row["ci_low"])
        else f"[{_signed(row['ci_low'])}, {_signed(row['ci_high'])}]"
    )
    paper = (
        MISSING
        if row["paper_cells"] == 0
        else f"{_signed(row['paper_diff'])} ({row['paper_cells']})"
    )
    shorts = dict.fromkeys(reported[key].get("short", key) for key in row["sources"].split(";"))
    return [
        statement,
        _signed(row["mean_diff"]),
        interval,
        str(row["n"]),
        row["verdict"],
        paper,
        "; ".join(shorts),
    ]


def _claims_lines(tested: pd.DataFrame, reported: Mapping[str, Any]) -> list[str]:
    """The Claims subsection: the honest protocol here, every protocol in claims.csv."""
    lines = ["", "### Claims", ""]
    rows = tested[tested["protocol"] == "best_val"]
    if rows.empty:
        return [*lines, "No claim of config/claims.yaml compares two of this group's methods."]
    table = tabulate(
        [_claim_row(row, reported) for _, row in rows.iterrows()],
        headers=["claim", "Δ", "95 % interval", "pairs", "verdict", "paper Δ (cells)", "from"],
        tablefmt="github",
        disable_numparse=True,
        colalign=("left", "right", "right", "right", "left", "right", "left"),
    )
    return [
        *lines,
        "Δ: method − baseline in test accuracy points at the best validation epoch, mean over "
        "the (task, seed) pairs where both ran; the other protocols are in the claims CSV "
        "beside this file.",
        "",
        table,
    ]


def _group_section(
    group: GroupTable,
    long: pd.DataFrame,
    frame: pd.DataFrame,
    tested: pd.DataFrame,
    reported: Mapping[str, Any],
    figures_dir: str,
    stats_figure: bool,
) -> str:
    figure = f"{figures_dir}/{group.name}.png"
    lines = [
        f"## {group.title}",
        "",
        f"Seeds: {', '.join(map(str, group.seeds))}. Learning curves (mean test accuracy "
        f"± std over seeds, validation accuracy dashed): [{figure}]({figure})",
    ]
    if stats_figure:
        stats = f"{figures_dir}/{group.name}{figures.STATS_SUFFIX}"
        lines[-1] += f". Methods' own training statistics (epoch means): [{stats}]({stats})"
    lines += ["", *_sources_lines(group)]
    ours = long[(long["group"] == group.name) & (long["kind"] == "ours")]
    theirs = long[(long["group"] == group.name) & (long["kind"] == "reported")]
    labels = [label for _, label in group.methods]
    table = _reported_table(reported, group)
    for protocol, heading in PROTOCOLS.items():
        lines += ["", f"### {heading[0].upper()}{heading[1:]}", ""]
        if protocol == "best_val" and (selection := _selection_line(frame, group)):
            lines += [selection, ""]
        body = _pivot(ours[ours["protocol"] == protocol], labels, group)
        if protocol == "best_val" and table is not None:
            short = table.get("short", group.reported)
            reported_labels = list(dict.fromkeys(theirs["method"]))
            rows = _pivot(theirs, reported_labels, group)
            rows.index = [f"reported: {label} [{short}]" for label in rows.index]
            body = pd.concat([body, rows])
        if protocol == "best_val":
            body = _with_dsp(body, frame, group)
        lines.append(_markdown_table(body))
        if protocol == "best_val" and table is not None:
            lines += ["", _reported_line(table, theirs)]
    lines += _claims_lines(tested[tested["group"] == group.name], reported)
    return "\n".join(lines)


def _header_block(header: Header) -> str:
    seeds = header.seeds if isinstance(header.seeds, str) else ", ".join(map(str, header.seeds))
    protocols = "\n".join(f"  {i}. {heading}" for i, heading in enumerate(PROTOCOLS.values(), 1))
    return "\n".join(
        [
            "# Transfer-learning reproduction: results",
            "",
            f"- Profile: `{header.profile}`",
            f"- Seeds: {seeds}",
            f"- Commit: `{header.commit}`",
            f"- Date: {header.date}",
            "- Model selection: each group has one table per protocol, in this order:",
            protocols,
            "- The best validation epoch is chosen on a split the method may see (target-val "
            "for supervised transfer, source-val for unsupervised domain adaptation). The oracle "
            "picks the epoch with the best test accuracy, as the papers' released code does: "
            "it is optimistic and shown only to set our numbers beside theirs.",
            f"- Cells: test accuracy in %, `mean ± std (n)` over n seeds (sample std); "
            f"`{MISSING}` = no run. {AVG} = mean over the tasks of the per-task means, "
            "only when every task has a value.",
            "- Claims (config/claims.yaml): each group ends with the papers' claims that "
            "compare two of its methods, tested on its paired runs with a 95 % t-interval. "
            f"`{claims_module.HOLDS}`: the interval lies on the claimed side (above 0; for "
            f'"within ±m", inside ±m); `{claims_module.REVERSED}`: wholly on the other side '
            f"(below 0; wholly outside ±m); `{claims_module.INCONCLUSIVE}`: otherwise, or fewer "
            "than 2 pairs. A verdict is about this profile's setting, not the paper's; "
            "`paper Δ` is the papers' own difference, from config/reported.yaml.",
        ]
    )


def render_markdown(
    frame: pd.DataFrame,
    groups: Sequence[GroupTable],
    reported: Mapping[str, Any],
    header: Header,
    claims: Sequence[Claim] = (),
    figures_dir: str = "figures",
    stats_figures: Collection[str] = (),
) -> str:
    """tables.md: header block, then per group its source models, its three protocol
    tables and its claims.

    `figures_dir` is the figures folder relative to the markdown file; `stats_figures`
    names the groups that have a training-statistics figure.
    """
    long = frame_for_csv(frame, groups, reported)
    tested = claims_for_csv(frame, groups, claims, reported)
    sections = [_header_block(header)]
    sections += [
        _group_section(g, long, frame, tested, reported, figures_dir, g.name in stats_figures)
        for g in groups
    ]
    return "\n\n".join(sections) + "\n"


def load_reported(path: str | os.PathLike) -> dict[str, dict[str, Any]]:
    """Read config/reported.yaml, failing with the offending key if it is malformed."""
    data = yaml.safe_load(Path(path).read_text(encoding="utf-8"))
    if not isinstance(data, dict):
        raise ReportedFormatError(f"{path}: expected a mapping of table keys to tables")
    required = {"source": str, "metric": str, "protocol": str, "rows": dict}
    optional = {"short": str, "note": str}
    for key, table in data.items():
        where = f"{path}: {key}"
        if not isinstance(table, dict):
            raise ReportedFormatError(f"{where}: expected a mapping with {', '.join(required)}")
        if missing := [f for f in required if f not in table]:
            raise ReportedFormatError(f"{where}: missing {', '.join(missing)}")
        if unknown := sorted(set(table) - set(required) - set(optional)):
            raise ReportedFormatError(f"{where}: unknown fields {', '.join(map(str, unknown))}")
        for field_name, kind in (required | optional).items():
            if field_name in table and not isinstance(table[field_name], kind):
                raise ReportedFormatError(
                    f"{where}.{field_name}: expected {kind.__name__}, "
                    f"got {type(table[field_name]).__name__}"
                )
        for label, cells in table["rows"].items():
            if not isinstance(label, str) or not isinstance(cells, dict):
                raise ReportedFormatError(
                    f"{where}.rows.{label}: expected a row label mapping task -> value"
                )
            for task, value in cells.items():
                number = isinstance(value, int | float) and not isinstance(value, bool)
                if not isinstance(task, str) or not number or not math.isfinite(value):
                    raise ReportedFormatError(
                        f"{where}.rows.{label}.{task}: expected a number, got {value!r}"
                    )
    return data


def write_tables(
    groups: Sequence[GroupTable],
    run_dirs: Mapping[RunKey, Path],
    reported_path: Path,
    claims_path: Path,
    header: Header,
    out_md: Path,
    out_csv: Path,
    out_claims: Path,
    figures_dir: Path,
) -> None:
    """Write tables.md, tables.csv, claims.csv, one learning-curve figure
    per group and, where methods log their own statistics, one figure of those; each
    atomically."""
    reported = load_reported(reported_path)
    claims = claims_module.load_claims(claims_path, reported)
    frame = collect(groups, run_dirs)
    link = Path(os.path.relpath(figures_dir, Path(out_md).parent)).as_posix()
    stats_figures, usage_runs = [], []
    for group in groups:
        usage_runs += [run for *_, run in group.runs(run_dirs) if figures_blocks.has_usage(run)]
        figures.learning_curves(group, run_dirs, Path(figures_dir) / f"{group.name}.png")
        stats_png = Path(figures_dir) / f"{group.name}{figures.STATS_SUFFIX}"
        if figures.training_statistics(group, run_dirs, stats_png):
            stats_figures.append(group.name)
    if usage_runs:
        figures_blocks.usage_bars(usage_runs, Path(figures_dir) / figures_blocks.FIGURE)
    markdown = render_markdown(
        frame, groups, reported, header, claims, figures_dir=link, stats_figures=stats_figures
    )
    outputs = {
        Path(out_csv): frame_for_csv(frame, groups, reported),
        Path(out_claims): claims_for_csv(frame, groups, claims, reported),
    }
    for path, table in outputs.items():
        with io.atomic_output(path) as tmp:
            table.to_csv(tmp, index=False, float_format="%.4f")
    io.write_text(out_md, markdown)
