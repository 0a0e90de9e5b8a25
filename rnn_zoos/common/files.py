"""Safe file writing and locking: a file appears under its real name only once it is complete."""

from __future__ import annotations

import contextlib
import fcntl
import json
import math
import os
import re
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

from .errors import ZooError

TEMPORARY_NAME = re.compile(r"\..+\.tmp-\d+")
"""The names :func:`atomic_write` gives its temporary files: ``.NAME.tmp-PID``."""
VIRTUAL_FILE_SYSTEMS = (Path("/proc"), Path("/sys"))
"""Where the kernel shows its state: never a place for a command's output."""


@contextlib.contextmanager
def atomic_write(path: str | Path) -> Iterator[Path]:
    """Yield a temporary path beside ``path``; rename it to ``path`` only if the block succeeds."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    temporary = path.with_name(f".{path.name}.tmp-{os.getpid()}")
    try:
        yield temporary
        os.replace(temporary, path)
    finally:
        temporary.unlink(missing_ok=True)


def remove_temporaries(folder: Path) -> list[Path]:
    """Delete the temporary files that killed writers of :func:`atomic_write` left anywhere under ``folder``; returns them.

    Call it only while no other process writes into ``folder`` (under its lock): it cannot tell a
    temporary file of a dead writer from one being written.
    """
    found = [path for path in folder.rglob(".*.tmp-*") if TEMPORARY_NAME.fullmatch(path.name) and path.is_file()]
    for path in found:
        path.unlink(missing_ok=True)
    return found


def check_out_folder(out: str | Path, option: str = "--out") -> None:
    """Raise :class:`ZooError` unless ``out`` is a folder or can be made one: not under ``/proc`` or ``/sys``, not at
    or below a file, below a writable folder. Checks only; creates nothing."""
    path = Path(out).absolute()
    real = path.resolve()
    for root in VIRTUAL_FILE_SYSTEMS:
        if real == root or root in real.parents:
            raise ZooError(f"{option} {out} is under {root}, where the kernel shows its state, not a place for files; "
                           "choose a folder on a disk")
    existing = next(folder for folder in (path, *path.parents) if folder.exists())
    if not existing.is_dir():
        where = "is a file" if existing == path else f"lies below the file {existing}"
        raise ZooError(f"{option} {out} {where}, so no folder can be made there; choose another {option}")
    if not os.access(existing, os.W_OK | os.X_OK):
        raise ZooError(f"{option} {out}: {existing} is not writable; choose another {option}")


@contextlib.contextmanager
def output_folder(out: Path) -> Iterator[Path]:
    """Make the folder ``out`` (and its missing parents) for the block; if the block fails, remove the folders it made
    that are still empty, so that a failed command leaves no empty folder behind."""
    made = [folder for folder in (out.absolute(), *out.absolute().parents) if not folder.exists()]  # deepest first
    out.mkdir(parents=True, exist_ok=True)
    try:
        yield out
    except BaseException:
        for folder in made:
            try:
                folder.rmdir()
            except OSError:  # not empty: keep it and every folder above it
                break
        raise


@contextlib.contextmanager
def exclusive_lock(path: Path, on_busy: Callable[[], None]) -> Iterator[None]:
    """Hold an exclusive OS lock (``flock``) on the file ``path``, created if needed, for the duration of the block.

    If another process holds it, ``on_busy()`` is called (it may raise to give up) and then the
    lock is waited for. The kernel releases the lock when its holder exits, even by ``SIGKILL``.
    The holder may delete ``path`` before leaving the block: a waiter then finds its lock on a
    deleted file and takes a new one, so two processes never both hold the lock of ``path``.
    """
    while True:
        descriptor = os.open(path, os.O_RDWR | os.O_CREAT, 0o644)
        try:
            _lock(descriptor, on_busy)
        except BaseException:
            os.close(descriptor)
            raise
        if _is_current(descriptor, path):
            break
        os.close(descriptor)
    try:
        yield
    finally:
        os.close(descriptor)


def _lock(descriptor: int, on_busy: Callable[[], None]) -> None:
    """Take the lock on ``descriptor``, calling ``on_busy`` first if that means waiting."""
    try:
        fcntl.flock(descriptor, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except BlockingIOError:
        on_busy()
        fcntl.flock(descriptor, fcntl.LOCK_EX)


def _is_current(descriptor: int, path: Path) -> bool:
    """Whether ``path`` still names the file open as ``descriptor`` (its holder may have deleted it meanwhile)."""
    try:
        return os.path.samestat(os.fstat(descriptor), os.stat(path))
    except FileNotFoundError:
        return False


def json_text(data: Any, **dumps: Any) -> str:
    """``data`` as JSON text, with every NaN or infinite float written as ``null``: JSON has no NaN, and a reader of
    ``log.jsonl`` or ``results.json`` in another language would choke on Python's ``NaN``."""
    return json.dumps(_finite(data), allow_nan=False, **dumps)


def _finite(data: Any) -> Any:
    """``data`` with non-finite floats replaced by None, through dicts, lists and tuples."""
    if isinstance(data, float):
        return data if math.isfinite(data) else None
    if isinstance(data, dict):
        return {key: _finite(value) for key, value in data.items()}
    if isinstance(data, (list, tuple)):
        return [_finite(value) for value in data]
    return data


def ordinary_permissions(folder: Path) -> None:
    """Give every file in ``folder`` the permissions a plain ``open()`` gives (``0o666`` less the umask), as the zoo's own
    files have; some writers (``safetensors`` through a temporary file) leave theirs readable by the owner alone."""
    mask = os.umask(0)
    os.umask(mask)
    for path in folder.iterdir():
        if path.is_file() and not path.is_symlink():
            path.chmod(0o666 & ~mask)
