"""The folder of a build: one builder at a time, and what it finds there when it starts.

A builder holds the OS lock of ``OUT/.build.lock`` (:func:`build_lock`) from before it reads the
folder until the zoo is finished; :func:`prepare_output` then starts a build, continues an
unfinished one of the same zoo, or finds the zoo complete, and refuses anything else.
"""

from __future__ import annotations

import contextlib
import json
import os
import re
import socket
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from .claims import claim_state, heartbeat_timeout
from ..common.errors import DamagedZooError, ZooError, describe_difference
from ..common.files import TEMPORARY_NAME, atomic_write, exclusive_lock, writer_gone
from ..format.info import INFO_PATH, ZooInfo, file_sha256
from ..zoos import known_zoos
from ..common.results import check_results_folder

WORK_DIR = ".build"
TRASH_DIR = ".build.trash"
LOCK_FILE = ".build.lock"
"""Locked by the one builder at work in a folder; it exists while a build is unfinished."""
CHUNK_FOLDER = r"runs-\d{5}-\d{5}"
WORK_FILES = {
    "": r"config\.json|plan\.json",
    CHUNK_FOLDER: r"step-\d{6}\.parquet|checkpoint\.pt|claim|finished|fence",
}
"""The files a build writes in its work folder and in each chunk's folder (regular expressions, by folder)."""
ZOO_FILES = {
    "": r"README\.md",
    "data": r"(train|validation|ood)-\d{5}-of-\d{5}\.parquet",
    "meta": r"info\.json",
    "assets": r"[a-z0-9_]+\.png",
}
"""The files a build writes in the zoo's folders."""


@contextlib.contextmanager
def build_lock(out: Path, identity: dict[str, Any]) -> Iterator[None]:
    """Be the one process changing the state of the build in ``out`` (starting it, taking over a stale claim, writing the
    zoo) for the duration of the block, holding the lock of ``OUT/.build.lock``; chunks train outside it.

    A folder that holds something other than a zoo or a build is refused before anything is
    written into it. While another builder holds the lock, a build of the same zoo waits for it and
    one of a different zoo is refused (see :func:`_wait_for_other_builder`). The lock file is
    removed on leaving unless an unfinished build stays in ``out``.
    """
    lock = out / LOCK_FILE
    with contextlib.ExitStack() as stack:
        try:
            _refuse_foreign(out)
            out.mkdir(parents=True, exist_ok=True)
            stack.enter_context(exclusive_lock(lock, on_busy=lambda: _wait_for_other_builder(out, identity)))
        except OSError as error:
            raise ZooError(f"cannot write into --out {out} ({error.strerror or error}); choose a folder you can write to") from None
        try:
            yield
        finally:
            if not (out / WORK_DIR).exists():
                lock.unlink(missing_ok=True)


def _wait_for_other_builder(out: Path, identity: dict[str, Any]) -> None:
    """Another builder holds the lock of ``out``: refuse if it builds a different zoo, else say that this one waits."""
    try:
        found = json.loads((out / WORK_DIR / "config.json").read_text())
    except (OSError, ValueError, RecursionError):
        found = identity  # not known yet: wait, and check once the folder is ours
    if isinstance(found, dict) and found != identity:
        raise ZooError(f"--out {out} is being built by another process with other options ({describe_difference(found, identity)}); "
                       "wait for it to finish, or choose another --out")
    print(f"{out}: another builder holds the build lock here; waiting for it", flush=True)


def _refuse_foreign(out: Path) -> None:
    """Refuse a folder that holds files but neither a zoo nor a build (a lock file alone is a build's), saying what it holds."""
    check_results_folder(out, "build", resumes=True)


def prepare_output(out: Path, identity: dict[str, Any]) -> bool:
    """Check ``out`` (locked) and start or continue a build there; returns False if the zoo is already complete."""
    work = out / WORK_DIR
    if (out / INFO_PATH).is_file() and not work.exists():
        _check_finished_zoo(out, identity)
        _remove_leftovers(out)
        return False
    if work.is_dir():
        _check_unfinished_build(work, identity)
        _remove_leftovers(out)
        return True
    _refuse_foreign(out)
    work.mkdir()
    with atomic_write(work / "config.json") as temporary:
        temporary.write_text(json.dumps(identity, indent=2))
    return True


def _check_finished_zoo(out: Path, identity: dict[str, Any]) -> None:
    """Refuse a finished zoo in ``out`` that is another zoo, or whose data files do not match ``meta/info.json``."""
    info = ZooInfo.load(out, known_zoos())
    if info.builder != identity:
        raise ZooError(f"--out {out} holds a different zoo ({describe_difference(info.builder, identity)}); choose another --out or delete it")
    damaged = _damaged_files(out, info)
    if damaged:
        raise DamagedZooError(f"--out {out} holds this zoo, finished, but {', '.join(damaged)} ({INFO_PATH} lists every data file "
                       f"with its checksum); its training work is gone, so delete {out} and build again")


def _damaged_files(out: Path, info: ZooInfo) -> list[str]:
    """The data files of the zoo in ``out`` that are missing or differ from their checksums in ``meta/info.json``."""
    damaged = []
    for path, checksum in sorted(info.checksums.items()):
        if not (out / path).is_file():
            damaged.append(f"{path} is missing")
        elif file_sha256(out / path) != checksum:
            damaged.append(f"{path} does not match its checksum")
    return damaged


def _check_unfinished_build(work: Path, identity: dict[str, Any]) -> None:
    """Refuse to continue an unfinished build in ``work`` that is of another zoo, or whose config cannot be read."""
    config_path = work / "config.json"
    try:
        found = json.loads(config_path.read_text())
    except (OSError, ValueError, RecursionError):
        found = None
    if not isinstance(found, dict):
        raise DamagedZooError(f"{config_path} is missing or not the build's options (a JSON object); "
                              f"delete {work.parent} and build again") from None
    if found != identity:
        raise ZooError(f"--out {work.parent} holds an unfinished build of a different zoo ({describe_difference(found, identity)}); "
                       "rerun with its options, or choose another --out")


def _remove_leftovers(out: Path) -> None:
    """Delete what killed builds left behind, by exact name: the files of a half-deleted work folder, and temporaries of
    the build's own files whose writers are gone (:func:`build_temporaries`). Files a build never writes stay."""
    _remove_work_files(out / TRASH_DIR)
    for path in build_temporaries(out):
        path.unlink(missing_ok=True)


def _folders(root: Path, patterns: dict[str, str]) -> Iterator[tuple[Path, re.Pattern[str]]]:
    """The folders under ``root`` that ``patterns`` names (a folder pattern of one level, or ``""`` for ``root``), each with
    the pattern of the file names a build writes there."""
    for folder, names in patterns.items():
        if not folder:
            places = [root] if root.is_dir() else []
        else:
            places = [path for path in root.iterdir() if path.is_dir() and re.fullmatch(folder, path.name)] if root.is_dir() else []
        yield from ((place, re.compile(names)) for place in places)


def _build_files(out: Path) -> Iterator[tuple[Path, re.Pattern[str]]]:
    """Every folder of ``out`` a build writes into, with the pattern of the file names it writes there."""
    yield from ((out / folder if folder else out, re.compile(names)) for folder, names in ZOO_FILES.items())
    yield from _folders(out / WORK_DIR, WORK_FILES)


def build_temporaries(out: Path) -> list[Path]:
    """The temporary files of the build's own files in ``out`` (``.NAME.tmp-HOST-PID`` of a NAME a build writes) whose
    writers are gone: on this host, no process with their PID; on another host, untouched for longer than the heartbeat
    timeout. None while another worker's claim is live: a worker writes its chunk's files without the build lock."""
    if any(record is not None and not stale for record, stale in map(claim_state, _chunk_folders(out / WORK_DIR))):
        return []
    found = []
    for folder, names in _build_files(out):
        for path in folder.iterdir() if folder.is_dir() else ():
            match = TEMPORARY_NAME.fullmatch(path.name)
            if match and names.fullmatch(match["name"]) and path.is_file() and _writer_gone(path, match["host"]):
                found.append(path)
    return found


def _writer_gone(temporary: Path, host: str | None) -> bool:
    """Whether the writer of ``temporary`` is gone (see :func:`build_temporaries`)."""
    if host in (None, socket.gethostname()):
        return writer_gone(temporary)
    return time.time() - temporary.stat().st_mtime > heartbeat_timeout()


def _chunk_folders(work: Path) -> list[Path]:
    """The chunk folders in the work folder ``work``."""
    return [folder for folder, _ in _folders(work, {CHUNK_FOLDER: ""})]


def discard_work(work: Path) -> None:
    """Remove the work folder of a finished build: renamed away first, so that no half-deleted ``.build`` is left, then its
    files deleted by name. Where the trash folder holds files no build wrote (and so stays), ``work`` is emptied in place,
    its ``config.json`` last (a run that finds it resumes and writes the same zoo)."""
    trash = work.with_name(TRASH_DIR)
    _remove_work_files(trash)
    if not trash.exists():
        os.replace(work, trash)
        work = trash
    _remove_work_files(work)


def _remove_work_files(work: Path) -> None:
    """Delete the files a build writes in the work folder ``work`` (:data:`WORK_FILES`, with their temporaries), then
    every folder left empty; a file a build never writes stays, with its folder."""
    if not work.is_dir():
        return
    for folder, names in sorted(_folders(work, WORK_FILES), key=lambda item: item[0] == work):  # the chunks first
        for path in sorted(folder.iterdir(), key=lambda path: path.name == "config.json"):
            match = TEMPORARY_NAME.fullmatch(path.name)
            if path.is_file() and names.fullmatch(match["name"] if match else path.name):
                path.unlink()
        if folder != work:
            _remove_if_empty(folder)
    _remove_if_empty(work)


def _remove_if_empty(folder: Path) -> None:
    try:
        folder.rmdir()
    except OSError:  # holds files no build wrote: kept
        pass
