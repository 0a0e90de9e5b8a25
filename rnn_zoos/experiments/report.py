"""The report of a reproduction (``REPORT.md``): every number from ``results.json``, each table and figure explained.

Besides the tables, the report says in plain sentences where a result is degenerate (every method
at exact match 0, every emulator scoring 0, confidence intervals from too few seeds), so that a
reader does not take such a number for a finding.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import matplotlib
import torch
from matplotlib.figure import Figure

from rnn_zoos.common.files import atomic_write
from rnn_zoos.format.info import SPLITS, ZooInfo
from rnn_zoos.common.figures import save_figure
from rnn_zoos.zoos import zoo_kind

from .data import ZooTensors
from .downstream import embedder
from .pretrain_config import PAPER_SETTINGS
from ..models.encoders.registry import folder_name
from ..models.modeling import RNNEncoderModel

@dataclass(frozen=True)
class Scale:
    """How much compute a reproduction spends: the pretraining options it sets, and the downstream study's."""

    pretraining: dict[str, Any]
    """:class:`PretrainConfig` options; those left out keep the paper's values (the defaults)."""
    seeds: int
    probe_steps: int
    supervised_steps: int
    supervised_batch: int


SCALES = {
    "tiny": Scale({"steps": 30, "batch_rnns": 8, "eval_every": 15, "eval_rnns": 8, "cloned_rnns": 1, "lr": 1e-3}, 2, 200, 10, 8),
    "small": Scale({"steps": 3000, "batch_rnns": 32, "eval_every": 500}, 3, 1000, 1000, 64),
    "paper": Scale({}, 5, 5000, 20_000, 64),
}
DOWNSTREAM_SETTINGS = ("seeds", "probe_steps", "supervised_steps", "supervised_batch")
"""Settings of the downstream study; the paper's code has no downstream script, so none of them is known from it."""


def structural_differences() -> list[str]:
    """What this reproduction does differently from the paper's code whatever the settings (keep in step with the code)."""
    return [
        "Sampling draws from counter-based uniform numbers by inverse CDF (the paper's code: torch.multinomial); the same "
        "distribution, other random numbers.",
        "The probing encoders leave out two parameter tensors that no computation of the paper's module reads (learned "
        "initial reader states, one static code past the last step): 0.1 % fewer parameters.",
        "Downstream predictors: an MLP (64, 64) on standardised frozen embeddings, AdamW lr 1e-3, selected on validation; "
        "the supervised comparison trains the same encoder with an MLP head end to end. Not stated in the paper's code "
        "(it has no downstream script).",
        "Confidence intervals: bootstrap over the seeds' metrics (not stated in the paper's code).",
        "PCA plots: fitted on the embeddings of all splits (the paper's code fits on the last split it embeds).",
    ]


def describe(key: str, value: Any) -> str:
    """A setting's value as the report shows it (``None``: all RNNs, or the zoo's default probing length)."""
    if value is None:
        return "the zoo's default" if key == "probing_length" else "all"
    return str(value)


def differences(scale_name: str, info: ZooInfo) -> list[str]:
    """Every setting of a scale that differs from the paper's code, every setting the code does not state, the
    structural differences, and how the zoo of ``info`` differs from the paper's conventions if it was built under an
    earlier format."""
    scale = SCALES[scale_name]
    config = {**{key: value for key, (value, _) in PAPER_SETTINGS.items()}, **scale.pretraining}
    changed = [
        f"{key} = {describe(key, config[key])} (paper: {describe(key, paper)}, `{source}`)"
        for key, (paper, source) in PAPER_SETTINGS.items()
        if config[key] != paper
    ]
    unstated = [f"{key} = {getattr(scale, key)} (paper: not stated)" for key in DOWNSTREAM_SETTINGS]
    earlier = [f"The zoo was built by rnn-zoos under format {info.format_version}: {convention}."
               for convention in zoo_kind(info.zoo).earlier_conventions(info.builder)]
    return changed + unstated + structural_differences() + earlier


def fmt(value: float | None) -> str:
    """How every number appears in the report (``-`` for none, such as the loss of an empty split)."""
    return "-" if value is None else f"{value:.4g}"


def cell(entry: dict[str, Any], metric: str) -> str:
    """``mean [low, high]`` of a metric of one method on one part."""
    low, high = entry["ci95"][metric]
    return f"{fmt(entry['mean'][metric])} [{fmt(low)}, {fmt(high)}]"



FEW_SEEDS = 3
"""With fewer seeds than this, the report says its confidence intervals mean little."""
FEW_CLONED = 5
"""With fewer RNNs per split than this, the report says its cloned performance describes single RNNs."""


def write_report(out: Path, results: dict[str, Any]) -> None:
    """``REPORT.md``, every number taken from ``results``."""
    kind = zoo_kind(results["zoo_name"])
    lines = [f"# Reproduction report: {kind.name}", "",
             f"Zoo `{results['zoo']}`, scale `{results['scale']}`, device `{results['device']}`. Every number below is in "
             "`results.json`.", ""]
    lines += _zoo_section(results)
    lines += ["## Settings that differ from the paper", "", *[f"- {item}" for item in results["differences_from_paper"]], ""]
    lines += _emulation_section(results)
    lines += _downstream_section(results)
    lines += _cloned_section(results)
    lines += ["## Embeddings", ""]
    for plot in results["plots"]:
        lines += [f"![{plot['caption']}]({plot['path']})", "", f"*{plot['caption']}*", ""]
    with atomic_write(out / "REPORT.md") as temporary:
        temporary.write_text("\n".join(lines))


def _zoo_section(results: dict[str, Any]) -> list[str]:
    sizes = results["zoo_splits"]
    lines = ["## The zoo", "", "| split | runs | rows (RNN snapshots) | tasks |", "|---|---|---|---|"]
    lines += [f"| {split} | {entry['runs']} | {entry['rows']} | {entry['tasks']} |" for split, entry in sizes.items()]
    rows = results["downstream"]["rows"]
    lines += ["", f"Downstream predictors train on `train` plus the runs of half of the `ood` tasks ({rows['fit']} rows), are "
              f"selected on `validation` ({rows['validation']} rows) and are reported on `validation` and on the other half of "
              f"`ood` ({rows['ood']} rows).", "", "Notes recorded in the zoo's `meta/info.json`:", "",
              *[f"- {note}" for note in results["zoo_notes"]], ""]
    return lines


def _emulation_section(results: dict[str, Any]) -> list[str]:
    paper = results["paper_emulation_loss"]
    lines = ["## Emulation loss (Table 2)", "",
             "Total variation between the emulator's output distributions and the RNN's, on one fixed recorded sequence of "
             "every validation and every ood RNN (lower is better). *parameters*: the encoder's. *steps*: the pretraining "
             "step (one batch of RNNs per step) of the checkpoint kept, the one best on validation, out of the steps "
             "trained.", "",
             "| encoder | parameters | validation | ood | steps (kept / trained) | paper (validation) |", "|---|---|---|---|---|---|"]
    for encoder, entry in results["emulation"].items():
        reference = fmt(paper[encoder]) if encoder in paper else "-"
        lines.append(f"| {encoder} | {entry['parameters']:,} | {fmt(entry['validation_loss'])} | {fmt(entry['ood_loss'])} | "
                     f"{entry['steps']} / {entry['trained_steps']} | {reference} |")
    if any(entry.get("selected_on") == "ood" for entry in results["emulation"].values()):
        lines += ["", "The zoo has no validation RNNs, so the checkpoint kept is the one best on ood, and its ood loss is no "
                  "held-out measure."]
    return lines + [""]


def _downstream_section(results: dict[str, Any]) -> list[str]:
    downstream = results["downstream"]
    lines = ["## Downstream prediction", "",
             "Mean over seeds and bootstrapped 95 % confidence interval of the primary metric; further metrics of the target "
             "(such as each task component) as means. `pretrained:` an MLP on frozen embeddings; `supervised:` the same "
             "encoder trained end to end; `trivial`: the floor, predicted from the training targets alone.", ""]
    if downstream["seeds"] < FEW_SEEDS:
        lines += [f"These intervals come from {downstream['seeds']} seed(s) each: a bootstrap over so few values is no "
                  "real confidence interval; use more seeds (scale `small` or `paper`) for claims.", ""]
    for target, entry in downstream["targets"].items():
        metric = entry["primary_metric"]
        better = "higher" if entry["higher_is_better"] else "lower"
        others = [name for name in next(iter(next(iter(entry["methods"].values())).values()))["mean"] if name != metric]
        header = ["method", "validation", "ood", *[f"{name} (validation / ood)" for name in others]]
        lines += [f"### {target} ({metric}, {better} is better)", "", "| " + " | ".join(header) + " |", "|---" * len(header) + "|"]
        for method, parts in entry["methods"].items():
            cells = [cell(parts[part], metric) if part in parts else "-" for part in ("validation", "ood")]
            cells += [" / ".join(fmt(parts[part]["mean"][name]) if part in parts else "-" for part in ("validation", "ood"))
                      for name in others]
            lines.append(f"| {method} | " + " | ".join(cells) + " |")
        lines += [""] + _degenerate_downstream(metric, entry) + [""]
    return lines


def _degenerate_downstream(metric: str, entry: dict[str, Any]) -> list[str]:
    """Sentences for a target whose results say nothing: every method at 0 exact match, or none above the floor."""
    means = {method: [parts[part]["mean"][metric] for part in parts] for method, parts in entry["methods"].items()}
    if metric == "exact_match" and all(value == 0 for values in means.values() for value in values):
        return ["Every method, the floor included, gets no task exactly right: with this zoo and these settings, exact "
                "task prediction cannot tell the methods apart; the per-component scores can."]
    floor = means.get("trivial", [])
    better = (lambda a, b: a > b) if entry["higher_is_better"] else (lambda a, b: a < b)
    beating = [method for method, values in means.items() if method != "trivial"
               and any(better(value, reference) for value, reference in zip(values, floor))]
    if floor and len(means) > 1 and not beating:
        return ["No method does better than the trivial floor on this target."]
    return []


OFFICIAL_CLONED = "### The paper's figure: the smallest difference over the evaluations"
BEST_MODEL_CLONED = "### rnn-zoos' figure: the model best on validation"


def _cloned_section(results: dict[str, Any]) -> list[str]:
    measures = (("paper", "paper"), ("rnn_zoos", "rnn-zoos"))
    lines = ["## Cloned performance", "",
             "Mean absolute difference between the score of an RNN and of the emulator standing in for it, over RNNs spread "
             "over a split (lower is better).", "", OFFICIAL_CLONED, "",
             "Measured with the paper's scores on the validation RNNs at every evaluation, with the model of that moment (its "
             "`min return difference`): the smallest, and the step it was reached at.", "",
             "| encoder | smallest difference (validation) | at step | evaluations |", "|---|---|---|---|"]
    for encoder, entry in results["cloned"].items():
        official = entry.get("official_min") or {}
        lines.append(f"| {encoder} | {fmt(official['min_mean_abs_difference']) if official else '-'} | "
                     f"{official.get('step', '-')} | {official.get('evaluations', '-')} |")
    lines += ["", BEST_MODEL_CLONED, "", "Measured once, with the model best on validation, on RNNs of every split. *paper*: "
              "with the paper's scores; *rnn-zoos*: the stored `accuracy` against the emulator's accuracy measured the same way.", "",
              "| encoder | " + " | ".join(f"{label} {split}" for _, label in measures for split in SPLITS) + " |",
              "|---|" + "---|" * 2 * len(SPLITS)]
    for encoder, entry in results["cloned"].items():
        cells = [fmt(entry[measure][split]) if split in entry[measure] else "-" for measure, _ in measures for split in SPLITS]
        lines.append(f"| {encoder} | " + " | ".join(cells) + " |")
    measured = {count for entry in results["cloned"].values() for count in entry.get("rnns", {}).values()}
    if measured and max(measured) < FEW_CLONED:
        counts = " or ".join(map(str, sorted(measured)))
        lines += ["", f"Each split was measured on {counts} RNN(s) only (the paper: 20), so these differences describe single "
                  "RNNs, not the encoders: a 0 can be one RNN and its emulator both scoring 0."]
    zero = [encoder for encoder, entry in results["cloned"].items() if entry.get("emulated_all_zero")]
    if zero:
        lines += ["", f"Every emulator of {', '.join(zero)} scored 0 on every RNN it stood in for, so its differences are just the "
                  "RNNs' own scores, and equal across such encoders: these emulators have not learnt their RNNs yet."]
    lines.append("")
    for encoder in results["cloned"]:
        caption = (f"Cloned performance of {encoder}: the score of each RNN (x) against that of the emulator standing in for it "
                   "(y), the paper's measure; on the diagonal the emulator does exactly as well.")
        lines += [f"![{caption}](pretrain/{folder_name(encoder)}/cloned.png)", "", f"*{caption}*", ""]
    return lines


def pca_plots(out: Path, splits: dict[str, ZooTensors], encoders: dict[str, RNNEncoderModel]) -> list[dict[str, str]]:
    """2-D PCA of every encoder's embeddings of all RNNs, coloured by task and by accuracy (the paper's figures 6 and 7).

    Axes are PC1 and PC2 with the share of variance each explains. Tasks get a categorical legend
    when there are at most :data:`MAX_LEGEND_TASKS` of them, else a colour scale of the split criterion.
    Returns ``{"path", "caption"}`` per figure.
    """
    rows = ZooTensors.concat([part for part in splits.values() if len(part)])
    kind = rows.kind
    tasks = sorted(set(rows.tasks))
    categorical = not kind.scalar_task and len(tasks) <= MAX_LEGEND_TASKS
    projections = {name: _pca(embedder(model)(rows).cpu()) for name, model in encoders.items()}
    figures = []
    for name, what in (("pca_task.png", "task"), ("pca_accuracy.png", "accuracy")):
        lines = max(2, math.ceil(len(projections) / 3))  # of three plots each: six encoders as before, more below
        figure = Figure(figsize=(12, 3.75 * lines), dpi=90, layout="constrained")
        axes = figure.subplots(lines, 3, squeeze=False)
        scatter = None
        for axis, (encoder, (points, explained)) in zip(axes.flat, projections.items()):
            if what == "task" and categorical:
                for index, task in enumerate(tasks):
                    chosen = torch.tensor([value == task for value in rows.tasks])
                    axis.scatter(points[chosen, 0], points[chosen, 1], s=6, color=_TASK_COLOURS(index % 20), label=str(kind.task_cell(task)))
            else:
                colour = torch.tensor(kind.task_criterion(rows.tasks)) if what == "task" else rows.columns["accuracy"].cpu()
                scatter = axis.scatter(points[:, 0], points[:, 1], c=colour, cmap="twilight" if kind.scalar_task and what == "task" else "viridis", s=6)
            axis.set_title(encoder)
            axis.set_xlabel(f"PC1 ({explained[0]:.0%} of variance)")
            axis.set_ylabel(f"PC2 ({explained[1]:.0%} of variance)")
        for axis in list(axes.flat)[len(projections):]:
            axis.set_visible(False)
        if what == "task" and categorical:
            handles, labels = axes.flat[0].get_legend_handles_labels()
            figure.legend(handles, labels, title="task", loc="outside right center", fontsize="small", markerscale=2)
        elif scatter is not None:
            figure.colorbar(scatter, ax=axes, label=kind.criterion_label if what == "task" else "accuracy", shrink=0.8)
        save_figure(figure, out / name)
        coloured = ("its task" if categorical else f"its task's {kind.criterion_label}") if what == "task" else "its accuracy"
        figures.append({"path": name, "caption": f"Embeddings of every RNN of the zoo (all splits and snapshots) by each encoder, "
                                                 f"projected on their first two principal components; one point per RNN snapshot, "
                                                 f"coloured by {coloured}."})
    return figures


MAX_LEGEND_TASKS = 20
"""Most tasks a PCA plot names in a legend; with more it colours by the split criterion."""
_TASK_COLOURS = matplotlib.colormaps["tab20"]


def _pca(embedding: torch.Tensor) -> tuple[torch.Tensor, list[float]]:
    """Points ``[N, 2]`` on the first two principal components, and the share of variance each explains."""
    centred = embedding.double() - embedding.double().mean(0)
    _, singular, basis = torch.linalg.svd(centred, full_matrices=False)
    variance = singular.square()
    total = float(variance.sum()) or 1.0
    shares = [float(value) / total for value in variance[:2]] + [0.0] * max(0, 2 - len(variance))
    points = centred @ basis[:2].T
    if points.shape[1] < 2:
        points = torch.cat([points, torch.zeros(len(points), 2 - points.shape[1], dtype=points.dtype)], dim=1)
    return points.float(), shares
