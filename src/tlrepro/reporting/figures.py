"""Learning-curve figures, one PNG per results group, drawn from the aggregate.

They show what the three selection protocols pick from: the test curve next to
the validation curve, so a gap between the honest and the oracle numbers can
be seen. The curves come from `tlrepro.reporting.aggregate` (epoch means over seeds); this
module only draws. matplotlib is imported inside the functions (it costs a
second), and the figure is drawn on a bare `Figure`, so no GUI backend is ever
touched.
"""

from __future__ import annotations

import textwrap
from collections.abc import Iterable
from pathlib import Path

import pandas as pd

from tlrepro import storage
from tlrepro.reporting.results import GroupTable, display_task

LINESTYLES = ("-", "--", ":", "-.")
INCHES_PER_TITLE_CHARACTER = 0.11
"""How wide one character of a 12 pt suptitle is, roughly: titles wrap to the figure."""


def _frame(fig, title: str, handles: list, machines: Iterable[str]) -> None:
    """Title wrapped to the figure's width and the legend under the plots (beside them it
    hid a one-task figure's title), headed by the machines the runs were trained on."""
    width = fig.get_figwidth()
    fig.suptitle(textwrap.fill(title, max(20, int(width / INCHES_PER_TITLE_CHARACTER))))
    fig.legend(
        handles=handles,
        loc="outside lower center",
        ncols=min(3, len(handles)),
        fontsize="small",
        title=trained_on(machines),
        title_fontsize="small",
    )


def trained_on(machines: Iterable[str]) -> str:
    """The machines a figure's runs were trained on, for its legend: numbers differ between
    CPUs, so every figure says which one it came from."""
    return "trained on " + ("; ".join(sorted(set(machines))) or "a machine the runs did not record")


def learning_curves(
    group: GroupTable, curves: pd.DataFrame, out_png: Path, machines: Iterable[str] = ()
) -> None:
    """One subplot per task, one colour per method: test accuracy (mean ± std) and val dashed.

    `curves` is `aggregate.curves` of the group's logs; `machines` what the runs record of
    the machine they ran on (metrics.json's `timing.machine`)."""
    from matplotlib.figure import Figure
    from matplotlib.lines import Line2D
    from matplotlib.ticker import MaxNLocator

    colours = [f"C{i}" for i in range(len(group.methods))]
    fig = Figure(figsize=(max(6.4, 4.2 * len(group.tasks) + 1.0), 4.6), layout="constrained")
    axes = fig.subplots(1, len(group.tasks), squeeze=False, sharey=True)[0]
    for ax, task in zip(axes, group.tasks, strict=True):
        for colour, (key, label) in zip(colours, group.methods, strict=True):
            curve = curves[(curves["task"] == task) & (curves["method_key"] == key)]
            if curve.empty:
                continue
            epochs, mean, std = curve["epoch"], curve["test_mean"], curve["test_std"]
            ax.plot(epochs, mean, color=colour, label=label)
            ax.fill_between(epochs, mean - std, mean + std, color=colour, alpha=0.2, linewidth=0)
            ax.plot(epochs, curve["val_mean"], color=colour, linestyle="--")
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
    _frame(fig, group.title, handles, machines)
    with storage.atomic_output(out_png) as tmp:
        fig.savefig(tmp, format="png", dpi=120)


def training_statistics(
    group: GroupTable,
    statistics: dict[str, pd.DataFrame],
    out_png: Path,
    machines: Iterable[str] = (),
) -> None:
    """One subplot per statistic a method logs beside the fixed columns (e.g. GradMF's
    gradient cosines), one colour per method, one line style per task. `statistics` is
    `aggregate.statistic_curves` of the group's logs, which must not be empty."""
    if not statistics:
        raise ValueError(f"group {group.name!r}: no method logs a statistic of its own")
    from matplotlib.figure import Figure
    from matplotlib.lines import Line2D
    from matplotlib.ticker import MaxNLocator

    columns = min(3, len(statistics))
    rows = -(-len(statistics) // columns)
    fig = Figure(figsize=(max(6.4, 4.2 * columns + 1.6), 3.2 * rows + 1.2), layout="constrained")
    axes = fig.subplots(rows, columns, squeeze=False).flatten()
    colours = {key: f"C{i}" for i, (key, _) in enumerate(group.methods)}
    for ax, (name, frame) in zip(axes, statistics.items(), strict=False):
        for (key, task), curve in frame.groupby(["method_key", "task"]):
            style = LINESTYLES[group.tasks.index(task) % len(LINESTYLES)]
            ax.plot(curve["epoch"], curve[name].to_numpy(), color=colours[key], linestyle=style)
        ax.set_title(name.replace("_", " "))
        ax.set_xlabel("epoch")
        ax.xaxis.set_major_locator(MaxNLocator(integer=True))
        ax.grid(alpha=0.3)
    for ax in axes[len(statistics) :]:
        ax.set_visible(False)
    plotted = {key for frame in statistics.values() for key in frame["method_key"]}
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
    _frame(fig, f"{group.title}: training statistics (epoch means over seeds)", handles, machines)
    with storage.atomic_output(out_png) as tmp:
        fig.savefig(tmp, format="png", dpi=120)
