"""Sharing one build between workers: a frozen chunk plan, claimed chunks with heartbeats, finished marks.

Any number of processes, on any machines that share the build folder, may work on one ``--out``.
The first writes the chunk plan into ``OUT/.build/plan.json`` once (:func:`freeze_plan`, an atomic
create-if-absent); every later process follows it, whatever its own ``--runs-per-batch``. A worker
claims a chunk by creating ``CHUNK/claim`` with ``O_EXCL`` (:func:`claim_chunk`), holding its host,
pid and a token; a thread touches the claim every :data:`HEARTBEAT_SECONDS` while the chunk trains,
and ``CHUNK/finished`` marks it done. A claim whose heartbeat is older than :func:`stale_seconds`,
or whose process is gone from this host, is stale: another worker takes it over (under the build
lock, so two never take over one claim) and resumes from the chunk's checkpoint. Chunks are
deterministic, so a worker that was only slow and finds its claim taken writes the same bytes.
"""

from __future__ import annotations

import json
import os
import socket
import threading
import time
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

from ..common.errors import DamagedZooError, ZooError
from ..common.files import atomic_write

PLAN_FILE = "plan.json"
CLAIM_FILE = "claim"
FINISHED_FILE = "finished"
HEARTBEAT_SECONDS = 20.0
"""How often a worker touches the claim of the chunk it trains."""
STALE_SECONDS = 300.0
"""A claim not touched for this long is stale (override with ``RNN_ZOOS_STALE_SECONDS``)."""


def stale_seconds() -> float:
    """Seconds without a heartbeat after which a claim is stale: :data:`STALE_SECONDS` or ``RNN_ZOOS_STALE_SECONDS``."""
    value = os.environ.get("RNN_ZOOS_STALE_SECONDS")
    try:
        return float(value) if value else STALE_SECONDS
    except ValueError:
        raise ZooError(f"RNN_ZOOS_STALE_SECONDS is {value!r}; set it to a number of seconds") from None


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


def freeze_plan(work: Path, proposed: list[Chunk], batch_runs: int) -> tuple[list[Chunk], int]:
    """The build's chunk plan: ``proposed`` written to ``work/plan.json`` if no process wrote one yet, else the one written
    (whose chunk size ``K`` wins over ``batch_runs``); returns the plan and its ``K``."""
    path = work / PLAN_FILE
    if not path.exists():
        temporary = work / f".{PLAN_FILE}.{uuid.uuid4().hex}"
        temporary.write_text(json.dumps({"runs_per_batch": batch_runs, "chunks": [[chunk.first, chunk.stop] for chunk in proposed]}))
        try:
            os.link(temporary, path)  # create-if-absent with the whole content: only the first process's plan lands
        except FileExistsError:
            pass
        finally:
            temporary.unlink()
    try:
        record = json.loads(path.read_text())
        plan = [Chunk(int(first), int(stop)) for first, stop in record["chunks"]]
        return plan, int(record["runs_per_batch"])
    except (OSError, ValueError, KeyError, TypeError):
        raise DamagedZooError(f"{path} (the build's chunk plan) is unreadable; delete {work.parent} and build again") from None


def is_finished(folder: Path) -> bool:
    """Whether the chunk in ``folder`` is finished."""
    return (folder / FINISHED_FILE).exists()


@dataclass(frozen=True)
class ClaimRecord:
    """Who holds a claim: host, pid and a token unique to the claim."""

    host: str
    pid: int
    token: str

    @staticmethod
    def mine() -> ClaimRecord:
        return ClaimRecord(socket.gethostname(), os.getpid(), uuid.uuid4().hex)

    def to_json(self) -> str:
        return json.dumps({"host": self.host, "pid": self.pid, "token": self.token})

    @staticmethod
    def read(path: Path) -> ClaimRecord | None:
        """The claim in ``path``; None if there is none (or it is being written: an empty or partial file)."""
        try:
            record = json.loads(path.read_text())
            return ClaimRecord(str(record["host"]), int(record["pid"]), str(record["token"]))
        except (OSError, ValueError, KeyError, TypeError):
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
    except PermissionError:
        return False
    return False


def claim_state(folder: Path) -> tuple[ClaimRecord | None, bool]:
    """The claim of the chunk in ``folder`` and whether it is stale (no claim: ``(None, True)``)."""
    path = folder / CLAIM_FILE
    try:
        age = time.time() - path.stat().st_mtime
    except FileNotFoundError:
        return None, True
    record = ClaimRecord.read(path)
    if record is None:  # being written right now, or damaged: stale only once old
        return None, age > stale_seconds()
    return record, age > stale_seconds() or _process_gone(record)


class Claim:
    """This process's claim of one chunk: held while the chunk trains, with a heartbeat thread touching it."""

    def __init__(self, folder: Path, record: ClaimRecord) -> None:
        self.folder, self.record = folder, record
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._beat, name=f"heartbeat {folder.name}", daemon=True)

    @property
    def path(self) -> Path:
        return self.folder / CLAIM_FILE

    def held(self) -> bool:
        """Whether the claim file still holds this claim (another worker may have taken it over as stale)."""
        found = ClaimRecord.read(self.path)
        return found is not None and found.token == self.record.token

    def _beat(self) -> None:
        while not self._stop.wait(HEARTBEAT_SECONDS):
            if self.held():
                try:
                    os.utime(self.path)
                except FileNotFoundError:
                    return

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

    A stale claim is replaced only when ``take_over`` (the caller holds the build lock, so that two
    workers never take over the same claim).
    """
    try:
        folder.mkdir(exist_ok=True)  # never the work folder itself: once the zoo is written it is gone, and stays gone
    except FileNotFoundError:
        return None
    if is_finished(folder):
        return None
    record = ClaimRecord.mine()
    try:
        descriptor = os.open(folder / CLAIM_FILE, os.O_CREAT | os.O_EXCL | os.O_WRONLY, 0o644)
    except FileExistsError:
        if not take_over:
            return None
        _, stale = claim_state(folder)
        if not stale or is_finished(folder):
            return None
        with atomic_write(folder / CLAIM_FILE) as temporary:
            temporary.write_text(record.to_json())
        return Claim(folder, record)
    with os.fdopen(descriptor, "w") as handle:
        handle.write(record.to_json())
    return Claim(folder, record)


def release_claim(claim: Claim) -> None:
    """Remove this process's claim file if it still holds it (the chunk is finished or was given up)."""
    if claim.held():
        claim.path.unlink(missing_ok=True)
