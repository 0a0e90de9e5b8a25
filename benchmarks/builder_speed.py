"""Shared measurement for the builder benchmarks: our batched builder against a one-run-at-a-time loop.

Both are timed in the same process on the same device. Ours is the builder's own code path
(:class:`rnn_zoos.builder.build.ChunkTrainer`: the recipe's loss and the batched AdamW for K runs, and a
snapshot: evaluation, weight encoding and the Parquet write). The baseline is a plain
``torch.nn.LSTM`` training loop for one run with ``torch.optim.AdamW`` and the same recipe, without
snapshots (which flatters it). The projection for a whole zoo adds the snapshot cost to ours only.
"""

from __future__ import annotations

import argparse
import json
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path

import torch

from rnn_zoos.common.arguments import DEVICE, CommandParser, check_device, renamed
from rnn_zoos.builder.build import BuildConfig, Chunk, ChunkTrainer, ZooRecipe
from rnn_zoos.builder.claims import claim_chunk
from rnn_zoos.builder.chunk_trainer import WARMUP_STEPS
from rnn_zoos.lstm.training import PAPER_SNAPSHOT_STEPS, PAPER_STEPS, TrainingSchedule


WARMUP = WARMUP_STEPS + 2
"""Untimed steps of ours: the uncaptured steps before a CUDA graph is captured, the capture, and one replay."""


def synchronize(device: str) -> None:
    """Wait for queued GPU work, so wall-clock times are real."""
    if device == "cuda":
        torch.cuda.synchronize()


PROFILED_STEPS = 3
"""Steps recorded by :func:`profile_steps`, after the timed ones."""


def profile_steps(step: Callable[[], None], device: str, title: str, out: str, steps: int = PROFILED_STEPS) -> None:
    """Append to the Markdown file ``out`` where the time of ``steps`` calls of ``step()`` goes: wall time per step, the
    device's busy time per step (the sum of its kernels' times) and so the share of the wall time it idles waiting for
    the host, the host's time in operators, and the operators that take the most time on the device (on a CPU: on the
    host), from ``torch.profiler``. A profiler that fails writes its error there instead."""
    try:
        lines = _profile_lines(step, device, title, steps)
    except Exception as error:  # a profiler that fails on this device must not cost the figures timed before it
        lines = [f"## {title}", "", f"torch.profiler failed: {type(error).__name__}: {error}", ""]
    with open(out, "a") as handle:
        handle.write("\n".join(lines) + "\n")


def _profile_lines(step: Callable[[], None], device: str, title: str, steps: int) -> list[str]:
    from torch.autograd import DeviceType
    from torch.profiler import ProfilerActivity, profile

    on_gpu = device == "cuda"
    activities = [ProfilerActivity.CPU, *([ProfilerActivity.CUDA] if on_gpu else [])]
    synchronize(device)
    with profile(activities=activities) as trace:
        start = time.perf_counter()
        for _ in range(steps):
            step()
        synchronize(device)
        wall = (time.perf_counter() - start) / steps
    averages = trace.key_averages()
    lines = [f"## {title}", "", f"{steps} step{'s' if steps != 1 else ''} recorded with torch.profiler; wall time {wall * 1e3:.2f} ms per step."]
    if on_gpu:
        kernels = [event for event in averages if event.device_type == DeviceType.CUDA and not getattr(event, "is_user_annotation", False)]
        busy = sum(event.self_device_time_total for event in kernels) / 1e6 / steps  # as the table's "Self CUDA time total"
        lines.append(f"Device busy {busy * 1e3:.2f} ms per step (sum of kernel times): idle {max(0.0, 1 - busy / wall):.0%} "
                     "of the wall time, which is time the device waits for the host (launches, Python, synchronisation).")
    host = sum(event.self_cpu_time_total for event in averages) / 1e6 / steps
    lines += [f"Host time in operators {host * 1e3:.2f} ms per step.", "", "```",
              averages.table(sort_by="self_device_time_total" if on_gpu else "self_cpu_time_total", row_limit=12,
                             max_name_column_width=60), "```", ""]
    return lines


def time_ours(recipe: ZooRecipe, runs_per_batch: int, steps: int, device: str, compile: bool = False,
              cuda_graphs: bool = False, profile: str | None = None, title: str = "") -> tuple[float, float]:
    """Seconds per training step of K batched runs, and seconds per snapshot of those K runs.

    The steps timed follow :data:`WARMUP` untimed ones: allocations, kernels, and with a lever on, compiling the
    loss and capturing the CUDA graph (a cost paid once per chunk, reported apart by :func:`time_setup`). With
    ``profile`` (a file), :data:`PROFILED_STEPS` more steps are recorded there by :func:`profile_steps`.
    """
    with tempfile.TemporaryDirectory() as folder:
        config = BuildConfig(out=folder, runs=runs_per_batch, steps=PAPER_STEPS, device=device, compile=compile,
                             cuda_graphs=cuda_graphs)
        trainer = ChunkTrainer(recipe, config, Chunk(0, runs_per_batch), claim_chunk(Path(folder) / "chunk", take_over=False))
        for step in range(1, WARMUP + 1):
            trainer.train_step(step)
        synchronize(device)
        start = time.perf_counter()
        for step in range(WARMUP + 1, WARMUP + steps + 1):
            trainer.train_step(step)
        synchronize(device)
        per_step = (time.perf_counter() - start) / steps
        if profile:
            next_step = iter(range(WARMUP + steps + 1, WARMUP + steps + 1 + PROFILED_STEPS))
            profile_steps(lambda: trainer.train_step(next(next_step)), device, title, profile)
        start = time.perf_counter()
        trainer.write_snapshot(PAPER_STEPS)
        synchronize(device)
        per_snapshot = time.perf_counter() - start
    return per_step, per_snapshot


def one_run_loop(model: torch.nn.Module, weight_decay: float, loss_of_step: Callable[[int], torch.Tensor]) -> Callable[[int], None]:
    """The usual training step of one run: ``torch.optim.AdamW`` on ``loss_of_step(step)`` with the paper's learning rate."""
    optimizer = torch.optim.AdamW(model.parameters(), lr=0.01, weight_decay=weight_decay)
    schedule = TrainingSchedule()

    def train_step(step: int) -> None:
        loss = loss_of_step(step)
        optimizer.zero_grad()
        loss.backward()
        for group in optimizer.param_groups:
            group["lr"] = schedule.learning_rate(step)
        optimizer.step()

    return train_step


def time_baseline(train_step: Callable[[int], None], steps: int, device: str) -> float:
    """Seconds per step of a one-run training loop, ``train_step(step)``, after one warm-up step."""
    train_step(1)
    synchronize(device)
    start = time.perf_counter()
    for step in range(2, steps + 2):
        train_step(step)
    synchronize(device)
    return (time.perf_counter() - start) / steps


def arguments(description: str, extra: Callable[[argparse.ArgumentParser], None] | None = None) -> argparse.Namespace:
    """Command line shared by the builder benchmarks (``extra`` adds a benchmark's own options)."""
    parser = CommandParser(f"python -m benchmarks.{Path(sys.argv[0]).stem}", description)
    parser.add(DEVICE)
    parser.add(renamed("runs_per_batch", {"type": int, "default": 1000, "metavar": "K", "help": "runs trained at once by our builder"}))
    parser.add_argument("--steps", type=int, default=20, help="timed training steps of our builder")
    parser.add_argument("--baseline-steps", type=int, default=200, help="timed steps of the one-run loop")
    parser.add_argument("--compile", action="store_true", help="time our builder with --compile")
    parser.add_argument("--cuda-graphs", action="store_true", help="time our builder with --cuda-graphs")
    parser.add_argument("--json", default=None, help="also append the figures as one JSON line to this file")
    parser.add_argument("--profile", default=None, metavar="FILE",
                        help="also record a few steps of ours with torch.profiler and append where their time goes to FILE (Markdown)")
    if extra:
        extra(parser)
    args = parser.parse_args()
    args.device = check_device(args.device)
    return args


def lever_name(args: argparse.Namespace) -> str:
    """The builder options timed, in words: ``eager``, ``compile``, ``cuda-graphs`` or ``compile + cuda-graphs``."""
    return " + ".join(name for name, on in (("compile", args.compile), ("cuda-graphs", args.cuda_graphs)) if on) or "eager"


def report(name: str, args: argparse.Namespace, ours: tuple[float, float], baseline: float, zoo_runs: int = 1000) -> dict:
    """Print the figures and the ratio, and project a whole zoo (``zoo_runs`` runs of the paper's length); returns the
    figures (also appended to ``args.json`` as one line when given)."""
    per_step, per_snapshot = ours
    k = args.runs_per_batch
    ours_rate, baseline_rate = k / per_step, 1 / baseline
    device = torch.cuda.get_device_name() if args.device == "cuda" else f"cpu ({torch.get_num_threads()} threads)"
    chunks = -(-zoo_runs // k)
    updates = TrainingSchedule().updates
    ours_zoo = chunks * (updates * per_step + len(PAPER_SNAPSHOT_STEPS) * per_snapshot)
    baseline_zoo = zoo_runs * updates * baseline
    lever = lever_name(args)
    print(f"{name} builder benchmark on {device}, torch {torch.__version__}, ours {lever}")
    print(f"  baseline, one nn.LSTM run at a time : {baseline_rate:10.1f} model-steps/s  ({baseline * 1e3:.2f} ms/step)")
    print(f"  ours, K={k} runs batched           : {ours_rate:10.1f} model-steps/s  ({per_step * 1e3:.1f} ms/step)")
    print(f"  ratio ours / baseline (training)   : {ours_rate / baseline_rate:10.1f}x")
    print(f"  ours, one snapshot of {k} runs      : {per_snapshot:10.2f} s")
    print(f"  projected {zoo_runs}-run, {PAPER_STEPS}-step zoo: ours {ours_zoo / 60:.1f} min (snapshots included), "
          f"baseline {baseline_zoo / 3600:.1f} h (training only); ratio {baseline_zoo / ours_zoo:.1f}x")
    figures = {"section": "builder", "zoo": name, "lever": lever, "device": device, "runs_per_batch": k,
               "baseline_steps_per_s": baseline_rate, "ours_model_steps_per_s": ours_rate, "training_ratio": ours_rate / baseline_rate,
               "snapshot_s": per_snapshot, "projected_zoo_min": ours_zoo / 60, "baseline_zoo_h": baseline_zoo / 3600,
               "zoo_ratio": baseline_zoo / ours_zoo}
    if args.json:
        with open(args.json, "a") as handle:
            handle.write(json.dumps(figures) + "\n")
    return figures
