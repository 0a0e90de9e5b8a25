"""The six encoders: invariance where promised (and a coupling-breaking permutation that changes the output),
equivariance of the deep-weight-space layer, augmentation in training, and save/load."""

from __future__ import annotations

import pytest
import torch

from baselines.encoders import ENCODERS, EncoderShape, build_encoder
from baselines.encoders.dws import DWSEncoder
from baselines.modeling import EmulatorConfig, EmulatorModel, RNNEncoderConfig, RNNEncoderModel
from rnn_zoos.format import FORMAL_LANG, SEQ_MNIST
from rnn_zoos.lstm import lstm_forward
from rnn_zoos.streams import run_seeds
from rnn_zoos.symmetry import permute_hidden, random_permutations
from rnn_zoos.training import initial_params

INVARIANT = ["layerwise_statistics", "dws", "noninteractive_probing", "interactive_probing"]
AUGMENTED = ["flat", "parameter_transformer"]


def rnns(spec=FORMAL_LANG, count: int = 5) -> dict[str, torch.Tensor]:
    return {name: tensor.double() * 3 for name, tensor in initial_params(spec.architecture, torch.tensor(run_seeds(9, range(count)))).items()}


def encoder(name: str, spec=FORMAL_LANG) -> torch.nn.Module:
    torch.manual_seed(0)
    return build_encoder(name, EncoderShape(spec.architecture, spec.token_vocab)).double().eval()


def break_gate_coupling(params: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
    """Swap neuron 0's input-gate row with neuron 3's forget-gate row in layer 0: not a symmetry of the LSTM."""
    broken = {name: tensor.clone() for name, tensor in params.items()}
    hidden = params["lstm.weight_hh_l0"].shape[-1]
    for kind in ("weight_ih", "weight_hh", "bias_ih", "bias_hh"):
        tensor = broken[f"lstm.{kind}_l0"]
        tensor[:, [0, hidden + 3]] = tensor[:, [hidden + 3, 0]]
    return broken


@pytest.mark.parametrize("spec", [FORMAL_LANG, SEQ_MNIST], ids=lambda spec: spec.name)
@pytest.mark.parametrize("name", INVARIANT)
def test_invariant_encoders_ignore_neuron_permutations(name, spec) -> None:
    params = rnns(spec)
    model = encoder(name, spec)
    permuted = permute_hidden(params, random_permutations(params, torch.Generator().manual_seed(1)))
    torch.testing.assert_close(model(permuted), model(params), rtol=1e-9, atol=1e-9)
    broken = break_gate_coupling(params)
    assert (lstm_forward(broken, torch.randn(2, 7, spec.architecture.input_size, dtype=torch.float64))[0]
            - lstm_forward(params, torch.randn(2, 7, spec.architecture.input_size, dtype=torch.float64))[0]).abs().max() > 0
    assert (model(broken) - model(params)).abs().max() > 1e-6


@pytest.mark.parametrize("name", ["dws", "noninteractive_probing", "interactive_probing"])
def test_rows_permuted_without_their_columns_change_the_embedding(name) -> None:
    params = rnns()
    model = encoder(name)
    perm = torch.roll(torch.arange(32), 1)
    broken = dict(params)
    rows = torch.cat([perm + block * 32 for block in range(4)])
    for kind in ("weight_ih", "weight_hh", "bias_ih", "bias_hh"):  # rows moved, recurrent and next-layer columns not
        broken[f"lstm.{kind}_l0"] = params[f"lstm.{kind}_l0"][:, rows]
    assert (model(broken) - model(params)).abs().max() > 1e-6


def test_dws_layers_are_equivariant() -> None:
    params = rnns()
    model: DWSEncoder = encoder("dws")
    perms = random_permutations(params, torch.Generator().manual_seed(3))
    nodes, edges = model.equivariant_features(params)
    moved_nodes, moved_edges = model.equivariant_features(permute_hidden(params, perms))
    gather = lambda tensor, perm, dim: torch.stack([t.index_select(dim - 1, p) for t, p in zip(tensor, perm)])  # noqa: E731
    for layer, perm in enumerate(perms):
        torch.testing.assert_close(moved_nodes[f"h{layer}"], gather(nodes[f"h{layer}"], perm, 1))
        torch.testing.assert_close(moved_edges[f"hh{layer}"], gather(gather(edges[f"hh{layer}"], perm, 1), perm, 2))
    torch.testing.assert_close(moved_edges["ih1"], gather(gather(edges["ih1"], perms[1], 1), perms[0], 2))
    torch.testing.assert_close(moved_edges["ih0"], gather(edges["ih0"], perms[0], 1))
    torch.testing.assert_close(moved_edges["head"], gather(edges["head"], perms[1], 2))
    torch.testing.assert_close(moved_nodes["out"], nodes["out"])
    # moving only the row side of the recurrent edges is not a symmetry: the features do not follow
    broken = dict(params)
    broken["lstm.weight_hh_l0"] = torch.stack([w.index_select(1, p) for w, p in zip(params["lstm.weight_hh_l0"], perms[0])])
    assert (model.equivariant_features(broken)[1]["hh0"] - edges["hh0"]).abs().max() > 1e-6


@pytest.mark.parametrize("name", AUGMENTED)
def test_flat_and_transformer_are_not_invariant_and_ask_for_augmentation(name) -> None:
    params = rnns()
    model = encoder(name)
    permuted = permute_hidden(params, random_permutations(params, torch.Generator().manual_seed(1)))
    assert (model(permuted) - model(params)).abs().max() > 1e-4
    assert model.needs_augmentation and not any(encoder(other).needs_augmentation for other in INVARIANT)


@pytest.mark.parametrize("name", list(ENCODERS))
def test_save_pretrained_then_from_pretrained_gives_identical_embeddings(name, tmp_path) -> None:
    params = {key: value.float() for key, value in rnns().items()}
    torch.manual_seed(0)
    model = RNNEncoderModel(RNNEncoderConfig.for_zoo(name, FORMAL_LANG, training={"steps": 7})).eval()
    model.save_pretrained(tmp_path / name)
    loaded = RNNEncoderModel.from_pretrained(tmp_path / name).eval()
    assert torch.equal(loaded(params), model(params))
    assert loaded.config.training == {"steps": 7} and loaded.config.encoder == name
    assert "Training record" in (tmp_path / name / "README.md").read_text()


def test_emulator_round_trip(tmp_path) -> None:
    torch.manual_seed(0)
    emulator = EmulatorModel(EmulatorConfig.for_zoo(SEQ_MNIST)).eval()
    emulator.save_pretrained(tmp_path / "emulator")
    loaded = EmulatorModel.from_pretrained(tmp_path / "emulator").eval()
    inputs, embedding = torch.randn(3, 50, 16), torch.randn(3, 16)
    assert torch.equal(loaded(inputs, embedding)[0], emulator(inputs, embedding)[0])
    assert sum(p.numel() for p in emulator.parameters()) > 1e6  # a 2-layer LSTM of hidden 256


def test_parameter_counts_are_comparable(capsys) -> None:
    counts = {name: sum(p.numel() for p in encoder(name).parameters()) for name in ENCODERS}
    print(counts)
    assert max(counts.values()) < 3 * min(counts.values())
