"""Built zoos and the evaluation follow the official code's conventions, held to values computed with its logic by
``tests/data/make_official_conventions.py`` (``official_conventions.json`` and ``.safetensors``): the schedule and
the snapshot step, the formal-language accuracy, the sequential-MNIST split, batches and recordings, the loss target."""

from __future__ import annotations

import hashlib
import importlib.util
import json
import struct
from pathlib import Path

import numpy as np
import pytest
import torch
from safetensors.torch import load_file

import rnn_zoos
from rnn_zoos.builder.build import build_zoo
from rnn_zoos.experiments.emulation import emulation_loss, target_distribution
from rnn_zoos.lstm.streams import run_seeds
from rnn_zoos.lstm.training import STEP_CONVENTION, TrainingSchedule, initial_params
from rnn_zoos.zoos import formal_lang as fl
from rnn_zoos.zoos import mnist_task as task, seq_mnist as sm
from rnn_zoos.zoos.mnist_sources import load_mnist

from conftest import build_formal

DATA = Path(__file__).parent / "data"
GOLDEN = json.loads((DATA / "official_conventions.json").read_text())
WEIGHTS = load_file(DATA / "official_conventions.safetensors")
WEIGHT_TOLERANCE = {"rtol": 0, "atol": 2e-5}
"""rnn-zoos' batched LSTM against nn.LSTM, after up to 21 AdamW updates: float32 rounding only."""


def official_weights(zoo: str, step: int) -> dict[str, torch.Tensor]:
    prefix = f"{zoo}/{step}/"
    return {name[len(prefix):]: tensor for name, tensor in WEIGHTS.items() if name.startswith(prefix)}


def row_of(folder: Path, run: int, step: int) -> dict:
    for split in rnn_zoos.load_zoo(folder).values():
        rows = split[:]
        for index in range(len(rows["run"])):
            if rows["run"][index] == run and rows["step"][index] == step:
                return {column: values[index] for column, values in rows.items()}
    raise AssertionError(f"no row of run {run} at step {step}")


def test_learning_rates_are_indexed_as_the_official_loop_sets_them() -> None:
    for steps, rates in GOLDEN["learning_rates"].items():
        schedule = TrainingSchedule(int(steps))
        assert [schedule.learning_rate(step) for step in range(schedule.updates)] == rates, steps
        assert torch.equal(schedule.learning_rate_tensor(torch.arange(schedule.updates)), torch.tensor(rates, dtype=torch.float32))
    paper = TrainingSchedule()
    assert paper.updates == 20_001
    assert {step: paper.learning_rate(int(step)) for step in GOLDEN["paper_learning_rates"]} == GOLDEN["paper_learning_rates"]


@pytest.fixture(scope="module")
def formal_tiny(tmp_path_factory: pytest.TempPathFactory) -> Path:
    options = GOLDEN["formal"]
    return build_formal(tmp_path_factory.mktemp("official") / "formal", runs=2, steps=options["steps"], seed=options["seed"], runs_per_batch=2)


def test_formal_snapshots_hold_the_weights_of_the_official_loop(formal_tiny: Path) -> None:
    last = GOLDEN["formal"]["steps"]
    assert rnn_zoos.read_info(formal_tiny).snapshot_steps == TrainingSchedule(last).snapshot_steps()
    for step in (0, last):
        row = row_of(formal_tiny, 0, step)
        assert row["task"].tolist() == GOLDEN["formal"]["task"]
        weights = rnn_zoos.decode_weights(row["weights"])
        for name, official in official_weights("formal", step).items():
            torch.testing.assert_close(weights[name], official, **WEIGHT_TOLERANCE, msg=f"{name} at step {step}")
    seeds = torch.tensor(run_seeds(GOLDEN["formal"]["seed"], [0]))
    initial = initial_params(fl.FORMAL_LANG.architecture, seeds)
    step_zero = rnn_zoos.decode_weights(row_of(formal_tiny, 0, 0)["weights"])
    moved = torch.cat([(step_zero[name] - initial[name][0]).abs().flatten() for name in initial])
    assert moved.mean() > 1e-3  # step 0 is after one update (of about the learning rate), not the initial weights


def test_formal_accuracy_is_the_official_count_and_the_ordered_one_is_kept_apart() -> None:
    golden = GOLDEN["accept_sequence"]
    strings, task = torch.tensor(golden["strings"]), torch.tensor(golden["task"])
    correct, finished = fl.release_accepts(strings, task)
    assert correct.tolist() == golden["correct"] and finished.tolist() == golden["finished"]
    ordered = fl.accepts(strings, task).tolist()
    assert ordered == [True, False, True, False, False, False, False]  # letters out of order, or a BOS among them
    measured = fl.accuracies(strings.unsqueeze(0), task.unsqueeze(0))
    assert measured["accuracy"].item() == pytest.approx(sum(golden["correct"]) / len(strings))
    assert measured["accuracy_ordered"].item() == pytest.approx(sum(ordered) / len(strings))


def test_a_built_formal_zoo_records_both_accuracies(formal_tiny: Path) -> None:
    rows = {split: data[:] for split, data in rnn_zoos.load_zoo(formal_tiny).items()}
    accuracy = torch.cat([split["accuracy"] for split in rows.values()])
    ordered = torch.cat([split["accuracy_ordered"] for split in rows.values()])
    assert (ordered <= accuracy).all()
    info = rnn_zoos.read_info(formal_tiny)
    assert info.notes[0] == STEP_CONVENTION and any(note.startswith("accuracy_ordered: ") for note in info.notes)
    card = (formal_tiny / "README.md").read_text()
    assert "| `accuracy_ordered` | float32 | fraction of the same 1000 strings" in card
    assert "after s + 1 updates (step 0: after one update)" in card and "12 of 32 validation tasks agree" in card


def test_the_mnist_split_is_the_official_hash() -> None:
    golden = GOLDEN["mnist_split"]
    validation = torch.nonzero(task.is_validation(torch.arange(60_000))).flatten()
    assert len(validation) == golden["validation_count"] == 12_002
    assert validation[:20].tolist() == golden["validation_first"]
    assert hashlib.sha256(validation.numpy().astype("<i8").tobytes()).hexdigest() == golden["validation_sha256"]


def write_idx(folder: Path, images: np.ndarray, labels: np.ndarray) -> Path:
    """MNIST's IDX files of ``images`` and ``labels`` in ``folder``."""
    folder.mkdir(parents=True, exist_ok=True)
    (folder / "train-images-idx3-ubyte").write_bytes(struct.pack(">HBB3I", 0, 8, 3, *images.shape) + images.tobytes())
    (folder / "train-labels-idx1-ubyte").write_bytes(struct.pack(">HBBI", 0, 8, 1, len(labels)) + labels.astype(np.uint8).tobytes())
    return folder


def generator_module():
    spec = importlib.util.spec_from_file_location("make_official_conventions", DATA / "make_official_conventions.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def build_mnist_tiny(out: Path, source: str, **options: object) -> Path:
    """A seq-mnist zoo of 2 runs with the generator's seed and steps from the MNIST folder ``source``."""
    golden = GOLDEN["mnist"]
    config = sm.SeqMnistBuildConfig(out=str(out), runs=2, steps=golden["steps"], seed=golden["seed"], mnist=source, **options)
    return build_zoo(sm.SeqMnistRecipe(sm.SEQ_MNIST, load_mnist(source)), config)


@pytest.fixture(scope="module")
def mnist_tiny(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, torch.Tensor, str]:
    """A seq-mnist zoo of 2 runs on the generator's 300 synthetic images (8 batches an epoch, the last of 14 images),
    the images in [0, 1] and their folder."""
    folder = tmp_path_factory.mktemp("official")
    images, labels = generator_module().tiny_mnist()
    source = str(write_idx(folder / "mnist", images, labels))
    return build_mnist_tiny(folder / "zoo", source), torch.from_numpy(images).float() / 255, source


def test_mnist_snapshots_hold_the_weights_of_the_official_loop_over_epochs(mnist_tiny) -> None:
    zoo, _, _ = mnist_tiny
    golden = GOLDEN["mnist"]
    assert golden["batch_sizes"].count(14) == 2  # the run crossed two epochs, each ending with a smaller batch
    for step in (0, golden["steps"]):
        row = row_of(zoo, 0, step)
        assert row["task"].item() == pytest.approx(golden["angle"]) and row["weight_decay"].item() == pytest.approx(golden["weight_decay"])
        weights = rnn_zoos.decode_weights(row["weights"])
        for name, official in official_weights("mnist", step).items():
            torch.testing.assert_close(weights[name], official, **WEIGHT_TOLERANCE, msg=f"{name} at step {step}")


def test_mnist_snapshots_record_what_the_official_builder_measures(mnist_tiny) -> None:
    zoo, pixels, _ = mnist_tiny
    golden = GOLDEN["mnist"]
    recorded = {}
    for step, measured in golden["measured"].items():
        row = row_of(zoo, 0, int(step))
        assert row["train_loss"].item() == pytest.approx(measured["train_loss"], abs=1e-5)
        assert row["val_loss"].item() == pytest.approx(measured["eval_loss"], abs=1e-5)
        assert row["accuracy"].item() == pytest.approx(measured["eval_accuracy"], abs=1e-6)
        assert row["generalization_gap"].item() == pytest.approx(measured["eval_loss"] - measured["train_loss"], abs=1e-5)
        images = task.model_inputs(pixels[measured["recorded"]].unsqueeze(0), row["task"].view(1))[0].half()
        assert torch.equal(row["inputs"], images)  # the first 100 training images of that snapshot's evaluation
        recorded[step] = set(measured["recorded"])
    first, last = recorded.values()
    assert len(first & last) < 100  # new images at every snapshot
    training = ~task.is_validation(torch.arange(len(pixels)))
    assert all(training[index] for index in first | last)


def test_a_static_mnist_step_crosses_epochs_as_the_eager_one(mnist_tiny, tmp_path: Path, monkeypatch) -> None:
    """The step counter in a device tensor (what --compile and --cuda-graphs run): the same batches, epochs and smaller
    last batches, so the same weights up to rounding."""
    monkeypatch.setattr(torch, "compile", lambda function, **options: function)  # the static step, not compiled
    eager, _, source = mnist_tiny
    static = build_mnist_tiny(tmp_path / "static", source, compile=True)
    step = GOLDEN["mnist"]["steps"]
    for run in (0, 1):
        weights = rnn_zoos.decode_weights(row_of(static, run, step)["weights"])
        for name, tensor in rnn_zoos.decode_weights(row_of(eager, run, step)["weights"]).items():
            torch.testing.assert_close(weights[name], tensor, **WEIGHT_TOLERANCE)


def test_the_loss_target_is_renormalised_as_categorical_does() -> None:
    golden = GOLDEN["loss_target"]
    stored = torch.tensor(golden["stored"]).half()
    emulator = torch.tensor(golden["emulator_logits"])
    torch.testing.assert_close(target_distribution(stored)[1], torch.tensor(golden["target"]), rtol=0, atol=1e-7)
    assert emulation_loss(emulator, stored).item() == pytest.approx(golden["total_variation"], abs=1e-7)
    exponentiated = 0.5 * (torch.softmax(emulator, -1) - stored.float().exp()).abs().sum(-1).mean()
    assert abs(exponentiated.item() - golden["total_variation"]) > 1e-5  # what reading exp(stored) would give instead
