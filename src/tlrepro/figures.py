"""Learning-curve figures, one PNG per results group.

They show what the three selection protocols pick from: the test curve next to
the validation curve, so a gap between the honest and the oracle numbers can
be seen. matplotlib is imported inside the function (it costs a second), and
the figure is drawn on a bare `Figure`, so no GUI backend is ever touched.
"""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path
from typing import TYPE_CHECKING

import pandas as pd

from tlrepro import io
from tlrepro.plan import LOG_COLUMNS

if TYPE_CHECKING:
    from tlrepro.tables import GroupTable, RunKey

STATS_SUFFIX = "-stats.png"
LINESTYLES = ("-", "--", ":", "-.")
_TAGS = ("method_key", "label", "task", "seed")


def load_logs(group: GroupTable, run_dirs: Mapping[RunKey, Path]) -> pd.DataFrame:
    """Every run's log.csv of the group, tagged with method_key, label, task and seed."""
    logs = [
        pd.read_csv(run_dir / "log.csv").assign(method_key=key, label=label, task=task, seed=seed)
        for key, label, task, seed, run_dir in group.runs(run_dirs)
    ]
    if not logs:
        raise ValueError(f"group {group.name!r}: no runs to plot")
    return pd.concat(logs, ignore_index=True)


def learning_curves(group: GroupTable, run_dirs: Mapping[RunKey, Path], out_png: Path) -> None:
    """One subplot per task, one colour per method: test accuracy (mean ± std) and val dashed."""
    from matplotlib.figure import Figure
    from matplotlib.lines import Line2D
    from matplotlib.ticker import MaxNLocator

    from tlrepro.tables import display_task

    logs = load_logs(group, run_dirs)
    colours = [f"C{i}" for i in range(len(group.methods))]
    fig = Figure(figsize=(4.2 * len(group.tasks) + 1.0, 3.6), layout="constrained")
    axes = fig.subplots(1, len(group.tasks), squeeze=False, sharey=True)[0]
    for ax, task in zip(axes, group.tasks, strict=True):
        for colour, (key, label) in zip(colours, group.methods, strict=True):
            runs = logs[(logs["task"] == task) & (logs["method_key"] == key)]
            if runs.empty:
                continue
            curve = runs.groupby("epoch")[["test_acc", "val_acc"]].agg(["mean", "std"]) * 100.0
            epochs = curve.index.to_numpy()
            mean, std = curve[("test_acc", "mean")], curve[("test_acc", "std")].fillna(0.0)
            ax.plot(epochs, mean, color=colour, label=label)
            ax.fill_between(epochs, mean - std, mean + std, color=colour, alpha=0.2, linewidth=0)
            ax.plot(epochs, curve[("val_acc", "mean")], color=colour, linestyle="--")
        ax.set_title(display_task(task))
        ax.set_xlabel("epoch")
        ax.xaxis.set_major_locator(MaxNLocator(integer=True))
        ax.grid(alpha=0.3)
    axes[0].set_ylabel("accuracy (%)")
    handles = [
        Line2D([], [], color=c, label=label)
        for c, (_, label) in zip(colours, group.methods, strict=True)
    ]
    handles += [
        Line2D([], [], color="grey", label="test (mean ± std over seeds)"),
        Line2D([], [], color="grey", linestyle="--", label="validation (mean)"),
    ]
    fig.legend(handles=handles, loc="outside right upper", fontsize="small")
    fig.suptitle(group.title)
    with io.atomic_output(out_png) as tmp:
        fig.savefig(tmp, format="png", dpi=120)


def training_statistics(group: GroupTable, run_dirs: Mapping[RunKey, Path], out_png: Path) -> bool:
    """One subplot per statistic a method logs beside the fixed columns (e.g. GradMF's
    gradient cosines), epoch means averaged over seeds; one colour per method, one line
    style per task. Returns False, writing nothing, when no method of the group logs any."""
    logs = load_logs(group, run_dirs)
    stats = [c for c in logs.columns if c not in LOG_COLUMNS and c not in _TAGS]
    stats = [c for c in stats if logs[c].notna().any()]
    if not stats:
        return False
    from matplotlib.figure import Figure
    from matplotlib.lines import Line2D
    from matplotlib.ticker import MaxNLocator

    from tlrepro.tables import display_task

    columns = min(3, len(stats))
    rows = -(-len(stats) // columns)
    fig = Figure(figsize=(4.2 * columns + 1.6, 3.2 * rows), layout="constrained")
    axes = fig.subplots(rows, columns, squeeze=False).flatten()
    colours = {key: f"C{i}" for i, (key, _) in enumerate(group.methods)}
    for ax, stat in zip(axes, stats, strict=False):
        for (key, task), runs in logs[logs[stat].notna()].groupby(["method_key", "task"]):
            curve = runs.groupby("epoch")[stat].mean()
            style = LINESTYLES[group.tasks.index(task) % len(LINESTYLES)]
            ax.plot(curve.index, curve.to_numpy(), color=colours[key], linestyle=style)
        ax.set_title(stat.replace("_", " "))
        ax.set_xlabel("epoch")
        ax.xaxis.set_major_locator(MaxNLocator(integer=True))
        ax.grid(alpha=0.3)
    for ax in axes[len(stats) :]:
        ax.set_visible(False)
    plotted = set(logs.loc[logs[stats].notna().any(axis=1), "method_key"])
    handles = [
        Line2D([], [], color=colours[key], label=label)
        for key, label in group.methods
        if key in plotted
    ]
    handles += [
        Line2D(
            [], [], color="grey", linestyle=LINESTYLES[i % len(LINESTYLES)], label=display_task(t)
        )
        for i, t in enumerate(group.tasks)
    ]
    fig.legend(handles=handles, loc="outside right upper", fontsize="small")
    fig.suptitle(f"{group.title}: training statistics (epoch means over seeds)")
    with io.atomic_output(out_png) as tmp:
        fig.savefig(tmp, format="png", dpi=120)
    return True
