"""Typed LSTM weights: views without copies, PyTorch's gate order, batch dimensions, and the permutation symmetry
(the LSTM's function is unchanged, the deep-weight-space layers are equivariant; uncoupled permutations are neither)."""

from __future__ import annotations

import pytest
import torch

from rnn_zoos.lstm.functional import LSTMArchitecture, LSTMWithHead, lstm_forward, stack_params
from rnn_zoos.models.encoders.dws import NPLinearLSTM
from rnn_zoos.lstm.symmetry import random_permutations
from rnn_zoos.lstm.weights import (
    GATES,
    LayerTensors,
    LSTMTensors,
    LSTMWeights,
    merge_gates,
    split_gates,
    weight_matrix_shapes,
)

ARCH = LSTMArchitecture(input_size=4, hidden_size=5, num_layers=2, output_size=3)


def modules(count: int, arch: LSTMArchitecture = ARCH) -> list[LSTMWithHead]:
    torch.manual_seed(0)
    return [LSTMWithHead(arch).double() for _ in range(count)]


def batched(count: int, arch: LSTMArchitecture = ARCH) -> dict[str, torch.Tensor]:
    return stack_params([{name: t.detach() for name, t in module.state_dict().items()} for module in modules(count, arch)])


def permute_features(features: LSTMTensors, perms: list[torch.Tensor]) -> LSTMTensors:
    """Where permuted neurons move features of the gates-as-channels layout: rows ``[M, H, ...]`` of a layer's tensors are
    its neurons, columns ``[M, rows, H, C]`` those of the layer feeding it (its own for ``weight_hh``)."""
    take = lambda tensor, perm, dim: torch.stack([t.index_select(dim - 1, p) for t, p in zip(tensor, perm)])  # noqa: E731
    layers = []
    for index, (layer, perm) in enumerate(zip(features.layers, perms)):
        weight_ih = take(layer.weight_ih, perm, 1)
        if index:
            weight_ih = take(weight_ih, perms[index - 1], 2)
        weight_hh = take(take(layer.weight_hh, perm, 1), perm, 2)
        layers.append(LayerTensors(weight_ih, weight_hh, take(layer.bias_ih, perm, 1), take(layer.bias_hh, perm, 1)))
    return LSTMTensors(tuple(layers), take(features.head_weight, perms[-1], 2), features.head_bias)


def rows_only(weights: LSTMWeights, layer: int, perm: torch.Tensor) -> LSTMWeights:
    """Move the neurons' rows of one layer (every gate block) but not their columns: not a symmetry of the LSTM."""
    tensors = weights.to_params()
    for kind in LayerTensors._fields:
        tensors[f"lstm.{kind}_l{layer}"] = merge_gates(weights.gates(layer, kind)[..., perm, :] if kind.startswith("weight")
                                                       else weights.gates(layer, kind)[..., perm], kind)
    return LSTMWeights.from_params(tensors)


@pytest.mark.parametrize("batch", [(), (3,), (2, 3)])
def test_params_round_trip_shares_the_tensors(batch) -> None:
    single = {name: torch.randn(*batch, *shape) for name, shape in ARCH.parameter_shapes().items()}
    weights = LSTMWeights.from_params(single)
    assert weights.architecture == ARCH and weights.batch_shape == batch and weights.num_layers == 2
    params = weights.to_params()
    assert list(params) == list(ARCH.parameter_shapes())
    assert all(params[name] is single[name] for name in single)  # no copies
    assert all(a is b for a, b in zip(LSTMWeights.from_params(params, ARCH).tensors(), weights.tensors()))
    assert [name for name, _ in weights.items()] == list(params) and len(weights.tensors()) == len(params)


def test_views_write_through_to_the_parameters() -> None:
    params = batched(2)
    weights = LSTMWeights.from_params(params)
    gated = weights.gates(1, "weight_hh")
    assert gated.shape == (2, 4, 5, 5) and gated.data_ptr() == params["lstm.weight_hh_l1"].data_ptr()
    gated[:, GATES.index("forget"), 2] = 7.0
    assert (params["lstm.weight_hh_l1"][:, 5 + 2] == 7.0).all()
    assert torch.equal(merge_gates(gated, "weight_hh"), params["lstm.weight_hh_l1"])
    assert weights.gates(0, "bias_ih").shape == (2, 4, 5)
    assert torch.equal(split_gates(params["lstm.bias_ih_l0"], "bias_ih")[:, 3], params["lstm.bias_ih_l0"][:, 15:])


def test_wrong_names_shapes_and_batch_shapes_are_named() -> None:
    params = batched(2)
    with pytest.raises(ValueError, match=r"missing lstm\.bias_hh_l1"):
        LSTMWeights.from_params({name: t for name, t in params.items() if name != "lstm.bias_hh_l1"})
    with pytest.raises(ValueError, match=r"unexpected 'lstm\.weight_ih_l2'"):
        LSTMWeights.from_params({**params, "lstm.weight_ih_l2": params["lstm.weight_hh_l1"]}, ARCH)
    with pytest.raises(ValueError, match=r"shapes head\.bias \(2, 4\) \(expected \(2, 3\)\)"):
        LSTMWeights.from_params({**params, "head.bias": torch.zeros(2, 4)})
    with pytest.raises(ValueError, match=r"lstm\.weight_hh_l0 \(3, 20, 5\) \(expected \(2, 20, 5\)\)"):
        LSTMWeights.from_params({**params, "lstm.weight_hh_l0": torch.zeros(3, 20, 5)})
    with pytest.raises(ValueError, match="one permutation per layer"):
        LSTMWeights.from_params(params).permute_hidden([torch.arange(5)])
    with pytest.raises(ValueError, match=r"last dimension must be hidden_size \(5\)"):
        LSTMWeights.from_params(params).permute_hidden([torch.arange(4), torch.arange(5)])


def test_gate_views_follow_nn_lstm_gate_order() -> None:
    """One step of nn.LSTM from a nonzero state, recomputed gate by gate from the typed views."""
    (module,) = modules(1, LSTMArchitecture(4, 5, 1, 3))
    weights = LSTMWeights.from_params({name: tensor.detach() for name, tensor in module.state_dict().items()})
    x, h0, c0 = (torch.randn(1, size, dtype=torch.float64) for size in (4, 5, 5))
    w_ih, w_hh, b_ih, b_hh = (weights.gates(0, kind) for kind in LayerTensors._fields)
    gate = {name: w_ih[index] @ x[0] + w_hh[index] @ h0[0] + b_ih[index] + b_hh[index] for index, name in enumerate(GATES)}
    cell = torch.sigmoid(gate["forget"]) * c0[0] + torch.sigmoid(gate["input"]) * torch.tanh(gate["cell"])
    hidden = torch.sigmoid(gate["output"]) * torch.tanh(cell)
    _, (h1, c1) = module.lstm(x[None], (h0[None], c0[None]))
    torch.testing.assert_close(c1[0, 0], cell)
    torch.testing.assert_close(h1[0, 0], hidden)


def test_gate_channels_are_views_with_gates_last() -> None:
    weights = LSTMWeights.from_params(batched(2))
    channels = weights.gate_channels()
    assert channels.layers[1].weight_ih.shape == (2, 5, 5, 4) and channels.layers[0].bias_hh.shape == (2, 5, 4)
    assert channels.head_weight.shape == (2, 3, 5, 4) and channels.head_bias.shape == (2, 3, 4)
    for index, _ in enumerate(GATES):
        assert torch.equal(channels.layers[0].weight_ih[..., index], weights.gates(0, "weight_ih")[:, index])
        assert torch.equal(channels.head_weight[..., index], weights.head_weight)
    assert channels.layers[0].weight_hh.data_ptr() == weights.layers[0].weight_hh.data_ptr()


def test_flat_rows_with_bias_and_matrix_shapes() -> None:
    params = batched(3)
    weights = LSTMWeights.from_params(params)
    assert torch.equal(weights.flatten(), torch.cat([tensor.flatten(1) for tensor in params.values()], dim=1))
    assert weights.flatten().shape == (3, ARCH.num_parameters)
    rows = weights.rows_with_bias()
    assert [tuple(row.shape[1:]) for row in rows] == [(r, c + 1) for r, c in weight_matrix_shapes(ARCH)]
    assert weight_matrix_shapes(ARCH) == [(20, 4), (20, 5), (20, 5), (20, 5), (3, 5)]
    assert torch.equal(rows[1][..., -1], params["lstm.bias_hh_l0"]) and torch.equal(rows[-1][..., :-1], params["head.weight"])
    doubled = weights.map(lambda tensor: 2 * tensor)
    assert isinstance(doubled, LSTMWeights) and doubled.architecture == ARCH
    assert torch.equal(doubled.head_bias, 2 * params["head.bias"])


def test_two_batch_dimensions_and_broadcast_permutations() -> None:
    params = batched(6)
    grid = LSTMWeights.from_params({name: tensor.unflatten(0, (2, 3)) for name, tensor in params.items()})
    assert grid.batch_shape == (2, 3) and grid.flatten().shape == (2, 3, ARCH.num_parameters)
    perms = [torch.randperm(5, generator=torch.Generator().manual_seed(seed)) for seed in range(2)]
    flat = LSTMWeights.from_params(params).permute_hidden([perm.expand(6, -1) for perm in perms])
    for shaped in (perms, [perm.expand(2, 3, -1) for perm in perms], [perm.expand(3, -1) for perm in perms]):
        moved = grid.permute_hidden(shaped)
        assert all(torch.equal(a.flatten(0, 1), b) for a, b in zip(moved.tensors(), flat.tensors()))
    assert [perm.shape for perm in random_permutations(grid)] == [(2, 3, 5)] * 2


@pytest.mark.parametrize("layers", [1, 2, 3])
def test_permuted_weights_compute_the_same_function_and_rows_alone_do_not(layers) -> None:
    arch = LSTMArchitecture(4, 5, layers, 3)
    weights = LSTMWeights.from_params(batched(3, arch))
    inputs = torch.randn(3, 2, 6, 4, dtype=torch.float64)
    expected = lstm_forward(weights.to_params(), inputs)[0]
    perms = random_permutations(weights, torch.Generator().manual_seed(1))
    permuted = weights.permute_hidden(perms)
    assert not torch.equal(permuted.layers[0].weight_hh, weights.layers[0].weight_hh)
    torch.testing.assert_close(lstm_forward(permuted.to_params(), inputs)[0], expected)
    inverse = permuted.permute_hidden([torch.argsort(perm, dim=-1) for perm in perms])
    assert all(torch.equal(a, b) for a, b in zip(inverse.tensors(), weights.tensors()))
    for layer in range(layers):
        broken = rows_only(weights, layer, torch.roll(torch.arange(5), 1))
        assert (lstm_forward(broken.to_params(), inputs)[0] - expected).abs().max() > 1e-3


def test_dws_layer_is_equivariant_under_the_typed_permutation() -> None:
    arch = LSTMArchitecture(4, 5, 3, 3)
    weights = LSTMWeights.from_params(batched(3, arch))
    torch.manual_seed(0)
    first, second = NPLinearLSTM(arch, 4, 6).double(), NPLinearLSTM(arch, 6, 2).double()
    network = lambda w: second(first(w.gate_channels()).map(torch.relu))  # noqa: E731
    perms = random_permutations(weights, torch.Generator().manual_seed(2))
    assert all(torch.equal(a, b) for a, b in zip(weights.permute_hidden(perms).gate_channels().tensors(),
                                                 permute_features(weights.gate_channels(), perms).tensors()))
    moved, expected = network(weights.permute_hidden(perms)), permute_features(network(weights), perms)
    for (name, tensor), reference in zip(moved.items(), expected.tensors()):
        torch.testing.assert_close(tensor, reference, msg=name)
    roll, identity = torch.roll(torch.arange(5), 1).expand(3, -1), torch.arange(5).expand(3, -1)
    broken = rows_only(weights, 1, roll[0])  # layer 1's rows moved without the columns of its neurons: not a symmetry
    coupled = permute_features(network(weights), [identity, roll, identity])
    assert (network(broken).layers[1].weight_hh - coupled.layers[1].weight_hh).abs().max() > 1e-6
