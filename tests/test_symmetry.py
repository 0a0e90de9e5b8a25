"""Hidden-neuron permutations keep an LSTM's function; permutations that break the coupling do not."""

import pytest
import torch

from rnn_zoos.lstm.functional import LSTMArchitecture, LSTMWithHead, lstm_forward, stack_params
from rnn_zoos.lstm.symmetry import permute_hidden, random_permutations
from rnn_zoos.lstm.weights import GATES, LSTMWeights, merge_gates

ARCH = LSTMArchitecture(input_size=4, hidden_size=6, num_layers=2, output_size=3)


@pytest.fixture
def params() -> dict[str, torch.Tensor]:
    torch.manual_seed(1)
    modules = [LSTMWithHead(ARCH).double() for _ in range(3)]
    return stack_params([{k: v.detach() for k, v in m.state_dict().items()} for m in modules])


@pytest.fixture
def inputs() -> torch.Tensor:
    return torch.randn(3, 5, 7, ARCH.input_size, dtype=torch.float64)


def test_permuted_rnn_computes_the_same_function(params, inputs) -> None:
    perms = random_permutations(params, torch.Generator().manual_seed(0))
    permuted = permute_hidden(params, perms)
    assert not torch.equal(permuted["lstm.weight_hh_l0"], params["lstm.weight_hh_l0"])
    torch.testing.assert_close(lstm_forward(permuted, inputs)[0], lstm_forward(params, inputs)[0])


def test_identity_and_inverse(params) -> None:
    identity = [torch.arange(ARCH.hidden_size).expand(3, -1) for _ in range(ARCH.num_layers)]
    assert all(torch.equal(permute_hidden(params, identity)[k], params[k]) for k in params)
    perms = random_permutations(params, torch.Generator().manual_seed(2))
    inverse = [torch.argsort(perm, dim=-1) for perm in perms]
    restored = permute_hidden(permute_hidden(params, perms), inverse)
    assert all(torch.equal(restored[k], params[k]) for k in params)


def _uncoupled(params, perm, skip: str) -> dict[str, torch.Tensor]:
    """Permute layer 0's neurons but leave out one of the coupled places."""
    weights = LSTMWeights.from_params(params)
    if skip == "gate blocks together":  # permute only the input-gate block of weight_ih, not the other three
        gated = weights.gates(0, "weight_ih").clone()
        input_gate = GATES.index("input")
        gated[:, input_gate] = gated[:, input_gate, perm[0]]
        return {**params, "lstm.weight_ih_l0": merge_gates(gated, "weight_ih")}
    out = weights.permute_hidden([perm, torch.arange(ARCH.hidden_size).expand(3, -1)]).to_params()
    if skip == "recurrent columns":  # put the recurrent matrix's columns back
        out["lstm.weight_hh_l0"] = out["lstm.weight_hh_l0"][..., torch.argsort(perm[0])]
    if skip == "next layer columns":
        out["lstm.weight_ih_l1"] = params["lstm.weight_ih_l1"]
    return out


@pytest.mark.parametrize("skip", ["recurrent columns", "next layer columns", "gate blocks together"])
def test_permutation_without_coupling_changes_the_function(params, inputs, skip) -> None:
    perm = torch.stack([torch.roll(torch.arange(ARCH.hidden_size), 1)] * 3)
    coupled = permute_hidden(params, [perm, torch.arange(ARCH.hidden_size).expand(3, -1)])
    torch.testing.assert_close(lstm_forward(coupled, inputs)[0], lstm_forward(params, inputs)[0])
    broken = _uncoupled(params, perm, skip)
    difference = (lstm_forward(broken, inputs)[0] - lstm_forward(params, inputs)[0]).abs().max()
    assert difference > 1e-3


def test_last_layer_couples_with_the_head(params, inputs) -> None:
    perm = torch.stack([torch.roll(torch.arange(ARCH.hidden_size), 2)] * 3)
    identity = torch.arange(ARCH.hidden_size).expand(3, -1)
    permuted = permute_hidden(params, [identity, perm])
    assert not torch.equal(permuted["head.weight"], params["head.weight"])
    torch.testing.assert_close(lstm_forward(permuted, inputs)[0], lstm_forward(params, inputs)[0])
    permuted["head.weight"] = params["head.weight"]
    assert (lstm_forward(permuted, inputs)[0] - lstm_forward(params, inputs)[0]).abs().max() > 1e-3


def test_wrong_number_of_permutations_is_refused(params) -> None:
    with pytest.raises(ValueError, match="one permutation per layer"):
        permute_hidden(params, [torch.arange(ARCH.hidden_size).expand(3, -1)])


def test_typed_weights_are_permuted_alike(params) -> None:
    perms = random_permutations(params, torch.Generator().manual_seed(4))
    typed = LSTMWeights.from_params(params)
    assert [perm.shape for perm in random_permutations(typed, torch.Generator().manual_seed(4))] == [(3, ARCH.hidden_size)] * 2
    permuted = permute_hidden(params, perms)
    assert all(torch.equal(permuted[name], tensor) for name, tensor in typed.permute_hidden(perms).items())


def test_shared_permutations_are_the_same_for_every_model(params) -> None:
    perms = random_permutations(params, torch.Generator().manual_seed(5), shared=True)
    assert all(torch.equal(perm[0], perm[index]) for perm in perms for index in range(3))
    assert all(torch.equal(perm[0].sort().values, torch.arange(ARCH.hidden_size)) for perm in perms)
