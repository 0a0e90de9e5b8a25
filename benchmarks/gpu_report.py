"""The Markdown report of ``benchmarks/gpu.sh``: every figure its steps appended as JSON lines, in tables, with the goals.

    python -m benchmarks.gpu_report FIGURES.jsonl REPORT.md [--failed STEP ...]

Goals (issue 17, on one H100-class GPU): a 1000-run, 20,000-step formal-language zoo in at most 10 minutes and
at least 130x the one-run baseline of the same run; sequential MNIST in at most 15 minutes; emulation
pretraining at least 5x the paper's steps/s for both probing encoders and DWS, 2x for the others. A figure
measured on a CPU is shown but judged against no goal.
"""

from __future__ import annotations

import argparse
import json
import platform
from pathlib import Path

import torch

ZOO_MINUTES = {"formal-lang": 10.0, "seq-mnist": 15.0}
ZOO_RATIO = {"formal-lang": 130.0}
PRETRAIN_FACTOR = {"interactive_probing": 5.0, "noninteractive_probing": 5.0, "dws": 5.0}
"""Goal factors over the paper's H100 steps/s; every other encoder 2x."""


def device_line() -> str:
    """The GPU (or CPU) and torch version this report comes from."""
    if torch.cuda.is_available():
        return f"{torch.cuda.get_device_name()}, torch {torch.__version__}, CUDA {torch.version.cuda}"
    return f"CPU {platform.processor() or platform.machine()} ({torch.get_num_threads()} threads), torch {torch.__version__}"


def verdict(passed: bool | None) -> str:
    return "" if passed is None else ("yes" if passed else "**no**")


def builder_table(rows: list[dict], on_gpu: bool) -> list[str]:
    lines = ["| zoo | builder | K | one-run baseline (steps/s) | ours (model-steps/s) | training ratio | snapshot of K (s) "
             "| projected 1000 x 20,000 zoo (min) | zoo ratio | goal met |", "|" + "---|" * 10]
    for row in rows:
        goal_minutes, goal_ratio = ZOO_MINUTES.get(row["zoo"]), ZOO_RATIO.get(row["zoo"])
        passed = None
        if on_gpu and goal_minutes is not None:
            passed = row["projected_zoo_min"] <= goal_minutes and (goal_ratio is None or row["zoo_ratio"] >= goal_ratio)
        lines.append(f"| {row['zoo']} | {row['lever']} | {row['runs_per_batch']} | {row['baseline_steps_per_s']:.1f} "
                     f"| {row['ours_model_steps_per_s']:,.0f} | {row['training_ratio']:.1f}x | {row['snapshot_s']:.2f} "
                     f"| {row['projected_zoo_min']:.1f} | {row['zoo_ratio']:.1f}x | {verdict(passed)} |")
    return lines


def pretrain_table(rows: list[dict], on_gpu: bool) -> list[str]:
    lines = ["| encoder | ours (steps/s) | DataLoader pipeline (steps/s) | paper, H100 (steps/s) | ours / paper | goal | goal met |",
             "|" + "---|" * 7]
    for row in rows:
        factor = PRETRAIN_FACTOR.get(row["encoder"], 2.0)
        ratio = row["ours_steps_per_s"] / row["paper_h100_steps_per_s"]
        lines.append(f"| {row['encoder']} | {row['ours_steps_per_s']:.2f} | {row['dataloader_steps_per_s']:.2f} "
                     f"| {row['paper_h100_steps_per_s']:.1f} | {ratio:.2f}x | {factor:.0f}x | {verdict(ratio >= factor if on_gpu else None)} |")
    return lines


def build_table(rows: list[dict]) -> list[str]:
    lines = ["| zoo | options | wall time (s) | rows | expected rows | rows per split | checks |", "|" + "---|" * 7]
    for row in rows:
        checks = "verify ok" if not row["problems"] else "; ".join(row["problems"][:3])
        splits = ", ".join(f"{name} {count}" for name, count in row.get("rows_per_split", {}).items())
        lines.append(f"| {row['zoo']} | `{row['options']}` | {row['wall_s']:.1f} | {row.get('rows', '')} "
                     f"| {row.get('expected_rows', '')} | {splits} | {checks} |")
    return lines


def accuracy_tables(rows: list[dict]) -> list[str]:
    """Per build, ``accuracy`` by snapshot step over all its runs: mean and quartiles."""
    lines = []
    for row in rows:
        if not row.get("accuracy_by_step"):
            continue
        lines += ["", f"`{row['zoo']} {row['options']}`: accuracy by snapshot step, over all runs", "",
                  "| step | runs | mean | 25 % | median | 75 % |", "|" + "---|" * 6]
        for step, figures in row["accuracy_by_step"].items():
            lines.append(f"| {step} | {figures['runs']} | {figures['mean']:.4f} | {figures['q25']:.4f} "
                         f"| {figures['median']:.4f} | {figures['q75']:.4f} |")
    return lines


def drift_table(rows: list[dict]) -> list[str]:
    lines = ["| reference | other | runs, seeds, tasks | largest weight drift by step | largest accuracy drift by step |",
             "|" + "---|" * 5]
    for row in rows:
        weights = ", ".join(f"{step}: {value:.1e}" for step, value in row["max_weight_drift_by_step"].items())
        accuracy = ", ".join(f"{step}: {value:.3f}" for step, value in row["max_accuracy_drift_by_step"].items())
        exact = "identical" if not row["problems"] else "; ".join(row["problems"])
        lines.append(f"| {Path(row['reference']).name} | {Path(row['other']).name} | {exact} | {weights} | {accuracy} |")
    return lines


def report(figures: list[dict], failed: list[str], title: str = "benchmarks/gpu.sh") -> str:
    """The whole report as Markdown: a section for each kind of figure there is."""
    on_gpu = torch.cuda.is_available()
    sections = {name: [row for row in figures if row["section"] == name] for name in ("builder", "pretrain", "build", "drift")}
    lines = [f"# {title}", "", f"Measured on {device_line()}.", ""]
    if failed:
        lines += [f"**Failed steps:** {', '.join(failed)} (their figures are missing below).", ""]
    if sections["builder"]:
        lines += ["## Builders (ours against one nn.LSTM run at a time, same process)", "", *builder_table(sections["builder"], on_gpu), "",
                  "The projection is 20,001 training updates plus 9 snapshots per chunk of K runs, from the timed steps "
                  "(after warm-up: compilation and graph capture are paid once per chunk, outside the projection).", ""]
    if sections["pretrain"]:
        lines += ["## Emulation pretraining, 64 RNNs per step", "", *pretrain_table(sections["pretrain"], on_gpu), ""]
    if sections["build"]:
        lines += ["## Real builds", "", *build_table(sections["build"]), *accuracy_tables(sections["build"]), ""]
    if sections["drift"]:
        lines += ["## Same options, different devices or levers", "", *drift_table(sections["drift"]), ""]
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("figures", type=Path)
    parser.add_argument("report", type=Path)
    parser.add_argument("--failed", nargs="*", default=[], help="names of the steps that failed")
    parser.add_argument("--title", default="benchmarks/gpu.sh", help="the report's heading")
    args = parser.parse_args(argv)
    figures = [json.loads(line) for line in args.figures.read_text().splitlines() if line.strip()] if args.figures.exists() else []
    args.report.write_text(report(figures, args.failed, args.title))
    print(args.report.read_text())


if __name__ == "__main__":
    main()
