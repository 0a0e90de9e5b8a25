"""The plots of a zoo's dataset card, drawn from the light columns of its data files.

Every zoo's card shows accuracy against training step and the distribution of tasks over the
splits; a zoo kind adds its own (:meth:`rnn_zoos.zoos.ZooKind.card_plots`). Figures are drawn on
:class:`matplotlib.figure.Figure` objects, so importing the library leaves matplotlib's global
backend alone.
"""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc
from matplotlib.axes import Axes
from matplotlib.figure import Figure
from matplotlib.ticker import MaxNLocator

from ..common.figures import SPLIT_COLOURS, legend_beside, save_figure

if TYPE_CHECKING:
    from ..zoos import ZooKind

ASSETS_DIR = "assets"


def card_plots(folder: Path, kind: ZooKind, rows: dict[str, pa.Table]) -> list[tuple[str, str]]:
    """Draw the card's plots into ``folder/assets``; returns ``(caption, relative path)`` per plot.

    ``rows`` holds, per split, a table with at least ``run``, ``step``, ``task``, ``accuracy`` and the
    zoo's extra columns (None or empty for an empty split).
    """
    rows = {split: table for split, table in rows.items() if table is not None and table.num_rows}
    plots = [
        ("Accuracy against training step: median and 10-90 % range over runs, per split", "accuracy_by_step.png", accuracy_by_step),
        (f"Runs per split by their task's {kind.criterion_label} (the highest values form the ood split)",
         "tasks_per_split.png", tasks_per_split),
        *kind.card_plots(),
    ]
    made = []
    for caption, name, draw in plots:
        figure = Figure(figsize=(6.4, 4.0), dpi=100)
        draw(figure.add_subplot(), kind, rows)
        save_figure(figure, folder / ASSETS_DIR / name)
        made.append((caption, f"{ASSETS_DIR}/{name}"))
    return made


def accuracy_by_step(axes: Axes, kind: ZooKind, rows: dict[str, pa.Table]) -> None:
    """Median and 10-90 % band of ``accuracy`` per snapshot step, one line per split."""
    all_steps = sorted({step for table in rows.values() for step in table.column("step").to_pylist()})
    position = {step: index for index, step in enumerate(all_steps)}
    for split, table in rows.items():
        steps = np.asarray(table.column("step").to_pylist())
        accuracy = np.asarray(table.column("accuracy").to_pylist())
        xs = [position[step] for step in all_steps if (steps == step).any()]
        values = [accuracy[steps == step] for step in all_steps if (steps == step).any()]
        median = [np.median(v) for v in values]
        axes.fill_between(xs, [np.quantile(v, 0.1) for v in values], [np.quantile(v, 0.9) for v in values],
                          color=SPLIT_COLOURS[split], alpha=0.2, linewidth=0)
        axes.plot(xs, median, marker="o", color=SPLIT_COLOURS[split], label=split)
    axes.set_xticks(range(len(all_steps)), [str(step) for step in all_steps], rotation=45)
    axes.set_xlabel("training step (snapshot)")
    axes.set_ylabel("accuracy")
    axes.set_ylim(-0.02, 1.02)
    legend_beside(axes)


def first_snapshots(table: pa.Table) -> pa.Table:
    """The rows of ``table`` at its earliest step: one per run."""
    return table.filter(pc.equal(table.column("step"), pc.min(table.column("step"))))


def tasks_per_split(axes: Axes, kind: ZooKind, rows: dict[str, pa.Table]) -> None:
    """How many runs of each split have a task of each split-criterion value: bars side by side, never on top of each other."""
    values = {split: np.asarray(kind.task_criterion(first_snapshots(table).column("task").to_pylist())) for split, table in rows.items()}
    everything = np.concatenate(list(values.values()))
    low, high = float(everything.min()), float(everything.max())
    bins = np.linspace(low, high + max(1e-9, 1e-6 * abs(high)), 21)
    axes.hist(list(values.values()), bins=bins, color=[SPLIT_COLOURS[split] for split in values], label=list(values),
              rwidth=0.9, edgecolor="white", linewidth=0.5)
    axes.yaxis.set_major_locator(MaxNLocator(integer=True))
    axes.set_xlabel(kind.criterion_label)
    axes.set_ylabel("number of runs")
    legend_beside(axes)
