"""Per-group pages for Snakemake's HTML report (`snakemake --report results/report.html`).

Rendered from the aggregate the tables step wrote (tables and claims CSV, figures),
never from the runs, so the report and `results/tables.md` cannot disagree. One
folder per group; the Snakemake rule files each folder under the group's category.
"""

from __future__ import annotations

import shutil
from collections.abc import Mapping
from pathlib import Path

import pandas as pd

from tlrepro import storage
from tlrepro.plan.layout import GROUP_FIGURES
from tlrepro.reporting.claims import NOT_CONVERGED, POWER, WITHHELD
from tlrepro.reporting.markdown import UNCONVERGED

PROTOCOL = "best_val"
PAGE_FIGURES = {"curves": "3_learning_curves.png", "stats": "4_training_statistics.png"}
"""The page name of each of a group's figures (`layout.GROUP_FIGURES`), in page order."""


def _cell(row: pd.Series) -> str:
    if row["kind"] == "reported":
        return f"{row['mean']:.1f} (reported)"
    mark = UNCONVERGED if row["unconverged"] > 0 else ""
    return f"{row['mean']:.1f}{mark} ± {row['std']:.1f} ({row['n']})"


def results_table(tables: pd.DataFrame, group: str) -> pd.DataFrame:
    """Methods × tasks at the best validation epoch, ours and the papers' (labelled)."""
    rows = tables[(tables.group == group) & (tables.protocol == PROTOCOL)].copy()
    rows["cell"] = rows.apply(_cell, axis=1)
    rows["row"] = rows["method"].where(rows["kind"] == "ours", rows["method"] + " (reported)")
    order = list(dict.fromkeys(rows["row"]))
    tasks = list(dict.fromkeys(rows["task"]))
    table = rows.pivot(index="row", columns="task", values="cell").reindex(order)[tasks]
    return table.rename_axis(index="method", columns=None).fillna("")


def claims_table(claims: pd.DataFrame, group: str) -> pd.DataFrame:
    rows = claims[(claims.group == group) & (claims.protocol == PROTOCOL)]
    counts = {"n": "Int64", "unconverged": "Int64", "seeds_needed": "Int64"}
    return rows.drop(columns=["group", "protocol"]).astype(counts)


def _page(title: str, note: str, table: pd.DataFrame) -> str:
    body = table.to_html(border=0, na_rep="", float_format=lambda v: f"{v:.2f}")
    return f"<h2>{title}</h2>\n<p>{note}</p>\n{body}\n"


def write_report_pages(
    tables_csv: Path,
    claims_csv: Path,
    figures_dir: Path,
    titles: Mapping[str, str],
    out_dir: Path,
) -> list[Path]:
    """Write `<out_dir>/<group>/` pages (results, claims) and the group's figures."""
    counts = {"n": "Int64", "unconverged": "Int64"}
    tables = pd.read_csv(tables_csv, keep_default_na=False, na_values=[""], dtype=counts)
    claims = pd.read_csv(claims_csv)
    written = []
    for group, title in titles.items():
        folder = Path(out_dir) / group
        pages = {
            "1_results.html": _page(
                title,
                "Test accuracy (%) at the best validation epoch: mean ± std (seeds); "
                f"{UNCONVERGED}: a seed of the cell did not converge.",
                results_table(tables, group),
            ),
            "2_claims.html": _page(
                f"{title}: the papers' claims",
                "Δ = method − baseline in points, paired by (task, seed); 95 % t-interval. "
                f"{NOT_CONVERGED}: a paired run did not converge; {WITHHELD}: the group's "
                "reference baseline is below its floor (the note says why). detectable: "
                f"the smallest |Δ| the pairs detect with {POWER * 100:.0f} % power; "
                "seeds_needed: the seeds per task that would detect the paper's Δ (within: "
                "the margin). A stores-less claim's Δ is the reduction of DSP in percent.",
                claims_table(claims, group),
            ),
        }
        for name, html in pages.items():
            storage.write_text(folder / name, html)
            written.append(folder / name)
        for kind, name in PAGE_FIGURES.items():
            figure = Path(figures_dir) / GROUP_FIGURES[kind].format(group=group)
            if figure.exists():
                with storage.atomic_output(folder / name) as tmp:
                    shutil.copyfile(figure, tmp)
                written.append(folder / name)
    return written
