"""A pretraining run's own files are untrusted input: every damaged ``config.json``, ``checkpoint.pt``, ``log.jsonl``,
``summary.json`` or leftover temporary file ends in one ``error:`` line naming the file, or in a correct resume."""

from __future__ import annotations

import json
import os
import shutil
import tracemalloc
from collections.abc import Callable
from pathlib import Path

import pytest
import torch

from rnn_zoos.experiments.pretrain import main, pretrain
from rnn_zoos.experiments.run_folder import read_checkpoint, write_checkpoint

from pretrain_runs import command, config, interrupt_run, log, one_error_line


@pytest.fixture(scope="module")
def reference(formal_zoo: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The tiny run, uninterrupted."""
    out = tmp_path_factory.mktemp("reference") / "run"
    pretrain(config(formal_zoo, out))
    return out


@pytest.fixture(scope="module")
def interrupted(formal_zoo: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The tiny run, interrupted with a checkpoint at step 3."""
    return interrupt_run(formal_zoo, tmp_path_factory.mktemp("interrupted") / "run")


def checkpoint_state(folder: Path) -> dict:
    return read_checkpoint(folder / "checkpoint.pt", "cpu", max_bytes=1 << 30)


def resave(edit: Callable[[dict], object]) -> Callable[[Path], None]:
    def damage(folder: Path) -> None:
        state = checkpoint_state(folder)
        write_checkpoint(edit(state), folder / "checkpoint.pt")
    return damage


def set_item(key: str, value: object) -> Callable[[dict], dict]:
    return lambda state: {**state, key: value}


def without(key: str) -> Callable[[dict], dict]:
    return lambda state: {name: value for name, value in state.items() if name != key}


def write(name: str, data: bytes) -> Callable[[Path], None]:
    return lambda folder: (folder / name).write_bytes(data)


def cut(name: str, keep: Callable[[int], int]) -> Callable[[Path], None]:
    def damage(folder: Path) -> None:
        data = (folder / name).read_bytes()
        (folder / name).write_bytes(data[: keep(len(data))])
    return damage


def flip(name: str) -> Callable[[Path], None]:
    def damage(folder: Path) -> None:
        data = bytearray((folder / name).read_bytes())
        for index in range(len(data) // 3, len(data) // 3 + 64):
            data[index] ^= 0xFF
        (folder / name).write_bytes(bytes(data))
    return damage


def config_edit(edit: Callable[[dict], object]) -> Callable[[Path], None]:
    def damage(folder: Path) -> None:
        (folder / "config.json").write_text(json.dumps(edit(json.loads((folder / "config.json").read_text()))))
    return damage


DEEP = b"[" * 100_000 + b"]" * 100_000
DAMAGED = {  # name -> (damage, file named by the error)
    "checkpoint empty": (write("checkpoint.pt", b""), "checkpoint.pt"),
    "checkpoint truncated to half": (cut("checkpoint.pt", lambda size: size // 2), "checkpoint.pt"),
    "checkpoint truncated by 10 bytes": (cut("checkpoint.pt", lambda size: size - 10), "checkpoint.pt"),
    "checkpoint random bytes": (write("checkpoint.pt", os.urandom(5000)), "checkpoint.pt"),
    "checkpoint flipped bytes": (flip("checkpoint.pt"), "checkpoint.pt"),
    "checkpoint holds a list": (lambda folder: write_checkpoint([1, 2], folder / "checkpoint.pt"), "checkpoint.pt"),
    "checkpoint of torch alone, without checksum": (lambda folder: torch.save(checkpoint_state(folder), folder / "checkpoint.pt"),
                                                   "checkpoint.pt"),
    "checkpoint truncated by 40 bytes": (cut("checkpoint.pt", lambda size: size - 40), "checkpoint.pt"),
    "checkpoint without the optimiser": (resave(without("optimizer")), "checkpoint.pt"),
    "checkpoint with a negative step": (resave(set_item("step", -5)), "checkpoint.pt"),
    "checkpoint with a step past the run": (resave(set_item("step", 10**9)), "checkpoint.pt"),
    "checkpoint with other encoder weights": (resave(set_item("encoder", {"x": torch.zeros(3)})), "checkpoint.pt"),
    "checkpoint with a string step": (resave(set_item("step", "three")), "checkpoint.pt"),
    "checkpoint with a bad history": (resave(set_item("history", [1, 2])), "checkpoint.pt"),
    "config.json holds a list": (write("config.json", b"[1, 2]"), "config.json"),
    "config.json nested 100k deep": (write("config.json", DEEP), "config.json"),
    "config.json with a nested option": (config_edit(lambda found: {**found, "steps": [[6]]}), "config.json"),
    "config.json with an object option": (config_edit(lambda found: {**found, "seed": {"a": 1}}), "config.json"),
    "config.json empty": (write("config.json", b""), "config.json"),
    "config.json not UTF-8": (write("config.json", b"\xff\xfe{"), "config.json"),
    "config.json of 20 MB": (write("config.json", b" " * (20 << 20) + b"{}"), "config.json"),
    "config.json holds null": (write("config.json", b"null"), "config.json"),
    "config.json with a string count": (config_edit(lambda found: {**found, "steps": "6"}), "other options"),
}
RESUMED = {  # damage after which the run resumes to the uninterrupted run's result
    "log.jsonl garbage": write("log.jsonl", b"\x00garbage{\n[[[\n"),
    "log.jsonl truncated line": cut("log.jsonl", lambda size: size - 5),
    "log.jsonl empty": write("log.jsonl", b""),
    "log.jsonl deep": write("log.jsonl", DEEP),
    "log.jsonl missing": lambda folder: (folder / "log.jsonl").unlink(),
    "dead checkpoint temporary": write(".checkpoint.pt.tmp-4999999", b"half a checkpoint"),
    "dead config temporary": write(".config.json.tmp-4999998", b"{"),
}


def run_on_copy(source: Path, tmp_path: Path, damage: Callable[[Path], None], capsys) -> tuple[int, Path, str]:
    folder = tmp_path / "run"
    shutil.copytree(source, folder)
    damage(folder)
    capsys.readouterr()
    code = main(command(Path(json.loads((source / "config.json").read_text())["zoo"]), folder))
    return code, folder, capsys.readouterr().err


@pytest.mark.parametrize("name", list(DAMAGED))
def test_a_damaged_run_file_ends_in_one_line_naming_it(name: str, interrupted: Path, tmp_path: Path, capsys) -> None:
    damage, named = DAMAGED[name]
    code, _, err = run_on_copy(interrupted, tmp_path, damage, capsys)
    assert code in (1, 2)
    line = one_error_line(err, named)
    assert "delete" in line or "rerun" in line  # says what to do


def test_an_oversized_checkpoint_is_refused_before_it_is_read(interrupted: Path, tmp_path: Path, capsys) -> None:
    """A checkpoint far larger than the run's models can make is named without reading it into memory (here a sparse
    4 GiB file, which takes no disk)."""
    tracemalloc.start()
    try:
        code, _, err = run_on_copy(interrupted, tmp_path, lambda folder: os.truncate(folder / "checkpoint.pt", 4 << 30), capsys)
        peak = tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()
    assert code == 1
    one_error_line(err, "checkpoint.pt", "4,294,967,296 bytes, more than the", "delete")
    assert peak < 256 << 20, f"{peak:,} bytes allocated"


@pytest.mark.parametrize("name", list(RESUMED))
def test_a_damaged_log_or_a_dead_temporary_is_resumed_past(name: str, interrupted: Path, reference: Path, tmp_path: Path,
                                                            capsys) -> None:
    code, folder, err = run_on_copy(interrupted, tmp_path, RESUMED[name], capsys)
    assert code == 0, err
    assert log(folder) == log(reference)
    assert not [path.name for path in folder.iterdir() if ".tmp-" in path.name]


def test_a_live_writers_temporary_is_kept(interrupted: Path, tmp_path: Path, capsys) -> None:
    """Only temporaries of processes that are gone are removed (pid 1 is always alive)."""
    code, folder, err = run_on_copy(interrupted, tmp_path, write(".log.jsonl.tmp-1", b"x"), capsys)
    assert code == 0, err
    assert (folder / ".log.jsonl.tmp-1").read_bytes() == b"x"


@pytest.mark.parametrize("content", [b"[1, 2]", DEEP, b"\xff", b""])
def test_a_damaged_summary_of_a_finished_run_ends_in_one_line(content: bytes, reference: Path, tmp_path: Path, capsys) -> None:
    code, _, err = run_on_copy(reference, tmp_path, write("summary.json", content), capsys)
    assert code == 1
    one_error_line(err, "summary.json", "delete")


def test_at_least_thirty_kinds() -> None:
    assert len(DAMAGED) + len(RESUMED) + 1 + 4 >= 30
