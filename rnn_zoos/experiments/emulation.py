"""Emulation: how well the emulator, given an RNN's embedding, reproduces that RNN.

Two measures. The emulation loss on the RNN's recorded inputs (total variation, as the paper's
code, or reverse KL). And the *cloned performance*: the emulator replaces the RNN on its task and
its score is compared with the RNN's own, measured as the paper's code measures it
(:func:`paper_cloned_scores`): formal languages, 64 strings sampled from the RNN and 64 from the
emulator, scored as correct strings among the finished ones by the paper's acceptance check;
sequential MNIST, the RNN's stored accuracy against the emulator's on one batch of 1000 validation
images rotated by the RNN's angle. rnn-zoos adds its own figure (:func:`rnn_zoos_cloned_scores`):
the stored ``accuracy`` against the emulator's accuracy measured the way ``accuracy`` was (1000
strings checked in order; every validation image).
"""

from __future__ import annotations

from pathlib import Path
from typing import Literal

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
import torch  # noqa: E402

from rnn_zoos.files import atomic_write  # noqa: E402
from rnn_zoos.lstm import lstm_step  # noqa: E402
from rnn_zoos.streams import stream_uniform  # noqa: E402
from rnn_zoos.symmetry import permute_hidden, random_permutations  # noqa: E402
from rnn_zoos.zoos import formal_lang as fl  # noqa: E402
from rnn_zoos.zoos import seq_mnist as sm  # noqa: E402

from .data import ZooTensors  # noqa: E402
from ..models.modeling import EmulatorModel, RNNEncoderModel  # noqa: E402

LossKind = Literal["total_variation", "reverse_kl"]
PAPER_SAMPLES = 64
"""Strings sampled from the RNN and from its emulator per cloned-performance score (the paper's ``num_episodes``)."""
PAPER_IMAGES = 1000
"""Validation images of the emulator's MNIST score (the paper's one batch of its evaluation loader)."""
RNN_ZOOS_SAMPLES = 1000
"""Strings sampled per score in rnn-zoos' own figure, as many as the builder's ``accuracy`` uses."""
Images = tuple[torch.Tensor, torch.Tensor]
"""Validation images ``[N, 28, 28]`` in [0, 1] and their labels ``[N]``."""


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
        embedding = encoder(params).repeat_interleave(part_sequence.shape[1], dim=0)
        logits, _ = emulator(inputs, embedding)
        total += emulation_loss(logits, targets, kind).item() * len(part)
    return total / len(index)


def evaluation_rows(count: int, wanted: int) -> torch.Tensor:
    """``wanted`` row positions spread evenly over ``count`` rows (the paper's ``torch.linspace(0, n - 1, k).long()``)."""
    if count == 0:
        return torch.zeros(0, dtype=torch.long)
    return torch.linspace(0, count - 1, wanted).long().unique()


@torch.no_grad()
def paper_cloned_scores(
    encoder: RNNEncoderModel, emulator: EmulatorModel, rows: ZooTensors, index: torch.Tensor, images: Images | None = None
) -> tuple[torch.Tensor, torch.Tensor]:
    """The paper's cloned performance of the rows ``index``: the RNNs' scores and their emulators', ``[len(index)]`` each."""
    embedding = encoder(rows.params(index))
    device = embedding.device
    if rows.spec.token_vocab:
        tasks = torch.tensor([list(rows.tasks[row]) for row in index.tolist()], device=device).unsqueeze(1)
        uniforms = stream_uniform(index.to(device), (64,), (2, PAPER_SAMPLES, fl.SEQUENCE_LENGTH - 1))
        params = rows.params(index)
        original = fl.sample_strings(lambda tokens, state: lstm_step(params, tokens, state), uniforms[:, 0])
        cloned = fl.sample_strings(_emulator_step(emulator, embedding), uniforms[:, 1])
        return _release_score(original, tasks).cpu(), _release_score(cloned, tasks).cpu()
    pixels, labels = images
    order = torch.randperm(len(labels), generator=torch.Generator().manual_seed(0))[:PAPER_IMAGES].to(labels.device)
    original = rows.columns["accuracy"][index.to(rows.columns["accuracy"].device)].float().cpu()
    return original, _mnist_accuracy(emulator, embedding, rows, index, (pixels[order], labels[order]))


@torch.no_grad()
def rnn_zoos_cloned_scores(
    encoder: RNNEncoderModel, emulator: EmulatorModel, rows: ZooTensors, index: torch.Tensor, images: Images | None = None
) -> tuple[torch.Tensor, torch.Tensor]:
    """rnn-zoos' cloned performance: (stored ``accuracy``, the emulator's accuracy measured the same way), each ``[len(index)]``.

    Formal languages: 1000 strings sampled from the emulator, accepted only with their letters in order.
    MNIST: last-position classification of every validation image, rotated by the RNN's angle.
    """
    embedding = encoder(rows.params(index))
    device = embedding.device
    original = rows.columns["accuracy"][index.to(rows.columns["accuracy"].device)].float().cpu()
    if not rows.spec.token_vocab:
        return original, _mnist_accuracy(emulator, embedding, rows, index, images)
    cloned = []
    for position, row in enumerate(index.tolist()):  # one RNN at a time: 1000 emulator sequences each
        uniforms = stream_uniform(torch.tensor([row], device=device), (77,), (RNN_ZOOS_SAMPLES, fl.SEQUENCE_LENGTH - 1))
        strings = fl.sample_strings(_emulator_step(emulator, embedding[position : position + 1]), uniforms)
        cloned.append(fl.accepts(strings[0], torch.tensor(rows.tasks[row], device=device)).float().mean())
    return original, torch.stack(cloned).cpu()


def _release_score(strings: torch.Tensor, tasks: torch.Tensor) -> torch.Tensor:
    """Correct strings among the finished ones, per model (0 when none finished): ``[M]`` from strings ``[M, S, L]``."""
    correct, finished = fl.release_accepts(strings, tasks)
    return torch.where(finished.any(-1), correct.sum(-1) / finished.sum(-1).clamp(min=1), 0.0)


def _mnist_accuracy(
    emulator: EmulatorModel, embedding: torch.Tensor, rows: ZooTensors, index: torch.Tensor, images: Images
) -> torch.Tensor:
    """Last-position accuracy of the emulator conditioned on each embedding, on ``images`` rotated by each RNN's angle."""
    pixels, labels = images
    accuracies = []
    for position, row in enumerate(index.tolist()):
        inputs = sm.model_inputs(pixels.unsqueeze(0), torch.tensor([rows.tasks[row]], device=pixels.device))[0]
        logits, _ = emulator(inputs, embedding[position : position + 1].expand(len(inputs), -1))
        accuracies.append((logits[:, -1].argmax(-1) == labels).float().mean())
    return torch.stack(accuracies).cpu()


def _emulator_step(emulator: EmulatorModel, embedding: torch.Tensor) -> fl.StepFunction:
    """The emulator as a step function of :func:`rnn_zoos.zoos.formal_lang.sample_strings`: M embeddings, S strings each."""

    def step(tokens: torch.Tensor, state: object) -> tuple[torch.Tensor, object]:
        models, strings = tokens.shape[:2]
        flat = embedding.repeat_interleave(strings, dim=0)
        logits, state = emulator(tokens.reshape(models * strings, 1, -1), flat, state, first=state is None)
        return logits.view(models, strings, -1), state

    return step


def scatter_plot(path: Path, results: dict[str, tuple[torch.Tensor, torch.Tensor]], title: str, axis_label: str) -> None:
    """Original against emulated score, one colour per split, with the diagonal."""
    figure, axes = plt.subplots(figsize=(5, 5), dpi=100)
    for split, (original, cloned) in results.items():
        axes.scatter(original, cloned, s=14, label=f"{split} (mean |diff| {float((original - cloned).abs().mean()):.3f})")
    axes.plot([0, 1], [0, 1], color="grey", linewidth=1)
    axes.set_xlabel(f"{axis_label} of the original RNN")
    axes.set_ylabel(f"{axis_label} of the emulator standing in for it")
    axes.set_xlim(-0.02, 1.02)
    axes.set_ylim(-0.02, 1.02)
    axes.set_title(title)
    axes.legend(loc="upper left")
    figure.tight_layout()
    with atomic_write(path) as temporary:
        figure.savefig(temporary, format="png")
    plt.close(figure)
