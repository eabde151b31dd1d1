"""SpotTune's per-block usage: how often each block takes its fine-tuned path, as bars.

The trainer logs `usage_block<i>` (the epoch mean of the fraction of images routed
to block i's fine-tuned copy) in every SpotTune run's log.csv. This figure takes
the last epoch of each run, averages over seeds and draws one group of bars per
block and one colour per results group (e.g. the full split and N images per
class), which is the per-block view of the SpotTune paper. Call it with the runs'
folders, e.g.

    python -m tlrepro.reporting.figures_blocks results/figures/spottune-usage.png \\
        results/runs/quick/adaptive_*/spottune/*/seed*
"""

from __future__ import annotations

import argparse
from collections.abc import Iterable, Sequence
from pathlib import Path

import pandas as pd

from tlrepro import storage
from tlrepro.plan.layout import LOG_FILE, METRICS_FILE
from tlrepro.reporting.figures import trained_on
from tlrepro.reporting.results import read_metrics

PREFIX = "usage_block"
FIGURE = "spottune-usage.png"


def has_usage(run_dir: Path) -> bool:
    """Whether a run logged per-block usage (its log.csv header names usage_block columns)."""
    with open(Path(run_dir) / LOG_FILE) as handle:
        return PREFIX in handle.readline()


def last_epoch_usage(run_dirs: Sequence[Path]) -> pd.DataFrame:
    """One row per run: its group (the folder 4 levels up from seed<k>) and last-epoch usage."""
    rows = []
    for run_dir in map(Path, run_dirs):
        log = pd.read_csv(storage.verified(run_dir / LOG_FILE))
        columns = [c for c in log.columns if c.startswith(PREFIX)]
        if not columns:
            raise ValueError(f"{run_dir}/log.csv has no {PREFIX}* columns (not a SpotTune run?)")
        last = log.iloc[-1]
        rows.append({"group": run_dir.parents[2].name, **{c: last[c] for c in columns}})
    if not rows:
        raise ValueError("no runs given")
    return pd.DataFrame(rows)


def usage_bars(
    run_dirs: Sequence[Path], out_png: Path, machines: Iterable[str] | None = None
) -> None:
    """Bars of the mean (± std over seeds) fine-tuned-path usage per block, per group;
    `machines` the runs were trained on (default: read from their metrics.json)."""
    from matplotlib.figure import Figure

    frame = last_epoch_usage(run_dirs)
    blocks = sorted((c for c in frame.columns if c.startswith(PREFIX)), key=lambda c: int(c[11:]))
    groups = list(dict.fromkeys(frame["group"]))
    width = 0.8 / len(groups)
    fig = Figure(figsize=(max(6.4, 1.0 + 0.55 * len(blocks)), 3.8), layout="constrained")
    ax = fig.add_subplot()
    for index, group in enumerate(groups):
        part = frame[frame["group"] == group][blocks]
        positions = [b + (index - (len(groups) - 1) / 2) * width for b in range(len(blocks))]
        std = part.std().fillna(0.0) if len(part) > 1 else None
        ax.bar(positions, part.mean(), width, yerr=std, label=f"{group} ({len(part)} runs)")
    ax.set_xticks(range(len(blocks)), [c[len(PREFIX) :] for c in blocks])
    ax.set_xlabel("residual block")
    ax.set_ylabel("fraction routed to the fine-tuned copy")
    ax.set_ylim(0, 1)
    if machines is None:
        machines = recorded_machines(run_dirs)
    ax.legend(fontsize="small", title=trained_on(machines), title_fontsize="small")
    ax.set_title("SpotTune block usage (last epoch, mean ± std over seeds)")
    with storage.atomic_output(Path(out_png)) as tmp:
        fig.savefig(tmp, format="png", dpi=120)


def recorded_machines(run_dirs: Sequence[Path]) -> list[str]:
    """The machines runs recorded in their metrics.json (runs without one: none)."""
    metrics = [Path(run) / METRICS_FILE for run in run_dirs]
    timings = [read_metrics(path).get("timing", {}) for path in metrics if path.exists()]
    return [timing["machine"] for timing in timings if "machine" in timing]


def main(argv: Sequence[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("out_png", type=Path)
    parser.add_argument("run_dirs", nargs="+", type=Path)
    args = parser.parse_args(argv)
    usage_bars(args.run_dirs, args.out_png)


if __name__ == "__main__":
    main()
