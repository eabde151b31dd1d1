"""Render the aggregate as markdown: the last step of reporting (collect → aggregate → render).

tables.md is a header block, then per group its source models, one table per
model-selection protocol (the honest one first: the best epoch on a validation
split the method may see, then the last epoch, then the oracle the papers'
releases use, the best test epoch) and the papers' claims tested on its runs.
Every cell is a pivot of `aggregate.frame_for_csv`, the frame tables.csv holds.
"""

from __future__ import annotations

import math
from collections.abc import Collection, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import pandas as pd
from tabulate import tabulate

from tlrepro.plan.layout import GROUP_FIGURES
from tlrepro.reporting import claims as claims_module
from tlrepro.reporting.aggregate import (
    AVG,
    check_reference,
    claims_for_csv,
    devices,
    frame_for_csv,
    reported_table,
)
from tlrepro.reporting.claims import Claim
from tlrepro.reporting.results import GroupTable, SourceModel, display_task, read_metrics
from tlrepro.training.selection import EXTRA_PROTOCOLS, PROTOCOLS

DSP = "DSP (M)"
DSP_SUM = "DSP Σ tasks (M)"
COST = "cost (mean run)"
MISSING = "—"
UNCONVERGED = "†"


@dataclass(frozen=True)
class Header:
    """Provenance printed at the top of tables.md."""

    profile: str
    seeds: list[int] | str
    commit: str
    date: str


def _format_cell(row: pd.Series) -> str:
    """`mean ± std (n)`; `mean (1)` for one seed; avg and reported values bare; ours with
    `UNCONVERGED` after the number when a run of the cell did not converge."""
    if row["kind"] == "reported":
        return f"{row['mean']:g}"  # as published, without invented precision
    mark = UNCONVERGED if row["unconverged"] > 0 else ""
    if row["task"] == AVG:
        return f"{row['mean']:.2f}{mark}"
    if row["n"] == 1:
        return f"{row['mean']:.2f}{mark} (1)"
    return f"{row['mean']:.2f}{mark} ± {row['std']:.2f} ({row['n']})"


def _unconverged_line(ours: pd.DataFrame) -> str | None:
    """The legend of `UNCONVERGED` under a table: which cells, and how many of their seeds."""
    marked = ours[(ours["unconverged"] > 0) & (ours["task"] != AVG)]
    if marked.empty:
        return None
    cells = "; ".join(
        f"{row['method']} on {display_task(row['task'])}: {row['unconverged']} of {row['n']}"
        for _, row in marked.iterrows()
    )
    return (
        f"{UNCONVERGED} not every seed of the cell converged (the profile's `convergence`: "
        "its validation accuracy still rose over its last epochs, or it had too few epochs "
        f"to tell); an avg is marked when one of its cells is. Seeds that did not converge: "
        f"{cells}."
    )


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


def _best_val_runs(
    frame: pd.DataFrame, group: GroupTable, column: str | None = None
) -> pd.DataFrame:
    """The group's rows at the best validation epoch; with `column`, only those that record
    it (a per-run figure only some methods report: DSP, RST density)."""
    runs = frame[(frame["group"] == group.name) & (frame["protocol"] == "best_val")]
    return runs if column is None else runs[runs[column].notna()]


def _with_dsp(body: pd.DataFrame, frame: pd.DataFrame, group: GroupTable) -> pd.DataFrame:
    """Where the methods report DSP (distinct stored parameters, millions): its mean per
    run, and its sum over the group's tasks of the per-task means (only when every task
    has one), which is what a paper's DSP for a benchmark adds up."""
    runs = _best_val_runs(frame, group, "dsp_millions")
    if runs.empty:
        return body
    dsp = runs.groupby("label")["dsp_millions"].mean()
    per_task = runs.groupby(["label", "task"])["dsp_millions"].mean().unstack("task")
    summed = per_task.reindex(columns=group.tasks).sum(axis=1, skipna=False).dropna()
    return body.assign(
        **{
            DSP: [f"{dsp[label]:.4g}" if label in dsp else MISSING for label in body.index],
            DSP_SUM: [
                f"{summed[label]:.4g}" if label in summed else MISSING for label in body.index
            ],
        }
    )


def _dsp_line(body: pd.DataFrame) -> str | None:
    """The legend of the DSP columns, under a table that has them."""
    if DSP not in body.columns:
        return None
    return (
        f"{DSP}: parameters a run stores beyond the shared pretrained weights, mean per run. "
        f"{DSP_SUM}: the per-task means summed over this group's tasks; a paper's DSP for a "
        "benchmark (CMKD's for Office-Home) is such a sum over its tasks, so compare it with "
        "this column."
    )


def _rst_density_line(frame: pd.DataFrame, group: GroupTable) -> str | None:
    """Each RST run's share of changed image-tower parameters: RST's claims (within a point
    of CMKD, >99 % less to store) depend on how sparse its update really was."""
    runs = _best_val_runs(frame, group, "rst_density")
    if runs.empty:
        return None
    parts = [
        f"{label} {rows['rst_density'].mean():.3%} (seeds "
        + ", ".join(
            f"{seed}: {value:.3%}"
            for seed, value in zip(rows["seed"], rows["rst_density"], strict=True)
        )
        + ")"
        for label, rows in runs.groupby("label", sort=False)
    ]
    return (
        "RST density (the share of image-tower parameters a run changed from the pretrained "
        "ones, mean over its runs): " + "; ".join(parts) + "."
    )


def duration(seconds: float) -> str:
    """Seconds in the unit a reader compares at a glance: s, min or h."""
    if seconds < 120:
        return f"{seconds:.3g} s"
    return f"{seconds / 60:.3g} min" if seconds < 7200 else f"{seconds / 3600:.3g} h"


def _with_cost(body: pd.DataFrame, frame: pd.DataFrame, group: GroupTable) -> pd.DataFrame:
    """A `COST` column: each method's mean wall time per run on the device it ran on."""
    runs = _best_val_runs(frame, group)
    runs = runs.assign(run_seconds=runs["run_seconds"].astype(float)).dropna(subset=["run_seconds"])
    if runs.empty:
        return body
    by_label = runs.groupby("label").agg(
        seconds=("run_seconds", "mean"), device=("device", devices)
    )
    cells = [
        f"{duration(by_label.seconds[label])} ({by_label.device[label] or 'device unrecorded'})"
        if label in by_label.index
        else MISSING
        for label in body.index
    ]
    return body.assign(**{COST: cells})


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
    runs = _best_val_runs(frame, group)
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


def _describe(source: SourceModel) -> str:
    """`model` on `dataset` with its source accuracies at the best validation epoch."""
    if source.metrics is None:
        return (
            f"`{source.model}` with the model zoo's weights for `{source.dataset}` "
            "(`source_weights: model`): not pretrained here, so no source accuracy of ours"
        )
    metrics = read_metrics(source.metrics)
    best = metrics["protocols"]["best_val"]
    kind = "zero-shot accuracy" if source.zero_shot else "accuracy"
    return (
        f"`{source.model}`, source `{source.dataset}`: {kind} on the source "
        f"{best['val_acc'] * 100:.2f} % (validation), {best['test_acc'] * 100:.2f} % (test), "
        f"at its best validation epoch {best['epoch']}/{metrics['epochs']}{_mix_note(source)}"
    )


def _mix_note(source: SourceModel) -> str:
    """What a source model pretrained on a mix saw: its parts, and whether the group's
    targets are among them (their labels then reached the source model, not the methods)."""
    if source.targets_seen is None:
        return ""
    parts = ", ".join(f"`{part}`" for part in source.parts)
    seen = ", ".join(f"`{target}`" for target in source.targets_seen)
    saw = (
        f"its pretraining saw the labelled images of the target dataset {seen}"
        if seen
        else "its pretraining saw no image of the group's target dataset"
    )
    return f"; `{source.dataset}` is the training images of {parts}: {saw}"


def _sources_lines(group: GroupTable) -> list[str]:
    if not group.sources:
        return ["Source model: none (no method starts from or reads a source model)."]
    if len(group.sources) == 1:
        return [f"Source model: {_describe(group.sources[0])}."]
    return ["Source models:", "", *(f"- {_describe(source)}" for source in group.sources)]


def _signed(value: float) -> str:
    return MISSING if math.isnan(value) else f"{value:+.2f}"


def _unsigned(value: Any) -> str:
    return MISSING if pd.isna(value) else f"{value:.2f}"


def _claim_row(row: pd.Series, reported: Mapping[str, Any]) -> list[str]:
    if row["relation"] == "better":
        statement = f"{row['method']} > {row['baseline']}"
    elif row["relation"] == "stores_less":
        statement = f"{row['method']} stores > {row['reduction']:g} % less than {row['baseline']}"
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
    compute = "" if pd.isna(row["cost_ratio"]) else f" at {row['cost_ratio']:.3g}x the compute"
    return [
        statement,
        _signed(row["mean_diff"]) + compute,
        interval,
        str(row["n"]),
        row["verdict"],
        _unsigned(row["detectable"]),
        MISSING if pd.isna(row["seeds_needed"]) else str(row["seeds_needed"]),
        paper,
        "; ".join(shorts),
    ]


def _reference_line(frame: pd.DataFrame, group: GroupTable) -> str:
    check = check_reference(frame, group)
    if check is None:
        return (
            "No reference floor is set for this group (`reference` in the config): its "
            "verdicts do not check that a baseline trained healthily."
        )
    return check.message


def _claims_lines(
    tested: pd.DataFrame, reported: Mapping[str, Any], frame: pd.DataFrame, group: GroupTable
) -> list[str]:
    """The Claims subsection: the honest protocol here, every protocol in claims.csv."""
    lines = ["", "### Claims", ""]
    rows = tested[tested["protocol"] == "best_val"]
    if rows.empty:
        return [*lines, "No claim of config/claims.yaml compares two of this group's methods."]
    table = tabulate(
        [_claim_row(row, reported) for _, row in rows.iterrows()],
        headers=[
            "claim",
            "Δ",
            "95 % interval",
            "pairs",
            "verdict",
            "detectable",
            "seeds needed",
            "paper Δ (cells)",
            "from",
        ],
        tablefmt="github",
        disable_numparse=True,
        colalign=("left", "right", "right", "right", "left", "right", "right", "right", "left"),
    )
    return [
        *lines,
        _reference_line(frame, group),
        "",
        "Δ: method − baseline in test accuracy points at the best validation epoch, mean over "
        "the (task, seed) pairs where both ran, at kx the compute: the method's run time over the "
        "baseline's, summed over those pairs; the other protocols are in the claims CSV "
        "beside this file. Detectable: the smallest |Δ| these pairs detect at their spread "
        f"(a {claims_module.POWER * 100:.0f} % chance that the paired t-interval excludes 0 "
        "on Δ's side); seeds needed: the seeds per task that would detect the paper's Δ at "
        "this spread (for a within claim, its margin: fewer miss a difference that large). "
        "A stores-less claim's Δ is instead the paired reduction of DSP, in percent.",
        "",
        table,
    ]


def _protocol_line(group: GroupTable) -> str | None:
    """How a group's splits differ from the held-out default (config `protocol`)."""
    if group.protocol != "transductive":
        return None
    return (
        "Protocol: transductive, as the CMKD release: every target image (labels unread) "
        "is both unlabelled training data and test data, and the labelled source is its "
        "whole domain but the validation carve-out the epoch is chosen on; the other "
        "groups test on target images their runs never saw."
    )


def _group_section(
    group: GroupTable,
    long: pd.DataFrame,
    frame: pd.DataFrame,
    tested: pd.DataFrame,
    reported: Mapping[str, Any],
    figures_dir: str,
    stats_figure: bool,
) -> str:
    figure = f"{figures_dir}/{GROUP_FIGURES['curves'].format(group=group.name)}"
    lines = [
        f"## {group.title}",
        "",
        f"Seeds: {', '.join(map(str, group.seeds))}. Learning curves (mean test accuracy "
        f"± std over seeds, validation accuracy dashed): [{figure}]({figure})",
    ]
    if stats_figure:
        stats = f"{figures_dir}/{GROUP_FIGURES['stats'].format(group=group.name)}"
        lines[-1] += f". Methods' own training statistics (epoch means): [{stats}]({stats})"
    lines += ["", *_sources_lines(group)]
    if protocol_line := _protocol_line(group):
        lines += ["", protocol_line]
    ours = long[(long["group"] == group.name) & (long["kind"] == "ours")]
    theirs = long[(long["group"] == group.name) & (long["kind"] == "reported")]
    labels = [label for _, label in group.methods]
    table = reported_table(reported, group)
    # the reported rows go under the protocol that measures what the paper reported
    beside = table.get("protocol_key", "best_val") if table is not None else None
    if beside not in group.all_protocols:
        beside = "best_val"
    headings = {**PROTOCOLS, **EXTRA_PROTOCOLS}
    for protocol in group.all_protocols:
        heading = headings[protocol]
        lines += ["", f"### {heading[0].upper()}{heading[1:]}", ""]
        if protocol == "best_val" and (selection := _selection_line(frame, group)):
            lines += [selection, ""]
        body = _pivot(ours[ours["protocol"] == protocol], labels, group)
        if protocol == beside and table is not None:
            short = table.get("short", group.reported)
            reported_labels = list(dict.fromkeys(theirs["method"]))
            rows = _pivot(theirs, reported_labels, group)
            rows.index = [f"reported: {label} [{short}]" for label in rows.index]
            body = pd.concat([body, rows])
        if protocol == "best_val":
            body = _with_cost(_with_dsp(body, frame, group), frame, group)
        lines.append(_markdown_table(body))
        if protocol == "best_val" and (dsp_line := _dsp_line(body)):
            lines += ["", dsp_line]
        if protocol == "best_val" and (density := _rst_density_line(frame, group)):
            lines += ["", density]
        if legend := _unconverged_line(ours[ours["protocol"] == protocol]):
            lines += ["", legend]
        if protocol == beside and table is not None:
            lines += ["", _reported_line(table, theirs)]
    lines += _claims_lines(tested[tested["group"] == group.name], reported, frame, group)
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
            f"than 2 pairs; `{claims_module.NOT_CONVERGED}`: a run of the pairs did not "
            f"converge (cells marked {UNCONVERGED}); `{claims_module.WITHHELD}`: the group's "
            "reference baseline is below its floor. A verdict is about this profile's "
            "setting, not the paper's; `paper Δ` is the papers' own difference, from "
            "config/reported.yaml.",
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
