"""The parameter transformer: one token per neuron, learned positional encoding, a compression token."""

from __future__ import annotations

import torch
from torch import nn

from rnn_zoos.lstm import Params

from .base import EncoderShape, WeightEncoder


def neuron_tokens(params: Params, num_layers: int) -> list[torch.Tensor]:
    """One token per neuron, per layer: ``[M, H, 4 * (fan_in + H + 2)]`` for each LSTM layer (a hidden neuron's rows
    of every gate block in ``weight_ih``, ``weight_hh`` and both biases), then ``[M, O, H + 1]`` for the head."""
    tokens = []
    for layer in range(num_layers):
        parts = [params[f"lstm.{kind}_l{layer}"] for kind in ("weight_ih", "weight_hh", "bias_ih", "bias_hh")]
        models, gates = parts[0].shape[:2]
        per_gate = [part.reshape(models, 4, gates // 4, -1) for part in parts]  # [M, 4, H, n]
        tokens.append(torch.cat(per_gate, dim=-1).transpose(1, 2).flatten(2))
    tokens.append(torch.cat([params["head.weight"], params["head.bias"].unsqueeze(-1)], dim=-1))
    return tokens


class ParameterTransformerEncoder(WeightEncoder):
    """A transformer over neuron tokens (not invariant: its positional encoding tells neurons apart; trained on permuted RNNs)."""

    name = "parameter_transformer"
    needs_augmentation = True

    def __init__(self, shape: EncoderShape, width: int = 80, layers: int = 2, heads: int = 4) -> None:
        super().__init__(shape)
        arch = shape.architecture
        token_sizes = [4 * ((arch.input_size if layer == 0 else arch.hidden_size) + arch.hidden_size + 2) for layer in range(arch.num_layers)]
        token_sizes.append(arch.hidden_size + 1)
        self.projections = nn.ModuleList(nn.Linear(size, width) for size in token_sizes)
        count = arch.num_layers * arch.hidden_size + arch.output_size
        self.positions = nn.Parameter(torch.randn(count, width) * 0.02)
        self.compression = nn.Parameter(torch.randn(1, 1, width) * 0.02)
        layer = nn.TransformerEncoderLayer(width, heads, dim_feedforward=2 * width, dropout=0.0, batch_first=True, norm_first=True)
        self.transformer = nn.TransformerEncoder(layer, layers, enable_nested_tensor=False)
        self.out = nn.Sequential(nn.LayerNorm(width), nn.Linear(width, shape.embedding_dim))

    def forward(self, params: Params) -> torch.Tensor:
        tokens = neuron_tokens(params, self.shape.architecture.num_layers)
        embedded = torch.cat([projection(token) for projection, token in zip(self.projections, tokens)], dim=1) + self.positions
        sequence = torch.cat([self.compression.expand(embedded.shape[0], -1, -1), embedded], dim=1)
        return self.out(self.transformer(sequence)[:, 0])
