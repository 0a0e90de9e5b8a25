"""The static training step (``--compile``, ``--cuda-graphs``): device-side step counter and learning rate, the options'
checks, and a build through it that gives the same runs as the eager builder up to rounding.

torch.compile itself takes minutes on a small CPU, so here it is replaced by the identity: the tests run the static
step uncompiled. ``benchmarks/gpu.sh`` builds with the real ``--compile`` (and ``--cuda-graphs`` on a GPU).
"""

from __future__ import annotations

from pathlib import Path

import pytest
import torch

import rnn_zoos
import rnn_zoos.builder.build
import rnn_zoos.builder.chunk_trainer
from rnn_zoos.builder.build import BuildConfig, build_command
from rnn_zoos.builder.command import main as build_main
from rnn_zoos.lstm.training import TrainingSchedule
from rnn_zoos.hub.verify import verify_zoo
from rnn_zoos.zoos.rotation import rotate, rotate_from, rotation_sources

from conftest import build_formal, cli_options, zoo_content

OPTIONS = {"runs": 3, "steps": 12, "seed": 5, "runs_per_batch": 2}


@pytest.mark.parametrize("steps", [7, 20_000])
def test_the_learning_rate_tensor_is_the_float_learning_rate_in_float32(steps: int) -> None:
    schedule = TrainingSchedule(steps=steps)
    every = torch.arange(steps + 1)
    expected = torch.tensor([schedule.learning_rate(step) for step in range(steps + 1)], dtype=torch.float32)
    assert torch.equal(schedule.learning_rate_tensor(every), expected)


def test_precomputed_rotation_sources_rotate_exactly_as_rotate() -> None:
    angles = torch.tensor([0.0, 33.3, 90.0, 271.5])
    images = torch.rand(4, 3, 28, 28)
    assert torch.equal(rotate_from(images, rotation_sources(angles, 28, 28)), rotate(images, angles))


def test_cuda_graphs_on_cpu_end_in_one_error_line(tmp_path: Path, capsys) -> None:
    argv = ["--out", str(tmp_path / "zoo"), *cli_options(OPTIONS), "--cuda-graphs"]
    assert build_main("formal-lang", argv) == 2
    assert capsys.readouterr().err == ("error: --cuda-graphs captures the training step as a CUDA graph, which needs --device cuda; "
                                       "drop --cuda-graphs on cpu (--compile works there)\n")
    assert not (tmp_path / "zoo").exists()


def test_the_build_command_names_a_lever_only_when_it_is_on() -> None:
    assert "--compile" not in build_command("formal-lang", BuildConfig(out="z"))
    assert "cuda" not in build_command("formal-lang", BuildConfig(out="z")).replace("--device cpu", "")
    assert build_command("formal-lang", BuildConfig(out="z", compile=True)).endswith(" --compile")


@pytest.fixture
def uncompiled(monkeypatch) -> None:
    """``torch.compile`` as the identity: ``--compile`` then runs the static step without compiling it."""
    monkeypatch.setattr(torch, "compile", lambda function, **options: function)


def test_a_static_build_has_the_same_runs_and_close_weights(tmp_path: Path, uncompiled) -> None:
    eager = build_formal(tmp_path / "eager", **OPTIONS)
    static = build_formal(tmp_path / "static", compile=True, **OPTIONS)
    assert verify_zoo(static) == []
    info_eager, tables_eager = zoo_content(eager)
    info_static, tables_static = zoo_content(static)
    assert info_static["builder"] == info_eager["builder"]  # a lever is not part of the zoo's identity
    for split, table in tables_eager.items():
        if table is None:
            continue
        a, b = table.to_pydict(), tables_static[split].to_pydict()
        for column in ("run", "step", "seed", "task", "weight_decay"):
            assert a[column] == b[column]
        for index in range(len(a["step"])):
            for name, tensor in rnn_zoos.decode_weights(a["weights"][index]).items():
                torch.testing.assert_close(rnn_zoos.decode_weights(b["weights"][index])[name], tensor, rtol=1e-4, atol=1e-5)


def test_an_eager_checkpoint_resumes_in_a_static_build(tmp_path: Path, uncompiled, monkeypatch) -> None:
    original = rnn_zoos.builder.chunk_trainer.ChunkTrainer.train_step

    def interrupt_after_step_8(trainer: rnn_zoos.builder.chunk_trainer.ChunkTrainer, step: int) -> None:
        if step == 9:
            raise KeyboardInterrupt
        original(trainer, step)

    monkeypatch.setattr(rnn_zoos.builder.chunk_trainer.ChunkTrainer, "train_step", interrupt_after_step_8)
    with pytest.raises(KeyboardInterrupt):
        build_formal(tmp_path / "zoo", **OPTIONS)
    assert list((tmp_path / "zoo" / ".build").glob("*/checkpoint.pt"))
    monkeypatch.setattr(rnn_zoos.builder.chunk_trainer.ChunkTrainer, "train_step", original)
    resumed = build_formal(tmp_path / "zoo", compile=True, **OPTIONS)
    assert verify_zoo(resumed) == []
    _, tables = zoo_content(resumed)
    _, reference = zoo_content(build_formal(tmp_path / "reference", **OPTIONS))
    for split, table in reference.items():
        if table is not None:
            for blob_a, blob_b in zip(table.column("weights").to_pylist(), tables[split].column("weights").to_pylist()):
                for name, tensor in rnn_zoos.decode_weights(blob_a).items():
                    torch.testing.assert_close(rnn_zoos.decode_weights(blob_b)[name], tensor, rtol=1e-4, atol=1e-5)
