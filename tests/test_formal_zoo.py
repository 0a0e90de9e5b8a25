"""A tiny formal-language zoo, built in a temporary folder, holds what the format promises (ARCHITECTURE.md, "The on-Hub format")."""

from __future__ import annotations

import json
from pathlib import Path

import datasets
import pyarrow.parquet as pq
import pytest
import torch

import rnn_zoos
from rnn_zoos.zoos.formal_lang import FORMAL_LANG
from rnn_zoos.format.info import ZooInfo, file_sha256
from rnn_zoos.lstm.functional import lstm_forward
from rnn_zoos.zoos import formal_lang as fl
from rnn_zoos.lstm.training import TrainingSchedule

from conftest import TINY

COLUMNS = ["run", "step", "seed", "task", "accuracy", "accuracy_ordered", "weight_decay", "weights", "inputs", "log_probs"]


@pytest.fixture(scope="module")
def zoo(formal_zoo: Path) -> datasets.DatasetDict:
    return rnn_zoos.load_zoo(formal_zoo)


def all_rows(zoo: datasets.DatasetDict) -> dict[str, dict]:
    return {split: zoo[split][:] for split in zoo}


def test_plain_load_dataset_gives_three_splits_with_the_design_columns(formal_zoo: Path) -> None:
    loaded = datasets.load_dataset(str(formal_zoo))
    assert set(loaded) == {"train", "validation", "ood"}
    for split in loaded.values():
        assert split.column_names == COLUMNS
        assert split.features == FORMAL_LANG.features
    assert sum(len(split) for split in loaded.values()) == TINY["runs"] * len(TrainingSchedule(TINY["steps"]).snapshot_steps())
    assert str(loaded["train"].features["inputs"]) .startswith("Array2D(shape=(100, 42), dtype='int16'")


def test_decoded_weights_reproduce_log_probs(zoo) -> None:
    for split, rows in all_rows(zoo).items():
        for index in range(len(rows["run"])):
            rnn = rnn_zoos.to_module(rows["weights"][index])
            with torch.no_grad():
                recomputed = rnn.log_probs(rows["inputs"][index][:, :-1])
            torch.testing.assert_close(recomputed, rows["log_probs"][index], rtol=2**-10, atol=1e-5)


def test_a_row_of_plain_load_dataset_runs_as_is(formal_zoo: Path) -> None:
    row = datasets.load_dataset(str(formal_zoo), split="validation")[0]
    assert isinstance(row["inputs"], list) and isinstance(row["weights"], bytes)
    with torch.no_grad():
        recomputed = rnn_zoos.to_module(row["weights"]).log_probs([sequence[:-1] for sequence in row["inputs"]])
    torch.testing.assert_close(recomputed, torch.tensor(row["log_probs"]), rtol=2**-9, atol=2e-3)


def test_inputs_are_strings_that_start_with_bos(zoo) -> None:
    for rows in all_rows(zoo).values():
        inputs = rows["inputs"]
        assert inputs.shape[1:] == (100, 42)
        assert (inputs[..., 0] == fl.BOS).all()
        assert inputs.min() >= 0 and inputs.max() < fl.VOCAB_SIZE


def test_splits_are_disjoint_by_task_and_keep_runs_whole(formal_zoo, zoo) -> None:
    snapshot_steps = TrainingSchedule(TINY["steps"]).snapshot_steps()
    tasks_of, runs_of = {}, {}
    for split, rows in all_rows(zoo).items():
        tasks_of[split] = {tuple(task) for task in rows["task"].tolist()}
        runs_of[split] = set(rows["run"].tolist())
        for run in runs_of[split]:
            assert sorted(rows["step"][rows["run"] == run].tolist()) == snapshot_steps
    for a, b in [("train", "validation"), ("train", "ood"), ("validation", "ood")]:
        assert not tasks_of[a] & tasks_of[b]
        assert not runs_of[a] & runs_of[b]
    assert set().union(*runs_of.values()) == set(range(TINY["runs"]))
    info = ZooInfo.load(formal_zoo)
    for split in zoo:
        assert {tuple(task) for task in info.splits[split].tasks} == tasks_of[split]
        assert set(info.splits[split].runs) == runs_of[split]
    unique = len(set().union(*tasks_of.values()))
    assert len(tasks_of["train"]) == 70 * unique // 100
    assert len(tasks_of["validation"]) == 15 * unique // 100 >= 1


def test_ood_holds_the_highest_entropy_tasks(zoo) -> None:
    entropy = {split: fl.task_entropy(rows["task"].numpy()).tolist() for split, rows in all_rows(zoo).items()}
    assert min(entropy["ood"]) >= max(entropy["train"] + entropy["validation"])


def test_info_counts_and_checksums(formal_zoo, zoo) -> None:
    info = ZooInfo.load(formal_zoo)
    assert info.format_version == rnn_zoos.FORMAT_VERSION
    assert info.builder == {"zoo": "formal-lang", "format_version": "2.0", "runs": TINY["runs"], "steps": TINY["steps"], "seed": TINY["seed"]}
    for split in zoo:
        assert info.splits[split].num_rows == len(zoo[split])
    assert sorted(info.checksums) == sorted(p.relative_to(formal_zoo).as_posix() for p in (formal_zoo / "data").glob("*.parquet"))
    for relative, digest in info.checksums.items():
        assert file_sha256(formal_zoo / relative) == digest
    assert not (formal_zoo / ".build").exists()


def test_row_groups_are_small_enough_to_stream(formal_zoo) -> None:
    for path in (formal_zoo / "data").glob("*.parquet"):
        metadata = pq.ParquetFile(path).metadata
        assert all(metadata.row_group(i).num_rows <= 100 for i in range(metadata.num_row_groups))


def sample_with_module(rnn: rnn_zoos.LSTMWithHead, count: int, generator: torch.Generator) -> torch.Tensor:
    """Sample strings with torch.multinomial and nn.LSTM: an implementation independent of the builder's."""
    tokens = torch.full((count, 1), fl.BOS)
    state = None
    with torch.no_grad():
        for _ in range(fl.SEQUENCE_LENGTH - 1):
            hidden, state = rnn.lstm(torch.nn.functional.one_hot(tokens[:, -1:], 6).float(), state)
            probs = torch.softmax(rnn.head(hidden[:, -1]), dim=-1)
            tokens = torch.cat([tokens, torch.multinomial(probs, 1, generator=generator)], dim=1)
    return tokens


def test_stored_accuracy_agrees_with_a_fresh_sample(zoo) -> None:
    generator = torch.Generator().manual_seed(0)
    checked = 0
    for rows in all_rows(zoo).values():
        for index in range(len(rows["run"])):
            stored = float(rows["accuracy"][index])
            if rows["step"][index] < TINY["steps"] // 2:
                continue
            strings = sample_with_module(rnn_zoos.to_module(rows["weights"][index]), 1000, generator)
            fresh = fl.release_accepts(strings, rows["task"][index])[0].float().mean().item()  # the official count
            sigma = (2 * max(stored * (1 - stored), 0.01 * 0.99) / 1000) ** 0.5
            assert abs(fresh - stored) < 4.5 * sigma, (stored, fresh)
            checked += stored > 0.05
    assert checked >= 4  # the check ran on RNNs that do produce valid strings


def test_streaming_gives_the_same_rows_and_tensors(formal_zoo, zoo) -> None:
    plain = datasets.load_dataset(str(formal_zoo), streaming=True)
    for split in zoo:
        expected = zoo[split]
        streamed = list(rnn_zoos.load_zoo(formal_zoo, split=split, streaming=True))
        plain_rows = list(plain[split])
        assert len(streamed) == len(plain_rows) == len(expected)
        for index, row in enumerate(streamed):
            reference = expected[index]
            assert plain_rows[index]["weights"] == row["weights"] == reference["weights"]
            for column in ("run", "step", "seed", "task", "accuracy", "inputs", "log_probs"):
                assert torch.equal(row[column], reference[column]), column
            decoded = rnn_zoos.decode_weights(row["weights"])
            assert all(torch.equal(decoded[k], v) for k, v in rnn_zoos.decode_weights(reference["weights"]).items())


def test_dataloader_collate_gives_batched_weights_that_run(zoo) -> None:
    loader = torch.utils.data.DataLoader(zoo["train"], batch_size=5, collate_fn=rnn_zoos.collate_rows)
    batch = next(iter(loader))
    assert batch["weights"]["lstm.weight_ih_l0"].shape == (5, 128, 6)
    assert batch["weights"]["head.bias"].shape == (5, 6)
    assert batch["inputs"].shape == (5, 100, 42) and batch["run"].shape == (5,)
    logits, _ = lstm_forward(batch["weights"], fl.one_hot(batch["inputs"][:, :, :-1]))
    torch.testing.assert_close(torch.log_softmax(logits, -1), batch["log_probs"], rtol=2**-10, atol=1e-5)


def test_to_module_is_a_ready_nn_module(zoo) -> None:
    rnn = rnn_zoos.to_module(zoo["train"][0]["weights"])
    assert isinstance(rnn, torch.nn.Module) and not rnn.training
    assert isinstance(rnn.lstm, torch.nn.LSTM) and rnn.lstm.batch_first and rnn.lstm.num_layers == 2
    assert isinstance(rnn.head, torch.nn.Linear) and rnn.head.out_features == 6
    assert rnn(torch.zeros(2, 5, dtype=torch.long)).shape == (2, 5, 6)


def test_info_json_is_plain_json(formal_zoo) -> None:
    raw = json.loads((formal_zoo / "meta" / "info.json").read_text())
    assert raw["format_version"] == "2.0" and raw["zoo"] == "formal-lang"
    assert raw["snapshot_steps"] == TrainingSchedule(TINY["steps"]).snapshot_steps()


def test_card_shows_its_plots(formal_zoo) -> None:
    import re

    import matplotlib.image

    card = (formal_zoo / "README.md").read_text()
    images = re.findall(r"!\[[^\]]+\]\((assets/[^)]+\.png)\)", card)
    assert sorted(images) == ["assets/accuracy_by_step.png", "assets/tasks_per_split.png"]
    for image in images:
        pixels = matplotlib.image.imread(formal_zoo / image)
        assert pixels.shape[0] > 200 and pixels.shape[1] > 300 and pixels.std() > 0.05  # a real picture, not blank
