"""The parameter transformer: one token per row of every weight matrix, a compression token, a transformer.

As the paper's ``ParameterTransformerEncoder``: each row of a weight matrix, with its bias entry
appended, is projected to ``d = 128`` by a linear map of its own tensor; the tokens of all tensors,
then a learned compression token (zeros at start), get a learned positional encoding (normal at
start) and pass 6 post-norm ``nn.TransformerEncoderLayer``\\ s (2 heads, feed-forward 512, ReLU,
PyTorch's default dropout 0.1); the compression token's output is projected to the embedding.
Formal languages: 518 row tokens + 1; sequential MNIST: 522 + 1.
"""

from __future__ import annotations

import torch
from torch import nn

from rnn_zoos.lstm.functional import Params
from rnn_zoos.lstm.weights import LSTMWeights, as_weights, weight_matrix_shapes

from .base import EncoderShape, WeightEncoder


class ParameterTransformerEncoder(WeightEncoder):
    """A transformer over weight-row tokens (not invariant: its positional encoding tells rows apart; permuted in training)."""

    name = "parameter_transformer"
    needs_augmentation = True

    def __init__(self, shape: EncoderShape, width: int = 128, layers: int = 6, heads: int = 2) -> None:
        super().__init__(shape)
        matrices = weight_matrix_shapes(shape.architecture)
        self.projections = nn.ModuleList(nn.Linear(columns + 1, width) for _, columns in matrices)
        tokens = sum(rows for rows, _ in matrices)
        self.compression = nn.Parameter(torch.zeros(1, 1, width))
        self.positions = nn.Parameter(torch.randn(1, tokens + 1, width))
        layer = nn.TransformerEncoderLayer(width, heads, dim_feedforward=4 * width, batch_first=True)
        self.transformer = nn.TransformerEncoder(layer, layers, enable_nested_tensor=False)
        self.out = nn.Linear(width, shape.embedding_dim)

    def forward(self, weights: LSTMWeights | Params) -> torch.Tensor:
        matrices = as_weights(weights, self.shape.architecture).rows_with_bias()
        rows = [projection(matrix) for projection, matrix in zip(self.projections, matrices)]
        models = rows[0].shape[0]
        sequence = torch.cat([*rows, self.compression.expand(models, -1, -1)], dim=1) + self.positions
        return self.out(self.transformer(sequence)[:, -1])
