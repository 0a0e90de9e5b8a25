"""Mechanistic encoders that read the weights directly: layer-wise statistics and flattened weights.

Both as the paper's code builds them (``ParameterStatisticsEncoder`` with ``per_layer=True`` and
``FlatParameterEncoder``, sized by ``define_encoder`` from ``training_configs.py``).
"""

from __future__ import annotations

import torch

from rnn_zoos.lstm.functional import Params
from rnn_zoos.lstm.weights import LSTMWeights, as_weights

from .base import EncoderShape, WeightEncoder, mlp

QUANTILES = (0.0, 0.25, 0.5, 0.75, 1.0)
STATISTICS = 2 + len(QUANTILES)
"""Per parameter tensor: mean, variance and the quantiles."""


def layerwise_statistics(params: LSTMWeights | Params) -> torch.Tensor:
    """Mean, variance (unbiased) and the quantiles 0, .25, .5, .75, 1 of every parameter tensor, in parameter order:
    ``[M, 7 * tensors]``.

    Each statistic is taken over all entries of a tensor, so none changes when hidden neurons are permuted.
    """
    quantiles = None
    features = []
    for tensor in as_weights(params).tensors():
        flat = tensor.flatten(1)
        if quantiles is None:
            quantiles = torch.tensor(QUANTILES, dtype=flat.dtype, device=flat.device)
        features += [flat.mean(1, keepdim=True), flat.var(1, keepdim=True), torch.quantile(flat, quantiles, dim=1).T]
    return torch.cat(features, dim=1)


class LayerwiseStatisticsEncoder(WeightEncoder):
    """Seven statistics of each weight matrix and bias, then an MLP ``70 -> 128 -> 16`` (permutation-invariant).

    The paper's config names a 768-wide, 3-layer core for this encoder, but its ``define_encoder`` reads
    ``encoder_mlp_hidden_size`` (128) and ``encoder_mlp_num_layers`` (1), which is what it trains.
    """

    name = "layerwise_statistics"

    def __init__(self, shape: EncoderShape, hidden: int = 128) -> None:
        super().__init__(shape)
        features = len(shape.architecture.parameter_shapes()) * STATISTICS
        self.net = mlp(features, hidden, shape.embedding_dim)

    def forward(self, weights: LSTMWeights | Params) -> torch.Tensor:
        return self.net(layerwise_statistics(weights))


class FlatEncoder(WeightEncoder):
    """All weights flattened into one vector (in parameter order), then an MLP ``P -> 128 -> 128 -> 128 -> 16``.

    Not invariant: the paper trains it on randomly permuted RNNs."""

    name = "flat"
    needs_augmentation = True

    def __init__(self, shape: EncoderShape, hidden: int = 128, layers: int = 3) -> None:
        super().__init__(shape)
        self.net = mlp(shape.architecture.num_parameters, *[hidden] * layers, shape.embedding_dim)

    def forward(self, weights: LSTMWeights | Params) -> torch.Tensor:
        return self.net(as_weights(weights, self.shape.architecture).flatten())
