"""The folder of a pretraining run (``rnn-zoos pretrain --out RUN``): one process at a time, and its files read as
untrusted input.

A run holds the OS lock of ``RUN/.pretrain.lock`` (:func:`run_lock`) from before it reads the folder
until it ends, so a second ``rnn-zoos pretrain`` into the same folder is refused in one line; under
the lock, the temporary files of killed runs are removed (:func:`remove_dead_temporaries`).
``config.json``, ``summary.json`` and ``checkpoint.pt`` are checked before use: size, nesting and
types, as ``meta/info.json`` is; a damaged one ends in one line naming it and saying what to do.
"""

from __future__ import annotations

import contextlib
import hashlib
import io
import json
import shutil
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from rnn_zoos.common.errors import DamagedZooError, ZooError, describe_difference, short
from rnn_zoos.common.files import TEMPORARY_NAME, atomic_write, disk_full_errors, exclusive_lock, sync_folder, sync_tree, writer_gone
from rnn_zoos.common.results import check_results_folder

LOCK_FILE = ".pretrain.lock"
"""Locked by the one ``rnn-zoos pretrain`` at work in a run folder."""
MAX_RECORD_BYTES = 16 << 20
"""The largest ``config.json`` or ``summary.json`` read: a run's own records are a few kilobytes."""
CHECKSUM_MARK = b"rnn-zoos checkpoint sha256:"
"""What follows a checkpoint's torch bytes, before their SHA-256 (:func:`write_checkpoint`)."""
TRAILER = len(CHECKSUM_MARK) + 32
SCALARS = (str, int, float, bool, type(None))
"""The types an option of ``config.json`` may hold."""


@contextlib.contextmanager
def run_lock(out: Path) -> Iterator[None]:
    """Be the one ``rnn-zoos pretrain`` writing into ``out`` (created if needed) for the duration of the block; another is
    refused with :class:`ZooError`. The lock file is removed on leaving."""
    lock = out / LOCK_FILE

    def refuse() -> None:
        raise ZooError(f"--out {out} is being written by another rnn-zoos pretrain right now; wait for it to finish "
                       "(then run the same command to find it complete), or choose another --out")

    with exclusive_lock(lock, on_busy=refuse):
        try:
            yield
        finally:
            lock.unlink(missing_ok=True)


def remove_dead_temporaries(out: Path) -> list[Path]:
    """Delete the temporary files (:func:`rnn_zoos.common.files.temporary_path`) in ``out`` whose writing process is gone; returns them."""
    removed = []
    for path in out.glob(".*.tmp-*"):
        if TEMPORARY_NAME.fullmatch(path.name) and path.is_file() and writer_gone(path):
            path.unlink(missing_ok=True)
            removed.append(path)
    return removed


def read_record(path: Path, out: Path) -> dict[str, Any]:
    """The JSON object in ``path`` (a run's ``config.json`` or ``summary.json``), checked before it is parsed (size) and
    after (an object, not too deep): :class:`DamagedZooError` naming the file and what to do otherwise."""
    again = f"delete the folder {out} to start the run again"
    try:
        size = path.stat().st_size
        if size > MAX_RECORD_BYTES:
            raise DamagedZooError(f"{path} has {size:,} bytes, more than the {MAX_RECORD_BYTES:,} a run's record may have; {again}")
        found = json.loads(path.read_bytes())
    except (OSError, ValueError, RecursionError) as error:
        reason = "is nested too deeply" if isinstance(error, RecursionError) else f"is not readable JSON ({short(str(error))})"
        raise DamagedZooError(f"{path} {reason}; {again}") from None
    if not isinstance(found, dict):
        raise DamagedZooError(f"{path} holds a JSON {type(found).__name__}, not an object; {again}")
    return found


def read_config(out: Path) -> dict[str, Any]:
    """The options in ``out/config.json``: an object of option -> a string, number, boolean or null."""
    path = out / "config.json"
    found = read_record(path, out)
    for key, value in found.items():
        if not isinstance(value, SCALARS):
            raise DamagedZooError(f"{path}: option {short(key)} holds a {type(value).__name__}, not a value an option can have; "
                                  f"delete the folder {out} to start the run again")
    return found


def finished_summary(out: Path, options: dict[str, Any]) -> dict[str, Any] | None:
    """The summary of the finished run in ``out``, or None if ``out`` is new, empty or holds an unfinished run with
    ``options``; :class:`ZooError` if it holds anything else. The run's folder is itself, so ``out`` (``p4`` or ``./p4``)
    is not compared; the other options are."""
    if not check_results_folder(out, "pretrain", resumes=True):
        return None
    if not (out / "config.json").is_file():
        if all(path.name == LOCK_FILE or TEMPORARY_NAME.fullmatch(path.name) for path in out.iterdir()):
            return None  # a run killed before it wrote anything
        raise ZooError(f"--out {out} holds an unfinished pretraining run without its config.json; delete the folder to start "
                       "again")
    found = {key: value for key, value in read_config(out).items() if key != "out"}
    wanted = {key: value for key, value in options.items() if key != "out"}
    if found != wanted:
        raise ZooError(f"--out {out} holds a run with other options ({describe_difference(found, wanted)}); "
                       "rerun with its options or choose another --out")
    summary = out / "summary.json"
    return read_record(summary, out) if summary.is_file() else None


def write_checkpoint(state: dict[str, Any], path: Path) -> None:
    """Save ``state`` as ``path`` atomically, followed by :data:`CHECKSUM_MARK` and the SHA-256 of what precedes it, so
    that a damaged checkpoint is found as such (torch itself loads many changed bytes without noticing)."""
    import torch

    buffer = io.BytesIO()
    torch.save(state, buffer)
    data = buffer.getvalue()
    with atomic_write(path) as temporary:
        temporary.write_bytes(data + CHECKSUM_MARK + hashlib.sha256(data).digest())


def read_checkpoint(path: Path, device: Any, max_bytes: int) -> dict[str, Any]:
    """The state saved in ``path`` by :func:`write_checkpoint`: :class:`DamagedZooError` naming it if it is larger than
    ``max_bytes`` (checked before it is read into memory), cannot be read, or does not match its checksum."""
    import torch

    if (size := path.stat().st_size) > max_bytes:
        raise damaged_checkpoint(path, f"it is {size:,} bytes, more than the {max_bytes:,} a checkpoint of this run can take")
    data = path.read_bytes()
    body, mark, digest = data[:-TRAILER], data[-TRAILER:-32], data[-32:]
    if mark != CHECKSUM_MARK:
        raise damaged_checkpoint(path, "it does not end with its checksum: truncated, or not written by this rnn-zoos")
    if hashlib.sha256(body).digest() != digest:
        raise damaged_checkpoint(path, "its content does not match its checksum")
    try:
        state = torch.load(io.BytesIO(body), map_location=device, weights_only=True)
    except Exception as error:  # torch raises RuntimeError, EOFError, UnpicklingError, ... for a damaged file
        raise damaged_checkpoint(path, error) from None
    if not isinstance(state, dict):
        raise damaged_checkpoint(path, f"it holds a {type(state).__name__}, not a checkpoint")
    return state


def damaged_checkpoint(path: Path, reason: Any) -> DamagedZooError:
    """The error for a ``checkpoint.pt`` that cannot be resumed from, saying what to do."""
    return DamagedZooError(f"{path} is damaged ({short(str(reason) or type(reason).__name__, 120)}); delete it to start the run "
                           "again from step 0 with the same command (its options stay in config.json)")


def save_model(model: Any, folder: Path, name: str) -> None:
    """Save ``model`` (``save_pretrained``) as ``folder/name``, replacing the one there only once the new one is complete
    on the disk."""
    staging, target, old = folder / f".{name}.saving", folder / name, folder / f".{name}.old"
    shutil.rmtree(staging, ignore_errors=True)
    shutil.rmtree(old, ignore_errors=True)
    with disk_full_errors(target):
        model.save_pretrained(staging)
        sync_tree(staging)
    if target.exists():
        target.rename(old)
    staging.rename(target)
    sync_folder(folder)
    shutil.rmtree(old, ignore_errors=True)


def read_log(path: Path) -> list[dict[str, float | None]]:
    """The entries of a run's ``log.jsonl``, one per evaluation."""
    return [json.loads(line) for line in path.read_text().splitlines() if line.strip()]
