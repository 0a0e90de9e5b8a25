"""The resumable zoo builder shared by every zoo: chunks of runs trained as one batched model.

A zoo-specific :class:`ZooRecipe` says what a run trains on and what a snapshot records;
:func:`build_zoo` does the rest: per-run seeds, batching K runs at a time, AdamW, checkpoints,
resuming, the progress bar, and finally the Hub layout (splits, shards, ``meta/info.json``, card).

Work in progress lives in ``OUT/.build/``: ``config.json`` (what the zoo is), then one folder per
chunk of runs holding a Parquet part per snapshot step, a checkpoint and, once done, ``finished``.
Runs draw every random number from counter-based streams keyed by their seed and step
(:mod:`rnn_zoos.streams`), so a resumed or differently batched build gives the same zoo.

One builder at a time works in a folder: it holds the OS lock of ``OUT/.build.lock`` (see
:func:`build_lock`) from before it reads the folder until the zoo is finished. A second builder of
the same zoo waits and then finds the zoo complete; one with other options is refused.
"""

from __future__ import annotations

import dataclasses
import math
import os
import platform
import re
import shutil
import sys
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pyarrow as pa
import pyarrow.parquet as pq
import torch
from tqdm.auto import tqdm

from .arguments import parse_config
from .build_config import BuildConfig
from .build_folder import LOCK_FILE, TRASH_DIR, WORK_DIR, build_lock, prepare_output
from .cards import provenance_fields
from .chunk_trainer import Chunk, ChunkTrainer
from .errors import ZooError, report
from .format import FORMAT_VERSION
from .layout import plan_splits, summary_line, write_zoo_layout
from .streams import run_seeds
from .training import TrainingSchedule, initial_params
from .zoos import ZooRecipe, zoo_kind

__all__ = ["LOCK_FILE", "TRASH_DIR", "WORK_DIR", "BuildConfig", "Chunk", "ChunkTrainer", "ZooRecipe", "build_lock", "build_zoo", "main"]

MEMORY_HEADROOM = 4.0
"""Peak memory of a run in a batch, over the activations autograd saves in one of its training steps.
Measured on CPU: 1.5 to 1.6 for a training step, 1.8 (sequential MNIST) and 3.1 (formal languages, which sample
1000 strings) for a snapshot; rounded up."""
INTERRUPTED = "interrupted; run the same command to resume"
_CHUNK_PATTERN = re.compile(r"runs-(\d{5})-(\d{5})")


def main(zoo: str, argv: list[str] | None = None, prog: str | None = None) -> int:
    """``rnn-zoos build ZOO``: parse the zoo kind's options, check them, make its recipe and build; returns the exit status.

    A :class:`ZooError` ends in one ``error:`` line (status 2, or 1 for a damaged zoo), Ctrl-C in one
    line that says how to resume (status 130), neither with a traceback. A finished build ends with
    one summary line: the folder, the rows per split and the time it took.
    """
    kind = zoo_kind(zoo)
    config = parse_config(kind.build_config, prog or f"rnn-zoos build {zoo}", f"Build the {zoo} zoo: {kind.description}.", argv)
    started = time.monotonic()
    try:
        config.validate()
        out = build_zoo(kind.recipe(config), config)
    except ZooError as error:
        return report(error)
    except KeyboardInterrupt:
        print(INTERRUPTED, file=sys.stderr)
        return 130
    print(summary_line(out, time.monotonic() - started))
    return 0


def build_command(kind_name: str, config: BuildConfig) -> str:
    """The command that builds this zoo: ``rnn-zoos build ZOO`` with every option of ``config`` spelled out."""
    options = []
    for item in dataclasses.fields(config):
        value = getattr(config, item.name)
        if value is True:
            options.append(f"--{item.name.replace('_', '-')}")
        elif value is not None and value is not False:
            options.append(f"--{item.name.replace('_', '-')} {value}")
    return f"rnn-zoos build {kind_name} {' '.join(options)}"


def device_description(device: str) -> str:
    """The device a zoo was built on, in words: the GPU's name, or the CPU's."""
    if device == "cuda" and torch.cuda.is_available():
        return f"cuda ({torch.cuda.get_device_name()})"
    return f"cpu ({platform.processor() or platform.machine()}, {os.cpu_count()} cores, {torch.get_num_threads()} threads)"


def zoo_identity(recipe: ZooRecipe, config: BuildConfig) -> dict[str, Any]:
    """Everything that determines a zoo's content; two builds with equal identities give the same zoo."""
    return {
        "zoo": recipe.kind.name,
        "format_version": FORMAT_VERSION,
        "runs": config.runs,
        "steps": config.steps,
        "seed": config.seed,
        **recipe.content_config(),
    }


def check_batch_fits(recipe: ZooRecipe, config: BuildConfig) -> None:
    """Refuse a batch of runs (``--runs-per-batch``) that would not fit in the memory free on the device, saying how many fit."""
    device = torch.device(config.device)
    per_run = memory_per_run(recipe, config)
    free = available_memory(device)
    fitting = int(free // per_run)
    if config.batch_runs <= fitting:
        return
    given = "" if config.runs_per_batch else f" (the default on {device.type})"
    advice = f"pass --runs-per-batch {fitting} or less" if fitting else "free some memory or use another machine"
    raise ZooError(f"--runs-per-batch {config.batch_runs}{given} needs about {config.batch_runs * per_run / 1e9:.1f} GB; "
                   f"about {fitting} fit in the {free / 1e9:.1f} GB free on {device.type}: {advice}")


def memory_per_run(recipe: ZooRecipe, config: BuildConfig) -> int:
    """Estimated bytes that one run adds to a batch at its peak, on ``config.device``.

    :data:`MEMORY_HEADROOM` times the activations autograd saves in one training step, measured on
    one run, plus the run's weights, gradients and two AdamW moments.
    """
    seeds = torch.tensor(run_seeds(config.seed, [0]), dtype=torch.int64, device=torch.device(config.device))
    params = {name: tensor.requires_grad_() for name, tensor in initial_params(recipe.kind.architecture, seeds).items()}
    saved: dict[int, int] = {}

    def count(tensor: torch.Tensor) -> torch.Tensor:
        storage = tensor.untyped_storage()
        saved[storage.data_ptr()] = storage.nbytes()
        return tensor

    with torch.autograd.graph.saved_tensors_hooks(count, lambda tensor: tensor):
        recipe.loss(params, recipe.setup(seeds), seeds, 1)
    return int(MEMORY_HEADROOM * sum(saved.values())) + 4 * sum(tensor.nbytes for tensor in params.values())


def available_memory(device: torch.device) -> float:
    """Bytes free for a new batch on ``device``: what CUDA reports free, or on CPU the kernel's ``MemAvailable``
    capped by what this process's cgroup (v2) still allows."""
    if device.type == "cuda":
        return float(torch.cuda.mem_get_info(device)[0])
    return min(_memory_available(), _cgroup_headroom())


def _memory_available() -> float:
    """``MemAvailable`` of ``/proc/meminfo`` in bytes, or the free physical pages where there is no such file."""
    try:
        for line in Path("/proc/meminfo").read_text().splitlines():
            if line.startswith("MemAvailable:"):
                return float(line.split()[1]) * 1024
    except OSError:
        pass
    return float(os.sysconf("SC_AVPHYS_PAGES") * os.sysconf("SC_PAGE_SIZE"))


def _cgroup_headroom() -> float:
    """Bytes left under the memory limit of this process's cgroup (v2); infinite where it has none or none can be read."""
    try:
        relative = next(line[3:] for line in Path("/proc/self/cgroup").read_text().splitlines() if line.startswith("0::"))
        folder = Path("/sys/fs/cgroup") / relative.lstrip("/")
        limit = (folder / "memory.max").read_text().strip()
        return math.inf if limit == "max" else float(int(limit) - int((folder / "memory.current").read_text()))
    except (OSError, StopIteration, ValueError):
        return math.inf


def _plan_chunks(work: Path, runs: int, batch_runs: int) -> list[Chunk]:
    """Chunks already started (kept as they are) followed by new chunks of ``batch_runs`` for the remaining runs."""
    started = sorted(
        Chunk(int(match[1]), int(match[2]) + 1)
        for path in work.iterdir()
        if path.is_dir() and (match := _CHUNK_PATTERN.fullmatch(path.name))
    )
    covered = {run for chunk in started for run in range(chunk.first, chunk.stop)}
    plan = list(started)
    first = 0
    while first < runs:
        if first in covered:
            first += 1
            continue
        stop = first
        while stop < runs and stop not in covered and stop - first < batch_runs:
            stop += 1
        plan.append(Chunk(first, stop))
        first = stop
    return sorted(plan, key=lambda chunk: chunk.first)


def build_zoo(recipe: ZooRecipe, config: BuildConfig) -> Path:
    """Build (or finish building) a zoo into ``config.out``; returns the folder.

    Interrupting at any moment and calling again with the same options continues from the work
    already done and ends with the same zoo. One builder at a time works in ``config.out`` (see
    :func:`build_lock`); a batch too large for the device's memory is refused before anything starts.
    """
    config.validate()
    check_batch_fits(recipe, config)
    out = Path(config.out)
    identity = zoo_identity(recipe, config)
    with build_lock(out, identity):
        if prepare_output(out, identity):
            _train_and_finalize(recipe, config, identity, out)
        else:
            print(f"{out}: the zoo is already complete ({identity})")
    return out


def _train_and_finalize(recipe: ZooRecipe, config: BuildConfig, identity: dict[str, Any], out: Path) -> None:
    """Train every chunk not finished yet, write the Hub layout and discard the work folder."""
    work = out / WORK_DIR
    chunks = _plan_chunks(work, config.runs, config.batch_runs)
    total = config.runs * config.steps
    with tqdm(total=total, desc=f"training {recipe.kind.name}", unit=" model-steps", unit_scale=True, smoothing=0.05) as progress:
        for chunk in chunks:
            folder = work / chunk.name
            if (folder / "finished").exists():
                progress.update((chunk.stop - chunk.first) * config.steps)
                continue
            ChunkTrainer(recipe, config, chunk, folder).run(progress)
    _finalize(recipe, config, identity, out, [work / chunk.name for chunk in chunks])
    _discard(work)


def _discard(work: Path) -> None:
    """Remove the work folder of a finished build: renamed away first, so no half-deleted ``.build`` is left."""
    trash = work.with_name(TRASH_DIR)
    if trash.exists():
        shutil.rmtree(trash)
    os.replace(work, trash)
    shutil.rmtree(trash)


def _run_tasks(chunk_folders: list[Path]) -> dict[int, Any]:
    """The task of every run, read from the first part of each chunk."""
    tasks: dict[int, Any] = {}
    for folder in chunk_folders:
        first_part = min(folder.glob("step-*.parquet"))
        table = pq.read_table(first_part, columns=["run", "task"])
        tasks.update(zip(table.column("run").to_pylist(), table.column("task").to_pylist()))
    return tasks


def _split_tables(chunk_folders: list[Path], runs: set[int], group: int = 100) -> Iterator[pa.Table]:
    """The rows of ``runs`` as Arrow tables ordered by (run, step), reading a bounded group of runs at a time."""
    for folder in chunk_folders:
        parts = sorted(folder.glob("step-*.parquet"))
        chunk_runs = sorted(run for run in pq.read_table(parts[0], columns=["run"]).column("run").to_pylist() if run in runs)
        for start in range(0, len(chunk_runs), group):
            selected = chunk_runs[start : start + group]
            table = pa.concat_tables(pq.read_table(part, filters=[("run", "in", selected)]) for part in parts)
            yield table.sort_by([("run", "ascending"), ("step", "ascending")])


def _finalize(recipe: ZooRecipe, config: BuildConfig, identity: dict[str, Any], out: Path, chunk_folders: list[Path]) -> None:
    """Assign splits and write the Hub layout from the finished chunks."""
    kind = recipe.kind
    plan = plan_splits(kind, _run_tasks(chunk_folders))
    snapshot_steps = TrainingSchedule(steps=config.steps).snapshot_steps()
    write_zoo_layout(
        out,
        kind,
        plan,
        rows_of=lambda runs: _split_tables(chunk_folders, set(runs)),
        rows_per_split={split: len(entry.runs) * len(snapshot_steps) for split, entry in plan.items()},
        info_fields={"builder": identity, "snapshot_steps": snapshot_steps, "notes": recipe.notes()},
        card_fields={
            "steps": config.steps,
            "provenance": "rebuilt with the batched builder of rnn-zoos",
            **provenance_fields(build_command(kind.name, config), device_description(config.device)),
            "step_zero": "step 0 = the initial weights",
            "seeds": f"zoo seed {config.seed}; run r uses the seed `SeedSequence([{config.seed}, r])` (stored in `seed`), "
            "which alone determines all its random numbers",
            **recipe.card_fields(),
        },
    )
