"""Beyond one process: a frozen plan, claimed chunks, one finalisation; several workers, SLURM-style slots and Ray give
the zoo one process gives, byte for byte, also when a worker is killed."""

from __future__ import annotations

import json
import os
import re
import shutil
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path

import pytest

from rnn_zoos.builder import claims
from rnn_zoos.builder.claims import CLAIM_FILE, Chunk, ClaimLost, ClaimRecord, claim_chunk, claim_state, freeze_plan, new_plan
from rnn_zoos.hub.verify import verify_zoo

from conftest import ROOT, assert_same_zoo, build_formal, cli_options, folder_state, logged_output, start_logged
from conftest import finish_logged as finish

OPTIONS = {"runs": 6, "steps": 40, "seed": 11, "runs_per_batch": 2}
"""Three chunks of two runs."""


def command(out: Path, *extra: str, options: dict = OPTIONS) -> list[str]:
    return [sys.executable, "-m", "rnn_zoos.cli", "build", "formal-lang", "--out", str(out), *cli_options(options), *extra]


def start(out: Path, *extra: str, env: dict | None = None) -> subprocess.Popen:
    """A builder process; one thread each, as workers sharing a machine's cores should run (two-thread processes on two
    cores spin against each other)."""
    return start_logged(command(out, *extra), env={"OMP_NUM_THREADS": "1", **(env or {})})


def same_zoo_and_checksums(reference: Path, other: Path) -> None:
    assert_same_zoo(reference, other)
    for name in json.loads((reference / "meta" / "info.json").read_text())["checksums"]:
        assert (reference / name).read_bytes() == (other / name).read_bytes(), name


@pytest.fixture(scope="module")
def reference(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The zoo of one process."""
    return build_formal(tmp_path_factory.mktemp("one") / "zoo", **OPTIONS)


def test_the_first_plan_is_frozen_and_followed(tmp_path: Path) -> None:
    first = new_plan(6, 2)
    assert first == [Chunk(0, 2), Chunk(2, 4), Chunk(4, 6)]
    assert freeze_plan(tmp_path, first, 2, 6) == (first, 2)
    assert freeze_plan(tmp_path, new_plan(6, 4), 4, 6) == (first, 2)  # a later process with another K follows the plan
    assert new_plan(7, 3, [Chunk(0, 2)]) == [Chunk(0, 2), Chunk(2, 5), Chunk(5, 7)]  # started chunks are kept


def test_a_chunk_is_claimed_once_and_a_stale_claim_is_taken_over(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    folder = tmp_path / "runs-00000-00001"
    mine = claim_chunk(folder, take_over=False)
    assert mine is not None and mine.held()
    assert claim_chunk(folder, take_over=False) is None and claim_chunk(folder, take_over=True) is None  # alive: not stale
    record, stale = claim_state(folder)
    assert record == mine.record and not stale
    foreign = ClaimRecord("another-host", 1, "t")  # a worker elsewhere, silent for longer than the stale time
    (folder / CLAIM_FILE).write_text(foreign.to_json())
    monkeypatch.setenv("RNN_ZOOS_HEARTBEAT_TIMEOUT", "60")
    assert claim_state(folder) == (foreign, False)
    os.utime(folder / CLAIM_FILE, (time.time() - 61, time.time() - 61))
    assert claim_state(folder) == (foreign, True) and not mine.held()
    assert claim_chunk(folder, take_over=False) is None
    taken = claim_chunk(folder, take_over=True)
    assert taken is not None and taken.held() and taken.record.pid == os.getpid()
    dead = subprocess.Popen([sys.executable, "-c", "pass"])
    dead.wait()
    (folder / CLAIM_FILE).write_text(ClaimRecord(socket.gethostname(), dead.pid, "d").to_json())
    assert claim_state(folder)[1]  # its process is gone from this host: stale at once
    (folder / "finished").touch()
    assert claim_chunk(tmp_path / "runs-00000-00001", take_over=True) is None  # finished chunks are never claimed


def test_two_builders_started_together_share_the_work(reference: Path, tmp_path: Path) -> None:
    out = tmp_path / "zoo"
    first, second = start(out), start(out)
    results = [finish(first), finish(second)]
    assert [code for code, _, _ in results] == [0, 0], [err for _, _, err in results]
    same_zoo_and_checksums(reference, out)
    assert sorted(path.name for path in out.iterdir()) == ["README.md", "assets", "data", "meta"]


def test_worker_slots_and_finalize(reference: Path, tmp_path: Path) -> None:
    out = tmp_path / "zoo"
    workers = [start(out, "--worker", "0/2"), start(out, "--worker", "1/2")]
    assert [finish(worker)[0] for worker in workers] == [0, 0]
    done = subprocess.run(command(out, "--finalize"), cwd=ROOT, capture_output=True, text=True, timeout=300)
    assert done.returncode == 0 and "already complete" in done.stdout
    same_zoo_and_checksums(reference, out)


def test_finalize_before_the_chunks_are_done_is_refused(tmp_path: Path) -> None:
    out = tmp_path / "zoo"
    done = subprocess.run(command(out, "--finalize"), cwd=ROOT, capture_output=True, text=True, timeout=300)
    assert done.returncode == 2 and done.stderr == f"error: --finalize: {out} holds no build to finish; run the workers (without --finalize) first\n"
    assert not out.exists()  # issue 23 item 14: nothing written into a new folder
    worker = start(out)
    wait_for(lambda: live_claim(out) is not None)
    worker.send_signal(signal.SIGKILL)
    worker.wait()
    done = subprocess.run(command(out, "--finalize"), cwd=ROOT, capture_output=True, text=True, timeout=300)
    assert done.returncode == 2 and done.stderr.startswith("error: --finalize: 3 of 3 chunks of") and "unclaimed" in done.stderr
    assert not (out / "meta").exists()


def wait_for(condition, timeout: float = 300) -> None:
    deadline = time.monotonic() + timeout
    while not condition():
        assert time.monotonic() < deadline, "timed out"
        time.sleep(0.05)


def live_claim(out: Path) -> tuple[Path, ClaimRecord] | None:
    """A claimed chunk that has written a snapshot part and is not finished, with its claim."""
    for folder in sorted((out / ".build").glob("runs-*")):
        record = ClaimRecord.read(folder / CLAIM_FILE)
        if record and any(folder.glob("step-*.parquet")) and not (folder / "finished").exists():
            return folder, record
    return None


def test_a_killed_worker_is_completed_by_rerunning_any_worker(reference: Path, tmp_path: Path) -> None:
    out = tmp_path / "zoo"
    worker = start(out, "--worker", "1/2")
    wait_for(lambda: live_claim(out) is not None)
    folder, record = live_claim(out)
    assert record.pid == worker.pid
    worker.send_signal(signal.SIGKILL)
    worker.wait()
    assert (folder / CLAIM_FILE).is_file() and not (folder / "finished").exists()  # a claim of a dead worker stays
    code, stdout, stderr = finish(start(out, "--worker", "0/2"))  # any worker takes it over and resumes it
    assert code == 0, stderr
    same_zoo_and_checksums(reference, out)


def test_a_second_build_with_other_options_is_refused_and_changes_nothing(tmp_path: Path) -> None:
    out = tmp_path / "zoo"
    worker = start(out)
    wait_for(lambda: live_claim(out) is not None)
    worker.send_signal(signal.SIGKILL)  # an unfinished build, as another worker (or a crash) leaves it
    worker.wait()
    before = {path: (path.stat().st_size, path.stat().st_mtime_ns) for path in out.rglob("*")}
    other = subprocess.run(command(out, options={**OPTIONS, "seed": 12}), cwd=ROOT, capture_output=True, text=True, timeout=300)
    assert other.returncode == 2 and other.stderr.count("\n") == 1 and "(seed=11 there vs 12 now)" in other.stderr
    assert {path: (path.stat().st_size, path.stat().st_mtime_ns) for path in out.rglob("*")} == before


def test_ray_builds_the_same_zoo_and_retries_a_killed_task(reference: Path, tmp_path: Path) -> None:
    out = tmp_path / "zoo"
    build = start(out, "--ray", env={"RNN_ZOOS_RAY_CPUS": "2"})
    wait_for(lambda: live_claim(out) is not None)
    folder, record = live_claim(out)
    assert record.pid != build.pid  # a Ray worker process trains it
    os.kill(record.pid, signal.SIGKILL)
    code, stdout, stderr = finish(build)
    assert code == 0, stderr
    same_zoo_and_checksums(reference, out)


SHORT_TIMEOUT = {"RNN_ZOOS_HEARTBEAT_TIMEOUT": "2"}
"""A heartbeat timeout of 2 s: a paused worker's claim goes stale quickly (heartbeats every 0.5 s)."""
TAKEN_OVER = re.compile(r"chunk (runs-\d{5}-\d{5}) was taken over by (\S+:\d+|another worker) after (\d+) s without a heartbeat; nothing written")


def test_a_write_after_a_takeover_is_refused_and_names_the_new_holder(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    folder = tmp_path / "runs-00000-00001"
    mine = claim_chunk(folder, take_over=False)
    assert mine is not None and mine.record.epoch == 1
    with mine.write(folder / "checkpoint.pt") as temporary:
        temporary.write_bytes(b"first")
    monkeypatch.setenv("RNN_ZOOS_HEARTBEAT_TIMEOUT", "60")
    os.utime(folder / CLAIM_FILE, (time.time() - 61, time.time() - 61))  # silent for 61 s, as a paused worker
    mine.record = ClaimRecord("another-host", 1, mine.record.token)  # its process looks alive: only the silence makes it stale
    (folder / CLAIM_FILE).write_text(mine.record.to_json())
    os.utime(folder / CLAIM_FILE, (time.time() - 61, time.time() - 61))
    taker = claim_chunk(folder, take_over=True)
    assert taker is not None and taker.record.epoch == 2 and taker.record.silent_seconds >= 61
    with pytest.raises(ClaimLost, match=rf"^chunk runs-00000-00001 was taken over by {re.escape(taker.record.host)}:{os.getpid()} "
                                        r"after 6\d s without a heartbeat; nothing written$"):
        with mine.write(folder / "checkpoint.pt") as temporary:
            temporary.write_bytes(b"stale")
    with pytest.raises(ClaimLost):
        mine.remove(folder / "checkpoint.pt")
    assert (folder / "checkpoint.pt").read_bytes() == b"first"
    assert sorted(path.name for path in folder.iterdir()) == ["checkpoint.pt", CLAIM_FILE, "fence"]  # no temporary left


def test_a_write_whose_folder_vanished_while_paused_is_a_lost_claim(tmp_path: Path) -> None:
    """Paused after writing its temporary, a worker finds on waking that the finished zoo removed the chunk's folder (its
    temporary included): it stops with the lost-claim line, not a FileNotFoundError, and re-creates nothing."""
    folder = tmp_path / ".build" / "runs-00000-00001"
    folder.mkdir(parents=True)
    mine = claim_chunk(folder, take_over=False)
    assert mine is not None
    with pytest.raises(ClaimLost, match=r"^chunk runs-00000-00001 was taken over by another worker after \d+ s without a heartbeat; nothing written$"):
        with mine.write(folder / "checkpoint.pt") as temporary, open(temporary, "wb") as handle:
            handle.write(b"late")
            shutil.rmtree(tmp_path / ".build")  # what the finishing worker does while this one is stopped
    assert list(tmp_path.iterdir()) == []


def test_a_claim_whose_folder_vanishes_while_it_is_made_is_no_claim(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """Paused between creating the chunk's folder and writing its claim, a worker finds the work folder removed (the zoo
    was written meanwhile): it claims nothing and re-creates nothing, without an error."""
    work = tmp_path / ".build"
    work.mkdir()
    real = claims.temporary_path

    def finished_meanwhile(path: Path) -> Path:
        shutil.rmtree(work)  # what the finishing worker does while this one is stopped
        return real(path)

    monkeypatch.setattr(claims, "temporary_path", finished_meanwhile)
    assert claim_chunk(work / "runs-00000-00001", take_over=False) is None
    assert list(tmp_path.iterdir()) == []


def test_a_paused_worker_whose_chunk_was_taken_over_writes_nothing(reference: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """Issue 19: SIGSTOP a worker holding a claim, let another take the chunk over and finish the zoo, SIGCONT the first."""
    monkeypatch.setenv("RNN_ZOOS_HEARTBEAT_TIMEOUT", SHORT_TIMEOUT["RNN_ZOOS_HEARTBEAT_TIMEOUT"])
    out = tmp_path / "zoo"
    paused = start(out, env=SHORT_TIMEOUT)
    wait_for(lambda: live_claim(out) is not None)
    folder, record = live_claim(out)
    assert record.pid == paused.pid
    paused.send_signal(signal.SIGSTOP)
    try:
        wait_for(lambda: claim_state(folder)[1])  # silent past the timeout
        code, stdout, stderr = finish(start(out, env=SHORT_TIMEOUT))
        assert code == 0, stderr
        same_zoo_and_checksums(reference, out)
        before = folder_state(out)
    finally:
        paused.send_signal(signal.SIGCONT)
    code, stdout, stderr = finish(paused)
    lines = [line for line in stderr.splitlines() if TAKEN_OVER.search(line)]
    assert code == 0 and len(lines) == 1 and TAKEN_OVER.search(lines[0])[1] == folder.name, stderr
    assert "Traceback" not in stderr and stdout == ""
    assert folder_state(out) == before  # no .build re-created, no file of the finished zoo touched
    assert verify_zoo(out) == []
    same_zoo_and_checksums(reference, out)


def test_a_paused_finaliser_leaves_one_complete_zoo(reference: Path, tmp_path: Path) -> None:
    """A builder stopped inside its finalisation (holding the build lock) and one stopped before it starts: the zoo is
    written once, and the late finaliser finds it complete and changes nothing."""
    out = tmp_path / "zoo"
    first = start(out, env=SHORT_TIMEOUT)
    wait_for(lambda: (out / "data").is_dir())  # finalising: the shards are being written
    first.send_signal(signal.SIGSTOP)
    second = start(out, env=SHORT_TIMEOUT)
    late = start(out, "--finalize", env=SHORT_TIMEOUT)
    late.send_signal(signal.SIGSTOP)
    time.sleep(3)  # past the heartbeat timeout: the finaliser's lock, not a heartbeat, keeps the others out
    first.send_signal(signal.SIGCONT)
    results = [finish(first), finish(second)]
    assert [code for code, _, _ in results] == [0, 0], [err for _, _, err in results]
    same_zoo_and_checksums(reference, out)
    before = folder_state(out)
    late.send_signal(signal.SIGCONT)
    code, stdout, stderr = finish(late)
    assert code == 0 and "already complete" in stdout, stderr
    assert folder_state(out) == before and verify_zoo(out) == []
    same_zoo_and_checksums(reference, out)


def test_a_builder_waits_for_chunks_held_by_others_and_no_wait_exits_3(tmp_path: Path) -> None:
    """Issue 23 item 5: while every chunk left is held by a live worker, a second builder waits (one line saying for what)
    and then finds the zoo complete (exit 0); with --no-wait it exits at once with status 3."""
    out = tmp_path / "zoo"
    one_chunk = {**OPTIONS, "runs": 2}
    holder = start_logged(command(out, options=one_chunk), env={"OMP_NUM_THREADS": "1"})
    wait_for(lambda: live_claim(out) is not None)
    holder.send_signal(signal.SIGSTOP)  # holds its claim (the heartbeat timeout is 5 minutes) until it continues
    try:
        impatient = subprocess.run(command(out, "--no-wait", options=one_chunk), cwd=ROOT, capture_output=True, text=True, timeout=300)
        assert impatient.returncode == 3, impatient.stderr
        assert f"{out}: 1 of 1 chunks are being trained by other workers (pid {holder.pid} on {socket.gethostname()}: runs-00000-00001)" \
            in impatient.stderr and not (out / "meta").exists()
        waiter = start_logged(command(out, options=one_chunk))
        wait_for(lambda: "waiting for 1 of 1 chunks being trained by other workers" in logged_output(waiter)[1])
        holder.send_signal(signal.SIGCONT)
        code, stdout, stderr = finish(waiter)
        lines = [line for line in stderr.splitlines() if "waiting for" in line]
        assert code == 0 and len(lines) == 1 and f"{out}: formal-lang zoo with" in stdout, stderr
    finally:
        holder.send_signal(signal.SIGCONT)
        code = finish(holder)[0]
    assert code == 0 and verify_zoo(out) == []


def test_a_garbage_claim_is_damaged_not_held(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """Issue 23 item 5: a claim file that cannot be read, however fresh, is taken over, and the build completes."""
    import rnn_zoos.builder.chunk_trainer
    from rnn_zoos.builder.command import main as build_main

    options = {**OPTIONS, "runs": 2, "steps": 5}
    monkeypatch.setattr(rnn_zoos.builder.chunk_trainer.ChunkTrainer, "run", lambda self, progress: (_ for _ in ()).throw(KeyboardInterrupt()))
    assert build_main("formal-lang", ["--out", str(out := tmp_path / "zoo"), *cli_options(options)]) == 130  # a plan, no work
    monkeypatch.undo()
    (out / ".build" / "runs-00000-00001" / CLAIM_FILE).write_bytes(b"\x00garbage{")
    assert claim_state(out / ".build" / "runs-00000-00001") == (None, True)
    assert build_main("formal-lang", ["--out", str(out), *cli_options(options)]) == 0
    assert verify_zoo(out) == []
