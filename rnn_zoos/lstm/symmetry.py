"""Hidden-neuron permutations of LSTM weights: the symmetry that leaves an RNN's function unchanged.

Neuron ``j`` of layer ``l`` owns its row in each of the four gate blocks (input, forget, cell,
output) of ``weight_ih_l{l}``, ``weight_hh_l{l}`` and the two biases, the column ``j`` of
``weight_hh_l{l}`` (its recurrent output) and the column ``j`` of the next layer's
``weight_ih_l{l+1}`` (or of ``head.weight`` after the last layer). Permuting the neurons of a layer
moves all of these together (:meth:`rnn_zoos.lstm.weights.LSTMWeights.permute_hidden`). A permutation
``perm`` puts old neuron ``perm[j]`` at position ``j``.
"""

from __future__ import annotations

import torch

from .functional import Params
from .weights import LSTMWeights, as_weights


def permute_hidden(params: Params, perms: list[torch.Tensor]) -> Params:
    """Permute the hidden neurons of every layer; the permuted RNNs compute the same functions.

    Args:
        params: batched parameters ``[M, ...]``.
        perms: one ``[M, hidden_size]`` permutation per layer (one per model).

    Returns:
        The permuted parameters, in parameter order.
    """
    return LSTMWeights.from_params(params).permute_hidden(perms).to_params()


def random_permutations(
    params: Params | LSTMWeights, generator: torch.Generator | None = None, shared: bool = False
) -> list[torch.Tensor]:
    """Uniformly random neuron permutations ``[M, hidden_size]`` for every layer, on the parameters' device.

    Independent for every model, or with ``shared`` one permutation per layer for the whole batch
    (what the paper's augmentation draws at each training step). Drawn on the CPU from ``generator``.
    """
    weights = as_weights(params)
    batch, hidden = weights.batch_shape, weights.hidden_size
    rows = (1,) * len(batch) if shared else batch
    return [
        torch.argsort(torch.rand(*rows, hidden, generator=generator), dim=-1).expand(*batch, hidden).to(weights.head_bias.device)
        for _ in range(weights.num_layers)
    ]
