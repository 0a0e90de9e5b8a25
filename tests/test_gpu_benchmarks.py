"""The figures the GPU scripts bring back from a built zoo: rows per split and accuracy by snapshot step, as the
zoo's rows hold them, the report that shows them, and the profile of a benchmark's steps."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import torch

import rnn_zoos
from benchmarks.build_check import summary
from benchmarks.builder_speed import profile_steps
from benchmarks.gpu_report import report


def test_the_summary_of_a_zoo_is_what_its_rows_hold(formal_zoo: Path) -> None:
    figures = summary(formal_zoo)
    splits = rnn_zoos.load_zoo(formal_zoo, format="numpy")
    assert figures["rows_per_split"] == {name: len(split) for name, split in splits.items()}
    steps = np.concatenate([split["step"] for split in splits.values() if len(split)])
    accuracy = np.concatenate([split["accuracy"] for split in splits.values() if len(split)]).astype(np.float64)
    assert list(figures["accuracy_by_step"]) == [str(step) for step in sorted(set(steps.tolist()))]
    for step, shown in figures["accuracy_by_step"].items():
        values = accuracy[steps == int(step)]
        assert shown["runs"] == len(values)
        assert np.isclose(shown["mean"], values.mean(), rtol=0, atol=1e-12)
        assert np.allclose([shown["q25"], shown["median"], shown["q75"]], np.quantile(values, [0.25, 0.5, 0.75]), rtol=0, atol=1e-12)
        assert shown["q25"] <= shown["median"] <= shown["q75"]


def test_the_report_shows_every_build_figure(formal_zoo: Path) -> None:
    build = {"section": "build", "zoo": "formal-lang", "options": "--runs 12", "wall_s": 3.5, "rows": 108,
             "expected_rows": 108, "problems": [], **summary(formal_zoo)}
    lines = report([build], failed=[], title="benchmarks/gpu_zoo.sh").splitlines()
    assert lines[0] == "# benchmarks/gpu_zoo.sh"
    splits = ", ".join(f"{name} {count}" for name, count in build["rows_per_split"].items())
    assert f"| formal-lang | `--runs 12` | 3.5 | 108 | 108 | {splits} | verify ok |" in lines
    for step, shown in build["accuracy_by_step"].items():
        assert f"| {step} | {shown['runs']} | {shown['mean']:.4f} | {shown['q25']:.4f} | {shown['median']:.4f} | {shown['q75']:.4f} |" in lines
    assert not any(line.startswith("## Builders") for line in lines), "a section without figures is left out"
    failed = report([{**build, "problems": ["1 problem"]}], failed=["verify"]).splitlines()
    assert "**Failed steps:** verify (their figures are missing below)." in failed
    assert any(line.endswith("| 1 problem |") for line in failed)


def test_a_profile_names_the_operators_of_the_step(tmp_path: Path) -> None:
    out = tmp_path / "profiles.md"
    matrix = torch.randn(64, 64)
    profile_steps(lambda: matrix @ matrix, "cpu", "matrix product", str(out), steps=2)
    text = out.read_text()
    assert text.startswith("## matrix product\n\n2 steps recorded with torch.profiler; wall time ")
    assert "aten::mm" in text and "Host time in operators" in text

    def broken() -> None:
        raise RuntimeError("no kernel for this")

    profile_steps(broken, "cpu", "broken step", str(out))
    assert out.read_text().startswith(text), "a later profile appends"
    assert "## broken step\n\ntorch.profiler failed: RuntimeError: no kernel for this" in out.read_text()
