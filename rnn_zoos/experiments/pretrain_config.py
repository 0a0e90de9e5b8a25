"""The options of an emulation-pretraining run (``rnn-zoos pretrain``), whose defaults are the paper's settings."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Literal, Optional


import torch

from rnn_zoos.common.arguments import check_device, check_seed
from rnn_zoos.common.errors import ZooError
from rnn_zoos.format import ZooInfo
from rnn_zoos.lstm import LSTMArchitecture
from rnn_zoos.zoos import ZooKind, zoo_kind

from ..models.encoders.registry import REFERENCE_HELP
from .data import check_counts, check_encoders, option_name

__all__ = ["PAPER_SETTINGS", "PretrainConfig"]

PAPER_SETTINGS: dict[str, tuple[Any, str]] = {
    "steps": (100_000, "total_training_steps"),
    "batch_rnns": (64, "rnn_batch_size"),
    "sequences_per_rnn": (1, "sequence_batch_size"),
    "loss": ("total_variation", "criterion"),
    "lr": (1e-4, "learning_rate"),
    "weight_decay": (0.01, "weight_decay"),
    "clip": (0.1, "gradient_clipping"),
    "eval_every": (1000, "the training loop's evaluation after the update of every step % 1000 == 0"),
    "eval_rnns": (None, "evaluate_with_dataset reads every RNN of the split"),
    "cloned_rnns": (20, "num_evaluation_policies"),
    "probing_sequences": (1, "num_parallel_probing_sequences"),
    "probing_length": (None, "probing_sequence_length: 22, or the sequence length + 1 (50) for sequential MNIST"),
    "probing_static_weight": (0.0, "static_weight"),
}
"""The pretraining options whose values the paper's code fixes (``training_configs.py``, ``training_script.py``):
option -> (the paper's value, where the code sets it). ``None``: all RNNs / the zoo's default. The defaults below are these."""


def quick_interval(steps: int) -> int:
    """The default steps between evaluations: the paper's 1000, or a tenth of a shorter run, so that a quick trial
    logs losses as it goes."""
    return max(1, min(PAPER_SETTINGS["eval_every"][0], steps // 10))


@dataclass
class PretrainConfig:
    """Options of ``python -m baselines.pretrain``; the defaults are the paper's (``training_configs.py``)."""

    zoo: str
    encoder: str = field(metadata={"help": f"the encoder to pretrain: {REFERENCE_HELP}"})
    out: str = field(metadata={"help": "output folder (an unfinished run there with the same options is resumed)"})
    steps: int = field(default=PAPER_SETTINGS["steps"][0],
                       metadata={"help": "last training step: as the paper's loop, steps 0 to STEPS, one update each"})
    batch_rnns: int = field(default=PAPER_SETTINGS["batch_rnns"][0], metadata={"metavar": "B", "help": "RNNs per step"})
    sequences_per_rnn: int = field(
        default=PAPER_SETTINGS["sequences_per_rnn"][0], metadata={"help": "recorded sequences emulated per RNN and step"}
    )
    loss: Literal["total_variation", "reverse_kl"] = field(default=PAPER_SETTINGS["loss"][0], metadata={"help": "emulation loss"})
    lr: float = field(default=PAPER_SETTINGS["lr"][0], metadata={"help": "AdamW learning rate"})
    weight_decay: float = field(default=PAPER_SETTINGS["weight_decay"][0], metadata={"help": "AdamW weight decay"})
    clip: float = field(
        default=PAPER_SETTINGS["clip"][0],
        metadata={"help": "gradient-norm clipping, for the emulator and the encoder separately (0: none)"},
    )
    eval_every: Optional[int] = field(
        default=None,
        metadata={"help": "evaluate (log losses, keep the best model) after the update of every step divisible by this, and of the "
                          "last (default: 1000, the paper's, or a tenth of --steps if that is less)"},
    )
    eval_rnns: Optional[int] = field(
        default=PAPER_SETTINGS["eval_rnns"][0],
        metadata={"help": "RNNs of validation and of ood evaluated, spread over the split (default: all)"},
    )
    cloned_rnns: int = field(
        default=PAPER_SETTINGS["cloned_rnns"][0],
        metadata={"help": "RNNs per split for the cloned performance: of validation at every evaluation, of every split at the end (0: skip)"},
    )
    probing_sequences: int = field(
        default=PAPER_SETTINGS["probing_sequences"][0],
        metadata={"help": "probing encoders: parallel probe sequences (the paper's ablation: 1, 2, 4, 8)"},
    )
    probing_length: Optional[int] = field(
        default=PAPER_SETTINGS["probing_length"][0],
        metadata={"help": "probing encoders: probe steps (default: the zoo's, 22 formal; seq-mnist: 50, fixed as the paper's "
                          "code fixes it, so its length ablations are for formal languages only)"},
    )
    probing_static_weight: float = field(
        default=PAPER_SETTINGS["probing_static_weight"][0],
        metadata={"help": "interactive probing: weight of learned static codes added to its probes' source"},
    )
    mnist: Optional[str] = field(
        default=None, metadata={"help": "MNIST source for the cloned performance of a zoo whose task needs it, such as MNIST (default: the zoo's)"}
    )
    device: Literal["auto", "cpu", "cuda"] = "auto"
    seed: int = field(default=0, metadata={"help": "seed of initialisation, batches and augmentation"})
    revision: Optional[str] = None

    def __post_init__(self) -> None:
        if self.device == "auto":
            self.device = check_device(self.device)
        if self.eval_every is None:
            self.eval_every = quick_interval(self.steps)

    def validate(self) -> None:
        """Raise :class:`ZooError` for values no run can use."""
        counts = ("steps", "batch_rnns", "sequences_per_rnn", "eval_every", "probing_sequences")
        check_counts(**{name: getattr(self, name) for name in counts})
        for name in ("eval_rnns", "probing_length"):
            if getattr(self, name) is not None and getattr(self, name) < 1:
                raise ZooError(f"{option_name(name)} must be at least 1 (or left out), got {getattr(self, name)}")
        for name in ("cloned_rnns", "weight_decay", "clip", "probing_static_weight"):
            if getattr(self, name) < 0:
                raise ZooError(f"{option_name(name)} must not be negative, got {getattr(self, name)}")
        if not self.lr > 0:
            raise ZooError(f"--lr must be positive, got {self.lr}")
        check_encoders("--encoder", [self.encoder])
        check_device(self.device)
        check_seed(self.seed)

    def encoder_options(self) -> dict[str, Any]:
        """The options of the encoder's config besides the encoder and the zoo (:meth:`RNNEncoderConfig.for_zoo`)."""
        return {"probing_sequences": self.probing_sequences, "probing_length": self.probing_length,
                "probing_static_weight": self.probing_static_weight}

    def validate_for_zoo(self, info: ZooInfo) -> None:
        """Raise :class:`ZooError` for values the zoo of ``info`` cannot serve."""
        if info.splits["train"].num_rows == 0:
            raise ZooError(f"{self.zoo} has no train rows to pretrain on")
        kind = zoo_kind(info.zoo)
        if kind.probing_length_fixed and self.probing_length not in (None, kind.probing_length):
            raise ZooError(f"--probing-length {self.probing_length}: the paper's code fixes the probe length of a {info.zoo} zoo "
                           f"to {kind.probing_length} (its length ablations are for formal languages); leave the option out")
        if not info.splits["validation"].num_rows and not info.splits["ood"].num_rows:
            raise ZooError(f"{self.zoo} has no validation and no ood rows to select the best model on; build it with more runs")
        recorded = kind.inputs_feature.shape[0]
        if self.sequences_per_rnn > recorded:
            raise ZooError(f"--sequences-per-rnn {self.sequences_per_rnn}: the zoo records only {recorded} sequences per RNN")
        self.check_probing_memory(kind)
        check_encoders("--encoder", [self.encoder], zoo_kind(info.zoo), **self.encoder_options())

    def check_probing_memory(self, kind: ZooKind) -> None:
        """Refuse probing options whose step would not fit in the memory free on the device, with the estimate."""
        if self.encoder not in PROBING_ENCODERS:
            return
        from rnn_zoos.builder.build import available_memory

        needed = probing_step_bytes(kind.architecture, self.batch_rnns, self.probing_sequences, self.probing_length or kind.probing_length)
        free = available_memory(torch.device(self.device))
        if needed > free:
            raise ZooError(f"--probing-length {self.probing_length or kind.probing_length} with --probing-sequences "
                           f"{self.probing_sequences} needs about {needed / 1e9:,.1f} GB for a step of {self.batch_rnns} RNNs, "
                           f"more than the {free / 1e9:,.1f} GB free on {self.device}; choose fewer probe steps or sequences")


PROBING_ENCODERS = ("interactive_probing", "noninteractive_probing")
"""The encoders whose size and step grow with ``--probing-length`` and ``--probing-sequences``."""
READER = 256
"""The width of the probing encoders' reader (:mod:`rnn_zoos.models.encoders.probing`)."""


def probing_step_bytes(architecture: LSTMArchitecture, rnns: int, sequences: int, length: int) -> float:
    """A lower bound of the memory of a pretraining step of a probing encoder: its parameters that grow with the probes
    (static codes, probe layers) with their gradients and AdamW's two moments, and the activations autograd keeps for
    every probe step of every RNN (the reader's two LSTM cells, the probes, the RNN's gates and states)."""
    arch = architecture
    parameters = length * READER + READER * 128 * sequences + arch.output_size * sequences * READER
    per_probe = 128 + 128 + arch.input_size + arch.num_layers * 6 * arch.hidden_size + arch.output_size
    per_step = 2 * 6 * READER + sequences * per_probe
    return 4.0 * (4 * parameters + rnns * length * per_step)
