"""Sharing a build between processes: one process against N workers (--worker I/N) and against Ray, on the same zoo.

    python -m benchmarks.build_workers [--runs 8] [--steps 200] [--rnns-per-batch 2] [--workers 2]

Builds the same small formal-language zoo three times into temporary folders, each as its command
line would: one process; ``--workers`` processes started together with ``--worker I/N`` (one torch
thread each); and ``--ray`` with a local Ray instance of ``--workers`` CPUs. Prints the wall time of
each, the speed-ups over one process, and checks that the three zoos hold the same data files.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent


def build(out: Path, options: list[str], extra: list[str], workers: int = 1, env: dict | None = None) -> float:
    """Seconds to build ``out`` with ``workers`` processes of ``rnn-zoos build formal-lang`` started together."""
    command = [sys.executable, "-m", "rnn_zoos.cli", "build", "formal-lang", "--out", str(out), *options]
    started = time.perf_counter()
    processes = [subprocess.Popen([*command, *(extra if workers == 1 else ["--worker", f"{index}/{workers}"])], cwd=ROOT,
                                  stdout=subprocess.DEVNULL, env={**os.environ, **(env or {})}) for index in range(workers)]
    if any(process.wait() for process in processes):
        raise SystemExit(f"a build into {out} failed")
    return time.perf_counter() - started


def checksums(out: Path) -> dict[str, str]:
    return json.loads((out / "meta" / "info.json").read_text())["checksums"]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--runs", type=int, default=8)
    parser.add_argument("--steps", type=int, default=200)
    parser.add_argument("--rnns-per-batch", "--runs-per-batch", dest="runs_per_batch", type=int, default=2)
    parser.add_argument("--workers", type=int, default=2)
    args = parser.parse_args()
    options = ["--runs", str(args.runs), "--steps", str(args.steps), "--rnns-per-batch", str(args.runs_per_batch), "--device", "cpu"]
    with tempfile.TemporaryDirectory() as scratch:
        folder = Path(scratch)
        one = build(folder / "one", options, [])
        shared = build(folder / "workers", options, [], workers=args.workers, env={"OMP_NUM_THREADS": "1"})
        ray = build(folder / "ray", options, ["--ray"], env={"RNN_ZOOS_RAY_CPUS": str(args.workers)})
        same = checksums(folder / "one") == checksums(folder / "workers") == checksums(folder / "ray")
    print(f"{args.runs} runs x {args.steps} steps, {args.runs_per_batch} runs per chunk, {os.cpu_count()} CPU cores")
    print(f"one process:            {one:7.1f} s")
    print(f"{args.workers} workers (--worker):  {shared:7.1f} s   speed-up {one / shared:.2f}x")
    print(f"Ray, {args.workers} CPUs (--ray):     {ray:7.1f} s   speed-up {one / ray:.2f}x")
    print(f"the same data files in all three: {same}")
    if not same:
        raise SystemExit(1)


if __name__ == "__main__":
    main()
