"""Mechanistic encoders that read the weights: layer-wise statistics and flattened weights."""

from __future__ import annotations

import torch
from torch import nn

from rnn_zoos.lstm import Params

from .base import EncoderShape, WeightEncoder, mlp

QUANTILES = (0.0, 0.25, 0.5, 0.75, 1.0)


def gate_blocks(name: str, tensor: torch.Tensor) -> torch.Tensor:
    """The entries of a parameter ``[M, ...]`` grouped per gate block ``[M, 4, n]`` (the head: one group ``[M, 1, n]``)."""
    groups = 4 if name.startswith("lstm.") else 1
    return tensor.reshape(tensor.shape[0], groups, -1)


def layerwise_statistics(params: Params) -> torch.Tensor:
    """Mean, standard deviation and the quantiles 0, .25, .5, .75, 1 of every gate block of every parameter: ``[M, F]``.

    Each statistic is taken over all entries of a block, so it does not change when hidden neurons are permuted.
    """
    features = []
    for name, tensor in params.items():
        blocks = gate_blocks(name, tensor)
        quantiles = torch.quantile(blocks, torch.tensor(QUANTILES, dtype=blocks.dtype, device=blocks.device), dim=-1)
        features += [blocks.mean(-1), blocks.std(-1), *quantiles]
    return torch.cat(features, dim=-1)


class LayerwiseStatisticsEncoder(WeightEncoder):
    """Statistics per weight matrix and bias, split by gate, then an MLP (permutation-invariant)."""

    name = "layerwise_statistics"

    def __init__(self, shape: EncoderShape, hidden: int = 320) -> None:
        super().__init__(shape)
        blocks = sum(4 if name.startswith("lstm.") else 1 for name in shape.architecture.parameter_shapes())
        features = blocks * (2 + len(QUANTILES))
        self.net = nn.Sequential(nn.LayerNorm(features), mlp(features, hidden, hidden, shape.embedding_dim))

    def forward(self, params: Params) -> torch.Tensor:
        return self.net(layerwise_statistics(params))


class FlatEncoder(WeightEncoder):
    """All weights flattened into one vector, then an MLP (not invariant: trained on permuted RNNs)."""

    name = "flat"
    needs_augmentation = True

    def __init__(self, shape: EncoderShape, hidden: int = 16) -> None:
        super().__init__(shape)
        self.net = mlp(shape.architecture.num_parameters, hidden, hidden, shape.embedding_dim)

    def forward(self, params: Params) -> torch.Tensor:
        return self.net(torch.cat([tensor.flatten(1) for tensor in params.values()], dim=-1))
