"""A real build, timed and checked, and the drift between two builds of the same zoo (say on CPU and on a GPU).

    python -m benchmarks.build_check build ZOO --out DIR [builder options] [--json FILE]
    python -m benchmarks.build_check compare REFERENCE OTHER [--json FILE]

``build`` runs ``rnn-zoos build ZOO`` with the options given, then checks the zoo: rows per split add up to
runs x snapshot steps and :func:`rnn_zoos.hub.verify.verify_zoo` finds nothing; its figures hold the rows of each
split and the ``accuracy`` of every snapshot step over all runs (mean and quartiles), read from the Parquet files.
``compare`` checks that two zoos of the same options have exactly the same runs, seeds and tasks, and reports how
far the snapshots drifted apart (largest absolute weight and accuracy difference per snapshot step; step 0 holds the
weights after one update, so it may drift too). Either exits 1 when a check fails; the figures go to stdout and, with ``--json``, as one line to FILE.
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from collections import defaultdict
from pathlib import Path

import pyarrow as pa
import pyarrow.parquet as pq
import torch

from rnn_zoos.format.blob import decode_weights
from rnn_zoos.builder.command import main as build_main
from rnn_zoos.format.info import ZooInfo
from rnn_zoos.hub.verify import verify_zoo

EXACT_COLUMNS = ("run", "step", "seed", "task")


def timed_build(zoo: str, argv: list[str]) -> dict:
    """Build with ``rnn-zoos build ZOO argv`` and check the result; the figures, with ``problems`` empty when it passed."""
    start = time.perf_counter()
    status = build_main(zoo, argv)
    seconds = time.perf_counter() - start
    out = Path(argv[argv.index("--out") + 1])
    options = " ".join(arg for index, arg in enumerate(argv) if arg != "--out" and (index == 0 or argv[index - 1] != "--out"))
    figures: dict = {"section": "build", "zoo": zoo, "options": options, "wall_s": seconds, "problems": []}
    if status != 0:
        figures["problems"].append(f"the build exited with status {status}")
        return figures
    info = ZooInfo.load(out)
    rows, runs = info.num_rows, int(info.builder["runs"])
    figures.update(rows=rows, expected_rows=runs * len(info.snapshot_steps))
    if rows != runs * len(info.snapshot_steps):
        figures["problems"].append(f"{rows} rows, expected {runs} runs x {len(info.snapshot_steps)} snapshots")
    figures["problems"] += verify_zoo(out)
    figures.update(summary(out))
    return figures


def summary(folder: Path) -> dict:
    """The rows of each split, and per snapshot step the mean and quartiles of ``accuracy`` over every run of every
    split, read from the zoo's Parquet files (only their ``step`` and ``accuracy`` columns)."""
    splits = split_tables(folder, columns=["step", "accuracy"])
    rows_per_split = {name: sum(part.num_rows for part in parts) for name, parts in splits.items()}
    table = pa.concat_tables([part for parts in splits.values() for part in parts])
    steps = torch.tensor(table.column("step").to_numpy())
    accuracy = torch.tensor(table.column("accuracy").to_numpy(), dtype=torch.float64)
    by_step = {}
    for step in sorted(set(steps.tolist())):
        values = accuracy[steps == step]
        q25, median, q75 = torch.quantile(values, torch.tensor([0.25, 0.5, 0.75], dtype=torch.float64)).tolist()
        by_step[str(step)] = {"runs": len(values), "mean": values.mean().item(), "q25": q25, "median": median, "q75": q75}
    return {"rows_per_split": rows_per_split, "accuracy_by_step": by_step}


def split_tables(folder: Path, columns: list[str] | None = None) -> dict[str, list[pa.Table]]:
    """The data files of each split of a zoo folder, as ``meta/info.json`` lists them, read as tables (only
    ``columns``, if given; a split without rows has no files)."""
    info = json.loads((folder / "meta" / "info.json").read_text())
    return {name: [pq.read_table(folder / path, columns=columns) for path in entry["files"]] for name, entry in info["splits"].items()}


def rows_of(folder: Path) -> pa.Table:
    """Every row of a zoo folder, ordered by (run, step)."""
    table = pa.concat_tables([part for parts in split_tables(folder).values() for part in parts])
    return table.sort_by([("run", "ascending"), ("step", "ascending")])


def compare(reference: Path, other: Path) -> dict:
    """Exact columns of two zoos of the same options, and the drift of every snapshot."""
    a, b = rows_of(reference), rows_of(other)
    problems = [f"column {name} differs" for name in EXACT_COLUMNS if a.column(name).to_pylist() != b.column(name).to_pylist()]
    weight_drift: dict[int, float] = defaultdict(float)
    accuracy_drift: dict[int, float] = defaultdict(float)
    if not problems:
        steps = a.column("step").to_pylist()
        blobs_a, blobs_b = a.column("weights").to_pylist(), b.column("weights").to_pylist()
        accuracy_a, accuracy_b = a.column("accuracy").to_pylist(), b.column("accuracy").to_pylist()
        for step, blob_a, blob_b, acc_a, acc_b in zip(steps, blobs_a, blobs_b, accuracy_a, accuracy_b):
            weights_b = decode_weights(blob_b)
            drift = max(float((tensor - weights_b[name]).abs().max()) for name, tensor in decode_weights(blob_a).items())
            weight_drift[step] = max(weight_drift[step], drift)
            accuracy_drift[step] = max(accuracy_drift[step], abs(acc_a - acc_b))
    return {"section": "drift", "reference": str(reference), "other": str(other), "rows": a.num_rows,
            "max_weight_drift_by_step": dict(weight_drift), "max_accuracy_drift_by_step": dict(accuracy_drift),
            "problems": sorted(set(problems))}


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    commands = parser.add_subparsers(dest="command", required=True)
    build = commands.add_parser("build", help="build a zoo, timed, and check it")
    build.add_argument("zoo")
    compared = commands.add_parser("compare", help="compare two zoos built with the same options")
    compared.add_argument("reference", type=Path)
    compared.add_argument("other", type=Path)
    for command in (build, compared):
        command.add_argument("--json", default=None, help="append the figures as one JSON line to this file")
    args, rest = parser.parse_known_args(argv)
    if args.command == "compare" and rest:
        parser.error(f"unknown options {rest}")
    figures = timed_build(args.zoo, rest) if args.command == "build" else compare(args.reference, args.other)
    figures["torch"] = torch.__version__
    print(json.dumps(figures, indent=1))
    if args.json:
        with open(args.json, "a") as handle:
            handle.write(json.dumps(figures) + "\n")
    return 1 if figures["problems"] else 0


if __name__ == "__main__":
    sys.exit(main())
