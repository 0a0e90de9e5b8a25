"""The folder of a build: one builder at a time, and what it finds there when it starts.

A builder holds the OS lock of ``OUT/.build.lock`` (:func:`build_lock`) from before it reads the
folder until the zoo is finished; :func:`prepare_output` then starts a build, continues an
unfinished one of the same zoo, or finds the zoo complete, and refuses anything else.
"""

from __future__ import annotations

import contextlib
import json
import shutil
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from ..common.errors import DamagedZooError, ZooError, describe_difference
from ..common.files import atomic_write, exclusive_lock, remove_temporaries
from ..format.info import INFO_PATH, ZooInfo, file_sha256
from ..common.results import check_results_folder
from ..zoos import known_zoos

WORK_DIR = ".build"
TRASH_DIR = ".build.trash"
LOCK_FILE = ".build.lock"
"""Locked by the one builder at work in a folder; it exists while a build is unfinished."""


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
    except (OSError, ValueError):
        found = identity  # not known yet: wait, and check once the folder is ours
    if found != identity:
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
    except (OSError, ValueError):
        raise DamagedZooError(f"{config_path} is missing or unreadable; delete {work.parent} and build again") from None
    if found != identity:
        raise ZooError(f"--out {work.parent} holds an unfinished build of a different zoo ({describe_difference(found, identity)}); "
                       "rerun with its options, or choose another --out")


def _remove_leftovers(out: Path) -> None:
    """Delete what killed builds leave behind: a half-deleted work folder and temporary files."""
    shutil.rmtree(out / TRASH_DIR, ignore_errors=True)
    remove_temporaries(out)
