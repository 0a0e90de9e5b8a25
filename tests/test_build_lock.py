"""One builder at a time in an output folder: a second one waits for the zoo, or is refused, and never corrupts it."""

from __future__ import annotations

import contextlib
import threading
from pathlib import Path

import pytest

from rnn_zoos.builder.command import main as build_main

import rnn_zoos.hub.layout
from rnn_zoos.builder.build import LOCK_FILE
from rnn_zoos.common.files import exclusive_lock
from rnn_zoos.hub.verify import verify_zoo

from conftest import build_formal, cli_options, folder_state

SMALL = {"runs": 4, "steps": 30, "seed": 0, "runs_per_batch": 2}
ZOO_FILES = ["README.md", "assets", "data", "meta"]


def test_a_builder_of_another_zoo_is_refused_while_one_works_and_the_same_zoo_waits(tmp_path: Path, monkeypatch, capsys) -> None:
    out = tmp_path / "zoo"
    options = {"runs": 2, "steps": 3, "seed": 0}
    monkeypatch.setattr(rnn_zoos.hub.layout, "write_info", lambda *a, **k: (_ for _ in ()).throw(KeyboardInterrupt()))
    with pytest.raises(KeyboardInterrupt):
        build_formal(out, **options)  # leaves an unfinished build
    monkeypatch.undo()
    capsys.readouterr()
    with contextlib.ExitStack() as other_builder:
        other_builder.enter_context(exclusive_lock(out / LOCK_FILE, on_busy=lambda: None))
        before = folder_state(out)
        assert build_main("formal-lang", ["--out", str(out), *cli_options({**options, "seed": 1})]) == 2
        assert capsys.readouterr().err == (
            f"error: --out {out} is being built by another process with other options (seed=0 there vs 1 now); "
            "wait for it to finish, or choose another --out\n"
        )
        assert folder_state(out) == before
        threading.Timer(1.0, other_builder.close).start()
        assert build_main("formal-lang", ["--out", str(out), *cli_options(options)]) == 0
    assert f"{out}: another builder holds the build lock here; waiting for it" in capsys.readouterr().out
    assert verify_zoo(out) == []
    assert sorted(path.name for path in out.iterdir()) == ZOO_FILES
