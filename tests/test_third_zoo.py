"""A new kind of zoo is one module: ``third_zoo.py``, in this test folder, is built, loaded, verified, pretrained on with
every encoder and studied downstream, through the same commands and functions as the built-in zoos."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import torch

import rnn_zoos
from rnn_zoos.cli import main as cli_main
from rnn_zoos.experiments.downstream import load_pretrained, run_downstream
from rnn_zoos.experiments.pretrain import PretrainConfig, pretrain
from rnn_zoos.models.encoders import ENCODERS
from rnn_zoos.hub.verify import verify_zoo
from rnn_zoos.zoos import zoo_kind, zoo_names

from third_zoo import DELAYED_RECALL, LENGTH, targets


@pytest.fixture(scope="module")
def delay_zoo(tmp_path_factory: pytest.TempPathFactory) -> Path:
    out = tmp_path_factory.mktemp("delay") / "zoo"
    argv = ["--out", str(out), "--runs", "12", "--steps", "60", "--seed", "1", "--rnns-per-batch", "5"]
    assert cli_main(["build", "delayed-recall", *argv]) == 0
    return out


def test_the_new_kind_is_known_by_name() -> None:
    assert "delayed-recall" in zoo_names() and zoo_kind("delayed-recall") is DELAYED_RECALL


def test_it_builds_loads_and_verifies(delay_zoo: Path) -> None:
    info = rnn_zoos.read_info(delay_zoo)
    assert info.zoo == "delayed-recall" and info.architecture.hidden_size == 16
    assert sum(split.num_rows for split in info.splits.values()) == 12 * len(info.snapshot_steps)
    assert verify_zoo(delay_zoo, sample_rows=20) == []
    zoo = rnn_zoos.load_zoo(delay_zoo)
    row = zoo["train"].with_format("torch")[0]
    rnn = rnn_zoos.to_module(row["weights"])
    assert rnn.architecture.hidden_size == 16
    assert torch.allclose(rnn.log_probs(row["inputs"].float()), row["log_probs"].float(), atol=2e-2)
    assert zoo["train"].features == DELAYED_RECALL.features
    card = (delay_zoo / "README.md").read_text()  # the kind's own card template
    assert card.startswith("---\n") and "# Delayed recall (12 runs)" in card and "rnn-zoos build delayed-recall" in card
    assert (delay_zoo / "assets" / "tasks_per_split.png").is_file()


def test_training_learns_the_task(delay_zoo: Path) -> None:
    rows = rnn_zoos.load_zoo(delay_zoo)["train"].with_format("numpy")[:]
    steps = rows["step"]
    first, last = rows["accuracy"][steps == steps.min()], rows["accuracy"][steps == steps.max()]
    assert last.mean() > first.mean() + 0.1
    inputs = torch.nn.functional.one_hot(torch.tensor([[0, 1, 2, 3, 1, 1, 2, 0, 3, 3, 2, 1]]), 4).float().unsqueeze(0)
    assert targets(inputs, torch.tensor([2]))[0, 0, :5].tolist() == [0, 0, 0, 1, 2] and inputs.shape[2] == LENGTH


def test_every_encoder_pretrains_on_it_and_downstream_runs(delay_zoo: Path, tmp_path: Path) -> None:
    folders = []
    for encoder in ENCODERS:
        run = tmp_path / encoder
        summary = pretrain(PretrainConfig(zoo=str(delay_zoo), encoder=encoder, out=str(run), steps=2, batch_rnns=4, eval_every=2,
                                          eval_rnns=3, cloned_rnns=2, device="cpu"))
        assert summary["steps"] == 2 and summary["updates"] == 3 and set(summary["cloned_best_model"]) == {"train", "validation", "ood"} - {
            split for split, entry in rnn_zoos.read_info(delay_zoo).splits.items() if not entry.num_rows}
        cloned = json.loads((run / "cloned.json").read_text())
        assert all(0 <= value <= 1 for entry in cloned.values() for value in entry["original"] + entry["cloned"])
        folders.append(run / "encoder")
    encoders = load_pretrained(folders, rnn_zoos.read_info(delay_zoo), "cpu")
    assert set(encoders) == set(ENCODERS)
    results, _ = run_downstream(delay_zoo, encoders, ["layerwise_statistics"], seeds=1, probe_steps=20, supervised_steps=3,
                                supervised_batch=4)
    assert set(results["targets"]) == {"delay", "accuracy"}
    for entry in results["targets"].values():
        assert {f"pretrained:{encoder}" for encoder in ENCODERS} | {"trivial", "supervised:layerwise_statistics"} == set(entry["methods"])
    assert results["targets"]["delay"]["primary_metric"] == "accuracy"


def test_build_refuses_an_unknown_zoo_in_one_line(capsys: pytest.CaptureFixture[str]) -> None:
    assert cli_main(["build", "no-such-zoo", "--out", "x"]) == 2
    assert capsys.readouterr().err.startswith("error: unknown zoo 'no-such-zoo'; known zoos: delayed-recall, formal-lang, seq-mnist")
