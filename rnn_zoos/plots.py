"""The plots of a zoo's dataset card, drawn from the light columns of its data files."""

from __future__ import annotations

from pathlib import Path

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402
import pyarrow as pa  # noqa: E402
import pyarrow.compute as pc  # noqa: E402

from .format import ZooSpec  # noqa: E402
from .files import atomic_write  # noqa: E402

ASSETS_DIR = "assets"
SPLIT_COLOURS = {"train": "tab:blue", "validation": "tab:orange", "ood": "tab:red"}


def card_plots(folder: Path, spec: ZooSpec, rows: dict[str, pa.Table]) -> list[tuple[str, str]]:
    """Draw the card's plots into ``folder/assets``; returns ``(caption, relative path)`` per plot.

    ``rows`` holds, per split, a table with at least ``run``, ``step``, ``task``, ``accuracy`` and
    ``weight_decay`` (None or empty for an empty split).
    """
    rows = {split: table for split, table in rows.items() if table is not None and table.num_rows}
    plots = [
        ("Accuracy against training step: median and 10-90 % range over runs, per split", "accuracy_by_step.png", _accuracy_by_step),
        (f"Distribution of tasks per split ({spec.criterion_label})", "tasks_per_split.png", _tasks_per_split),
    ]
    if spec.scalar_task:
        plots.append(("Final accuracy against rotation angle, per weight decay", "accuracy_by_angle.png", _accuracy_by_task))
    made = []
    for caption, name, draw in plots:
        figure, axes = plt.subplots(figsize=(6.4, 4.0), dpi=100)
        draw(axes, spec, rows)
        figure.tight_layout()
        path = folder / ASSETS_DIR / name
        with atomic_write(path) as temporary:
            figure.savefig(temporary, format="png")
        plt.close(figure)
        made.append((caption, f"{ASSETS_DIR}/{name}"))
    return made


def _accuracy_by_step(axes: plt.Axes, spec: ZooSpec, rows: dict[str, pa.Table]) -> None:
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
    axes.legend()


def _tasks_per_split(axes: plt.Axes, spec: ZooSpec, rows: dict[str, pa.Table]) -> None:
    values = {}
    for split, table in rows.items():
        first = table.filter(pc.equal(table.column("step"), pc.min(table.column("step"))))
        values[split] = spec.task_criterion(first.column("task").to_pylist())
    everything = np.concatenate([np.asarray(v) for v in values.values()])
    bins = np.linspace(everything.min(), everything.max() + 1e-9, 25)
    axes.hist(list(values.values()), bins=bins, stacked=True, color=[SPLIT_COLOURS[s] for s in values], label=list(values))
    axes.set_xlabel(spec.criterion_label)
    axes.set_ylabel("runs")
    axes.legend()


def _accuracy_by_task(axes: plt.Axes, spec: ZooSpec, rows: dict[str, pa.Table]) -> None:
    table = pa.concat_tables(list(rows.values()))
    last = pc.max(table.column("step"))
    final = table.filter(pc.equal(table.column("step"), last))
    decay = np.asarray(final.column("weight_decay").to_pylist())
    angle = np.asarray(final.column("task").to_pylist())
    accuracy = np.asarray(final.column("accuracy").to_pylist())
    for value in sorted(set(decay.tolist())):
        chosen = decay == value
        axes.scatter(angle[chosen], accuracy[chosen], s=12, label=f"weight decay {value:g}")
    axes.set_xlabel(spec.criterion_label)
    axes.set_ylabel(f"accuracy at step {last.as_py()}")
    axes.set_xlim(0, 360)
    axes.legend()
