"""What every weight encoder shares: its interface and a small MLP."""

from __future__ import annotations

from dataclasses import dataclass

import torch
from torch import nn

from rnn_zoos.lstm import LSTMArchitecture, Params


@dataclass(frozen=True)
class EncoderShape:
    """What an encoder needs to know about the RNNs it reads and what it returns."""

    architecture: LSTMArchitecture
    token_vocab: int | None
    """Formal languages: RNN inputs are distributions over this many tokens; None: real-valued inputs (MNIST tiles)."""
    embedding_dim: int = 16


class WeightEncoder(nn.Module):
    """Maps a batch of LSTM weight sets ``{name: [M, ...]}`` to embeddings ``[M, embedding_dim]``."""

    name: str = ""
    needs_augmentation: bool = False
    """True for encoders that are not permutation-invariant: train them on randomly permuted RNNs."""

    def __init__(self, shape: EncoderShape) -> None:
        super().__init__()
        self.shape = shape

    def forward(self, params: Params) -> torch.Tensor:  # pragma: no cover - abstract
        raise NotImplementedError


def mlp(*sizes: int) -> nn.Sequential:
    """Linear layers with GELU between them (none after the last)."""
    layers: list[nn.Module] = []
    for index, (fan_in, fan_out) in enumerate(zip(sizes[:-1], sizes[1:])):
        layers.append(nn.Linear(fan_in, fan_out))
        if index < len(sizes) - 2:
            layers.append(nn.GELU())
    return nn.Sequential(*layers)
