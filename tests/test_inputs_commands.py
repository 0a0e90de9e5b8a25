"""Bad input to the commands: one ``error:`` line, exit status 2 for a bad option and 1 for a damaged input, nothing written
before every check has passed, and nothing that was there before removed."""

from __future__ import annotations

import json
import math
from pathlib import Path

import numpy as np
import pytest

from rnn_zoos.experiments import downstream, pretrain, reproduce
from rnn_zoos.models.encoders import ENCODERS
from rnn_zoos.models.modeling import RNNEncoderConfig, RNNEncoderModel
from rnn_zoos.release import importer as import_release
from rnn_zoos import ZooError
from rnn_zoos.zoos.formal_lang import FORMAL_LANG
from rnn_zoos.zoos.seq_mnist import SEQ_MNIST
from rnn_zoos.zoos.formal_lang import BOS
from rnn_zoos.hub.verify import verify_zoo

STEPS = (0, 10)
TASKS = ((0, -1, 2, 1), (0, 1, 0, -2), (0, 2, -3, 0), (0, 0, 1, 1))
"""The runs of the synthetic release: one task each, two snapshots."""
DAMAGED = "the release folder is damaged: download it again"
QUICK = ["--steps", "2", "--rnns-per-batch", "4", "--eval-every", "2", "--eval-rnns", "2", "--cloned-rnns", "0", "--device", "cpu"]


UNKNOWN_ENCODER = (f"is unknown; choose one of {', '.join(ENCODERS)}, an installed encoder (none is installed), "
                   "or MODULE:CLASS (a class or factory in your own code)")
"""How a command refuses an encoder name it cannot find (no encoder is installed in the test environment)."""


def error_line(capsys: pytest.CaptureFixture[str]) -> str:
    """The one line the command printed on stderr."""
    err = capsys.readouterr().err
    assert len(err.splitlines()) == 1, err
    return err.strip()


def listing(folder: Path) -> dict[str, bytes]:
    """Every file under ``folder`` with its content."""
    return {path.relative_to(folder).as_posix(): path.read_bytes() for path in sorted(folder.rglob("*")) if path.is_file()}


def formal_arrays() -> dict[str, np.ndarray]:
    """The arrays of a small formal-language release, with the release's dtypes: zero weights, whose outputs are uniform
    (so the stored log-probs are what the weights compute), and strings of BOS and letters."""
    rows = len(TASKS) * len(STEPS)
    shape = FORMAL_LANG.log_probs_feature.shape
    sequences = np.zeros((rows, *FORMAL_LANG.inputs_feature.shape), np.int16)
    sequences[:, :, 0] = BOS
    run, step = np.repeat(np.arange(len(TASKS)), len(STEPS)), np.tile(STEPS, len(TASKS))
    return {
        "parameters": np.zeros((rows, FORMAL_LANG.architecture.num_parameters), np.float32),
        "sequences": sequences,
        "logits": np.full((rows, *shape), -math.log(shape[-1]), np.float16),
        "tasks": np.repeat(np.asarray(TASKS, np.int64), len(STEPS), axis=0),
        "num_step_correct": np.stack([run, step, np.zeros(rows, np.int64)], axis=1),
    }


def write_formal_release(folder: Path, args: object = None, **arrays: np.ndarray) -> Path:
    """Write a small formal-language release into ``folder``; ``arrays`` and ``args`` replace the sound ones."""
    folder.mkdir(parents=True)
    for name, array in {**formal_arrays(), **arrays}.items():
        np.save(folder / f"{name}.npy", array)
    (folder / "args.json").write_text(json.dumps({"weight_decay": 1e-4} if args is None else args))
    return folder


@pytest.fixture
def release(tmp_path: Path) -> Path:
    """A sound small formal-language release."""
    return write_formal_release(tmp_path / "formal_languages_synthetic")


# --- import_release -----------------------------------------------------------------------------

def test_import_never_removes_a_folder_it_did_not_create(release: Path, tmp_path: Path) -> None:
    (tmp_path / "zoo.importing").mkdir()
    (tmp_path / "zoo.importing" / "notes.txt").write_text("mine")
    assert import_release.main([str(release), "--out", str(tmp_path / "zoo")]) == 0
    assert verify_zoo(tmp_path / "zoo", sample_rows=1000) == []
    assert (tmp_path / "zoo.importing" / "notes.txt").read_text() == "mine"
    assert sorted(path.name for path in tmp_path.iterdir()) == ["formal_languages_synthetic", "zoo", "zoo.importing"]


def test_a_failed_import_removes_only_its_own_folder(release: Path, tmp_path: Path, monkeypatch, capsys) -> None:
    (tmp_path / "zoo.importing").mkdir()
    (tmp_path / "zoo.importing" / "notes.txt").write_text("mine")

    def fail(folder: Path, *args, **kwargs) -> None:
        (folder / "data").mkdir(parents=True)
        (folder / "data" / "train-00000-of-00001.parquet").write_text("half written")
        raise ZooError("simulated failure")

    monkeypatch.setattr(import_release, "write_zoo_layout", fail)
    assert import_release.main([str(release), "--out", str(tmp_path / "zoo")]) == 2
    assert capsys.readouterr().err.splitlines()[-1] == "error: simulated failure"  # after the progress bar
    assert sorted(path.name for path in tmp_path.iterdir()) == ["formal_languages_synthetic", "zoo.importing"]
    assert listing(tmp_path / "zoo.importing") == {"notes.txt": b"mine"}


def test_import_refuses_the_current_folder(release: Path, tmp_path: Path, monkeypatch, capsys) -> None:
    here = tmp_path / "here"
    here.mkdir()
    monkeypatch.chdir(here)
    assert import_release.main([str(release), "--out", "."]) == 2
    assert error_line(capsys) == "error: --out . is the current folder; choose a new folder for the zoo"
    assert list(here.iterdir()) == []


@pytest.mark.parametrize("inside", ["", "zoo"])
def test_import_refuses_an_out_in_the_release_folder(release: Path, capsys, inside: str) -> None:
    before = listing(release)
    out = release / inside
    assert import_release.main([str(release), "--out", str(out)]) == 2
    assert error_line(capsys) == f"error: --out {out} is in the release folder {release}; choose a folder outside it"
    assert listing(release) == before


def test_import_refuses_args_json_that_is_not_an_object(tmp_path: Path, capsys) -> None:
    release = write_formal_release(tmp_path / "formal_languages_synthetic", args=[1, 2])
    assert import_release.main([str(release), "--out", str(tmp_path / "zoo")]) == 1
    expected = f"error: {release / 'args.json'} holds a JSON list, expected an object of the run options; {DAMAGED}"
    assert error_line(capsys) == expected
    assert not (tmp_path / "zoo").exists()


@pytest.mark.parametrize(
    ("name", "dtype", "problem"),
    [
        ("tasks", np.float64, "holds float64 values; expected a NumPy array of integers"),
        ("parameters", np.int32, "holds int32 values; expected a NumPy array of floating-point numbers"),
        ("logits", np.complex64, "holds complex64 values; expected a NumPy array of floating-point numbers"),
        ("tasks", object, "expected a NumPy array of integers"),  # cannot be memory-mapped
    ],
    ids=["float-tasks", "integer-parameters", "complex-logits", "object-tasks"],
)
def test_import_refuses_arrays_of_the_wrong_dtype(tmp_path: Path, capsys, name: str, dtype: type, problem: str) -> None:
    release = write_formal_release(tmp_path / "formal_languages_synthetic", **{name: formal_arrays()[name].astype(dtype)})
    assert import_release.main([str(release), "--out", str(tmp_path / "zoo")]) == 1
    line = error_line(capsys)
    assert str(release / f"{name}.npy") in line and line.endswith(problem)
    assert not (tmp_path / "zoo").exists()


def with_value(name: str, row: int, value: float) -> dict[str, np.ndarray]:
    """The array ``name`` of the sound release with ``value`` somewhere in ``row``."""
    array = formal_arrays()[name]
    array.reshape(len(array), -1)[row, -1] = value
    return {name: array}


@pytest.mark.parametrize(
    ("arrays", "problem"),
    [
        (with_value("parameters", 3, math.nan), "parameters.npy: row 3 holds NaN or infinite values"),
        (with_value("logits", 5, -math.inf), "logits.npy: row 5 holds NaN or infinite values"),
        (with_value("sequences", 2, 7), "sequences.npy: row 2 holds values outside 0 to 5"),
        (with_value("tasks", 6, 200), "tasks.npy: row 6 holds values outside -128 to 127"),
    ],
    ids=["nan-parameters", "infinite-logits", "unknown-token", "task-beyond-int8"],
)
def test_import_refuses_values_a_formal_release_cannot_hold(tmp_path: Path, capsys, arrays: dict[str, np.ndarray], problem: str) -> None:
    release = write_formal_release(tmp_path / "formal_languages_synthetic", **arrays)
    assert import_release.main([str(release), "--out", str(tmp_path / "zoo")]) == 1
    assert error_line(capsys) == f"error: {release}/{problem}; {DAMAGED}"
    assert not (tmp_path / "zoo").exists()


# --- pretrain -----------------------------------------------------------------------------------

def test_pretrain_refuses_a_missing_zoo_before_writing(tmp_path: Path, capsys) -> None:
    missing, out = tmp_path / "missing", tmp_path / "run"
    assert pretrain.main([str(missing), "--encoder", "dws", "--out", str(out), *QUICK]) == 2
    assert error_line(capsys) == f"error: no folder named {missing}; give the path of a zoo folder or a Hub dataset repo id (ORG/NAME)"
    assert not out.exists()


def test_pretrain_refuses_an_out_that_is_a_file(formal_zoo: Path, tmp_path: Path, capsys) -> None:
    out = tmp_path / "run"
    out.write_text("keep")
    assert pretrain.main([str(formal_zoo), "--encoder", "dws", "--out", str(out), *QUICK]) == 2
    assert error_line(capsys) == f"error: --out {out} is a file, so no folder can be made there; choose another --out"
    assert out.read_text() == "keep"


def test_pretrain_checks_the_options_against_the_zoo_before_writing(formal_zoo: Path, tmp_path: Path, capsys) -> None:
    out = tmp_path / "run"
    assert pretrain.main([str(formal_zoo), "--encoder", "dws", "--out", str(out), *QUICK, "--sequences-per-rnn", "101"]) == 2
    assert error_line(capsys) == "error: --sequences-per-rnn 101: the zoo records only 100 sequences per RNN"
    assert not out.exists()  # so the corrected command starts a new run instead of finding one with other options


def test_pretrain_refuses_a_probing_length_the_papers_code_fixes(mnist_zoo: Path, tmp_path: Path, capsys) -> None:
    out = tmp_path / "run"
    argv = ["--zoo", str(mnist_zoo), "--encoder", "interactive_probing", "--out", str(out), *QUICK, "--probing-length", "12"]
    assert pretrain.main(argv) == 2
    assert error_line(capsys) == ("error: --probing-length 12: the paper's code fixes the probe length of a seq-mnist zoo to 50 "
                                  "(its length ablations are for formal languages); leave the option out")
    assert not out.exists()


def test_pretrain_restarted_before_its_first_checkpoint_logs_step_zero_once(formal_zoo: Path, tmp_path: Path, monkeypatch) -> None:
    out = tmp_path / "run"
    argv = [str(formal_zoo), "--encoder", "layerwise_statistics", "--out", str(out), *QUICK]

    def killed(self) -> float:
        raise KeyboardInterrupt("killed before the first checkpoint")

    with monkeypatch.context() as patch:
        patch.setattr(pretrain.Pretraining, "train_step", killed)
        with pytest.raises(KeyboardInterrupt):
            pretrain.main(argv)
    assert not (out / "checkpoint.pt").exists()
    assert pretrain.main(argv) == 0
    assert [json.loads(line)["step"] for line in (out / "log.jsonl").read_text().splitlines()] == [0, 2]


# --- downstream ---------------------------------------------------------------------------------

@pytest.fixture
def no_study(monkeypatch) -> None:
    """Fail the test if the downstream study starts (it loads the zoo's rows first)."""

    def study_started(*args, **kwargs) -> None:
        raise AssertionError("the study started before the options were checked")

    monkeypatch.setattr(downstream, "load_splits", study_started)


def test_downstream_checks_out_before_the_study(formal_zoo: Path, tmp_path: Path, capsys, no_study) -> None:
    out = tmp_path / "results"
    out.write_text("keep")
    assert downstream.main([str(formal_zoo), "--out", str(out), "--num-seeds", "1", "--device", "cpu"]) == 2
    assert error_line(capsys) == f"error: --out {out} is a file, so no folder can be made there; choose another --out"
    assert out.read_text() == "keep"


@pytest.mark.parametrize("held", ["downstream", "foreign"])
def test_downstream_never_overwrites_a_folder_with_files(formal_zoo: Path, tmp_path: Path, capsys, no_study, held: str) -> None:
    out = tmp_path / "results"
    out.mkdir()
    (out / ("downstream.json" if held == "downstream" else "notes.txt")).write_text("keep")
    (out / "predictions.pt").write_text("keep")
    assert downstream.main([str(formal_zoo), "--out", str(out), "--num-seeds", "1", "--device", "cpu"]) == 2
    what = ("the results of rnn-zoos downstream (it does not resume; nothing there is overwritten)" if held == "downstream"
            else "files that no rnn-zoos command wrote")
    assert error_line(capsys) == f"error: --out {out} holds {what}; choose a new or empty folder for rnn-zoos downstream"
    assert {path.name: path.read_text() for path in out.iterdir()} == {path.name: "keep" for path in out.iterdir()}


def test_reproduce_refuses_the_folder_of_another_command(formal_zoo: Path, tmp_path: Path, capsys) -> None:
    out = tmp_path / "run"
    out.mkdir()
    (out / "log.jsonl").write_text("keep")
    assert reproduce.main([str(formal_zoo), "--out", str(out), "--device", "cpu"]) == 2
    assert error_line(capsys) == f"error: --out {out} holds a pretraining run of rnn-zoos pretrain; choose a new or empty folder for rnn-zoos reproduce"
    assert [path.name for path in out.iterdir()] == ["log.jsonl"]


@pytest.mark.parametrize(
    ("options", "message"),
    [
        (["--supervised", "lstm_whisperer"], f"--supervised 'lstm_whisperer' {UNKNOWN_ENCODER}"),
        (["--targets", "angle"], "unknown target(s) ['angle'] for this formal-lang zoo; choose from task, accuracy, accuracy_ordered"),
        (["--probe-steps", "0"], "--probe-steps must be at least 1, got 0"),
        (["--supervised-steps", "0"], "--supervised-steps must be at least 1, got 0"),
    ],
    ids=["unknown-encoder", "unknown-target", "no-probe-steps", "no-supervised-steps"],
)
def test_downstream_checks_its_options_before_the_study(formal_zoo: Path, tmp_path: Path, capsys, no_study, options: list[str],
                                                         message: str) -> None:
    out = tmp_path / "results"
    assert downstream.main([str(formal_zoo), "--out", str(out), "--device", "cpu", *options]) == 2
    assert error_line(capsys) == f"error: {message}"
    assert not out.exists()


def test_downstream_refuses_an_encoder_pretrained_on_another_zoo(formal_zoo: Path, tmp_path: Path, capsys, no_study) -> None:
    encoder = tmp_path / "mnist_encoder"
    RNNEncoderModel(RNNEncoderConfig.for_zoo("layerwise_statistics", SEQ_MNIST)).save_pretrained(encoder)
    out = tmp_path / "results"
    assert downstream.main([str(formal_zoo), "--out", str(out), "--pretrained", str(encoder), "--device", "cpu"]) == 2
    message = f"error: --pretrained {encoder} was pretrained on a seq-mnist zoo, not a formal-lang zoo like {formal_zoo}"
    assert capsys.readouterr().err.splitlines()[-1] == message  # after transformers' progress bars
    assert not out.exists()


# --- reproduce ----------------------------------------------------------------------------------

@pytest.mark.parametrize("case", ["missing-zoo", "unknown-encoder"])
def test_reproduce_checks_its_options_before_making_out(formal_zoo: Path, tmp_path: Path, capsys, case: str) -> None:
    missing, out = tmp_path / "missing", tmp_path / "study"
    options, message = {
        "missing-zoo": ([str(missing)], f"no folder named {missing}; give the path of a zoo folder or a Hub dataset repo id (ORG/NAME)"),
        "unknown-encoder": ([str(formal_zoo), "--encoders", "lstm_whisperer"], f"--encoders 'lstm_whisperer' {UNKNOWN_ENCODER}"),
    }[case]
    assert reproduce.main([*options, "--out", str(out), "--device", "cpu"]) == 2
    assert error_line(capsys) == f"error: {message}"
    assert not out.exists()


def test_a_failed_reproduction_leaves_no_folder_it_made(formal_zoo: Path, tmp_path: Path, monkeypatch, capsys) -> None:
    def damaged(*args, **kwargs) -> None:
        raise ZooError("simulated damage")

    monkeypatch.setattr(reproduce, "load_splits", damaged)
    assert reproduce.main([str(formal_zoo), "--out", str(tmp_path / "new" / "study"), "--device", "cpu"]) == 2
    assert error_line(capsys) == "error: simulated damage"
    assert list(tmp_path.iterdir()) == []
