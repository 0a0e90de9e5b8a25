"""Emulation: how well the emulator, given an RNN's embedding, reproduces that RNN.

Two measures. The emulation loss on the RNN's recorded inputs (total variation, as the paper's
code, or reverse KL). And the *cloned performance* (:func:`cloned_scores`): the emulator replaces
the RNN on its task and its score is compared with the RNN's own. The zoo kind scores both
(:meth:`rnn_zoos.zoos.ZooKind.cloned_scores`): as the paper's code measures it (``paper``), and as
the zoo's stored ``accuracy`` was measured (``rnn_zoos``).
"""

from __future__ import annotations

from pathlib import Path
from typing import Any, Literal

import torch
from matplotlib.figure import Figure

from rnn_zoos.common.figures import SPLIT_COLOURS, legend_beside, save_figure, set_title
from rnn_zoos.lstm.symmetry import permute_hidden, random_permutations
from rnn_zoos.zoos import CLONED_MEASURES, SequenceModel, rnn_model

from .data import ZooTensors
from ..models.modeling import EmulatorModel, RNNEncoderModel

LossKind = Literal["total_variation", "reverse_kl"]


def target_distribution(stored: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """The RNN's output distributions as the paper's loss reads them from the stored (float16) log-probabilities: as
    ``torch.distributions.Categorical(logits=stored)`` renormalises them (minus their log-sum-exp), then by softmax.
    Returns the log-probabilities and the probabilities, float32."""
    log_p = stored.float() - stored.float().logsumexp(dim=-1, keepdim=True)
    return log_p, torch.softmax(log_p, dim=-1)


def emulation_loss(logits: torch.Tensor, target_log_probs: torch.Tensor, kind: LossKind = "total_variation") -> torch.Tensor:
    """Mean over positions of the distance between the emulator's distributions and the RNN's (the stored log-probs
    ``target_log_probs``, renormalised as the paper's code does: :func:`target_distribution`).

    ``total_variation``: half the L1 distance of the probabilities. ``reverse_kl``: KL(emulator || RNN).
    """
    log_q = torch.log_softmax(logits, dim=-1)
    log_p, p = target_distribution(target_log_probs)
    if kind == "total_variation":
        return 0.5 * (log_q.exp() - p).abs().sum(dim=-1).mean()
    if kind == "reverse_kl":
        return (log_q.exp() * (log_q - log_p)).sum(dim=-1).mean()
    raise ValueError(f"unknown emulation loss {kind!r}; use total_variation or reverse_kl")


@torch.no_grad()
def evaluate_emulation(
    encoder: RNNEncoderModel,
    emulator: EmulatorModel,
    rows: ZooTensors,
    index: torch.Tensor,
    sequence: torch.Tensor,
    kind: LossKind,
    chunk: int = 64,
    permutations: torch.Generator | None = None,
) -> float:
    """Mean emulation loss of the rows ``index`` on their recorded sequences ``sequence [len(index), k]``.

    ``permutations``: for encoders trained on permuted RNNs, each chunk of RNNs is permuted (one
    permutation per layer) from this generator, as the paper's evaluation passes them through the same
    augmentation as training.
    """
    if len(index) == 0:
        return float("nan")
    total = 0.0
    for start in range(0, len(index), chunk):
        part, part_sequence = index[start : start + chunk], sequence[start : start + chunk]
        params = rows.params(part)
        if permutations is not None:
            params = permute_hidden(params, random_permutations(params, permutations, shared=True))
        inputs, targets = rows.sequences(part, part_sequence)
        embedding = encoder(params).embeddings.repeat_interleave(part_sequence.shape[1], dim=0)
        logits = emulator(inputs, embedding).logits
        total += emulation_loss(logits, targets, kind).item() * len(part)
    return total / len(index)


def evaluation_rows(count: int, wanted: int) -> torch.Tensor:
    """``wanted`` row positions spread evenly over ``count`` rows (the paper's ``torch.linspace(0, n - 1, k).long()``)."""
    if count == 0:
        return torch.zeros(0, dtype=torch.long)
    return torch.linspace(0, count - 1, wanted).long().unique()


def emulator_model(emulator: EmulatorModel, embedding: torch.Tensor) -> SequenceModel:
    """The emulator conditioned on each of M embeddings ``[M, D]`` as a :data:`rnn_zoos.zoos.SequenceModel`: inputs
    ``[M, B, T, input_size]`` (B sequences per model), continued step by step through the carried state."""

    def run(inputs: torch.Tensor, state: Any) -> tuple[torch.Tensor, Any]:
        models, batch, steps = inputs.shape[:3]
        flat = embedding.repeat_interleave(batch, dim=0)
        output = emulator(inputs.reshape(models * batch, steps, -1), flat, state, first=state is None)
        return output.logits.view(models, batch, steps, -1), output.state

    return run


@torch.no_grad()
def cloned_scores(encoder: RNNEncoderModel, emulator: EmulatorModel, rows: ZooTensors, index: torch.Tensor,
                  data: Any = None, draw: int = 0, measures: tuple[str, ...] = CLONED_MEASURES) -> dict[str, tuple[torch.Tensor, torch.Tensor]]:
    """The cloned performance of the rows ``index``: ``(original, emulated)`` scores ``[len(index)]`` by each of
    ``measures`` (``paper``, ``rnn_zoos``), from the zoo kind; ``data``: what its task needs
    (:meth:`ZooKind.validation_data`); ``draw``: which random draw of samples or images (:meth:`ZooKind.cloned_scores`)."""
    params = rows.params(index)
    return rows.kind.cloned_scores(rnn_model(params), emulator_model(emulator, encoder(params).embeddings), rows, index, data, draw, measures)


def mean_abs_difference(original: torch.Tensor, cloned: torch.Tensor) -> float:
    """The paper's ``return difference``: mean absolute difference of original and cloned scores."""
    return float((original - cloned).abs().mean())


def scatter_plot(path: Path, results: dict[str, tuple[torch.Tensor, torch.Tensor]], title: str, axis_label: str) -> None:
    """Original against emulated score, one colour per split, with the diagonal."""
    figure = Figure(figsize=(7, 5), dpi=100)
    axes = figure.add_subplot()
    for split, (original, cloned) in results.items():
        axes.scatter(original, cloned, s=14, color=SPLIT_COLOURS[split],
                     label=f"{split}: {len(original)} RNNs,\nmean |diff| {float((original - cloned).abs().mean()):.3f}")
    axes.plot([0, 1], [0, 1], color="grey", linewidth=1)
    axes.set_xlabel(f"{axis_label} of the original RNN")
    axes.set_ylabel(f"{axis_label} of the emulator standing in for it")
    axes.set_xlim(-0.02, 1.02)
    axes.set_ylim(-0.02, 1.02)
    set_title(axes, title)
    legend_beside(axes)
    save_figure(figure, path)


def loss_plot(path: Path, log: list[dict[str, float | None]], title: str) -> None:
    """The emulation losses of a pretraining run's ``log.jsonl`` against the step: training (the mean since the last
    evaluation, as logged), validation and ood, on a logarithmic axis."""
    figure = Figure(figsize=(7, 4.5), dpi=100)
    axes = figure.add_subplot()
    for key, label, colour in (("train", "training", "tab:green"),
                               ("validation", "validation", SPLIT_COLOURS["validation"]), ("ood", "ood", SPLIT_COLOURS["ood"])):
        points = [(entry["step"], entry[key]) for entry in log if entry.get(key) is not None and entry[key] > 0]
        if points:
            steps, losses = zip(*points)
            axes.plot(steps, losses, marker="o" if len(points) < 30 else None, markersize=3, color=colour, label=label)
    axes.set_yscale("log")
    axes.set_xlabel("training step")
    axes.set_ylabel("emulation loss")
    set_title(axes, title, 40)
    legend_beside(axes)
    save_figure(figure, path)
