"""Tiny pretraining runs shared by the tests of the run folder: the command line, an interrupted run, a finished one."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from rnn_zoos.experiments.pretrain import PretrainConfig, Pretraining, pretrain

from conftest import cli_options

OPTIONS = {"steps": 6, "batch_rnns": 8, "eval_every": 2, "eval_rnns": 4, "lr": 1e-3, "cloned_rnns": 0, "device": "cpu"}
"""Seven steps, evaluated after steps 0, 2, 4 and 6."""


def command(zoo: Path, out: Path | str, encoder: str = "flat", **options: object) -> list[str]:
    """The arguments of ``rnn-zoos pretrain`` for a tiny run."""
    return [str(zoo), "--encoder", encoder, "--out", str(out), *cli_options({**OPTIONS, **options})]


def config(zoo: Path, out: Path) -> PretrainConfig:
    return PretrainConfig(zoo=str(zoo), encoder="flat", out=str(out), **OPTIONS)


def log(folder: Path) -> list[dict]:
    return [json.loads(line) for line in (folder / "log.jsonl").read_text().splitlines()]


def interrupt_run(zoo: Path, out: Path, after: int = 4) -> Path:
    """Start the tiny run in ``out`` and interrupt it (Ctrl-C) after ``after`` steps: its checkpoint is at step 3."""
    step, calls = Pretraining.train_step, {"count": 0}

    def interrupted(self: Pretraining) -> float:
        calls["count"] += 1
        if calls["count"] > after:
            raise KeyboardInterrupt("simulated interruption")
        return step(self)

    with pytest.MonkeyPatch.context() as patch:
        patch.setattr(Pretraining, "train_step", interrupted)
        with pytest.raises(KeyboardInterrupt):
            pretrain(config(zoo, out))
    assert (out / "checkpoint.pt").is_file()
    return out


def one_error_line(stderr: str, *parts: str) -> str:
    """The single ``error:`` line of a refused command, its last, which names each of ``parts`` (progress lines may precede it)."""
    lines = [line for line in stderr.splitlines() if line.startswith("error")]
    assert len(lines) == 1 and "Traceback" not in stderr and stderr.rstrip().endswith(lines[0]), stderr[-2000:]
    for part in parts:
        assert part in lines[0], lines[0]
    return lines[0]
