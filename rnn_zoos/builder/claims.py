"""Sharing one build between workers: a frozen chunk plan, claimed chunks with heartbeats and fencing, finished marks.

Any number of processes, on any machines that share the build folder, may work on one ``--out``.
The first writes the chunk plan into ``OUT/.build/plan.json`` once (:func:`freeze_plan`, an atomic
create-if-absent); every later process follows it, whatever its own ``--runs-per-batch``. A worker
claims a chunk by creating ``CHUNK/claim`` complete and at once (:func:`claim_chunk`, a hard link
that fails if a claim exists), holding its host, pid, a unique token and an epoch; a thread touches
the claim every :func:`heartbeat_interval` while the chunk trains, and ``CHUNK/finished`` marks it
done. A claim whose heartbeat is older than :func:`heartbeat_timeout`, whose process is gone from
this host, or that cannot be read, is stale: another worker takes it over (under the build lock, so
two never take over one claim) with the next epoch, and resumes from the chunk's checkpoint.

Fencing: every write of a worker into its chunk (checkpoints, snapshot parts, the finished mark) is
made under a temporary name and renamed by :meth:`Claim.commit` only while the claim file still
holds the worker's token, checked and renamed under the OS lock of ``CHUNK/fence`` that a takeover
takes too. A worker that was paused (a suspended job, a sleeping laptop) past the heartbeat timeout
and finds its claim taken over raises :class:`ClaimLost` before writing anything more.
"""

from __future__ import annotations

import fcntl
import json
import math
import os
import socket
import threading
import time
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

from ..common.errors import DamagedZooError, ZooError, short
from ..common.files import sync_file, sync_folder, temporary_path

PLAN_FILE = "plan.json"
CLAIM_FILE = "claim"
FINISHED_FILE = "finished"
FENCE_FILE = "fence"
"""Locked (``flock``) while a claim is checked and a write committed, or a claim taken over."""
HEARTBEAT_SECONDS = 20.0
"""How often a worker touches the claim of the chunk it trains (more often under a short :func:`heartbeat_timeout`)."""
HEARTBEAT_TIMEOUT = 300.0
"""A claim not touched for this long is stale (override with ``RNN_ZOOS_HEARTBEAT_TIMEOUT``)."""
TIMEOUT_VARIABLE = "RNN_ZOOS_HEARTBEAT_TIMEOUT"


def heartbeat_timeout() -> float:
    """Seconds without a heartbeat after which a claim is stale: :data:`HEARTBEAT_TIMEOUT` or ``RNN_ZOOS_HEARTBEAT_TIMEOUT``
    (tests set a few seconds)."""
    value = os.environ.get(TIMEOUT_VARIABLE)
    try:
        seconds = float(value) if value else HEARTBEAT_TIMEOUT
    except ValueError:
        seconds = math.nan
    if not seconds > 0 or math.isinf(seconds):
        raise ZooError(f"{TIMEOUT_VARIABLE} is {value!r}; set it to a positive number of seconds (or unset it: {HEARTBEAT_TIMEOUT:g})")
    return seconds


def heartbeat_interval() -> float:
    """Seconds between two heartbeats: :data:`HEARTBEAT_SECONDS`, or a quarter of a shorter :func:`heartbeat_timeout`."""
    return min(HEARTBEAT_SECONDS, heartbeat_timeout() / 4)


@dataclass(frozen=True, order=True)
class Chunk:
    """Runs ``first`` to ``stop - 1``, trained together as one batched model."""

    first: int
    stop: int

    @property
    def name(self) -> str:
        return f"runs-{self.first:05d}-{self.stop - 1:05d}"

    @property
    def runs(self) -> int:
        return self.stop - self.first


def new_plan(runs: int, batch_runs: int, started: list[Chunk] = ()) -> list[Chunk]:
    """Chunks already started (kept as they are) followed by new chunks of ``batch_runs`` for the remaining runs."""
    covered = {run for chunk in started for run in range(chunk.first, chunk.stop)}
    plan = list(started)
    first = 0
    while first < runs:
        if first in covered:
            first += 1
            continue
        stop = first
        while stop < runs and stop not in covered and stop - first < batch_runs:
            stop += 1
        plan.append(Chunk(first, stop))
        first = stop
    return sorted(plan)


def freeze_plan(work: Path, proposed: list[Chunk], batch_runs: int, runs: int) -> tuple[list[Chunk], int]:
    """The build's chunk plan: ``proposed`` written to ``work/plan.json`` if no process wrote one yet, else the one written
    (whose chunk size ``K`` wins over ``batch_runs``); returns the plan and its ``K``. A plan that cannot be read, or that
    does not cover runs 0 to ``runs - 1`` in order, each once, is refused (:class:`DamagedZooError`)."""
    path = work / PLAN_FILE
    if not path.exists():
        temporary = temporary_path(path)
        temporary.write_text(json.dumps({"runs_per_batch": batch_runs, "chunks": [[chunk.first, chunk.stop] for chunk in proposed]}))
        try:
            os.link(temporary, path)  # create-if-absent with the whole content: only the first process's plan lands
        except FileExistsError:
            pass
        finally:
            temporary.unlink()
    advice = "delete it and run the same command (the chunks already trained are kept)"
    try:
        record = json.loads(path.read_text())
        plan = [Chunk(int(first), int(stop)) for first, stop in record["chunks"]]
        size = int(record["runs_per_batch"])
    except (OSError, ValueError, KeyError, TypeError, AttributeError, RecursionError):
        raise DamagedZooError(f"{path} (the build's chunk plan) is unreadable; {advice}") from None
    covered = [chunk.first for chunk in plan] == [0, *(chunk.stop for chunk in plan[:-1])] and all(c.first < c.stop for c in plan)
    if not covered or not plan or plan[-1].stop != runs or size < 1:
        chunks = short([[chunk.first, chunk.stop - 1] for chunk in plan], 120)
        raise DamagedZooError(f"{path} (the build's chunk plan) does not cover runs 0 to {runs - 1} (--runs {runs}) in order, "
                              f"each once, in chunks of at least one run: it holds the chunks {chunks}; {advice}")
    return plan, size


def is_finished(folder: Path) -> bool:
    """Whether the chunk in ``folder`` is finished."""
    return (folder / FINISHED_FILE).exists()


@dataclass(frozen=True)
class ClaimRecord:
    """Who holds a claim: host, pid, a token unique to the claim, its epoch (1, then one more at each takeover) and, for a
    claim taken over, how long the claim it replaced had gone without a heartbeat."""

    host: str
    pid: int
    token: str
    epoch: int = 1
    silent_seconds: float | None = None

    @staticmethod
    def mine(epoch: int = 1, silent_seconds: float | None = None) -> ClaimRecord:
        return ClaimRecord(socket.gethostname(), os.getpid(), uuid.uuid4().hex, epoch, silent_seconds)

    def to_json(self) -> str:
        return json.dumps({"host": self.host, "pid": self.pid, "token": self.token, "epoch": self.epoch,
                           "silent_seconds": self.silent_seconds})

    @staticmethod
    def read(path: Path) -> ClaimRecord | None:
        """The claim in ``path``; None if there is none or it cannot be read (damaged)."""
        try:
            record = json.loads(path.read_text())
            silent = record.get("silent_seconds")
            return ClaimRecord(str(record["host"]), int(record["pid"]), str(record["token"]), int(record.get("epoch", 1)),
                               None if silent is None else float(silent))
        except (OSError, ValueError, KeyError, TypeError, AttributeError, RecursionError):
            return None

    def describe(self) -> str:
        return f"pid {self.pid} on {self.host}"


def _process_gone(record: ClaimRecord) -> bool:
    """Whether the claim's process is known to be gone: it ran on this host and no such process exists now."""
    if record.host != socket.gethostname():
        return False
    try:
        os.kill(record.pid, 0)
    except ProcessLookupError:
        return True
    except (PermissionError, OverflowError):
        return False
    return False


def claim_state(folder: Path) -> tuple[ClaimRecord | None, bool]:
    """The claim of the chunk in ``folder`` and whether it is stale. No claim: ``(None, True)``; a claim file that cannot be
    read is damaged (claims are written complete at once): ``(None, True)`` too."""
    path = folder / CLAIM_FILE
    try:
        age = time.time() - path.stat().st_mtime
    except FileNotFoundError:
        return None, True
    record = ClaimRecord.read(path)
    if record is None:
        return None, True
    return record, age > heartbeat_timeout() or _process_gone(record)


def has_damaged_claim(folder: Path) -> bool:
    """Whether the chunk in ``folder`` has a claim file that cannot be read."""
    return (folder / CLAIM_FILE).exists() and ClaimRecord.read(folder / CLAIM_FILE) is None


class ClaimLost(Exception):
    """This worker's claim was taken over (it went silent past the heartbeat timeout): it stops, writing nothing more."""


@contextmanager
def _fence(folder: Path, wait: bool = True) -> Iterator[bool]:
    """Hold the OS lock of ``folder/fence`` for the block; yields False (holding nothing) if the folder is gone or, without
    ``wait``, if another process holds the lock."""
    try:
        descriptor = os.open(folder / FENCE_FILE, os.O_RDWR | os.O_CREAT, 0o644)  # never creates the folder itself
    except FileNotFoundError:
        yield False
        return
    try:
        try:
            fcntl.flock(descriptor, fcntl.LOCK_EX | (0 if wait else fcntl.LOCK_NB))
        except BlockingIOError:
            yield False
            return
        yield True
    finally:
        os.close(descriptor)


class Claim:
    """This process's claim of one chunk: held while the chunk trains, with a heartbeat thread touching it, and the only way
    this process writes into the chunk (:meth:`commit`, :meth:`write`, :meth:`remove`)."""

    def __init__(self, folder: Path, record: ClaimRecord) -> None:
        self.folder, self.record = folder, record
        self.last_heartbeat = time.time()
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._beat, name=f"heartbeat {folder.name}", daemon=True)

    @property
    def path(self) -> Path:
        return self.folder / CLAIM_FILE

    def held(self) -> bool:
        """Whether the claim file still holds this claim (another worker may have taken it over as stale)."""
        found = ClaimRecord.read(self.path)
        return found is not None and found.token == self.record.token

    def check(self) -> None:
        """Raise :class:`ClaimLost` unless the claim is still this process's."""
        if not self.held():
            raise ClaimLost(self._lost_message())

    def _lost_message(self) -> str:
        """What happened to the claim, in one line: who took it over, after how long without a heartbeat."""
        taker = ClaimRecord.read(self.path) or ClaimRecord.read(self.folder / FINISHED_FILE)
        silent = taker.silent_seconds if taker is not None and taker.silent_seconds is not None else time.time() - self.last_heartbeat
        who = f"{taker.host}:{taker.pid}" if taker is not None else "another worker"
        return f"chunk {self.folder.name} was taken over by {who} after {silent:.0f} s without a heartbeat; nothing written"

    def commit(self, temporary: Path, path: Path) -> None:
        """Rename the complete file ``temporary`` to ``path`` if the claim still holds (checked and renamed under the chunk's
        fence); else remove it and raise :class:`ClaimLost`. The file is flushed to the disk before the rename and the folder
        after it, as :func:`rnn_zoos.common.files.atomic_write` does. A temporary that vanished while this process was paused
        (the chunk folder removed by the worker that took it over and finished the zoo) is a lost claim, not an error."""
        try:
            sync_file(temporary)
        except FileNotFoundError:
            if self.held():
                raise
            raise ClaimLost(self._lost_message()) from None
        with _fence(self.folder) as fenced:
            if fenced and self.held():
                os.replace(temporary, path)
                sync_folder(path.parent)
                return
        temporary.unlink(missing_ok=True)
        raise ClaimLost(self._lost_message())

    @contextmanager
    def write(self, path: Path) -> Iterator[Path]:
        """Yield a temporary path for ``path`` (:func:`rnn_zoos.common.files.temporary_path`), then :meth:`commit` it. The claim is
        checked before, so a worker that lost its claim writes nothing; if writing fails because the claim was lost
        meanwhile (its folder removed), :class:`ClaimLost` is raised instead of the error."""
        self.check()
        temporary = temporary_path(path)
        try:
            try:
                yield temporary
            except Exception:
                self.check()
                raise
            self.commit(temporary, path)
        finally:
            temporary.unlink(missing_ok=True)

    def remove(self, path: Path) -> None:
        """Delete ``path`` from the chunk if the claim still holds; else raise :class:`ClaimLost`."""
        with _fence(self.folder) as fenced:
            if fenced and self.held():
                path.unlink(missing_ok=True)
                return
        raise ClaimLost(self._lost_message())

    def _beat(self) -> None:
        while not self._stop.wait(heartbeat_interval()):
            with _fence(self.folder) as fenced:
                if not fenced or not self.held():
                    return
                os.utime(self.path)
                self.last_heartbeat = time.time()

    @contextmanager
    def holding(self) -> Iterator[Claim]:
        """Keep the claim alive (heartbeat) for the duration of the block."""
        self._thread.start()
        try:
            yield self
        finally:
            self._stop.set()
            self._thread.join()


def claim_chunk(folder: Path, take_over: bool) -> Claim | None:
    """Claim the chunk in ``folder`` for this process; None if it is finished or another live worker holds it.

    A stale claim is replaced, with the next epoch, only when ``take_over`` (the caller holds the build
    lock, so that two workers never take over the same claim), and only while its holder is not
    committing a write (the chunk's fence is free).
    """
    try:
        folder.mkdir(exist_ok=True)  # never the work folder itself: once the zoo is written it is gone, and stays gone
    except FileNotFoundError:
        return None
    if is_finished(folder):
        return None
    record = ClaimRecord.mine()
    if _create(folder / CLAIM_FILE, record):
        return Claim(folder, record)
    if not take_over:
        return None
    with _fence(folder, wait=False) as fenced:
        previous, stale = claim_state(folder)
        if not fenced or not stale or is_finished(folder):
            return None
        try:
            silent = time.time() - (folder / CLAIM_FILE).stat().st_mtime
        except FileNotFoundError:
            silent = None
        record = ClaimRecord.mine(1 + (previous.epoch if previous is not None else 0), silent)
        temporary = temporary_path(folder / CLAIM_FILE)
        temporary.write_text(record.to_json())
        os.replace(temporary, folder / CLAIM_FILE)
    return Claim(folder, record)


def _create(path: Path, record: ClaimRecord) -> bool:
    """Create the claim file ``path`` holding ``record``, complete at once; False if a claim file exists or its folder is
    gone (the zoo was written and its work folder removed while this process was paused)."""
    temporary = temporary_path(path)
    try:
        temporary.write_text(record.to_json())
        os.link(temporary, path)
        return True
    except (FileExistsError, FileNotFoundError):
        return False
    finally:
        temporary.unlink(missing_ok=True)


def release_claim(claim: Claim) -> None:
    """Remove this process's claim file if it still holds it (the chunk is finished or was given up)."""
    with _fence(claim.folder) as fenced:
        if fenced and claim.held():
            claim.path.unlink(missing_ok=True)
