"""Safe file writing and locking: a file appears under its real name only once it is complete."""

from __future__ import annotations

import contextlib
import errno
import fcntl
import json
import math
import os
import re
import socket
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

from .errors import ZooError

TEMPORARY_NAME = re.compile(r"\.(?P<name>.+)\.tmp-(?:(?P<host>[A-Za-z0-9._-]+)-)?(?P<pid>\d+)")
"""The names :func:`temporary_path` gives temporary files: ``.NAME.tmp-HOST-PID`` (``.NAME.tmp-PID`` from earlier versions)."""
VIRTUAL_FILE_SYSTEMS = (Path("/proc"), Path("/sys"))
"""Where the kernel shows its state: never a place for a command's output."""


DISK_FULL = (errno.ENOSPC, errno.EDQUOT)
"""The error numbers of a write that found no space left (a full file system, or a full disk quota)."""


class DiskFullError(ZooError):
    """A write found no space left on its file system; the command resumes once space is freed."""


@contextlib.contextmanager
def atomic_write(path: str | Path) -> Iterator[Path]:
    """Yield a temporary path beside ``path``; rename it to ``path`` only if the block succeeds.

    The temporary file is flushed to the disk (``fsync``) before the rename and the folder after it, so
    that after a power loss ``path`` holds either its old content or the whole new one. A write that
    finds the disk full ends in :class:`DiskFullError`, naming ``path``; nothing is renamed.
    """
    path = Path(path)
    with disk_full_errors(path):
        path.parent.mkdir(parents=True, exist_ok=True)
    temporary = temporary_path(path)
    try:
        with disk_full_errors(path):
            yield temporary
            sync_file(temporary)
            os.replace(temporary, path)
            sync_folder(path.parent)
    finally:
        temporary.unlink(missing_ok=True)


def temporary_path(path: Path) -> Path:
    """The temporary name of ``path`` while this process writes it: ``.NAME.tmp-HOST-PID`` beside it, naming its writer."""
    return path.with_name(f".{path.name}.tmp-{socket.gethostname()}-{os.getpid()}")


def save_atomically(state: Any, path: Path) -> None:
    """``torch.save(state)`` to ``path`` through :func:`atomic_write`, written through a Python file so that a full disk
    is an ``OSError`` (:class:`DiskFullError`), not torch's bare ``file write failed``."""
    import torch

    with atomic_write(path) as temporary, open(temporary, "wb") as handle:
        torch.save(state, handle)


def sync_file(path: Path) -> None:
    """Flush the content of the file ``path`` to the disk (``fsync``)."""
    descriptor = os.open(path, os.O_RDONLY)
    try:
        os.fsync(descriptor)
    finally:
        os.close(descriptor)


def sync_folder(folder: Path) -> None:
    """Flush the entries of ``folder`` (the names renamed into it) to the disk; a file system that cannot is left as is."""
    descriptor = os.open(folder, os.O_RDONLY | os.O_DIRECTORY)
    try:
        os.fsync(descriptor)
    except OSError as error:
        if error.errno not in (errno.EINVAL, errno.ENOTSUP):  # some file systems do not sync folders
            raise
    finally:
        os.close(descriptor)


def sync_tree(folder: Path) -> None:
    """Flush every file under ``folder``, and the folders themselves, to the disk, before ``folder`` is renamed into place."""
    for path in sorted(folder.rglob("*"), reverse=True):
        if path.is_file() and not path.is_symlink():
            sync_file(path)
        elif path.is_dir() and not path.is_symlink():
            sync_folder(path)
    sync_folder(folder)


def is_disk_full(error: BaseException) -> bool:
    """Whether ``error`` (an ``OSError``, or an error of a library that wrote through one) says the disk is full."""
    seen: set[int] = set()
    while error is not None and id(error) not in seen:
        seen.add(id(error))
        if isinstance(error, OSError) and error.errno in DISK_FULL:
            return True
        if "No space left on device" in str(error) or "Disk quota exceeded" in str(error):
            return True
        error = error.__cause__ or error.__context__
    return False


def disk_full_message(path: str | Path) -> str:
    """The one line for a write of ``path`` that found no space left: on which device, and what to do."""
    return f"no space left on {device_of(Path(path))} while writing {path}; free space and rerun the same command"


@contextlib.contextmanager
def disk_full_errors(path: str | Path) -> Iterator[None]:
    """Turn an error of the block that says the disk is full into :class:`DiskFullError` naming ``path`` (the file, or the
    folder, being written); other errors pass unchanged."""
    try:
        yield
    except DiskFullError:
        raise
    except Exception as error:
        if not is_disk_full(error):
            raise
        written = getattr(error, "filename", None) or path
        raise DiskFullError(disk_full_message(written)) from None


def device_of(path: Path) -> str:
    """The file system ``path`` lies on, in words: its device and mount point (``/dev/sda1 (mounted on /data)``)."""
    path = Path(os.path.abspath(path))
    existing = next((folder for folder in (path, *path.parents) if folder.exists()), Path("/"))
    mount = existing
    try:
        while mount != mount.parent and os.stat(mount.parent).st_dev == os.stat(mount).st_dev:
            mount = mount.parent
        sources = [line.split()[0] for line in Path("/proc/self/mounts").read_text().splitlines()
                   if len(line.split()) > 1 and line.split()[1] == str(mount)]
    except OSError:
        sources = []
    return f"{sources[-1]} (mounted on {mount})" if sources else f"the file system of {mount}"


def writer_gone(temporary: Path) -> bool:
    """Whether the process that wrote the temporary file ``temporary`` (:func:`temporary_path`) is known to be gone: it ran on
    this host (a name without a host is from this host) and no process with its PID exists. False for any other name."""
    match = TEMPORARY_NAME.fullmatch(temporary.name)
    if match is None or match["host"] not in (None, socket.gethostname()):
        return False
    try:
        os.kill(int(match["pid"]), 0)
    except ProcessLookupError:
        return True
    except (PermissionError, OverflowError):
        return False
    return False


def check_out_folder(out: str | Path, option: str = "--out") -> None:
    """Raise :class:`ZooError` unless ``out`` is a folder or can be made one: not under ``/proc`` or ``/sys``, not at
    or below a file, below a writable folder. Checks only; creates nothing."""
    path = Path(out).absolute()
    check_name_lengths(path, option)
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


def check_name_lengths(path: Path, option: str = "--out") -> None:
    """Raise :class:`ZooError` if a component of ``path`` (or the whole) is longer than its file system allows."""
    existing = next((folder for folder in path.parents if len(os.fsencode(str(folder))) < 4096
                     and all(len(os.fsencode(part)) <= 255 for part in folder.parts) and folder.is_dir()), Path("/"))
    try:
        longest_name, longest_path = os.pathconf(existing, "PC_NAME_MAX"), os.pathconf(existing, "PC_PATH_MAX")
    except (OSError, ValueError):
        longest_name, longest_path = 255, 4096
    for part in path.parts:
        if len(os.fsencode(part)) > longest_name:
            raise ZooError(f"{option}: the name {part[:40]}... has {len(os.fsencode(part))} bytes, more than the {longest_name} "
                           "the file system allows; choose a shorter name")
    if len(os.fsencode(str(path))) >= longest_path:
        raise ZooError(f"{option}: the path has {len(os.fsencode(str(path)))} bytes, more than the {longest_path} the file system "
                       "allows; choose a shorter one")


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
