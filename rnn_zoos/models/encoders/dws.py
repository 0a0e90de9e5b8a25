"""The paper's permutation-equivariant deep-weight-space network for LSTMs (``NFLSTMParameterEncoder``).

The weights are read with the four gates as channels (:meth:`rnn_zoos.lstm.weights.LSTMWeights.gate_channels`):
``weight_ih_l{l}`` and ``weight_hh_l{l}`` become ``[M, H, fan_in, 4]`` (rows: the layer's neurons), the
biases ``[M, H, 4]``, and the head ``[M, O, H, 4]`` (its one channel repeated four times); features
between layers are :class:`rnn_zoos.lstm.weights.LSTMTensors` of that layout with more channels. Four
:class:`NPLinearLSTM` layers of 48 channels (ReLU between them) mix every matrix with its own row,
column and overall means and with the means of the matrices that share its neurons, all shared
across neurons, so permuting the hidden neurons of a layer permutes the outputs alike
(equivariance). Learned embeddings of the input columns and output rows break the symmetry the RNN
does not have. The mean of every output tensor over its neuron dimensions (invariant) feeds an MLP
``10 * 48 -> 128 -> 16``.

Tensors here are channel-last; a 1x1 convolution of the paper's code is a :class:`torch.nn.Linear`
over channels, initialised as the paper's ``set_init_`` does (uniform in +-sqrt(1 / fan-in summed
over the terms that add up)).
"""

from __future__ import annotations

import math

import torch
from torch import nn

from rnn_zoos.lstm.functional import LSTMArchitecture, Params
from rnn_zoos.lstm.weights import GATES, LayerTensors, LSTMTensors, LSTMWeights, as_weights

from .base import EncoderShape, WeightEncoder, mlp


def _init_together(*layers: nn.Linear) -> None:
    """The paper's ``set_init_``: uniform weights and biases in +-sqrt(1 / summed fan-in) of layers whose outputs add."""
    bound = math.sqrt(1 / sum(layer.in_features for layer in layers))
    for layer in layers:
        nn.init.uniform_(layer.weight, -bound, bound)
        nn.init.uniform_(layer.bias, -bound, bound)


class MatrixTerms(nn.Module):
    """The six linear maps that update one weight matrix and its bias from broadcast means."""

    def __init__(self, channels_in: int, channels_out: int, summary_in: int, row_in: int, column_in: int) -> None:
        super().__init__()
        self.pointwise = nn.Linear(channels_in, channels_out)
        self.summary = nn.Linear(summary_in, channels_out)
        self.row = nn.Linear(row_in, channels_out)
        self.column = nn.Linear(column_in, channels_out)
        self.bias = nn.Linear(column_in, channels_out)
        self.bias_summary = nn.Linear(summary_in, channels_out)
        _init_together(self.pointwise, self.summary, self.row, self.column)
        _init_together(self.bias, self.bias_summary)

    def forward(
        self, weight: torch.Tensor, summary: torch.Tensor, along_columns: torch.Tensor, along_rows: torch.Tensor
    ) -> tuple[torch.Tensor, torch.Tensor]:
        """New weight ``[M, R, K, C']`` and bias ``[M, R, C']`` from the weight ``[M, R, K, C]``, the global
        ``summary [M, S]``, features indexed by columns ``[M, K, ·]`` and by rows ``[M, R, ·]``."""
        global_term = self.summary(summary)[:, None, None]
        new_weight = (
            self.pointwise(weight) + global_term + self.row(along_columns).unsqueeze(1) + self.column(along_rows).unsqueeze(2)
        )
        new_bias = self.bias(along_rows) + self.bias_summary(summary).unsqueeze(1)
        return new_weight, new_bias


class NPLinearLSTM(nn.Module):
    """One equivariant layer over an LSTM's weights (the paper's ``NPLinearLSTM`` with ``io_embed=True``).

    Matrices come in two streams: input-to-hidden ``ih`` (the LSTM layers' ``weight_ih`` and, last,
    the head) and hidden-to-hidden ``hh``. Each matrix is updated from itself (pointwise), from the
    overall means of every tensor, and from means broadcast along its rows and its columns: those of
    the tensors whose rows or columns are the same neurons, with exactly the paper's choice of terms.
    """

    def __init__(self, architecture: LSTMArchitecture, channels_in: int, channels_out: int) -> None:
        super().__init__()
        layers = architecture.num_layers
        self.layers = layers
        summary = 2 * (2 * layers + 1) * channels_in
        ih, hh = [], []
        for index in range(layers + 1):  # the LSTM layers' weight_ih, then the head
            row_in = channels_in * (1 + (5 if index > 0 else 0))
            column_in = channels_in * (2 + (4 if index < layers else 0))
            ih.append(MatrixTerms(channels_in, channels_out, summary, row_in, column_in))
        for index in range(layers):
            column_in = channels_in * (3 + (1 if index < layers - 1 else 0))
            hh.append(MatrixTerms(channels_in, channels_out, summary, 5 * channels_in, column_in))
        self.ih, self.hh = nn.ModuleList(ih), nn.ModuleList(hh)
        self.in_embed = nn.Parameter(torch.randn(architecture.input_size, channels_in))
        self.out_embed = nn.Parameter(torch.randn(architecture.output_size, 1, channels_in))
        self.out_bias_embed = nn.Parameter(torch.randn(architecture.output_size, channels_in))

    def forward(self, features: LSTMTensors) -> LSTMTensors:
        """New features of every tensor: weights ``[M, rows, cols, C']``, biases ``[M, rows, C']``, from ``C`` channels."""
        layers = self.layers
        weights_ih = [layer.weight_ih for layer in features.layers] + [features.head_weight]
        biases_ih = [layer.bias_ih for layer in features.layers] + [features.head_bias]
        weights_hh = [layer.weight_hh for layer in features.layers]
        biases_hh = [layer.bias_hh for layer in features.layers]
        weights_ih[0] = weights_ih[0] + self.in_embed
        weights_ih[-1] = weights_ih[-1] + self.out_embed
        biases_ih[-1] = biases_ih[-1] + self.out_bias_embed
        over_rows = lambda weights: [w.mean(dim=1) for w in weights]  # noqa: E731  [M, cols, C]
        over_columns = lambda weights: [w.mean(dim=2) for w in weights]  # noqa: E731  [M, rows, C]
        rows_ih, rows_hh = over_rows(weights_ih), over_rows(weights_hh)
        columns_ih, columns_hh = over_columns(weights_ih), over_columns(weights_hh)
        ordered_weights = [w for pair in zip(weights_ih, weights_hh) for w in pair] + [weights_ih[-1]]
        ordered_biases = [b for pair in zip(biases_ih, biases_hh) for b in pair] + [biases_ih[-1]]
        summary = torch.cat([w.mean(dim=(1, 2)) for w in ordered_weights] + [b.mean(dim=1) for b in ordered_biases], dim=-1)
        new_ih = []
        for index, terms in enumerate(self.ih):
            along_columns = [rows_ih[index]]
            along_rows = [columns_ih[index], biases_ih[index]]
            if index > 0:
                along_columns += [
                    columns_ih[index - 1],
                    biases_ih[index - 1],
                    columns_hh[index - 1],
                    biases_hh[index - 1],
                    rows_hh[index - 1],
                ]
            if index < layers:
                along_rows += [columns_hh[index], biases_hh[index], rows_hh[index], rows_ih[index + 1]]
            new_ih.append(terms(weights_ih[index], summary, torch.cat(along_columns, -1), torch.cat(along_rows, -1)))
        new_hh = []
        for index, terms in enumerate(self.hh):
            along_columns = [rows_hh[index], columns_hh[index], biases_hh[index], columns_ih[index], biases_ih[index]]
            along_rows = [columns_hh[index], biases_hh[index], rows_hh[index]]
            if index < layers - 1:
                along_rows.append(rows_ih[index + 1])
            new_hh.append(terms(weights_hh[index], summary, torch.cat(along_columns, -1), torch.cat(along_rows, -1)))
        new_layers = tuple(LayerTensors(ih[0], hh[0], ih[1], hh[1]) for ih, hh in zip(new_ih, new_hh))
        head_weight, head_bias = new_ih[-1]
        return LSTMTensors(new_layers, head_weight, head_bias)


class DWSEncoder(WeightEncoder):
    """Four equivariant layers (48 channels), mean over every tensor's neuron dimensions, an MLP to 16 (invariant)."""

    name = "dws"

    def __init__(self, shape: EncoderShape, channels: int = 48, layers: int = 4, hidden: int = 128) -> None:
        super().__init__(shape)
        arch = shape.architecture
        self.layers = nn.ModuleList(
            NPLinearLSTM(arch, len(GATES) if index == 0 else channels, channels) for index in range(layers)
        )
        self.readout = mlp(len(arch.parameter_shapes()) * channels, hidden, shape.embedding_dim)

    def equivariant_features(self, weights: LSTMWeights | Params) -> LSTMTensors:
        """The output of the last equivariant layer (permuting neurons permutes it alike)."""
        features = as_weights(weights, self.shape.architecture).gate_channels()
        for index, layer in enumerate(self.layers):
            if index > 0:
                features = features.map(torch.relu)
            features = layer(features)
        return features

    def forward(self, weights: LSTMWeights | Params) -> torch.Tensor:
        pooled = [tensor.flatten(1, -2).mean(dim=1) for tensor in self.equivariant_features(weights).tensors()]
        return self.readout(torch.cat(pooled, dim=-1))
