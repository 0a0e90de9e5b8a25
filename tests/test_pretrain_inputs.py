"""Options refused before any work, in one line: seeds beyond 64 bits, probes too large for the memory, zoos too large for
any disk, names too long for the file system; one pretraining run per folder; a folder is itself however it is spelled;
a diverged run says so."""

from __future__ import annotations

import sys
from pathlib import Path

import pytest

from rnn_zoos import cli
from rnn_zoos.builder import command as build
from rnn_zoos.experiments.pretrain import Pretraining, main
from rnn_zoos.experiments.pretrain_config import PretrainConfig

from conftest import run_together
from pretrain_runs import OPTIONS, command, log, one_error_line


@pytest.mark.parametrize("seed", [2**64, 2**63, -1])
def test_a_seed_beyond_64_bits_is_refused_by_pretrain_and_build(seed: int, formal_zoo: Path, tmp_path: Path, capsys) -> None:
    assert main(command(formal_zoo, tmp_path / "run", seed=seed)) == 2
    pretrain_line = one_error_line(capsys.readouterr().err, "--seed", "64-bit")
    assert build.main("formal-lang", ["--out", str(tmp_path / "zoo"), "--seed", str(seed), "--device", "cpu"]) == 2
    assert one_error_line(capsys.readouterr().err) == pretrain_line  # one check, shared
    assert not list(tmp_path.iterdir())


def test_the_largest_seed_pretrains(formal_zoo: Path, tmp_path: Path) -> None:
    run = Pretraining(PretrainConfig(zoo=str(formal_zoo), encoder="flat", out=str(tmp_path), **{**OPTIONS, "seed": 2**63 - 1}))
    assert len(run.batch_index()) == OPTIONS["batch_rnns"]
    assert run.train_step() >= 0


@pytest.mark.parametrize("option, value", [("--probing-length", "100000000"), ("--probing-sequences", "100000")])
def test_probes_too_large_for_the_memory_are_refused_with_the_figure(option: str, value: str, formal_zoo: Path, tmp_path: Path,
                                                                      capsys) -> None:
    args = command(formal_zoo, tmp_path / "run", encoder="interactive_probing")
    assert main([*args, option, value]) == 2
    line = one_error_line(capsys.readouterr().err, option, value, "GB", "free on cpu")
    assert "needs about" in line
    assert not (tmp_path / "run").exists()


def test_a_zoo_larger_than_any_disk_is_refused_before_any_work(tmp_path: Path, capsys) -> None:
    assert build.main("formal-lang", ["--out", str(tmp_path / "zoo"), "--runs", "1000000000000", "--device", "cpu"]) == 2
    one_error_line(capsys.readouterr().err, "--runs 1000000000000", "TB of disk")
    assert not (tmp_path / "zoo").exists()


@pytest.mark.parametrize("which", ["component", "path"])
def test_an_out_path_too_long_for_the_file_system_is_refused_by_every_command(which: str, formal_zoo: Path, tmp_path: Path,
                                                                               capsys) -> None:
    out = tmp_path / ("x" * 300) / "run" if which == "component" else tmp_path.joinpath(*["y" * 200] * 25)
    zoo = str(formal_zoo)
    for argv in (["build", "formal-lang", "--out", str(out), "--device", "cpu"],
                 ["pretrain", *command(formal_zoo, out)],
                 ["import-release", str(tmp_path), "--out", str(out)],
                 ["downstream", zoo, "--out", str(out), "--device", "cpu"],
                 ["reproduce", zoo, "--out", str(out), "--device", "cpu"]):
        assert cli.main(argv) == 2, argv
        one_error_line(capsys.readouterr().err, "more than the", "choose a shorter")
    assert list(tmp_path.iterdir()) == []


def test_two_pretrainings_into_one_folder_one_is_refused(formal_zoo: Path, tmp_path: Path) -> None:
    out = tmp_path / "run"
    args = [sys.executable, "-m", "rnn_zoos.cli", "pretrain", *command(formal_zoo, out, steps=300, eval_every=100)]
    other = [sys.executable, "-m", "rnn_zoos.cli", "pretrain", *command(formal_zoo, out, steps=300, eval_every=100, seed=1)]
    results = run_together([args, other])
    codes = sorted(code for code, _, _ in results)
    assert codes == [0, 2], results
    refused = next(err for code, _, err in results if code == 2)
    one_error_line(refused, "another rnn-zoos pretrain", "--out")
    assert [entry["step"] for entry in log(out)] == [0, 100, 200, 300]  # one run's lines only
    assert not (out / ".pretrain.lock").exists()


def test_a_run_folder_is_the_same_however_it_is_spelled(formal_zoo: Path, tmp_path: Path, monkeypatch, capsys) -> None:
    monkeypatch.chdir(tmp_path)
    assert main(command(formal_zoo, "p4")) == 0
    for spelling in ("./p4", str(tmp_path / "p4"), "p4/", "../" + tmp_path.name + "/p4"):
        capsys.readouterr()
        assert main(command(formal_zoo, spelling)) == 0, capsys.readouterr().err
        assert "already complete" in capsys.readouterr().out


def test_a_diverged_run_says_so_in_one_line(formal_zoo: Path, tmp_path: Path, capsys) -> None:
    for _ in range(2):  # and again on the same command: it resumes and diverges again
        assert main(command(formal_zoo, tmp_path / "run", lr=1e30)) == 2
        one_error_line(capsys.readouterr().err, "diverged", "--lr", "no model was saved")
    assert not (tmp_path / "run" / "encoder").exists()
