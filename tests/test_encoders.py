"""The six encoders as the paper's code builds them: sizes, invariance where promised (and uncoupled permutations
that change the output), equivariance of the deep-weight-space layers, the probing options, and save/load."""

from __future__ import annotations

import pytest
import torch

from rnn_zoos.models.encoders import ENCODERS, EncoderShape, build_encoder
from rnn_zoos.models.encoders.dws import DWSEncoder
from rnn_zoos.models.encoders.probing import NoninteractiveProbingEncoder
from rnn_zoos.models.modeling import EmulatorConfig, EmulatorModel, RNNEncoderConfig, RNNEncoderModel
from rnn_zoos.zoos.formal_lang import FORMAL_LANG
from rnn_zoos.zoos.seq_mnist import SEQ_MNIST
from rnn_zoos.lstm.functional import lstm_forward, lstm_step
from rnn_zoos.lstm.streams import run_seeds
from rnn_zoos.lstm.symmetry import permute_hidden, random_permutations
from rnn_zoos.lstm.training import initial_params
from rnn_zoos.lstm.weights import GATES, LayerTensors, LSTMWeights, merge_gates, split_gates

INVARIANT = ["layerwise_statistics", "dws", "noninteractive_probing", "interactive_probing"]
AUGMENTED = ["flat", "parameter_transformer"]
OFFICIAL_PARAMETERS = {
    "layerwise_statistics": (11_152, 11_152),
    "flat": (1_797_264, 1_978_000),
    "parameter_transformer": (1_276_688, 1_278_480),
    "dws": (1_279_736, 1_282_400),
    "noninteractive_probing": (1_147_030, 1_156_512),
    "interactive_probing": (1_147_030, 1_156_512),
}
"""Parameters of the paper's modules instantiated by its training script for (formal languages, sequential MNIST)."""


def rnns(spec=FORMAL_LANG, count: int = 5) -> dict[str, torch.Tensor]:
    return {
        name: tensor.double() * 3
        for name, tensor in initial_params(spec.architecture, torch.tensor(run_seeds(9, range(count)))).items()
    }


def encoder(name: str, spec=FORMAL_LANG, **options) -> torch.nn.Module:
    torch.manual_seed(0)
    shape = EncoderShape(
        spec.architecture, spec.token_vocab, probing_length=options.pop("probing_length", spec.probing_length), **options
    )
    return build_encoder(name, shape).double().eval()


def count(module: torch.nn.Module) -> int:
    return sum(parameter.numel() for parameter in module.parameters())


@pytest.mark.parametrize("spec", [FORMAL_LANG, SEQ_MNIST], ids=lambda spec: spec.name)
@pytest.mark.parametrize("name", list(ENCODERS))
def test_encoders_have_the_papers_size(name, spec) -> None:
    official = OFFICIAL_PARAMETERS[name][spec is SEQ_MNIST]
    ours = count(RNNEncoderModel(RNNEncoderConfig.for_zoo(name, spec)))
    assert abs(ours - official) <= 0.01 * official, (ours, official)
    if name not in ("noninteractive_probing", "interactive_probing"):
        assert ours == official  # only the probing encoders leave out the paper's unread parameters


def test_emulator_has_the_papers_size() -> None:
    assert count(EmulatorModel(EmulatorConfig.for_zoo(FORMAL_LANG))) == 1_060_358
    assert count(EmulatorModel(EmulatorConfig.for_zoo(SEQ_MNIST))) == 1_063_946


def break_gate_coupling(params: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
    """Swap neuron 0's input-gate row with neuron 3's forget-gate row in layer 0: not a symmetry of the LSTM."""
    broken = {name: tensor.clone() for name, tensor in params.items()}
    gates = [GATES.index("input"), GATES.index("forget")]
    for kind in LayerTensors._fields:
        gated = split_gates(broken[f"lstm.{kind}_l0"], kind)  # a view: writing to it writes the tensor
        gated[:, gates, [0, 3]] = gated[:, gates[::-1], [3, 0]].clone()
    return broken


def rows_moved(params: dict[str, torch.Tensor], perms: torch.Tensor, kinds: tuple[str, ...] = LayerTensors._fields) -> dict[str, torch.Tensor]:
    """Layer 0's neurons' rows (every gate block) of ``kinds`` moved by ``perms`` ``[M, H]``, their columns left in place."""
    weights = LSTMWeights.from_params(params)
    moved = dict(params)
    for kind in kinds:
        gated = weights.gates(0, kind)  # [M, 4, H, ...]
        index = perms[:, None].expand(-1, len(GATES), -1)
        index = index.reshape(*index.shape, *[1] * (gated.dim() - 3)).expand(gated.shape)
        moved[f"lstm.{kind}_l0"] = merge_gates(torch.gather(gated, 2, index), kind)
    return moved


@pytest.mark.parametrize("spec", [FORMAL_LANG, SEQ_MNIST], ids=lambda spec: spec.name)
@pytest.mark.parametrize("name", INVARIANT)
def test_invariant_encoders_ignore_neuron_permutations(name, spec) -> None:
    params = rnns(spec)
    model = encoder(name, spec)
    permuted = permute_hidden(params, random_permutations(params, torch.Generator().manual_seed(1)))
    torch.testing.assert_close(model(permuted), model(params), rtol=1e-9, atol=1e-9)
    broken = break_gate_coupling(params)
    probe = torch.randn(2, 7, spec.architecture.input_size, dtype=torch.float64)
    assert (lstm_forward(broken, probe)[0] - lstm_forward(params, probe)[0]).abs().max() > 1e-6  # another function ...
    if name == "layerwise_statistics":  # statistics over whole tensors cannot see how entries are arranged (the paper's design)
        torch.testing.assert_close(model(broken), model(params), rtol=1e-9, atol=1e-9)
    else:
        assert (model(broken) - model(params)).abs().max() > 1e-6  # ... another embedding


@pytest.mark.parametrize("name", ["dws", "noninteractive_probing", "interactive_probing"])
def test_rows_permuted_without_their_columns_change_the_embedding(name) -> None:
    params = rnns()
    model = encoder(name)
    broken = rows_moved(params, torch.roll(torch.arange(32), 1).expand(5, -1))  # recurrent and next-layer columns not moved
    assert (model(broken) - model(params)).abs().max() > 1e-6


def test_dws_layers_are_equivariant_and_uncoupled_permutations_are_not_symmetries() -> None:
    params = rnns()
    model: DWSEncoder = encoder("dws")
    perms = random_permutations(params, torch.Generator().manual_seed(3))
    features = model.equivariant_features(params).to_params()
    moved = model.equivariant_features(permute_hidden(params, perms)).to_params()
    take = lambda tensor, perm, dim: torch.stack([t.index_select(dim - 1, p) for t, p in zip(tensor, perm)])  # noqa: E731
    for layer, perm in enumerate(perms):
        source = perms[layer - 1] if layer else None
        for kind in ("ih", "hh"):
            expected = take(features[f"lstm.weight_{kind}_l{layer}"], perm, 1)
            if kind == "hh":
                expected = take(expected, perm, 2)
            elif source is not None:
                expected = take(expected, source, 2)
            torch.testing.assert_close(moved[f"lstm.weight_{kind}_l{layer}"], expected)
            torch.testing.assert_close(moved[f"lstm.bias_{kind}_l{layer}"], take(features[f"lstm.bias_{kind}_l{layer}"], perm, 1))
    torch.testing.assert_close(moved["head.weight"], take(features["head.weight"], perms[-1], 2))
    torch.testing.assert_close(moved["head.bias"], features["head.bias"])
    broken = rows_moved(params, perms[0], ("weight_hh",))  # the recurrent matrix's rows moved without its columns
    changed = model.equivariant_features(broken).layers[0].weight_hh
    assert (changed - take(take(features["lstm.weight_hh_l0"], perms[0], 1), perms[0], 2)).abs().max() > 1e-6  # do not follow


@pytest.mark.parametrize("name", AUGMENTED)
def test_flat_and_transformer_are_not_invariant_and_ask_for_augmentation(name) -> None:
    params = rnns()
    model = encoder(name)
    permuted = permute_hidden(params, random_permutations(params, torch.Generator().manual_seed(1)))
    assert (model(permuted) - model(params)).abs().max() > 1e-4
    assert model.needs_augmentation and not any(encoder(other).needs_augmentation for other in INVARIANT)


def test_parameter_transformer_has_one_token_per_weight_row_and_a_compression_token() -> None:
    assert encoder("parameter_transformer").positions.shape == (1, 4 * 128 + 6 + 1, 128)
    assert encoder("parameter_transformer", SEQ_MNIST).positions.shape == (1, 4 * 128 + 10 + 1, 128)


@pytest.mark.parametrize("spec", [FORMAL_LANG, SEQ_MNIST], ids=lambda spec: spec.name)
def test_noninteractive_probing_equals_its_step_by_step_definition(spec) -> None:
    """The encoder runs the RNNs over all static probes at once; stepping them one by one must give the same embedding."""
    model: NoninteractiveProbingEncoder = encoder("noninteractive_probing", spec, probing_sequences=2, probing_length=5)
    params = rnns(spec, 3)
    states = [None] * len(model.cells)
    model._advance(model.bos.expand(3, -1), states)  # the reader's outputs do not steer non-interactive probes
    rnn_state = None
    for step in range(5):
        probes = model.probes(model.codes[step]).expand(3, -1, -1)
        if spec.token_vocab:
            torch.testing.assert_close(probes.sum(-1), torch.ones(3, 2, dtype=torch.float64))  # softmax over tokens
        else:
            assert ((probes > 0) & (probes < 1)).all()  # sigmoid tiles
        answers, rnn_state = lstm_step(params, probes, rnn_state)  # the RNN's raw head outputs
        model._advance(model.read(answers.reshape(3, -1)), states)
    expected = model.readout(model._advance(model.eos.expand(3, -1), states))
    torch.testing.assert_close(model(params), expected)


@pytest.mark.parametrize("name", ["noninteractive_probing", "interactive_probing"])
def test_probing_options_set_the_number_and_length_of_probe_sequences(name) -> None:
    params = rnns(count=2)
    base, wider, shorter = encoder(name), encoder(name, probing_sequences=4), encoder(name, probing_length=7)
    assert base.codes.shape == (22, 256) and shorter.codes.shape == (7, 256)
    assert wider.expand[0].out_features == 4 * 128 and wider.read[0].in_features == 4 * 6
    for model in (base, wider, shorter):
        assert model(params).shape == (2, 16)


@pytest.mark.parametrize("name", list(ENCODERS))
def test_save_pretrained_then_from_pretrained_gives_identical_embeddings(name, tmp_path) -> None:
    params = {key: value.float() for key, value in rnns().items()}
    torch.manual_seed(0)
    model = RNNEncoderModel(RNNEncoderConfig.for_zoo(name, FORMAL_LANG, probing_sequences=2, training={"steps": 7})).eval()
    model.save_pretrained(tmp_path / name)
    loaded = RNNEncoderModel.from_pretrained(tmp_path / name).eval()
    assert torch.equal(loaded(params).embeddings, model(params).embeddings)
    assert loaded.config.training == {"steps": 7} and loaded.config.encoder == name and loaded.config.probing_sequences == 2
    assert "Training record" in (tmp_path / name / "README.md").read_text()


def test_emulator_round_trip_and_conditioning_on_the_first_input_only(tmp_path) -> None:
    torch.manual_seed(0)
    emulator = EmulatorModel(EmulatorConfig.for_zoo(SEQ_MNIST)).eval()
    emulator.save_pretrained(tmp_path / "emulator")
    loaded = EmulatorModel.from_pretrained(tmp_path / "emulator").eval()
    inputs, embedding = torch.randn(3, 50, 16), torch.randn(3, 16)
    full = emulator(inputs, embedding).logits
    assert torch.equal(loaded(inputs, embedding).logits, full)
    first = emulator(inputs[:, :1], embedding)
    rest = emulator(inputs[:, 1:], torch.zeros_like(embedding), first.state, first=False).logits  # later steps do not read it
    torch.testing.assert_close(torch.cat([first.logits, rest], dim=1), full)
    torch.testing.assert_close(emulator(inputs, 5 * embedding).logits, full)  # unit-normalised
