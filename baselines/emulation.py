"""Emulation: how well the emulator, given an RNN's embedding, reproduces that RNN.

Two measures: the emulation loss on the RNN's recorded inputs (total variation, as the paper's
code, or reverse KL), and the *cloned performance*: the emulator replaces the RNN on its task
(sampling 1000 strings and checking them against the language; classifying the validation images
of the RNN's angle), and its accuracy is compared with the RNN's own.
"""

from __future__ import annotations

from pathlib import Path
from typing import Literal

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
import torch  # noqa: E402

from rnn_zoos.files import atomic_write  # noqa: E402
from rnn_zoos.streams import stream_uniform  # noqa: E402
from rnn_zoos.tasks import formal_lang as fl  # noqa: E402
from rnn_zoos.tasks import seq_mnist as sm  # noqa: E402

from .data import ZooTensors  # noqa: E402
from .modeling import EmulatorModel, RNNEncoderModel  # noqa: E402

LossKind = Literal["total_variation", "reverse_kl"]
CLONED_SAMPLES = 1000


def emulation_loss(logits: torch.Tensor, target_log_probs: torch.Tensor, kind: LossKind = "total_variation") -> torch.Tensor:
    """Mean over positions of the distance between the emulator's distributions and the RNN's.

    ``total_variation``: half the L1 distance of the probabilities. ``reverse_kl``: KL(emulator || RNN).
    """
    log_q = torch.log_softmax(logits, dim=-1)
    if kind == "total_variation":
        return 0.5 * (log_q.exp() - target_log_probs.exp()).abs().sum(dim=-1).mean()
    if kind == "reverse_kl":
        return (log_q.exp() * (log_q - target_log_probs)).sum(dim=-1).mean()
    raise ValueError(f"unknown emulation loss {kind!r}; use total_variation or reverse_kl")


@torch.no_grad()
def evaluate_emulation(
    encoder: RNNEncoderModel, emulator: EmulatorModel, rows: ZooTensors, index: torch.Tensor, kind: LossKind, chunk: int = 16
) -> float:
    """Emulation loss over all recorded sequences of the rows ``index``."""
    if len(index) == 0:
        return float("nan")
    total = 0.0
    for start in range(0, len(index), chunk):
        part = index[start : start + chunk]
        sequences = torch.arange(rows.inputs.shape[1], device=part.device).expand(len(part), -1)
        inputs, targets = rows.sequences(part, sequences)
        embedding = encoder(rows.params(part)).repeat_interleave(sequences.shape[1], dim=0)
        logits, _ = emulator(inputs, embedding)
        total += emulation_loss(logits, targets, kind).item() * len(part)
    return total / len(index)


@torch.no_grad()
def cloned_accuracy(
    encoder: RNNEncoderModel, emulator: EmulatorModel, rows: ZooTensors, index: torch.Tensor, images: tuple[torch.Tensor, torch.Tensor] | None = None
) -> torch.Tensor:
    """Accuracy of the emulator standing in for each RNN of ``index`` on that RNN's task ``[len(index)]``.

    Formal languages: 1000 strings sampled from the emulator, checked against the RNN's language.
    MNIST: last-position classification of ``images`` (validation images in [0, 1] and labels), rotated by the RNN's angle.
    """
    embeddings = encoder(rows.params(index))
    device = embeddings.device
    accuracies = []
    for position, row in enumerate(index.tolist()):
        embedding = embeddings[position : position + 1]
        if rows.spec.token_vocab:
            task = torch.tensor(rows.tasks[row], device=device)
            uniforms = stream_uniform(torch.tensor([row], device=device), (77,), (CLONED_SAMPLES, fl.SEQUENCE_LENGTH - 1))
            strings = fl.sample_strings(_emulator_step(emulator, embedding.expand(CLONED_SAMPLES, -1)), uniforms)
            accuracies.append(fl.accepts(strings[0], task).float().mean())
        else:
            pixels, labels = images
            inputs = sm.model_inputs(pixels.unsqueeze(0), torch.tensor([rows.tasks[row]], device=device))[0]
            logits, _ = emulator(inputs, embedding.expand(len(inputs), -1))
            accuracies.append((logits[:, -1].argmax(-1) == labels).float().mean())
    return torch.stack(accuracies).cpu()


def _emulator_step(emulator: EmulatorModel, embedding: torch.Tensor) -> fl.StepFunction:
    """The emulator as a one-token step function of :func:`rnn_zoos.tasks.formal_lang.sample_strings` (one model, S strings)."""

    def step(tokens: torch.Tensor, state: object) -> tuple[torch.Tensor, object]:
        logits, state = emulator(tokens[0].unsqueeze(1), embedding, state, first=state is None)
        return logits[:, 0].unsqueeze(0), state

    return step


def scatter_plot(path: Path, results: dict[str, tuple[torch.Tensor, torch.Tensor]], title: str) -> None:
    """Original against emulated accuracy, one colour per split, with the diagonal."""
    figure, axes = plt.subplots(figsize=(5, 5), dpi=100)
    for split, (original, cloned) in results.items():
        axes.scatter(original, cloned, s=14, label=f"{split} (mean |diff| {float((original - cloned).abs().mean()):.3f})")
    axes.plot([0, 1], [0, 1], color="grey", linewidth=1)
    axes.set_xlabel("accuracy of the original RNN")
    axes.set_ylabel("accuracy of the emulator standing in for it")
    axes.set_xlim(-0.02, 1.02)
    axes.set_ylim(-0.02, 1.02)
    axes.set_title(title)
    axes.legend(loc="upper left")
    figure.tight_layout()
    with atomic_write(path) as temporary:
        figure.savefig(temporary, format="png")
    plt.close(figure)
