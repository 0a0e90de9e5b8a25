"""Every file a build, an import or a pretraining run commits is on the disk before it takes its name: the temporary
file is flushed (``fsync``) before the rename, and the folder after it, so a power loss leaves the old or the new file."""

from __future__ import annotations

import os
import re
from pathlib import Path

import pytest

from rnn_zoos.experiments.pretrain import PretrainConfig, pretrain
from rnn_zoos.common.files import atomic_write, temporary_path

from conftest import build_formal
from test_import_release import write_release

QUICK = {"steps": 4, "batch_rnns": 8, "eval_every": 2, "eval_rnns": 4, "lr": 1e-3, "cloned_rnns": 0, "device": "cpu"}


@pytest.fixture()
def synced(monkeypatch) -> list[tuple[str, str]]:
    """The events ``("fsync", path)`` and ``("replace", target)`` of this test, in order."""
    events: list[tuple[str, str]] = []
    fsync, replace = os.fsync, os.replace

    def recording_fsync(descriptor: int) -> None:
        events.append(("fsync", os.readlink(f"/proc/self/fd/{descriptor}")))
        fsync(descriptor)

    def recording_replace(source, target, **options) -> None:
        replace(source, target, **options)
        events.append(("replace", str(target)))

    monkeypatch.setattr(os, "fsync", recording_fsync)
    monkeypatch.setattr(os, "replace", recording_replace)
    return events


def committed_name(path: str) -> str:
    """The name a synced file has once committed: ``.NAME.tmp-HOST-PID`` -> ``NAME``, ``.encoder.saving/x`` -> ``encoder/x``."""
    path = re.sub(r"/\.[^/]+\.importing-[^/]+/", "/", path)
    path = re.sub(r"/\.([^/]+)\.tmp-(?:[A-Za-z0-9._-]+-)?\d+$", r"/\1", path)
    return re.sub(r"/\.(encoder|emulator)\.saving(/|$)", r"/\1\2", path)


def assert_all_synced(folder: Path, events: list[tuple[str, str]], skip: tuple[str, ...] = ()) -> None:
    synced = {committed_name(path) for kind, path in events if kind == "fsync"}
    files = [path for path in folder.rglob("*") if path.is_file() and path.name not in skip]
    assert files
    unsynced = [str(path.relative_to(folder)) for path in files if str(path.resolve()) not in synced]
    assert not unsynced
    folders = {str(path.resolve()) for path in folder.rglob("*") if path.is_dir()} | {str(folder.resolve())}
    assert folders <= synced  # the folders, after the renames into them


def test_atomic_write_syncs_the_file_before_the_rename_and_the_folder_after(tmp_path: Path, synced) -> None:
    target = tmp_path / "a.json"
    with atomic_write(target) as temporary:
        temporary.write_text("{}")
    temporary_name = str(temporary_path(target.resolve()))
    assert synced == [("fsync", temporary_name), ("replace", str(target)), ("fsync", str(tmp_path.resolve()))]


def test_a_pretraining_run_syncs_every_file_it_commits(formal_zoo: Path, tmp_path: Path, synced) -> None:
    pretrain(PretrainConfig(zoo=str(formal_zoo), encoder="flat", out=str(tmp_path / "run"), **QUICK))
    assert_all_synced(tmp_path / "run", synced, skip=(".pretrain.lock",))


def test_a_build_syncs_every_file_it_commits(tmp_path: Path, synced) -> None:
    build_formal(tmp_path / "zoo", runs=4, steps=20, runs_per_batch=2)
    assert_all_synced(tmp_path / "zoo", synced)


def test_an_import_syncs_every_file_it_commits(formal_zoo: Path, tmp_path: Path, synced) -> None:
    from rnn_zoos.release.importer import import_release

    release = tmp_path / "formal_languages_tokens_4_length_42_2x32"
    write_release(formal_zoo, release)
    synced.clear()
    out = import_release(release, tmp_path / "imported")
    assert_all_synced(out, synced)
