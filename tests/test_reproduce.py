"""rnn_zoos.experiments.reproduce --scale tiny: a report whose numbers are the JSON's, and a JSON whose numbers are the models'."""

from __future__ import annotations

import hashlib
import json
import math
import re
from pathlib import Path

import matplotlib.image
import pytest
import torch

import rnn_zoos
from rnn_zoos.zoos.formal_lang import FORMAL_LANG
from rnn_zoos.experiments import reproduce
from rnn_zoos.experiments.report import BEST_MODEL_CLONED, OFFICIAL_CLONED
from rnn_zoos.experiments.emulation import evaluate_emulation
from rnn_zoos.models.encoders import ENCODERS
from rnn_zoos.models.modeling import EmulatorModel, RNNEncoderModel
from rnn_zoos.experiments.pretrain import PretrainConfig, Pretraining


@pytest.fixture(scope="module")
def study(formal_zoo: Path, tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, dict]:
    out = tmp_path_factory.mktemp("reproduction")
    assert reproduce.main([str(formal_zoo), "--scale", "tiny", "--out", str(out), "--device", "cpu"]) == 0
    return out, json.loads((out / "results.json").read_text())


def table_rows(report: list[str], header: str) -> dict[str, list[str]]:
    """The rows of the first Markdown table after ``header``: first cell -> the other cells."""
    start = report.index(header)
    rows, inside = {}, False
    for line in report[start + 1 :]:
        if line.startswith("|"):
            inside = True
            cells = [cell.strip() for cell in line.strip("|").split("|")]
            if not set(cells[1]) <= set("-"):
                rows[cells[0]] = cells[1:]
        elif inside:
            break
    return rows


def close(shown: str, value: float) -> bool:
    """A number as the report shows it (4 significant digits) is the JSON's value."""
    return math.isclose(float(shown), value, rel_tol=1e-3, abs_tol=1e-12)


def mean_and_interval(shown: str) -> tuple[float, float, float]:
    mean, low, high = re.fullmatch(r"(\S+) \[(\S+), (\S+)\]", shown).groups()
    return float(mean), float(low), float(high)


def test_report_shows_the_json_numbers(study) -> None:
    out, results = study
    report = (out / "REPORT.md").read_text().splitlines()
    emulation = table_rows(report, "## Emulation loss (Table 2)")
    assert set(emulation) == {"encoder", *ENCODERS} and set(results["emulation"]) == set(ENCODERS)
    for encoder, entry in results["emulation"].items():
        parameters, validation, ood, steps, paper = emulation[encoder]
        counted = sum(p.numel() for p in RNNEncoderModel.from_pretrained(out / "pretrain" / encoder / "encoder").parameters())
        assert parameters == f"{counted:,}" and entry["parameters"] == counted
        assert close(validation, entry["validation_loss"]) and close(ood, entry["ood_loss"])
        assert steps == f"{entry['steps']} / {entry['trained_steps']}"
        assert close(
            paper,
            {
                "formal-lang": {
                    "interactive_probing": 0.015,
                    "noninteractive_probing": 0.023,
                    "parameter_transformer": 0.043,
                    "flat": 0.045,
                    "dws": 0.046,
                    "layerwise_statistics": 0.051,
                }
            }["formal-lang"][encoder],
        )
    for target, entry in results["downstream"]["targets"].items():
        metric = entry["primary_metric"]
        rows = table_rows(report, f"### {target} ({metric}, {'higher' if entry['higher_is_better'] else 'lower'} is better)")
        for method, parts in entry["methods"].items():
            for shown, part in zip(rows[method], ("validation", "ood")):
                mean, low, high = mean_and_interval(shown)
                assert close(str(mean), parts[part]["mean"][metric])
                assert close(str(low), parts[part]["ci95"][metric][0]) and close(str(high), parts[part]["ci95"][metric][1])
    official = table_rows(report, OFFICIAL_CLONED)
    cloned = table_rows(report, BEST_MODEL_CLONED)
    for encoder, entry in results["cloned"].items():
        smallest, step, evaluations = official[encoder]
        assert close(smallest, entry["official_min"]["min_mean_abs_difference"])
        assert int(step) == entry["official_min"]["step"] in (0, 15, 30)  # tiny: evaluations after steps 0, 15 and 30
        assert int(evaluations) == entry["official_min"]["evaluations"] == 3
        values = [entry[measure][split] for measure in ("paper", "rnn_zoos") for split in ("train", "validation", "ood")]
        assert all(close(shown, value) for shown, value in zip(cloned[encoder], values))


def test_report_lists_every_setting_that_differs_with_the_papers_value(study, formal_zoo: Path) -> None:
    out, _ = study
    report = (out / "REPORT.md").read_text().splitlines()
    listed = [line[2:] for line in report[report.index("## Settings that differ from the paper") + 2 :] if line.startswith("- ")]
    settings = {line.split(" = ")[0]: line for line in listed if " = " in line.split(" (")[0]}
    # the tiny scale's pretraining settings against the values of the paper's training_configs.py / training_script.py
    expected = {
        "steps": ("30", "100000"),
        "batch_rnns": ("8", "64"),
        "eval_every": ("15", "1000"),
        "eval_rnns": ("8", "all"),
        "cloned_rnns": ("1", "20"),
        "lr": ("0.001", "0.0001"),
    }
    for key, (ours, paper) in expected.items():
        assert settings[key].startswith(f"{key} = {ours} (paper: {paper}"), settings[key]
    for key in ("seeds", "probe_steps", "supervised_steps", "supervised_batch"):  # the paper's code has no downstream script
        assert settings[key].endswith("(paper: not stated)")
    assert set(settings) == set(expected) | {"seeds", "probe_steps", "supervised_steps", "supervised_batch"}
    info = rnn_zoos.read_info(formal_zoo)
    assert not reproduce.differences("paper", info)[0].startswith(tuple(expected))  # at paper scale none of them differ
    # the loop's cadence and the cloned-performance figure are the paper's now: no longer listed
    assert not any("before the first update" in line or "measured once" in line for line in listed)


def test_json_emulation_losses_are_those_of_the_saved_models(study, formal_zoo: Path) -> None:
    out, results = study
    scale = reproduce.SCALES["tiny"]
    for encoder in ("dws", "interactive_probing"):
        run = Pretraining(
            PretrainConfig(zoo=str(formal_zoo), encoder=encoder, out=str(out / "scratch"), device="cpu", **scale.pretraining)
        )
        model = RNNEncoderModel.from_pretrained(out / "pretrain" / encoder / "encoder").eval()
        emulator = EmulatorModel.from_pretrained(out / "pretrain" / encoder / "emulator").eval()
        for split, key in (("validation", "validation_loss"), ("ood", "ood_loss")):
            loss = evaluate_emulation(
                model, emulator, run.splits[split], run.eval_index[split], run.eval_sequence[split], "total_variation"
            )
            assert loss == pytest.approx(results["emulation"][encoder][key], rel=1e-5)


def test_json_downstream_and_cloned_numbers_are_those_of_the_predictions(study) -> None:
    out, results = study
    outputs = torch.load(out / "predictions.pt", weights_only=False)
    for target_name, entry in results["downstream"]["targets"].items():
        target = FORMAL_LANG.targets()[target_name]
        for method, parts in entry["methods"].items():
            if method == "trivial":
                continue
            for part, summary in parts.items():
                saved = outputs[target_name][method][part]
                assert summary["seeds"][0] == target.metrics(saved["predicted"], saved["true"])
    for encoder, entry in results["cloned"].items():
        saved = json.loads((out / "pretrain" / encoder / "cloned.json").read_text())
        summary = json.loads((out / "pretrain" / encoder / "summary.json").read_text())
        assert entry == {
            "paper": {split: saved[split]["mean_abs_difference"] for split in saved},
            "rnn_zoos": {split: saved[split]["rnn_zoos"]["mean_abs_difference"] for split in saved},
            "official_min": summary["cloned_official_min"],
            "rnns": {split: saved[split]["rnns"] for split in saved},
            "emulated_all_zero": all(value == 0 for split in saved for value in saved[split]["cloned"]),
        }


def test_plots_are_pictures(study) -> None:
    out, results = study
    assert [plot["path"] for plot in results["plots"]] == ["pca_task.png", "pca_accuracy.png"]
    runs = [out / "pretrain" / encoder for encoder in ENCODERS]
    for path in [out / plot["path"] for plot in results["plots"]] + [
        run / name for run in runs for name in ("cloned.png", "cloned_rnn_zoos.png")
    ]:
        pixels = matplotlib.image.imread(path)
        assert pixels.shape[0] > 300 and pixels.std() > 0.05


def test_report_interprets_its_results(study, formal_zoo: Path) -> None:
    out, results = study
    report = (out / "REPORT.md").read_text()
    lines = report.splitlines()
    info = json.loads((formal_zoo / "meta" / "info.json").read_text())
    sizes = table_rows(lines, "## The zoo")
    for split, entry in info["splits"].items():  # runs, rows and tasks of every split, as meta/info.json has them
        assert sizes[split] == [str(len(entry["runs"])), str(entry["num_rows"]), str(len(entry["tasks"]))]
        assert results["zoo_splits"][split] == {"runs": len(entry["runs"]), "rows": entry["num_rows"], "tasks": len(entry["tasks"])}
    assert "the checkpoint kept, the one best on validation, out of the steps trained" in report  # what "steps" means
    task_rows = table_rows(lines, "### task (exact_match, higher is better)")
    for method, parts in results["downstream"]["targets"]["task"]["methods"].items():  # the per-component scores
        shown = task_rows[method][2:]
        assert len(shown) == 3
        for component, cell in zip(("m_b", "m_c", "m_d"), shown):
            assert [float(value) for value in cell.split(" / ")] == pytest.approx(
                [parts[part]["mean"][component] for part in ("validation", "ood")], rel=1e-3, abs=1e-9)
    for plot in results["plots"]:  # a caption under every figure
        assert f"*{plot['caption']}*" in lines and plot["caption"].startswith("Embeddings of every RNN")
    assert all(f"*Cloned performance of {encoder}:" in report for encoder in results["cloned"])
    assert "These intervals come from 2 seed(s) each" in report  # the tiny scale's 2 seeds
    assert "Each split was measured on 1 RNN(s) only (the paper: 20)" in report  # the tiny scale's one cloned RNN per split
    exact = [value for parts in results["downstream"]["targets"]["task"]["methods"].values()
             for part in parts.values() for value in [part["mean"]["exact_match"]]]
    assert ("gets no task exactly right" in report) == all(value == 0 for value in exact)
    zero = [encoder for encoder, entry in results["cloned"].items() if entry["emulated_all_zero"]]
    assert (f"Every emulator of {', '.join(zero)} scored 0" in report) == bool(zero)


def test_results_record_the_zoo_the_versions_and_the_commit(study, formal_zoo: Path) -> None:
    out, results = study
    provenance = results["provenance"]
    assert provenance["zoo"] == {"zoo": str(formal_zoo), "revision": None, "commit": None,
                                 "info_sha256": hashlib.sha256((formal_zoo / "meta" / "info.json").read_bytes()).hexdigest()}
    assert {"rnn-zoos", "torch", "datasets", "transformers"} <= {name for name, version in provenance["versions"].items() if version}
    assert re.fullmatch(r"[0-9a-f]{40}(\+dirty)?", provenance["git_commit"])  # the tests run in a checkout
    for encoder in ENCODERS:
        summary = json.loads((out / "pretrain" / encoder / "summary.json").read_text())
        assert summary["provenance"]["zoo"] == provenance["zoo"] and summary["provenance"]["versions"] == provenance["versions"]
        assert not (out / "pretrain" / encoder / "checkpoint.pt").exists() and (out / "pretrain" / encoder / "loss.png").is_file()


@pytest.mark.parametrize("command", ["downstream", "pretrain", "build"])
def test_another_command_never_writes_into_a_study(study, formal_zoo: Path, command: str, capsys) -> None:
    from rnn_zoos.builder.command import main as build_main
    from rnn_zoos.experiments import downstream, pretrain

    out, _ = study
    before = {path: path.read_bytes() for path in out.rglob("*") if path.is_file()}
    status = {"downstream": lambda: downstream.main([str(formal_zoo), "--out", str(out), "--device", "cpu"]),
              "pretrain": lambda: pretrain.main([str(formal_zoo), "--encoder", "dws", "--out", str(out), "--device", "cpu"]),
              "build": lambda: build_main("formal-lang", ["--out", str(out), "--runs", "2", "--steps", "2"])}[command]()
    assert status == 2
    assert capsys.readouterr().err.splitlines()[-1] == (f"error: --out {out} holds a study of rnn-zoos reproduce; choose a new or "
                                                        f"empty folder for rnn-zoos {command}")
    assert {path: path.read_bytes() for path in out.rglob("*") if path.is_file()} == before


def test_degenerate_results_are_named_in_plain_sentences() -> None:
    from rnn_zoos.experiments.report import _degenerate_downstream

    zero = {"seeds": [], "mean": {"exact_match": 0.0}, "ci95": {"exact_match": [0.0, 0.0]}}
    entry = {"higher_is_better": True, "methods": {"trivial": {"validation": zero}, "pretrained:dws": {"validation": zero}}}
    assert "gets no task exactly right" in _degenerate_downstream("exact_match", entry)[0]
    floor = {"mean": {"mse": 1.0}}
    worse = {"mean": {"mse": 2.0}}
    entry = {"higher_is_better": False, "methods": {"trivial": {"ood": floor}, "pretrained:dws": {"ood": worse}}}
    assert _degenerate_downstream("mse", entry) == ["No method does better than the trivial floor on this target."]
    entry["methods"]["pretrained:dws"] = {"ood": {"mean": {"mse": 0.5}}}
    assert _degenerate_downstream("mse", entry) == []


def test_pretraining_runs_as_ray_tasks_give_the_same_results(study, formal_zoo: Path, tmp_path: Path, monkeypatch) -> None:
    """Two encoders' runs as Ray tasks give exactly the numbers the study (all six, no Ray) has for them: every encoder's
    pretraining and downstream methods depend only on their own seeds."""
    import ray

    out, results = study
    chosen = ["layerwise_statistics", "dws"]
    monkeypatch.setenv("RNN_ZOOS_RAY_CPUS", "2")
    try:
        assert reproduce.main([str(formal_zoo), "--scale", "tiny", "--out", str(tmp_path / "ray"), "--device", "cpu",
                               "--encoders", *chosen, "--ray"]) == 0
    finally:
        ray.shutdown()
    with_ray = json.loads((tmp_path / "ray" / "results.json").read_text())
    for key in ("emulation", "cloned"):
        assert with_ray[key] == {encoder: results[key][encoder] for encoder in chosen}
    methods = {"trivial", *(f"{kind}:{encoder}" for kind in ("pretrained", "supervised") for encoder in chosen)}
    for target, entry in results["downstream"]["targets"].items():
        assert with_ray["downstream"]["targets"][target]["methods"] == {
            method: value for method, value in entry["methods"].items() if method in methods}
