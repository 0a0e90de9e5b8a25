"""Emulation pretraining on tiny zoos: every encoder learns, augmentation is applied, runs resume, cloned performance."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import torch

import baselines.pretrain as pretrain_module
from baselines.data import ZooTensors
from baselines.encoders import ENCODERS
from baselines.modeling import RNNEncoderModel
from baselines.pretrain import PretrainConfig, Pretraining, main, pretrain
from rnn_zoos import ZooError
from rnn_zoos.lstm import lstm_forward

QUICK = {"steps": 40, "batch_rnns": 8, "sequences_per_rnn": 4, "eval_every": 40, "eval_rnns": 4, "lr": 1e-3, "cloned_rnns": 0, "device": "cpu"}


def log(folder: Path) -> list[dict]:
    return [json.loads(line) for line in (folder / "log.jsonl").read_text().splitlines()]


@pytest.mark.parametrize("encoder", list(ENCODERS))
def test_short_pretraining_lowers_the_validation_loss(formal_zoo: Path, tmp_path: Path, encoder: str) -> None:
    summary = pretrain(PretrainConfig(zoo=str(formal_zoo), encoder=encoder, out=str(tmp_path / encoder), **QUICK))
    history = log(tmp_path / encoder)
    assert history[0]["step"] == 0 and history[-1]["step"] == QUICK["steps"]
    assert history[-1]["validation"] < 0.7 * history[0]["validation"], history
    assert summary["best_validation_loss"] == min(entry["validation"] for entry in history[1:])
    loaded = RNNEncoderModel.from_pretrained(tmp_path / encoder / "encoder")
    assert loaded.config.training["validation_loss"] == summary["best_validation_loss"]


def test_augmentation_permutes_the_rnns_seen_in_training(formal_zoo: Path, tmp_path: Path, monkeypatch) -> None:
    seen = []
    original = ZooTensors.params

    def spy(self, index, generator=None, permute=False):
        result = original(self, index, generator, permute)
        seen.append((permute, original(self, index), result))
        return result

    monkeypatch.setattr(ZooTensors, "params", spy)
    for encoder, expected in (("flat", True), ("dws", False)):
        seen.clear()
        run = Pretraining(PretrainConfig(zoo=str(formal_zoo), encoder=encoder, out=str(tmp_path / encoder), **QUICK))
        run.train_step()
        permute, stored, used = seen[0]
        assert permute is expected
        assert (not torch.equal(stored["lstm.weight_hh_l0"], used["lstm.weight_hh_l0"])) is expected
        inputs = torch.randn(3, 5, 6)
        torch.testing.assert_close(lstm_forward(used, inputs)[0], lstm_forward(stored, inputs)[0], rtol=1e-4, atol=1e-5)


def test_interrupted_run_resumes_to_the_same_result(formal_zoo: Path, tmp_path: Path, monkeypatch) -> None:
    options = {**QUICK, "steps": 20, "eval_every": 5}
    reference = pretrain(PretrainConfig(zoo=str(formal_zoo), encoder="layerwise_statistics", out=str(tmp_path / "a"), **options))
    calls = {"count": 0}
    step = Pretraining.train_step

    def interrupted(self):
        calls["count"] += 1
        if calls["count"] == 13:
            raise KeyboardInterrupt("simulated interruption")
        return step(self)

    monkeypatch.setattr(Pretraining, "train_step", interrupted)
    with pytest.raises(KeyboardInterrupt):
        pretrain(PretrainConfig(zoo=str(formal_zoo), encoder="layerwise_statistics", out=str(tmp_path / "b"), **options))
    monkeypatch.setattr(Pretraining, "train_step", step)
    resumed = pretrain(PretrainConfig(zoo=str(formal_zoo), encoder="layerwise_statistics", out=str(tmp_path / "b"), **options))
    assert resumed["history"] == reference["history"]
    assert log(tmp_path / "b") == log(tmp_path / "a")
    again = pretrain(PretrainConfig(zoo=str(formal_zoo), encoder="layerwise_statistics", out=str(tmp_path / "b"), **options))
    assert again["history"] == reference["history"]  # a finished run is not redone


def test_cloned_performance_on_both_zoos(formal_zoo: Path, mnist_zoo: Path, tmp_path: Path) -> None:
    for name, zoo in (("formal", formal_zoo), ("mnist", mnist_zoo)):
        options = {**QUICK, "steps": 5, "eval_every": 5, "cloned_rnns": 3, "loss": "reverse_kl"}
        summary = pretrain(PretrainConfig(zoo=str(zoo), encoder="noninteractive_probing", out=str(tmp_path / name), **options))
        cloned = json.loads((tmp_path / name / "cloned.json").read_text())
        for split in ("validation", "ood"):
            entry = cloned[split]
            assert entry["rnns"] == len(entry["original"]) == len(entry["cloned"]) >= 1
            assert all(0 <= value <= 1 for value in entry["cloned"])
            assert entry["mean_abs_difference"] == pytest.approx(
                sum(abs(a - b) for a, b in zip(entry["original"], entry["cloned"])) / entry["rnns"])
            assert summary["cloned"][split]["mean_abs_difference"] == entry["mean_abs_difference"]
        assert (tmp_path / name / "cloned.png").stat().st_size > 10_000


def test_bad_options(formal_zoo: Path, tmp_path: Path, capsys) -> None:
    assert main(["--zoo", str(formal_zoo), "--encoder", "dws", "--out", str(tmp_path / "x"), "--steps", "0"]) == 2
    assert capsys.readouterr().err.strip() == "error: --steps must be at least 1, got 0"
    pretrain(PretrainConfig(zoo=str(formal_zoo), encoder="flat", out=str(tmp_path / "run"), **{**QUICK, "steps": 2, "eval_every": 2}))
    with pytest.raises(ZooError, match=r"holds a run with other options \(encoder='flat' there vs 'dws' now\)"):
        pretrain(PretrainConfig(zoo=str(formal_zoo), encoder="dws", out=str(tmp_path / "run"), **{**QUICK, "steps": 2, "eval_every": 2}))
    with pytest.raises(SystemExit):
        main(["--zoo", str(formal_zoo), "--encoder", "lstm_whisperer", "--out", str(tmp_path / "y")])
    assert pretrain_module.PretrainConfig.__dataclass_fields__["device"].default in ("cpu", "cuda")
