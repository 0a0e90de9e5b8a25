"""The whole study in one command: pretrain the six encoders, run every downstream target, write a report.

    python -m baselines.reproduce --zoo DIR_OR_REPO --scale tiny|small|paper --out DIR [--device cpu|cuda]

Writes ``DIR/REPORT.md`` (emulation loss per encoder as in the paper's Table 2; downstream metrics
per encoder, target and split with 95 % confidence intervals, for pretrained encoders, the same
architectures trained end to end, and the trivial floor; cloned performance; PCA plots of the
embeddings coloured by task and by accuracy), ``DIR/results.json`` with every number of the report,
and the runs themselves (``DIR/pretrain/<encoder>``, ``DIR/predictions.pt``). Every pretraining run
resumes where it stopped, so an interrupted reproduction continues when run again. The report
lists every setting that differs from the paper.
"""

from __future__ import annotations

import argparse
import json
import sys
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
import torch  # noqa: E402

from rnn_zoos.errors import ZooError, report  # noqa: E402
from rnn_zoos.files import atomic_write, check_out_folder, output_folder  # noqa: E402
from rnn_zoos.format import SPLITS, ZooInfo  # noqa: E402

from .data import ZooTensors, check_device, check_encoder_names, check_zoo, load_splits  # noqa: E402
from .downstream import embedder, run_downstream  # noqa: E402
from ..models.encoders import ENCODERS  # noqa: E402
from ..models.modeling import RNNEncoderModel  # noqa: E402
from .pretrain import PAPER_SETTINGS, PretrainConfig, pretrain  # noqa: E402

PAPER_EMULATION_LOSS = {
    "formal-lang": {
        "interactive_probing": 0.015,
        "noninteractive_probing": 0.023,
        "parameter_transformer": 0.043,
        "flat": 0.045,
        "dws": 0.046,
        "layerwise_statistics": 0.051,
    },
    "seq-mnist": {
        "interactive_probing": 0.017,
        "noninteractive_probing": 0.017,
        "flat": 0.024,
        "dws": 0.024,
        "layerwise_statistics": 0.039,
        "parameter_transformer": 0.067,
    },
}
"""Validation emulation loss (total variation) of the paper's Table 2."""


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


def structural_differences(zoo_name: str) -> list[str]:
    """What this reproduction does differently from the paper's code whatever the settings (keep in step with the code)."""
    items = [
        "The first evaluation is before the first update (the paper's loop evaluates after its first update and makes "
        "steps + 1 updates).",
        "Cloned performance is measured once, at the end, with the model best on validation (the paper's loop measures it "
        "with the current model at every evaluation).",
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
    if zoo_name == "seq-mnist":
        items.append(
            "MNIST cloned performance: the first 1000 images of a fixed shuffle of the zoo's validation images "
            "(the paper's code: a fresh shuffle of the images its hash64 split calls validation)."
        )
    return items


def describe(key: str, value: Any) -> str:
    """A setting's value as the report shows it (``None``: all RNNs, or the zoo's default probing length)."""
    if value is None:
        return "the zoo's default" if key == "probing_length" else "all"
    return str(value)


def differences(scale_name: str, zoo_name: str) -> list[str]:
    """Every setting of a scale that differs from the paper's code, every setting the code does not state, and the
    structural differences."""
    scale = SCALES[scale_name]
    config = {**{key: value for key, (value, _) in PAPER_SETTINGS.items()}, **scale.pretraining}
    changed = [
        f"{key} = {describe(key, config[key])} (paper: {describe(key, paper)}, `{source}`)"
        for key, (paper, source) in PAPER_SETTINGS.items()
        if config[key] != paper
    ]
    unstated = [f"{key} = {getattr(scale, key)} (paper: not stated)" for key in DOWNSTREAM_SETTINGS]
    return changed + unstated + structural_differences(zoo_name)


def fmt(value: float) -> str:
    """How every number appears in the report."""
    return f"{value:.4g}"


def cell(entry: dict[str, Any], metric: str) -> str:
    """``mean [low, high]`` of a metric of one method on one part."""
    low, high = entry["ci95"][metric]
    return f"{fmt(entry['mean'][metric])} [{fmt(low)}, {fmt(high)}]"


def pca_plots(out: Path, splits: dict[str, ZooTensors], encoders: dict[str, RNNEncoderModel]) -> list[str]:
    """2-D PCA of every encoder's embeddings of all RNNs, coloured by task and by accuracy (the paper's figures 6 and 7)."""
    rows = ZooTensors.concat([part for part in splits.values() if len(part)])
    spec = rows.spec
    if spec.scalar_task:
        colour_by_task, task_map, task_label = torch.tensor(rows.tasks), "twilight", spec.criterion_label
    else:
        unique = sorted(set(rows.tasks))
        colour_by_task, task_map, task_label = torch.tensor([unique.index(task) for task in rows.tasks]), "tab20", "task (index)"
    paths = []
    for name, colour, cmap, label in (
        ("pca_task.png", colour_by_task, task_map, task_label),
        ("pca_accuracy.png", rows.columns["accuracy"].cpu(), "viridis", "accuracy"),
    ):
        figure, axes = plt.subplots(2, 3, figsize=(12, 7.5), dpi=90)
        for axis, (encoder, model) in zip(axes.flat, encoders.items()):
            embedding = embedder(model)(rows).cpu()
            centred = embedding - embedding.mean(0)
            _, _, basis = torch.linalg.svd(centred, full_matrices=False)
            points = centred @ basis[:2].T
            scatter = axis.scatter(points[:, 0], points[:, 1], c=colour, cmap=cmap, s=6)
            axis.set_title(encoder)
            axis.set_xticks([])
            axis.set_yticks([])
        figure.colorbar(scatter, ax=axes, label=label, shrink=0.8)
        with atomic_write(out / name) as temporary:
            figure.savefig(temporary, format="png")
        plt.close(figure)
        paths.append(name)
    return paths


def write_report(out: Path, results: dict[str, Any]) -> None:
    """``REPORT.md``, every number taken from ``results``."""
    zoo = results["zoo_name"]
    lines = [
        f"# Reproduction report: {zoo}",
        "",
        f"Zoo `{results['zoo']}`, scale `{results['scale']}`, device `{results['device']}`. "
        "Every number below is in `results.json`.",
        "",
        "## Settings that differ from the paper",
        "",
        *[f"- {item}" for item in results["differences_from_paper"]],
        "",
        "## The zoo",
        "",
        "Notes recorded in its `meta/info.json`:",
        "",
        *[f"- {note}" for note in results["zoo_notes"]],
        "",
        "## Emulation loss (Table 2)",
        "",
        "| encoder | validation | ood | steps | paper (validation) |",
        "|---|---|---|---|---|",
    ]
    for encoder, entry in results["emulation"].items():
        paper = PAPER_EMULATION_LOSS[zoo].get(encoder)
        cells = [fmt(entry["validation_loss"]), fmt(entry["ood_loss"]), str(entry["steps"]), fmt(paper) if paper else "-"]
        lines.append(f"| {encoder} | " + " | ".join(cells) + " |")
    lines += [
        "",
        "## Downstream prediction",
        "",
        "Mean over seeds and bootstrapped 95 % confidence interval. `pretrained:` MLP on frozen embeddings; "
        "`supervised:` the same encoder trained end to end; `trivial`: the floor from the training targets.",
        "",
    ]
    for target, entry in results["downstream"]["targets"].items():
        metric = entry["primary_metric"]
        better = "higher" if entry["higher_is_better"] else "lower"
        lines += [f"### {target} ({metric}, {better} is better)", "", "| method | validation | ood |", "|---|---|---|"]
        for method, parts in entry["methods"].items():
            cells = [cell(parts[part], metric) if part in parts else "-" for part in ("validation", "ood")]
            lines.append(f"| {method} | " + " | ".join(cells) + " |")
        lines.append("")
    lines += [
        "## Cloned performance",
        "",
        "Mean absolute difference between the score of an RNN and of the emulator standing in for it, over RNNs spread "
        "over each split. *paper*: as the paper's code measures it (formal languages: correct among finished strings of "
        "64 samples each, the paper's acceptance check; MNIST: stored accuracy against one batch of 1000 validation "
        "images). *rnn-zoos*: the stored `accuracy` against the emulator's accuracy measured the same way.",
        "",
        "| encoder | " + " | ".join(f"{measure} {split}" for measure in ("paper", "rnn-zoos") for split in SPLITS) + " |",
        "|---|" + "---|" * 2 * len(SPLITS),
    ]
    for encoder, entry in results["cloned"].items():
        cells = [
            fmt(entry[measure][split]) if split in entry[measure] else "-"
            for measure in ("paper", "rnn_zoos")
            for split in SPLITS
        ]
        lines.append(f"| {encoder} | " + " | ".join(cells) + " |")
    lines += [
        "",
        *[f"![cloned performance of {encoder}](pretrain/{encoder}/cloned.png)" for encoder in results["cloned"]],
        "",
        "## Embeddings",
        "",
        *[f"![{name}]({name})" for name in results["plots"]],
        "",
    ]
    with atomic_write(out / "REPORT.md") as temporary:
        temporary.write_text("\n".join(lines))


def reproduce(zoo: str, scale_name: str, out: Path, device: str, encoders: list[str] | None = None) -> dict[str, Any]:
    """Run the study; returns the results (also in ``out/results.json``).

    Every option is checked before ``out`` is made; if the study fails, ``out`` is not left behind empty.
    """
    if scale_name not in SCALES:
        raise ZooError(f"--scale {scale_name!r} is unknown; choose tiny, small or paper")
    names = encoders or list(ENCODERS)
    check_encoder_names("--encoders", names)
    check_device(device)
    check_out_folder(out)
    info = check_zoo(zoo)
    with output_folder(out):
        return run_study(zoo, info, scale_name, out, device, names)


def run_study(zoo: str, info: ZooInfo, scale_name: str, out: Path, device: str, names: list[str]) -> dict[str, Any]:
    """Pretrain the encoders ``names`` on the zoo of ``info``, run the downstream study, write the report into ``out``."""
    scale = SCALES[scale_name]
    splits = load_splits(zoo, device)  # once, shared by every run below
    emulation, cloned, models = {}, {}, {}
    for encoder in names:
        run = out / "pretrain" / encoder
        summary = pretrain(PretrainConfig(zoo=zoo, encoder=encoder, out=str(run), device=device, **scale.pretraining), splits)
        model = RNNEncoderModel.from_pretrained(run / "encoder").to(device)
        models[encoder] = model
        emulation[encoder] = {
            "validation_loss": model.config.training["validation_loss"],
            "ood_loss": model.config.training["ood_loss"],
            "steps": model.config.training["steps"],
            "trained_steps": summary["steps"],
        }
        cloned[encoder] = {
            measure: {split: entry[key] for split, entry in summary.get("cloned", {}).items()}
            for measure, key in (("paper", "mean_abs_difference"), ("rnn_zoos", "rnn_zoos_mean_abs_difference"))
        }
    downstream, outputs = run_downstream(
        zoo,
        {name: embedder(model) for name, model in models.items()},
        names,
        seeds=scale.seeds,
        probe_steps=scale.probe_steps,
        supervised_steps=scale.supervised_steps,
        supervised_batch=scale.supervised_batch,
        device=device,
        splits=splits,
    )
    with atomic_write(out / "predictions.pt") as temporary:
        torch.save(outputs, temporary)
    results = {
        "zoo": zoo,
        "zoo_name": info.zoo,
        "scale": scale_name,
        "settings": asdict(scale),
        "device": device,
        "differences_from_paper": differences(scale_name, info.zoo),
        "zoo_notes": info.notes,
        "emulation": emulation,
        "downstream": downstream,
        "cloned": cloned,
        "paper_emulation_loss": PAPER_EMULATION_LOSS[info.zoo],
        "plots": pca_plots(out, splits, models),
    }
    with atomic_write(out / "results.json") as temporary:
        temporary.write_text(json.dumps(results, indent=1))
    write_report(out, results)
    return results


def main(argv: list[str] | None = None) -> int:
    """Command-line entry point; returns the exit status."""
    parser = argparse.ArgumentParser(prog="python -m baselines.reproduce", description=__doc__.split("\n")[0])
    parser.add_argument("--zoo", required=True)
    parser.add_argument("--scale", default="tiny", help="tiny (CI, minutes on a CPU), small, or paper (the paper's settings)")
    parser.add_argument("--out", required=True, type=Path)
    parser.add_argument("--encoders", nargs="*", default=None, help="a subset of the six encoders (default: all)")
    parser.add_argument("--device", choices=["cpu", "cuda"], default="cuda" if torch.cuda.is_available() else "cpu")
    args = parser.parse_args(argv)
    try:
        reproduce(args.zoo, args.scale, args.out, args.device, args.encoders)
    except ZooError as error:
        return report(error)
    print(f"wrote {args.out / 'REPORT.md'}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
