"""baselines.reproduce --scale tiny: a report whose numbers are the JSON's, and a JSON whose numbers are the models'."""

from __future__ import annotations

import json
from pathlib import Path

import matplotlib.image
import pytest
import torch

from baselines import downstream, reproduce
from baselines.emulation import evaluate_emulation
from baselines.encoders import ENCODERS
from baselines.modeling import EmulatorModel, RNNEncoderModel
from baselines.pretrain import PretrainConfig, Pretraining


@pytest.fixture(scope="module")
def study(formal_zoo: Path, tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, dict]:
    out = tmp_path_factory.mktemp("reproduction")
    assert reproduce.main(["--zoo", str(formal_zoo), "--scale", "tiny", "--out", str(out), "--device", "cpu"]) == 0
    return out, json.loads((out / "results.json").read_text())


def test_report_shows_the_json_numbers(study) -> None:
    out, results = study
    report = (out / "REPORT.md").read_text().splitlines()
    for encoder, entry in results["emulation"].items():
        assert f"| {encoder} | {reproduce.fmt(entry['validation_loss'])} | {reproduce.fmt(entry['ood_loss'])} | {entry['steps']} |" in "\n".join(report)
    for target, entry in results["downstream"]["targets"].items():
        metric = entry["primary_metric"]
        for method, parts in entry["methods"].items():
            assert f"| {method} | {reproduce.cell(parts['validation'], metric)} | {reproduce.cell(parts['ood'], metric)} |" in report
    for encoder, entry in results["cloned"].items():
        assert f"| {encoder} | {reproduce.fmt(entry['validation'])} | {reproduce.fmt(entry['ood'])} |" in report
    assert set(results["emulation"]) == set(ENCODERS)
    assert "- pretrain_steps = 30 (paper: 100000)" in report and "- seeds = 2 (paper: 15)" in report


def test_json_emulation_losses_are_those_of_the_saved_models(study, formal_zoo: Path) -> None:
    out, results = study
    scale = reproduce.SCALES["tiny"]
    for encoder in ("dws", "interactive_probing"):
        run = Pretraining(PretrainConfig(zoo=str(formal_zoo), encoder=encoder, out=str(out / "scratch"), eval_rnns=scale.eval_rnns, device="cpu"))
        model = RNNEncoderModel.from_pretrained(out / "pretrain" / encoder / "encoder").eval()
        emulator = EmulatorModel.from_pretrained(out / "pretrain" / encoder / "emulator").eval()
        for split, key in (("validation", "validation_loss"), ("ood", "ood_loss")):
            loss = evaluate_emulation(model, emulator, run.splits[split], run.eval_index[split], "total_variation")
            assert loss == pytest.approx(results["emulation"][encoder][key], rel=1e-5)


def test_json_downstream_and_cloned_numbers_are_those_of_the_predictions(study) -> None:
    out, results = study
    outputs = torch.load(out / "predictions.pt", weights_only=False)
    for target_name, entry in results["downstream"]["targets"].items():
        target = downstream.TARGETS["formal-lang"][target_name]
        for method, parts in entry["methods"].items():
            if method == "trivial":
                continue
            for part, summary in parts.items():
                saved = outputs[target_name][method][part]
                assert summary["seeds"][0] == downstream.metrics(target, saved["predicted"], saved["true"])
    for encoder, entry in results["cloned"].items():
        saved = json.loads((out / "pretrain" / encoder / "cloned.json").read_text())
        assert entry == {split: saved[split]["mean_abs_difference"] for split in saved}


def test_plots_are_pictures(study) -> None:
    out, results = study
    assert results["plots"] == ["pca_task.png", "pca_accuracy.png"]
    for path in [out / name for name in results["plots"]] + [out / "pretrain" / e / "cloned.png" for e in ENCODERS]:
        pixels = matplotlib.image.imread(path)
        assert pixels.shape[0] > 300 and pixels.std() > 0.05
