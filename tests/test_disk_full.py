"""A full disk (``ENOSPC``, injected) during training, finalisation, an import or pretraining ends in one line naming the
device and the file, and the same command, rerun once space is freed, ends as an uninterrupted run."""

from __future__ import annotations

import errno
import os
import re
from pathlib import Path

import pytest

from rnn_zoos.builder import command as build
from rnn_zoos.release import importer as release_import
from rnn_zoos.common.errors import ZooError
from rnn_zoos.experiments.pretrain import main as pretrain_main, pretrain
from rnn_zoos.common.files import atomic_write, device_of

from conftest import assert_same_zoo
from pretrain_runs import command, config, log, one_error_line
from test_import_release import write_release

LINE = re.compile(r"error: no space left on .+ while writing (.+); free space and rerun the same command")
BUILD = ["--runs", "4", "--steps", "20", "--rnns-per-batch", "2", "--seed", "3", "--device", "cpu"]


def fail_fsync_at(monkeypatch, call: int) -> dict[str, int]:
    """Make the ``call``-th ``fsync`` of this test find the disk full; returns the count of calls so far."""
    fsync, calls = os.fsync, {"count": 0}

    def full(descriptor: int) -> None:
        calls["count"] += 1
        if calls["count"] == call:
            raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC))
        fsync(descriptor)

    monkeypatch.setattr(os, "fsync", full)
    return calls


def written_file(stderr: str) -> str:
    match = LINE.fullmatch(one_error_line(stderr))
    assert match, stderr
    return match.group(1)


def test_the_line_names_the_device_and_the_file(tmp_path: Path, monkeypatch) -> None:
    fail_fsync_at(monkeypatch, 1)
    with pytest.raises(ZooError) as error:
        with atomic_write(tmp_path / "a.json") as temporary:
            temporary.write_text("{}")
    assert str(error.value) == f"no space left on {device_of(tmp_path)} while writing {tmp_path / 'a.json'}; free space and rerun the same command"
    assert "mounted on" in device_of(tmp_path)
    assert list(tmp_path.iterdir()) == []  # no temporary, no half-written file


def test_torch_checkpoints_report_a_full_disk_as_such(tmp_path: Path, monkeypatch) -> None:
    """torch.save to a path would say only "file write failed": checkpoints are written through a Python file."""
    from rnn_zoos.common.files import save_atomically
    import torch

    def full_write(*args, **kwargs):
        raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC))

    monkeypatch.setattr(torch, "save", lambda state, handle: full_write())
    with pytest.raises(ZooError, match="no space left on .* while writing .*checkpoint.pt"):
        save_atomically({"a": 1}, tmp_path / "checkpoint.pt")


@pytest.mark.parametrize("call", [1, 4, 9, 14])
def test_pretraining_on_a_full_disk_ends_in_one_line_and_resumes(call: int, formal_zoo: Path, tmp_path: Path, monkeypatch,
                                                                  capsys) -> None:
    reference = tmp_path / "reference"
    pretrain(config(formal_zoo, reference))
    fail_fsync_at(monkeypatch, call)
    assert pretrain_main(command(formal_zoo, tmp_path / "run")) == 2
    assert written_file(capsys.readouterr().err).startswith(str(tmp_path / "run"))
    monkeypatch.undo()
    assert pretrain_main(command(formal_zoo, tmp_path / "run")) == 0, capsys.readouterr().err
    assert log(tmp_path / "run") == log(reference)
    assert sorted(path.name for path in (tmp_path / "run").iterdir()) == sorted(path.name for path in reference.iterdir())


@pytest.fixture(scope="module")
def reference_zoo(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, int]:
    """The tiny zoo built without a fault, and the number of fsync calls its build makes."""
    out = tmp_path_factory.mktemp("reference") / "zoo"
    with pytest.MonkeyPatch.context() as patch:
        calls = fail_fsync_at(patch, -1)
        assert build.main("formal-lang", ["--out", str(out), *BUILD]) == 0
    return out, calls["count"]


@pytest.mark.parametrize("moment", ["training", "finalisation"])
def test_a_build_on_a_full_disk_ends_in_one_line_and_resumes(moment: str, reference_zoo: tuple[Path, int], tmp_path: Path,
                                                              monkeypatch, capsys) -> None:
    reference, calls = reference_zoo
    fail_fsync_at(monkeypatch, 2 if moment == "training" else calls - 2)
    out = tmp_path / "zoo"
    assert build.main("formal-lang", ["--out", str(out), *BUILD]) == 2
    written = written_file(capsys.readouterr().err)
    assert (".build" in written) == (moment == "training"), written
    monkeypatch.undo()
    assert build.main("formal-lang", ["--out", str(out), *BUILD]) == 0, capsys.readouterr().err
    assert_same_zoo(out, reference)


def test_an_import_on_a_full_disk_ends_in_one_line_and_leaves_nothing(formal_zoo: Path, tmp_path: Path, monkeypatch, capsys) -> None:
    release = tmp_path / "formal_languages_tokens_4_length_42_2x32"
    write_release(formal_zoo, release)
    fail_fsync_at(monkeypatch, 3)
    assert release_import.main([str(release), "--out", str(tmp_path / "imported")]) == 2
    written_file(capsys.readouterr().err)
    assert sorted(path.name for path in tmp_path.iterdir()) == [release.name]
    monkeypatch.undo()
    assert release_import.main([str(release), "--out", str(tmp_path / "imported")]) == 0
