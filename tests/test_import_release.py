"""Importing the paper's release layout: small release folders written here from tiny built zoos."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq
import pytest
import torch

import rnn_zoos
from builders import import_release
from rnn_zoos import ZooError
from rnn_zoos.verify import verify_zoo


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
    assert set(imported["seed"]) == {-1}
    info = rnn_zoos.read_info(out)
    assert any("after one optimizer update" in note for note in info.notes)
    assert any("without checking their order" in note for note in info.notes)
    card = (out / "README.md").read_text()
    assert "imported from the paper's original release (`formal_languages_tokens_4_length_42_2x32`)" in card
    assert "without checking their order" in card and "assets/accuracy_by_step.png" in card
    assert not (tmp_path / "imported.importing").exists()


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
    monkeypatch.setattr(import_release, "BLOCK_ROWS", 7)
    loaded = import_release.Release(release)
    assert all(isinstance(array, np.memmap) for array in loaded.arrays.values())
    import_release.import_release(release, tmp_path / "imported")
    assert verify_zoo(tmp_path / "imported", sample_rows=1000) == []


def test_bad_release_folders(formal_zoo: Path, tmp_path: Path, capsys) -> None:
    with pytest.raises(ZooError, match="must start with formal_languages or sequential_mnist"):
        import_release.import_release(tmp_path, tmp_path / "out")
    release = tmp_path / "formal_languages_y"
    write_release(formal_zoo, release, shuffle=False)
    (release / "tasks.npy").unlink()
    with pytest.raises(ZooError, match="tasks.npy is missing"):
        import_release.import_release(release, tmp_path / "out")
    np.save(release / "tasks.npy", np.zeros((3, 4)))
    with pytest.raises(ZooError, match=r"tasks.npy has shape \(3, 4\), expected \(\d+, 4\)"):
        import_release.import_release(release, tmp_path / "out")
    (tmp_path / "full").mkdir()
    (tmp_path / "full" / "x").write_text("keep")
    assert import_release.main([str(release), "--out", str(tmp_path / "full")]) == 2
    assert "exists and is not empty" in capsys.readouterr().err
    assert (tmp_path / "full" / "x").read_text() == "keep"
