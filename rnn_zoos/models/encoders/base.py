"""What every weight encoder shares: its interface, its shape record and the paper's MLP."""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass
from typing import Any

import torch
from torch import nn

from rnn_zoos.lstm.functional import LSTMArchitecture, Params
from rnn_zoos.lstm.weights import LSTMWeights


@dataclass(frozen=True)
class EncoderShape:
    """What an encoder needs to know about the RNNs it reads, what it returns, and the probing options."""

    architecture: LSTMArchitecture
    token_vocab: int | None
    """Formal languages: RNN inputs are distributions over this many tokens (probes are softmaxed);
    None: real-valued inputs (MNIST tiles; probes pass a sigmoid)."""
    embedding_dim: int = 16
    probing_sequences: int = 1
    """Probe sequences run in parallel per RNN (the paper's ``num_parallel_probing_sequences``)."""
    probing_length: int = 22
    """Steps of each probe sequence (the paper's ``probing_sequence_length``)."""
    probing_static_weight: float = 0.0
    """Interactive probing: weight of the static codes added to the reader's output (the paper's ``static_weight``)."""

    def config_fields(self) -> dict[str, Any]:
        """The shape as keyword arguments of an encoder config: ``rnn_architecture`` (a dict), ``token_vocab``,
        ``embedding_dim`` and the probing options (the names of :class:`~rnn_zoos.models.RNNEncoderConfig`)."""
        fields = dataclasses.asdict(self)
        fields["rnn_architecture"] = fields.pop("architecture")
        return fields


class WeightEncoder(nn.Module):
    """The six built-in encoders' base: a batch of M RNNs (:class:`LSTMWeights`, or their ``{name: [M, ...]}`` dict) to
    embeddings ``[M, embedding_dim]``; the protocol any encoder follows is in :mod:`.registry`."""

    name: str = ""
    needs_augmentation: bool = False
    """True for encoders that are not permutation-invariant: the paper trains them on randomly permuted RNNs."""

    def __init__(self, shape: EncoderShape) -> None:
        super().__init__()
        self.shape = shape

    def forward(self, weights: LSTMWeights | Params) -> torch.Tensor:  # pragma: no cover - abstract
        raise NotImplementedError


def mlp(*sizes: int, output: nn.Module | None = None) -> nn.Sequential:
    """Linear layers with ReLU between them, as the paper's MLPs; ``output`` is applied after the last layer."""
    layers: list[nn.Module] = []
    for index, (fan_in, fan_out) in enumerate(zip(sizes[:-1], sizes[1:])):
        layers.append(nn.Linear(fan_in, fan_out))
        if index < len(sizes) - 2:
            layers.append(nn.ReLU())
    if output is not None:
        layers.append(output)
    return nn.Sequential(*layers)

