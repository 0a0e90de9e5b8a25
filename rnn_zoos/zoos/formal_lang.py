"""The formal-language zoo: LSTMs generating the relative-occurrence languages a^n b^(n+m_b) c^(n+m_c) d^(n+m_d).

A task is the vector ``[0, m_b, m_c, m_d]`` with each m in {-3, ..., 2}: 216 languages. Tokens are
``a b c d BOS EOS`` = 0..5. A training string is ``BOS``, the letters, then ``EOS`` padding, cut to
:data:`SEQUENCE_LENGTH` tokens; n is uniform in ``[max(0, -min m), N_STOP)``. For the 4 tasks with
``m_b + m_c + m_d >= 5`` the longest strings (n = 9) do not fit with their ``EOS`` and are cut.

The task maths here works on batches of tensors (any leading dimensions), on any device. The zoo
kind :data:`FORMAL_LANG` owns the rest: the recipe of the builder (each run draws its task uniformly
and trains with teacher-forced cross-entropy; a snapshot records, as the official builder does, the
accuracy over 1000 strings the RNN samples by the official order-insensitive count, and 100 further
sampled strings as ``inputs``; also the accuracy that checks the letters' order), the reader of the
paper's release, the cloned-performance scores and the downstream targets.
"""

from __future__ import annotations

import itertools
import math
from pathlib import Path
from typing import Any

import numpy as np
import torch
from datasets import Array2D, Array3D, List, Value

from .build_config import BuildConfig
from ..common.errors import DamagedZooError
from ..format.info import RELEASE_SOURCE
from ..lstm.functional import LSTMArchitecture, Params, lstm_forward
from .release_format import FLOATS, INTEGERS, RUN_STEP_BOUNDS, WEIGHT_BOUNDS, ReleaseArray, ReleaseContent, ReleaseFormat
from ..lstm.streams import stream_uniform
from .targets import Regression, Scaler, Target, most_frequent
from ..lstm.training import TrainingSchedule
from . import register_zoo
from .base import CLONED_MEASURES, SequenceModel, ZooKind, ZooRecipe, legacy_build, recorded_log_probs, rnn_model


A, B, C, D, BOS, EOS = range(6)
VOCAB_SIZE = 6
LETTERS = 4
SEQUENCE_LENGTH = 42
"""Tokens per string, ``BOS`` included: a model reads 41 and predicts 41."""
N_STOP = 10
"""n is drawn from ``[n_min, N_STOP)``."""
OFFSETS = tuple(range(-3, 3))

TASKS = torch.tensor([(0, *m) for m in itertools.product(OFFSETS, repeat=3)], dtype=torch.int64)
"""All 216 tasks ``[0, m_b, m_c, m_d]``, in lexicographic order."""


def n_min(tasks: torch.Tensor) -> torch.Tensor:
    """Smallest n of each task, ``max(0, -min m)``: every letter count is then non-negative."""
    return (-tasks.min(dim=-1).values).clamp(min=0)


def strings_for(tasks: torch.Tensor, n: torch.Tensor, length: int = SEQUENCE_LENGTH) -> torch.Tensor:
    """Token strings ``[..., length]`` (BOS, letters, EOS padding) for tasks ``[..., 4]`` and counts n ``[...]``."""
    counts = n.unsqueeze(-1) + tasks  # [..., 4] letters a, b, c, d
    ends = counts.cumsum(dim=-1)  # position (after BOS) where each letter block ends
    position = torch.arange(length - 1, device=tasks.device)
    letter = (position >= ends.unsqueeze(-1)).sum(dim=-2)  # [..., length - 1]: 0..3 letters, 4 = past the end
    body = torch.where(letter == LETTERS, EOS, letter)
    bos = torch.full((*body.shape[:-1], 1), BOS, dtype=body.dtype, device=body.device)
    return torch.cat([bos, body], dim=-1)


def training_strings(tasks: torch.Tensor, uniforms: torch.Tensor) -> torch.Tensor:
    """Training strings from uniform numbers: ``uniforms [..., S]`` pick n for ``tasks [..., 4]`` -> ``[..., S, 42]``."""
    low = n_min(tasks).unsqueeze(-1)
    n = low + torch.floor(uniforms * (N_STOP - low)).long()
    return strings_for(tasks.unsqueeze(-2).expand(*n.shape, -1), n)


def accepts(strings: torch.Tensor, tasks: torch.Tensor) -> torch.Tensor:
    """Which strings ``[..., L]`` (BOS first) belong to the language of their task ``[..., 4]``.

    A string counts only if it contains ``EOS``; before the first ``EOS`` it must hold letters only,
    in order (all a, then b, c, d), with counts ``n, n + m_b, n + m_c, n + m_d`` for one n >= 0.
    """
    body = strings[..., 1:]
    is_eos = body == EOS
    has_eos = is_eos.any(dim=-1)
    first_eos = torch.where(has_eos, is_eos.long().argmax(dim=-1), body.shape[-1])
    position = torch.arange(body.shape[-1], device=body.device)
    in_prefix = position < first_eos.unsqueeze(-1)
    letters_only = ((body < LETTERS) | ~in_prefix).all(dim=-1)
    ordered = ((body[..., 1:] >= body[..., :-1]) | ~in_prefix[..., 1:]).all(dim=-1)
    counts = torch.stack([((body == letter) & in_prefix).sum(dim=-1) for letter in range(LETTERS)], dim=-1)
    fits = (counts - tasks == counts[..., :1]).all(dim=-1)
    return has_eos & letters_only & ordered & fits


def release_accepts(strings: torch.Tensor, tasks: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """The paper's own acceptance check (``RelativeOccurrenceLanguage.accept_sequence``): (correct, finished).

    A string is finished if it contains ``EOS``; it is correct if, counting the letters up to its first
    ``EOS`` in any order (other tokens ignored), the counts are ``n, n + m_b, n + m_c, n + m_d`` for some n.
    Unlike :func:`accepts` it does not check the order of the letters. The official builder counts the
    ``accuracy`` column with it (correct strings of 1000), and its evaluation of cloned RNNs scores correct
    strings among the finished ones.
    """
    is_eos = strings == EOS
    finished = is_eos.any(dim=-1)
    first_eos = is_eos.long().argmax(dim=-1)
    upto = torch.arange(strings.shape[-1], device=strings.device) <= first_eos.unsqueeze(-1)
    counts = torch.stack([((strings == letter) & upto).sum(dim=-1) for letter in range(LETTERS)], dim=-1)
    adjusted = counts - tasks
    return (adjusted == adjusted[..., :1]).all(dim=-1) & finished, finished


def task_entropy(tasks: np.ndarray) -> np.ndarray:
    """The split criterion of task vectors ``[U, 4]`` -> ``[U]``, as the paper's ``task_entropy_criterion``.

    The entropy of the shifted task vector ``t - min t + 1`` normalised to sum 1, with the paper's
    epsilon: ``-sum p log(p + 1e-6)``, in float64 as NumPy promotes the paper's expression. Many tasks
    tie in exact arithmetic, so the last bit of each logarithm decides their order: the logarithm is
    the C library's (``math.log``), which NumPy 1.23 used on CPUs without AVX-512 and NumPy >= 2 uses
    everywhere (NumPy 1.23 on AVX-512 CPUs used SVML, which differs in the last bit for some values).
    """
    tasks = np.asarray(tasks, dtype=np.int64)
    shifted = 1 + tasks - tasks.min(axis=-1, keepdims=True)
    p = shifted.astype(np.float32) / shifted.sum(axis=-1, keepdims=True)
    log = np.array([math.log(value) for value in (p + 1e-6).ravel().tolist()], dtype=np.float64).reshape(p.shape)
    return -(p * log).sum(axis=-1)


def one_hot(tokens: torch.Tensor) -> torch.Tensor:
    """Token ids ``[...]`` as float32 one-hot vectors ``[..., 6]``: how the zoo's RNNs read strings."""
    return torch.nn.functional.one_hot(tokens.long(), VOCAB_SIZE).float()


def sample_strings(model: SequenceModel, uniforms: torch.Tensor) -> torch.Tensor:
    """Sample strings autoregressively from M generative models, starting from ``BOS``.

    Args:
        model: the M models (:func:`rnn_zoos.zoos.rnn_model` of RNN weights, or an emulator standing in for each).
        uniforms: ``[M, S, 41]`` numbers in [0, 1); position t of string s takes the first token whose
            cumulative probability exceeds ``uniforms[m, s, t]`` (inverse-CDF sampling).

    Returns:
        Strings ``[M, S, 42]`` (int64), ``BOS`` first.
    """
    models, count, length = uniforms.shape
    token = torch.full((models, count), BOS, dtype=torch.int64, device=uniforms.device)
    strings, state = [token], None
    for position in range(length):
        logits, state = model(one_hot(token).unsqueeze(2), state)
        cumulative = torch.softmax(logits[:, :, 0], dim=-1).cumsum(dim=-1)
        token = (cumulative < uniforms[..., position : position + 1]).sum(dim=-1).clamp(max=VOCAB_SIZE - 1)
        strings.append(token)
    return torch.stack(strings, dim=-1)


def accuracies(strings: torch.Tensor, tasks: torch.Tensor) -> dict[str, torch.Tensor]:
    """The accuracy columns of M models from strings they sampled ``[M, S, 42]`` in their languages ``tasks [M, 4]``:
    ``accuracy`` (the official count, :func:`release_accepts`: correct strings of S, letters in any order) and
    ``accuracy_ordered`` (:func:`accepts`: letters in order too), each ``[M]``."""
    tasks = tasks.unsqueeze(1)
    return {"accuracy": release_accepts(strings, tasks)[0].float().mean(dim=1),
            "accuracy_ordered": accepts(strings, tasks).float().mean(dim=1)}


def release_score(model: SequenceModel, tasks: torch.Tensor, uniforms: torch.Tensor) -> torch.Tensor:
    """The paper's evaluation score of M models ``[M]``: correct strings among the finished ones (0 if none finished),
    by the paper's acceptance check (:func:`release_accepts`), of strings sampled with ``uniforms [M, S, 41]``."""
    correct, finished = release_accepts(sample_strings(model, uniforms), tasks.unsqueeze(1))
    return torch.where(finished.any(-1), correct.sum(-1) / finished.sum(-1).clamp(min=1), 0.0)


# --- building ---------------------------------------------------------------------------------

STREAM_TASK, STREAM_DATA, STREAM_SAMPLE, STREAM_CLONED = 16, 17, 18, 64
WEIGHT_DECAY = 1e-4
SAMPLES = 1000
"""Strings sampled per snapshot to measure accuracy."""
RECORDED = 100
"""Of those, how many are stored as ``inputs``."""
PAPER_SAMPLES = 64
"""Strings the paper's evaluation samples from an RNN and from its emulator (its ``num_episodes``)."""
OFFICIAL_COUNT = (
    "a string counts if it contains EOS and, up to its first EOS, holds the letters a, b, c, d n, n + m_b, n + m_c, "
    "n + m_d times for some n, in any order (RelativeOccurrenceLanguage.accept_sequence of the paper's code)"
)
ACCURACY_DEFINITION = f"fraction of 1000 strings sampled from the RNN that the official acceptance check accepts: {OFFICIAL_COUNT}"
ACCURACY_ORDERED_DEFINITION = (
    "fraction of the same 1000 strings that are in the language: as accuracy, but before the first EOS only letters, "
    "in order (all a, then b, c, d); at most accuracy (rnn-zoos' measure, not the paper's)"
)


class FormalLangRecipe(ZooRecipe):
    """Each run draws its task uniformly from the 216 languages and trains with teacher-forced cross-entropy on
    strings of its language; a snapshot records, as the official builder does, the accuracy over 1000 sampled strings
    and 100 further sampled strings as ``inputs`` with the RNN's log-probabilities on them."""

    def setup(self, seeds: torch.Tensor) -> dict[str, torch.Tensor]:
        choice = torch.floor(stream_uniform(seeds, (STREAM_TASK,), ()) * len(TASKS)).long()
        return {"task": TASKS.to(seeds.device)[choice], "weight_decay": torch.full(seeds.shape, WEIGHT_DECAY, device=seeds.device)}

    def loss(self, params: Params, runs: dict[str, torch.Tensor], seeds: torch.Tensor, step: int) -> torch.Tensor:
        uniforms = stream_uniform(seeds, (STREAM_DATA, step), (TrainingSchedule.batch_size,))
        strings = training_strings(runs["task"], uniforms)
        logits, _ = lstm_forward(params, one_hot(strings[..., :-1]))
        losses = torch.nn.functional.cross_entropy(logits.flatten(0, -2), strings[..., 1:].flatten(), reduction="none")
        return losses.view(len(seeds), -1).mean(dim=1)

    def snapshot(self, params: Params, runs: dict[str, torch.Tensor], seeds: torch.Tensor, step: int) -> dict[str, Any]:
        uniforms = stream_uniform(seeds, (STREAM_SAMPLE, step), (SAMPLES + RECORDED, SEQUENCE_LENGTH - 1))
        strings = sample_strings(rnn_model(params), uniforms)
        inputs = strings[:, SAMPLES:]  # sampled apart from the 1000 counted, as the official builder samples them
        return {
            "task": runs["task"].cpu().tolist(),
            **{name: value.cpu().numpy() for name, value in accuracies(strings[:, :SAMPLES], runs["task"]).items()},
            "weight_decay": runs["weight_decay"].cpu().numpy(),
            "inputs": inputs.to(torch.int16).cpu().numpy(),
            "log_probs": recorded_log_probs(self.kind, params, inputs),
        }

    def card_fields(self) -> dict[str, Any]:
        return {"accuracy_definition": ACCURACY_DEFINITION, "accuracy_ordered_definition": ACCURACY_ORDERED_DEFINITION}

    def notes(self) -> list[str]:
        return [
            "Strings are cut to 42 tokens (BOS included); for the 4 tasks with m_b + m_c + m_d >= 5 the n = 9 "
            "strings lose their EOS, and such strings cannot count as correct when sampled.",
            f"accuracy: {ACCURACY_DEFINITION}.",
            f"accuracy_ordered: {ACCURACY_ORDERED_DEFINITION}.",
        ]


# --- the paper's release ------------------------------------------------------------------------

def restore_bos(sequences: np.ndarray) -> np.ndarray:
    """Strings ``[..., 42]`` with ``BOS`` back at position 0 where the release stores ``EOS`` (a copy).

    The paper's acceptance check sets ``seq[argmax(seq == EOS)] = EOS`` in place; for a string without
    ``EOS`` that index is 0, so the stored string begins with ``EOS``, though its logits were computed
    with ``BOS`` there. Nothing else of the string changes.
    """
    repaired = np.array(sequences, copy=True)
    first = repaired[..., 0]
    first[first == EOS] = BOS
    return repaired


RELEASE_ACCURACY_ORDERED = "NaN: the release does not record it (its strings are not kept), so it is no downstream target here"


class FormalRelease(ReleaseFormat):
    """``formal_languages_tokens_4_length_42_2x32``: parameters, sampled strings, their log-softmax outputs, tasks and
    ``[run, step, correct of 1000]``."""

    prefix = "formal_languages"
    run_step = "num_step_correct"

    def __init__(self, kind: ZooKind) -> None:
        self.arrays = {
            "parameters": ReleaseArray((kind.architecture.num_parameters,), FLOATS, WEIGHT_BOUNDS),
            "sequences": ReleaseArray(kind.inputs_feature.shape, INTEGERS, (0, VOCAB_SIZE - 1)),
            "logits": ReleaseArray(kind.log_probs_feature.shape, FLOATS),
            "tasks": ReleaseArray((4,), INTEGERS, (-128, 127)),  # stored as int8
            "num_step_correct": ReleaseArray((3,), INTEGERS, tuple(zip(RUN_STEP_BOUNDS, RUN_STEP_BOUNDS, (0, SAMPLES)))),  # run, step, correct
        }

    def check_args(self, args: dict[str, Any], path: Path) -> None:
        value = args.get("weight_decay", WEIGHT_DECAY)
        if isinstance(value, bool) or not isinstance(value, (int, float)) or not math.isfinite(value) or value < 0:
            raise DamagedZooError(f"{path}: weight_decay is {value!r}, expected a number >= 0; the release folder is damaged: "
                                  "download it again")

    def task_cell(self, release: ReleaseContent, row: int) -> Any:
        return [int(value) for value in release.arrays["tasks"][row]]

    def columns(self, release: ReleaseContent, index: np.ndarray) -> dict[str, Any]:
        correct = np.asarray(release.arrays["num_step_correct"][index, 2], dtype=np.float64)
        weight_decay = float(release.args.get("weight_decay", WEIGHT_DECAY))
        return {"task": np.asarray(release.arrays["tasks"][index], dtype=np.int8).tolist(),
                "accuracy": (correct / 1000).astype(np.float32),
                "accuracy_ordered": np.full(len(index), np.nan, dtype=np.float32),  # the release does not record it
                "weight_decay": np.full(len(index), weight_decay, dtype=np.float32)}

    def inputs(self, stored: np.ndarray) -> np.ndarray:
        return restore_bos(stored)

    def repair_notes(self, release: ReleaseContent) -> list[str]:
        repaired = sum(int((block[:, :, 0] == EOS).sum()) for block in release.blocks("sequences"))
        return [f"{repaired} of the release's {release.rows * RECORDED} strings began with EOS (5) at position 0, though "
                "their logits were computed with BOS (4) there: the official acceptance check writes EOS in place at the first "
                "EOS of each sampled string, which is position 0 for a string without EOS. The import restored BOS at position "
                "0 of these strings (nothing else changed), so the weights reproduce log_probs from inputs."]

    def notes(self, release: ReleaseContent) -> list[str]:
        notes = [f"accuracy is the release's own count of correct strings out of 1000, the measure of a built zoo; "
                 f"accuracy_ordered is {RELEASE_ACCURACY_ORDERED}."]
        if "weight_decay" not in release.args:
            notes.append("args.json records no weight_decay; the column holds the paper's 1e-4.")
        return notes

    def card_fields(self, release: ReleaseContent) -> dict[str, Any]:
        return {"accuracy_definition": f"the release's count of correct strings out of 1000 sampled from the RNN: {OFFICIAL_COUNT}",
                "accuracy_ordered_definition": RELEASE_ACCURACY_ORDERED}


# --- the task as a downstream target ---------------------------------------------------------------

class TaskComponents(Target):
    """Which language an RNN models: m_b, m_c and m_d, three 6-way heads; scored by exact match and per component."""

    label, primary, higher_is_better = "task", "exact_match", True

    def values(self, rows: Any, steps: list[int]) -> torch.Tensor:
        return torch.tensor([list(task[1:]) for task in rows.tasks], dtype=torch.long).view(-1, 3) - OFFSETS[0]

    def output_size(self, steps: list[int]) -> int:
        return 3 * len(OFFSETS)

    def loss(self, out: torch.Tensor, true: torch.Tensor, scaler: Scaler) -> torch.Tensor:
        heads = out.view(-1, 3, len(OFFSETS))
        return sum(torch.nn.functional.cross_entropy(heads[:, k], true[:, k]) for k in range(3))

    def predictions(self, out: torch.Tensor, scaler: Scaler) -> torch.Tensor:
        return out.view(-1, 3, len(OFFSETS)).argmax(-1)

    def metrics(self, predicted: torch.Tensor, true: torch.Tensor) -> dict[str, float]:
        equal = predicted.cpu() == true.cpu()
        return {"exact_match": equal.all(-1).float().mean().item(), **{f"m_{c}": equal[:, k].float().mean().item() for k, c in enumerate("bcd")}}

    def trivial(self, fit: torch.Tensor, count: int) -> torch.Tensor:
        return most_frequent(fit, count)


# --- the zoo --------------------------------------------------------------------------------------

class FormalLanguages(ZooKind):
    """2-layer LSTMs trained as generative models of the languages a^n b^(n+m_b) c^(n+m_c) d^(n+m_d)."""

    name = "formal-lang"
    description = "2-layer LSTMs generating the formal languages a^n b^(n+m_b) c^(n+m_c) d^(n+m_d)"
    architecture = LSTMArchitecture(input_size=VOCAB_SIZE, hidden_size=32, num_layers=2, output_size=VOCAB_SIZE)
    task_feature = List(Value("int8"))
    inputs_feature = Array2D((RECORDED, SEQUENCE_LENGTH), "int16")
    log_probs_feature = Array3D((RECORDED, SEQUENCE_LENGTH - 1, VOCAB_SIZE), "float16")
    extra_columns = ("accuracy_ordered", "weight_decay")
    columns_since = {"accuracy_ordered": "2.0"}
    optional_targets = ("accuracy_ordered",)
    token_vocab = VOCAB_SIZE
    criterion_label = "entropy of the normalised task vector"
    probing_length = 22
    paper_emulation_loss = {"interactive_probing": 0.015, "noninteractive_probing": 0.023, "parameter_transformer": 0.043,
                            "flat": 0.045, "dws": 0.046, "layerwise_statistics": 0.051}

    def __init__(self) -> None:
        self.release = FormalRelease(self)

    def task_key(self, cell: Any) -> tuple[int, ...]:
        return tuple(int(value) for value in cell)

    def criterion(self, vectors: np.ndarray) -> np.ndarray:
        return task_entropy(vectors)

    def is_task(self, cell: Any) -> bool:
        return (isinstance(cell, list) and len(cell) == 4 and cell[0] == 0
                and all(isinstance(value, int) and not isinstance(value, bool) and value in OFFSETS for value in cell[1:]))

    def recipe(self, config: BuildConfig) -> ZooRecipe:
        return FormalLangRecipe(self)

    def validation_data(self, builder: dict[str, Any], source: str | None, device: torch.device) -> bool:
        """Whether the zoo's stored ``accuracy`` checks the letters' order (a zoo built under format 1)."""
        return legacy_build(builder)

    def cloned_scores(self, rnn: SequenceModel, emulator: SequenceModel, rows: Any, index: torch.Tensor, data: bool,
                      draw: int = 0, measures: tuple[str, ...] = CLONED_MEASURES) -> dict[str, tuple[torch.Tensor, torch.Tensor]]:
        tasks = torch.tensor([list(rows.tasks[row]) for row in index.tolist()], device=index.device)
        scores = {}
        if "paper" in measures:
            paper = stream_uniform(index, (STREAM_CLONED, draw), (2, PAPER_SAMPLES, SEQUENCE_LENGTH - 1))
            scores["paper"] = (release_score(rnn, tasks, paper[:, 0]).cpu(), release_score(emulator, tasks, paper[:, 1]).cpu())
        if "rnn_zoos" in measures:
            ours = stream_uniform(index, (STREAM_CLONED + 13, draw), (SAMPLES, SEQUENCE_LENGTH - 1))
            stored = rows.columns["accuracy"][index.to(rows.columns["accuracy"].device)].float().cpu()
            emulated = accuracies(sample_strings(emulator, ours), tasks)["accuracy_ordered" if data else "accuracy"]
            scores["rnn_zoos"] = (stored, emulated.cpu())
        return scores

    def targets(self) -> dict[str, Target]:
        return {"task": TaskComponents("task"), "accuracy": Regression("accuracy"), "accuracy_ordered": Regression("accuracy_ordered")}

    def earlier_conventions(self, builder: dict[str, Any]) -> list[str]:
        legacy = ["accuracy counts a string only with its letters in order (since format 2: the official order-insensitive "
                  "count, the ordered one being accuracy_ordered)", "inputs are 100 of the 1000 strings counted"]
        return super().earlier_conventions(builder) + (legacy if legacy_build(builder) else [])

    def unavailable_targets(self, builder: dict[str, Any], format_version: str) -> dict[str, str]:
        if builder.get("source") == RELEASE_SOURCE:
            return {"accuracy_ordered": "the paper's release does not record accuracy_ordered"}
        if legacy_build(builder):
            return {"accuracy_ordered": f"a zoo of format {format_version} has no accuracy_ordered column (its accuracy "
                                        "checks the order already)"}
        return {}


FORMAL_LANG = register_zoo(FormalLanguages())
