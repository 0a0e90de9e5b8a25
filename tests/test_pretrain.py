"""Emulation pretraining on tiny zoos, as the paper's loop: every encoder learns, passes over the training RNNs,
one sequence per RNN, per-batch augmentation, separate clipping, fixed evaluation, resuming, cloned performance."""

from __future__ import annotations

import contextlib
import io
import json
from pathlib import Path

import pytest
import torch

from rnn_zoos.experiments.data import ZooTensors
import rnn_zoos.experiments.pretrain as pretrain_module
from rnn_zoos.experiments.emulation import emulation_loss
from rnn_zoos.zoos import rnn_model
from rnn_zoos.models.encoders import ENCODERS
from rnn_zoos.models.modeling import RNNEncoderModel
from rnn_zoos.experiments.pretrain import PAPER_SETTINGS, PretrainConfig, Pretraining, main, pretrain
from rnn_zoos import ZooError
from rnn_zoos.lstm.functional import lstm_forward
from rnn_zoos.lstm.streams import stream_uniform
from rnn_zoos.zoos import formal_lang as fl

QUICK = {"steps": 40, "batch_rnns": 8, "eval_every": 40, "eval_rnns": 4, "lr": 1e-3, "cloned_rnns": 0, "device": "cpu"}


def log(folder: Path) -> list[dict]:
    return [json.loads(line) for line in (folder / "log.jsonl").read_text().splitlines()]


@pytest.mark.parametrize("encoder", list(ENCODERS))
def test_short_pretraining_lowers_the_validation_loss(formal_zoo: Path, tmp_path: Path, encoder: str) -> None:
    summary = pretrain(PretrainConfig(zoo=str(formal_zoo), encoder=encoder, out=str(tmp_path / encoder), **QUICK))
    history = log(tmp_path / encoder)
    assert history[0]["step"] == 0 and history[-1]["step"] == QUICK["steps"] and summary["updates"] == QUICK["steps"] + 1
    assert history[-1]["validation"] < 0.7 * history[0]["validation"], history
    assert summary["selected_on"] == "validation" and summary["best_loss"] == min(entry["validation"] for entry in history)
    loaded = RNNEncoderModel.from_pretrained(tmp_path / encoder / "encoder")
    assert loaded.config.training["validation_loss"] == summary["best_loss"]


def test_the_defaults_are_the_papers_settings() -> None:
    """The values of the paper's ``training_configs.general_configs`` and ``training_script.py``, written out."""
    config = PretrainConfig(zoo="z", encoder="dws", out="o")
    assert set(PAPER_SETTINGS) <= set(vars(config))
    assert (config.steps, config.batch_rnns, config.sequences_per_rnn, config.lr, config.weight_decay, config.clip) == (
        100_000,
        64,
        1,
        1e-4,
        0.01,
        0.1,
    )  # training_configs.general_configs
    assert (config.eval_every, config.eval_rnns, config.cloned_rnns) == (1000, None, 20)


def test_batches_pass_over_every_training_rnn_once_per_epoch(formal_zoo: Path, tmp_path: Path) -> None:
    run = Pretraining(PretrainConfig(zoo=str(formal_zoo), encoder="layerwise_statistics", out=str(tmp_path), **QUICK))
    rows = len(run.splits["train"])
    per_pass = -(-rows // 8)
    seen = []
    for step in range(2 * per_pass):
        run.step = step
        seen.append(run.batch_index())
    first, second = torch.cat(seen[:per_pass]), torch.cat(seen[per_pass:])
    assert sorted(first.tolist()) == sorted(second.tolist()) == list(range(rows))  # each pass: every RNN exactly once
    assert not torch.equal(first, second)  # reshuffled each pass
    assert len(seen[per_pass - 1]) == rows - 8 * (per_pass - 1)  # the last batch of a pass is what remains


def test_one_sequence_per_rnn_and_one_shared_permutation_per_batch(formal_zoo: Path, tmp_path: Path, monkeypatch) -> None:
    seen = {}
    params, sequences = ZooTensors.params, ZooTensors.sequences

    def spy_params(self, index, generator=None, permute=False):
        result = params(self, index, generator, permute)
        seen["params"] = (permute, params(self, index), result)
        return result

    def spy_sequences(self, index, sequence):
        seen["sequence"] = sequence
        return sequences(self, index, sequence)

    monkeypatch.setattr(ZooTensors, "params", spy_params)
    monkeypatch.setattr(ZooTensors, "sequences", spy_sequences)
    for encoder, augmented in (("flat", True), ("dws", False)):
        run = Pretraining(
            PretrainConfig(zoo=str(formal_zoo), encoder=encoder, out=str(tmp_path / encoder), **{**QUICK, "eval_rnns": None})
        )
        run.train_step()
        assert seen["sequence"].shape == (8, 1)
        permute, stored, used = seen["params"]
        assert permute is augmented
        inputs = torch.randn(3, 5, 6)
        torch.testing.assert_close(lstm_forward(used, inputs)[0], lstm_forward(stored, inputs)[0], rtol=1e-4, atol=1e-5)
        # where each neuron of layer 0 went, read off its input-gate bias: the same for every RNN of the batch
        moved = (used["lstm.bias_ih_l0"][:, :32, None] == stored["lstm.bias_ih_l0"][:, None, :32]).float().argmax(-1)
        assert (moved == moved[0]).all()
        assert (not torch.equal(moved[0], torch.arange(32))) is augmented


def test_gradients_are_clipped_for_the_emulator_and_the_encoder_separately(formal_zoo: Path, tmp_path: Path, monkeypatch) -> None:
    run = Pretraining(PretrainConfig(zoo=str(formal_zoo), encoder="dws", out=str(tmp_path), **QUICK))
    monkeypatch.setattr(pretrain_module, "emulation_loss", lambda *args: 1e6 * emulation_loss(*args))  # both norms far above 0.1
    norms = {}

    def record() -> None:
        for name, model in (("encoder", run.encoder), ("emulator", run.emulator)):
            norms[name] = torch.linalg.vector_norm(
                torch.stack([p.grad.norm() for p in model.parameters() if p.grad is not None])
            ).item()

    monkeypatch.setattr(run.optimizer, "step", record)
    run.train_step()
    assert norms["encoder"] == pytest.approx(0.1, rel=1e-4) and norms["emulator"] == pytest.approx(0.1, rel=1e-4)
    # clipped together, the two would share one norm of 0.1; separately, together they exceed it
    assert (norms["encoder"] ** 2 + norms["emulator"] ** 2) ** 0.5 > 0.14


def test_evaluation_reads_every_rnn_on_one_fixed_sequence(formal_zoo: Path, tmp_path: Path) -> None:
    run = Pretraining(PretrainConfig(zoo=str(formal_zoo), encoder="flat", out=str(tmp_path), **{**QUICK, "eval_rnns": None}))
    for split in ("validation", "ood"):
        assert run.eval_index[split].tolist() == list(range(len(run.splits[split])))
        assert run.eval_sequence[split].shape == (len(run.splits[split]), 1)
    first = run.evaluate()
    assert run.evaluate() == first  # the same sequences and the same permutations every time
    run.train_step()
    assert run.evaluate() != first


def test_evaluations_follow_the_papers_loop(formal_zoo: Path, tmp_path: Path) -> None:
    """Steps 0 to ``steps``, one update each; an evaluation after the update of every step divisible by eval_every
    (the paper's ``step % 1000 == 0`` after its update: updates 1, 1001, ..., 100,001), and of the last."""
    for steps, logged in ((10, [0, 5, 10]), (7, [0, 5, 7])):
        run = Pretraining(PretrainConfig(zoo=str(formal_zoo), encoder="layerwise_statistics", out=str(tmp_path / str(steps)),
                                         **{**QUICK, "steps": steps, "eval_every": 5}))
        (tmp_path / str(steps)).mkdir()
        run.run()
        assert [entry["step"] for entry in run.history] == logged
        updates = {int(state["step"]) for state in run.optimizer.state.values()}
        assert updates == {steps + 1} and run.step == steps + 1


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


def reference_release_score(strings: torch.Tensor, task: list[int]) -> float:
    """Correct among finished strings, by the paper's rule (letter counts up to the first EOS, any order), in plain Python."""
    correct = finished = 0
    for string in strings.tolist():
        if fl.EOS not in string:
            continue
        finished += 1
        prefix = string[: string.index(fl.EOS)]
        counts = [prefix.count(letter) - task[letter] for letter in range(4)]
        correct += len(set(counts)) == 1
    return correct / finished if finished else 0.0


def test_cloned_performance_on_both_zoos(formal_zoo: Path, mnist_zoo: Path, tmp_path: Path) -> None:
    for name, zoo in (("formal", formal_zoo), ("mnist", mnist_zoo)):
        options = {**QUICK, "steps": 5, "eval_every": 5, "cloned_rnns": 3, "loss": "reverse_kl"}
        summary = pretrain(PretrainConfig(zoo=str(zoo), encoder="noninteractive_probing", out=str(tmp_path / name), **options))
        cloned = json.loads((tmp_path / name / "cloned.json").read_text())
        measured = [(entry["cloned_validation"], entry["step"]) for entry in log(tmp_path / name)]
        assert [step for _, step in measured] == [0, 5]  # the paper's figure: measured at every evaluation ...
        official = summary["cloned_official_min"]
        smallest = min(value for value, _ in measured)  # ... and the smallest kept, with the first step reaching it
        assert official == {"split": "validation", "rnns": 3, "min_mean_abs_difference": smallest,
                            "step": next(step for value, step in measured if value == smallest), "evaluations": 2}
        run = Pretraining(
            PretrainConfig(zoo=str(zoo), encoder="noninteractive_probing", out=str(tmp_path / "scratch"), **options)
        )
        for split, entry in cloned.items():
            rows = run.splits[split]
            index = torch.linspace(0, len(rows) - 1, 3).long()  # spread over the split, as the paper's evaluation picks them
            assert entry["rnns"] == len(entry["original"]) == len(entry["cloned"]) == 3
            assert all(0 <= value <= 1 for value in entry["cloned"] + entry["rnn_zoos"]["cloned"])
            assert entry["mean_abs_difference"] == pytest.approx(
                sum(abs(a - b) for a, b in zip(entry["original"], entry["cloned"])) / 3
            )
            assert entry["rnn_zoos"]["original"] == pytest.approx(rows.columns["accuracy"][index].tolist())
            assert summary["cloned_best_model"][split]["mean_abs_difference"] == entry["mean_abs_difference"]
            if name == "mnist":
                assert entry["original"] == entry["rnn_zoos"]["original"]  # the stored accuracy, as the paper's code
                continue
            params = rows.params(index)  # the RNN's own score: its strings, checked by the paper's rule
            uniforms = stream_uniform(index, (fl.STREAM_CLONED, 0), (2, fl.PAPER_SAMPLES, fl.SEQUENCE_LENGTH - 1))[:, 0]
            strings = fl.sample_strings(rnn_model(params), uniforms)
            expected = [reference_release_score(strings[k], list(rows.tasks[row])) for k, row in enumerate(index.tolist())]
            assert entry["original"] == pytest.approx(expected)
        assert set(cloned) == {"train", "validation", "ood"}
        assert (tmp_path / name / "cloned.png").stat().st_size > 10_000 and (tmp_path / name / "cloned_rnn_zoos.png").is_file()


def test_probing_options_reach_the_encoder(formal_zoo: Path, tmp_path: Path) -> None:
    options = {**QUICK, "steps": 1, "eval_every": 1, "probing_sequences": 2, "probing_length": 7}
    pretrain(PretrainConfig(zoo=str(formal_zoo), encoder="interactive_probing", out=str(tmp_path), **options))
    loaded = RNNEncoderModel.from_pretrained(tmp_path / "encoder")
    assert (loaded.config.probing_sequences, loaded.config.probing_length) == (2, 7)
    assert loaded.encoder.codes.shape == (7, 256)


def test_bad_options(formal_zoo: Path, tmp_path: Path, capsys) -> None:
    assert main([str(formal_zoo), "--encoder", "dws", "--out", str(tmp_path / "x"), "--steps", "0"]) == 2
    assert capsys.readouterr().err.strip() == "error: --steps must be at least 1, got 0"
    for option, value, message in (
        ("--lr", "-1", "--lr must be positive, got -1.0"),
        ("--clip", "-1", "--clip must not be negative, got -1.0"),
        ("--cloned-rnns", "-1", "--cloned-rnns must not be negative, got -1"),
        ("--eval-rnns", "0", "--eval-rnns must be at least 1 (or left out), got 0"),
    ):
        assert main([str(formal_zoo), "--encoder", "dws", "--out", str(tmp_path / "x"), option, value]) == 2
        assert capsys.readouterr().err.strip() == f"error: {message}"
    assert not (tmp_path / "x").exists()
    pretrain(
        PretrainConfig(zoo=str(formal_zoo), encoder="flat", out=str(tmp_path / "run"), **{**QUICK, "steps": 2, "eval_every": 2})
    )
    with pytest.raises(ZooError, match=r"holds a run with other options \(encoder='flat' there vs 'dws' now\)"):
        pretrain(
            PretrainConfig(
                zoo=str(formal_zoo), encoder="dws", out=str(tmp_path / "run"), **{**QUICK, "steps": 2, "eval_every": 2}
            )
        )
    capsys.readouterr()
    assert main([str(formal_zoo), "--encoder", "lstm_whisperer", "--out", str(tmp_path / "y")]) == 2
    assert capsys.readouterr().err.strip().startswith("error: --encoder 'lstm_whisperer' is unknown; choose one of")
    assert not (tmp_path / "y").exists()


def test_the_command_saves_every_encoder_at_the_papers_size_on_the_mnist_zoo(mnist_zoo: Path, tmp_path: Path) -> None:
    from test_encoders import OFFICIAL_PARAMETERS

    for encoder in ENCODERS:
        out = tmp_path / encoder
        assert (
            main(
                [
                    str(mnist_zoo),
                    "--encoder",
                    encoder,
                    "--out",
                    str(out),
                    "--steps",
                    "1",
                    "--rnns-per-batch",
                    "4",
                    "--eval-rnns",
                    "2",
                    "--cloned-rnns",
                    "0",
                    "--device",
                    "cpu",
                ]
            )
            == 0
        )
        saved = RNNEncoderModel.from_pretrained(out / "encoder")
        official = OFFICIAL_PARAMETERS[encoder][1]
        assert abs(sum(p.numel() for p in saved.parameters()) - official) <= 0.01 * official
        emulator = json.loads((out / "summary.json").read_text())["parameters"]["emulator"]
        assert emulator == 1_063_946


def strict_json(text: str) -> object:
    """``json.loads`` that refuses ``NaN`` and ``Infinity``, which JSON does not have."""
    def refuse(constant: str) -> None:
        raise ValueError(f"{constant} is not JSON")

    return json.loads(text, parse_constant=refuse)


@pytest.fixture(scope="module")
def four_run_zoo(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, str]:
    """A formal-language zoo of 4 runs (4 tasks at most: no validation split), built by the command; and what it printed."""
    from rnn_zoos.builder.command import main as build_main

    out = tmp_path_factory.mktemp("four_runs") / "zoo"
    stderr = io.StringIO()
    with contextlib.redirect_stderr(stderr), contextlib.redirect_stdout(stderr):
        assert build_main("formal-lang", ["--out", str(out), "--runs", "4", "--steps", "3", "--seed", "1", "--device", "cpu"]) == 0
    return out, stderr.getvalue()


def test_an_empty_validation_split_is_warned_about_and_pretrain_selects_on_ood(four_run_zoo, tmp_path: Path, capsys) -> None:
    zoo, printed = four_run_zoo
    warnings = [line for line in printed.splitlines() if line.startswith("warning: ")]
    assert warnings[0].startswith("warning: --runs 4 gives at most 4 tasks: none for validation, as splits are by task")
    assert warnings[-1].startswith(f"warning: {zoo} has ") and "rnn-zoos pretrain then selects its best model on ood" in warnings[-1]
    assert main([str(zoo), "--encoder", "flat", "--out", str(tmp_path / "run"), "--steps", "4", "--rnns-per-batch", "4",
                 "--cloned-rnns", "1", "--device", "cpu"]) == 0
    said = capsys.readouterr()
    assert ("the best model selected on ood (the validation split is empty); "
            "at the end, cloned performance: 1 RNNs per split") in said.err  # and every 1 step: a tenth of 4 steps, at least 1
    assert "after the update of step 0 and then every step, the emulation loss of 8 ood RNNs" in said.err
    log_entries = [strict_json(line) for line in (tmp_path / "run" / "log.jsonl").read_text().splitlines()]
    assert [entry["step"] for entry in log_entries] == [0, 1, 2, 3, 4] and all("validation" not in entry for entry in log_entries)
    summary = strict_json((tmp_path / "run" / "summary.json").read_text())
    assert summary["selected_on"] == "ood" and summary["best_loss"] == min(entry["ood"] for entry in log_entries[1:])
    assert strict_json(said.out)["selected_on"] == "ood" and set(strict_json((tmp_path / "run" / "cloned.json").read_text())) == {
        "train", "ood"}
    record = RNNEncoderModel.from_pretrained(tmp_path / "run" / "encoder").config.training
    assert record["selected_on"] == "ood" and record["validation_loss"] is None and record["ood_loss"] == summary["best_loss"]
    assert not (tmp_path / "run" / "checkpoint.pt").exists()  # a finished run keeps no checkpoint
    assert (tmp_path / "run" / "loss.png").stat().st_size > 5_000


def test_a_quick_trial_evaluates_as_it_goes() -> None:
    config = PretrainConfig(zoo="z", encoder="flat", out="o", steps=50)
    assert (config.eval_every, PretrainConfig(zoo="z", encoder="flat", out="o", steps=5).eval_every) == (5, 1)
    assert PretrainConfig(zoo="z", encoder="flat", out="o", steps=20_000).eval_every == 1000
