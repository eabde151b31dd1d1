"""The tables job: collect the runs, aggregate them, write tables, claims and figures.

Reporting goes one way, one module per step: `tlrepro.reporting.results` collects what the
runs wrote, `tlrepro.reporting.aggregate` turns it into means over seeds beside the papers'
numbers, and `tlrepro.reporting.markdown` and `tlrepro.reporting.figures` render that; this module
only wires them to files. It runs in the light `tables` job (no GPU, little
memory), so nothing here imports torch.
"""

from __future__ import annotations

import os
from collections.abc import Mapping, Sequence
from pathlib import Path

from tlrepro import storage
from tlrepro.plan.layout import GROUP_FIGURES
from tlrepro.reporting import aggregate, claims, figures, figures_blocks
from tlrepro.reporting.markdown import Header, render_markdown
from tlrepro.reporting.results import GroupTable, RunKey, collect, load_logs
from tlrepro.training.convergence import Criterion


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
    criterion: Criterion | None = None,
) -> None:
    """Write tables.md, tables.csv, claims.csv, one learning-curve figure
    per group and, where methods log their own statistics, one figure of those; each
    atomically."""
    reported = aggregate.load_reported(reported_path)
    tested_claims = claims.load_claims(claims_path, reported)
    frame = collect(groups, run_dirs, criterion)
    link = Path(os.path.relpath(figures_dir, Path(out_md).parent)).as_posix()
    stats_figures, usage_runs, usage_machines = [], [], []
    for group in groups:
        with_usage = [
            (key, run)
            for key, _, _, _, run in group.runs(run_dirs)
            if figures_blocks.has_usage(run)
        ]
        usage_runs += [run for _, run in with_usage]
        usage_keys = {key for key, _ in with_usage}
        logs = load_logs(group, run_dirs)
        names = {kind: name.format(group=group.name) for kind, name in GROUP_FIGURES.items()}
        rows = frame[frame["group"] == group.name]
        machines = rows["machine"].dropna()
        usage_machines += list(rows.loc[rows["method_key"].isin(usage_keys), "machine"].dropna())
        curves_png, stats_png = (Path(figures_dir) / names[kind] for kind in ("curves", "stats"))
        figures.learning_curves(group, aggregate.curves(logs), curves_png, machines)
        if statistics := aggregate.statistic_curves(logs):
            figures.training_statistics(group, statistics, stats_png, machines)
            stats_figures.append(group.name)
    if usage_runs:
        figure = Path(figures_dir) / figures_blocks.FIGURE
        figures_blocks.usage_bars(usage_runs, figure, usage_machines)  # as collect read them
    markdown = render_markdown(
        frame,
        groups,
        reported,
        header,
        tested_claims,
        figures_dir=link,
        stats_figures=stats_figures,
    )
    outputs = {
        Path(out_csv): aggregate.frame_for_csv(frame, groups, reported),
        Path(out_claims): aggregate.claims_for_csv(frame, groups, tested_claims, reported),
    }
    for path, table in outputs.items():
        with storage.atomic_output(path) as tmp:
            table.to_csv(tmp, index=False, float_format="%.4f")
    storage.write_text(out_md, markdown)
