"""Hidden-neuron permutations of LSTM weights: the symmetry that leaves an RNN's function unchanged.

Neuron ``j`` of layer ``l`` owns four rows of ``weight_ih_l{l}``, ``weight_hh_l{l}`` and the two
biases (one in each gate block: input, forget, cell, output), the column ``j`` of ``weight_hh_l{l}``
(its recurrent output) and the column ``j`` of the next layer's ``weight_ih_l{l+1}`` (or of
``head.weight`` after the last layer). Permuting the neurons of a layer moves all of these together.
A permutation ``perm`` puts old neuron ``perm[j]`` at position ``j``.
"""

from __future__ import annotations

import torch

from .lstm import Params, architecture_of


def gate_rows(perm: torch.Tensor, hidden_size: int) -> torch.Tensor:
    """Row indices ``[M, 4 * hidden_size]`` that apply neuron permutations ``[M, hidden_size]`` to every gate block."""
    return torch.cat([perm + block * hidden_size for block in range(4)], dim=-1)


def _take(tensor: torch.Tensor, index: torch.Tensor, dim: int) -> torch.Tensor:
    """Per-model ``index_select``: ``index`` is ``[M, n]`` and selects along ``dim`` of ``tensor`` ``[M, ...]``."""
    shape = [1] * tensor.dim()
    shape[0], shape[dim] = index.shape[0], index.shape[1]
    expanded = list(tensor.shape)
    expanded[dim] = index.shape[1]
    return torch.gather(tensor, dim, index.reshape(shape).expand(expanded))


def permute_hidden(params: Params, perms: list[torch.Tensor]) -> Params:
    """Permute the hidden neurons of every layer; the permuted RNNs compute the same functions.

    Args:
        params: batched parameters ``[M, ...]``.
        perms: one ``[M, hidden_size]`` permutation per layer (one per model).
    """
    architecture = architecture_of(params)
    if len(perms) != architecture.num_layers:
        raise ValueError(f"permute_hidden needs one permutation per layer ({architecture.num_layers}), got {len(perms)}")
    out = dict(params)
    for layer, perm in enumerate(perms):
        rows = gate_rows(perm, architecture.hidden_size)
        for kind in ("weight_ih", "weight_hh", "bias_ih", "bias_hh"):
            name = f"lstm.{kind}_l{layer}"
            out[name] = _take(out[name], rows, 1)
        recurrent = f"lstm.weight_hh_l{layer}"
        out[recurrent] = _take(out[recurrent], perm, 2)
        consumer = f"lstm.weight_ih_l{layer + 1}" if layer + 1 < architecture.num_layers else "head.weight"
        out[consumer] = _take(out[consumer], perm, 2)
    return out


def random_permutations(params: Params, generator: torch.Generator | None = None, shared: bool = False) -> list[torch.Tensor]:
    """Uniformly random neuron permutations ``[M, hidden_size]`` for every layer.

    Independent for every model, or with ``shared`` one permutation per layer for the whole batch
    (what the paper's augmentation draws at each training step).
    """
    architecture = architecture_of(params)
    models = params["head.weight"].shape[0]
    device = params["head.weight"].device
    rows = 1 if shared else models
    return [
        torch.argsort(torch.rand(rows, architecture.hidden_size, generator=generator), dim=-1).expand(models, -1).to(device)
        for _ in range(architecture.num_layers)
    ]
