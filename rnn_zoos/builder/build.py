"""The resumable zoo builder shared by every zoo: chunks of runs trained as one batched model.

A zoo-specific :class:`ZooRecipe` says what a run trains on and what a snapshot records;
:func:`build_zoo` does the rest: per-run seeds, batching K runs at a time, AdamW, checkpoints,
resuming, the progress bar, and finally the Hub layout (splits, shards, ``meta/info.json``, card).

Work in progress lives in ``OUT/.build/``: ``config.json`` (what the zoo is), ``plan.json`` (the
chunks, frozen by the first process), then one folder per chunk of runs holding a Parquet part per
snapshot step, a checkpoint, the claim of the worker training it and, once done, ``finished``.
Runs draw every random number from counter-based streams keyed by their seed and step
(:mod:`rnn_zoos.lstm.streams`), so a resumed or differently batched build gives the same zoo.

Any number of workers may build one folder at once, on one machine or on several sharing it
(:mod:`rnn_zoos.builder.claims`): each trains the chunks it claims, and the last to finish writes the zoo
under the OS lock of ``OUT/.build.lock`` (:func:`build_lock`), which also guards starting a build
and taking over a dead worker's chunk. A process with other options is refused in one line.
"""

from __future__ import annotations

import dataclasses
import math
import os
import platform
import re
import shutil
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pyarrow as pa
import pyarrow.parquet as pq
import torch
from tqdm.auto import tqdm

from ..common.arguments import option_name
from ..zoos.build_config import ENGINE_OPTIONS, BuildConfig
from .build_folder import LOCK_FILE, TRASH_DIR, WORK_DIR, build_lock, prepare_output
from ..hub.cards import provenance_fields
from .chunk_trainer import ChunkTrainer
from .claims import Chunk, Claim, claim_chunk, claim_state, freeze_plan, is_finished, new_plan, release_claim
from ..common.errors import ZooError
from ..format.info import FORMAT_VERSION
from ..hub.layout import plan_splits, write_zoo_layout
from ..lstm.streams import run_seeds
from ..lstm.training import STEP_CONVENTION, TrainingSchedule, initial_params
from ..zoos import ZooRecipe

__all__ = ["LOCK_FILE", "TRASH_DIR", "WORK_DIR", "BuildConfig", "Chunk", "ChunkTrainer", "ZooRecipe", "build_lock", "build_zoo"]

MEMORY_HEADROOM = 4.0
"""Peak memory of a run in a batch, over the activations autograd saves in one of its training steps.
Measured on CPU: 1.5 to 1.6 for a training step, 1.8 (sequential MNIST) and 3.1 (formal languages, which sample
1000 strings) for a snapshot; rounded up."""
_CHUNK_PATTERN = re.compile(r"runs-(\d{5})-(\d{5})")


def build_command(kind_name: str, config: BuildConfig) -> str:
    """The command that builds this zoo: ``rnn-zoos build ZOO`` with every option of ``config`` spelled out."""
    options = []
    for item in dataclasses.fields(config):
        value = getattr(config, item.name)
        if item.name in ENGINE_OPTIONS:
            continue
        if value is True:
            options.append(option_name(item.name))
        elif value is not None and value is not False:
            options.append(f"{option_name(item.name)} {value}")
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
    option = option_name("runs_per_batch")
    advice = f"pass {option} {fitting} or less" if fitting else "free some memory or use another machine"
    raise ZooError(f"{option} {config.batch_runs}{given} needs about {config.batch_runs * per_run / 1e9:.1f} GB; "
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


def _started_chunks(work: Path) -> list[Chunk]:
    """Chunks an unfinished build of an earlier version (without a frozen plan) had started, from their folders."""
    return sorted(
        Chunk(int(match[1]), int(match[2]) + 1)
        for path in work.iterdir()
        if path.is_dir() and (match := _CHUNK_PATTERN.fullmatch(path.name))
    )


def build_zoo(recipe: ZooRecipe, config: BuildConfig, worker: tuple[int, int] | None = None, finalize: bool = False) -> Path:
    """Build (or help build, or finish building) a zoo into ``config.out``; returns the folder.

    Interrupting at any moment and calling again with the same options continues from the work
    already done and ends with the same zoo. Any number of processes may work on one ``config.out``
    at once (:mod:`rnn_zoos.builder.claims`): the first freezes the chunk plan, each trains the chunks it
    claims (``worker = (I, N)`` prefers chunks I, I + N, ...), and the last to finish writes the
    zoo; a process that finds chunks still trained by others says so and returns. ``finalize``
    trains nothing and writes the zoo if every chunk is finished (:class:`ZooError` if not). A
    batch too large for the device's memory is refused before anything starts.
    """
    config.validate()
    out, identity, plan = start_build(recipe, config, check_memory=not finalize)
    if plan is None:
        return out
    if not finalize:
        train_chunks(recipe, config, out, identity, plan, worker)
    unfinished = [chunk for chunk in plan if not is_finished(out / WORK_DIR / chunk.name)]
    if unfinished:
        held = describe_claims(out / WORK_DIR, unfinished)
        if finalize:
            raise ZooError(f"--finalize: {len(unfinished)} of {len(plan)} chunks of {out} are not finished ({held}); "
                           "run the workers to the end first")
        print(f"{out}: {len(unfinished)} of {len(plan)} chunks are still being trained by other workers ({held}); "
              "the last to finish writes the zoo (or run with --finalize once all are done)")
        return out
    finalize_build(recipe, config, identity, out, plan)
    return out


def start_build(recipe: ZooRecipe, config: BuildConfig, check_memory: bool = True) -> tuple[Path, dict[str, Any], list[Chunk] | None]:
    """Check the batch against the device's memory (``check_memory``), then check ``config.out`` and start or join its
    build under the build lock. Returns the folder, the zoo's identity and the frozen chunk plan; the plan is None (and
    this is said) if the zoo is already complete."""
    out = Path(config.out)
    identity = zoo_identity(recipe, config)
    if check_memory:
        check_batch_fits(recipe, config)
    with build_lock(out, identity):
        if not prepare_output(out, identity):
            print(f"{out}: the zoo is already complete ({identity})")
            return out, identity, None
        work = out / WORK_DIR
        plan, _ = freeze_plan(work, new_plan(config.runs, config.batch_runs, _started_chunks(work)), config.batch_runs)
        return out, identity, plan


def worker_order(plan: list[Chunk], worker: tuple[int, int] | None) -> list[Chunk]:
    """The order a worker tries the chunks in: its own (``I, I + N, ...`` of the plan) first, then all others."""
    if worker is None:
        return list(plan)
    index, count = worker
    own = plan[index::count]
    return own + [chunk for chunk in plan if chunk not in own]


def take_chunk(out: Path, identity: dict[str, Any], folder: Path) -> Claim | None:
    """Claim the chunk in ``folder``: a free one at once, a stale one (its worker died) under the build lock."""
    claim = claim_chunk(folder, take_over=False)
    if claim is None and not is_finished(folder) and claim_state(folder)[1]:
        with build_lock(out, identity):
            claim = claim_chunk(folder, take_over=True)
    return claim


def train_chunk(recipe: ZooRecipe, config: BuildConfig, out: Path, identity: dict[str, Any], chunk: Chunk, progress: Any) -> bool:
    """Claim ``chunk`` (:func:`take_chunk`) and train it, keeping the claim alive meanwhile; returns False if it could not
    be claimed (finished, or held by a live worker). ``progress``: a bar with ``update(model_steps)``."""
    folder = out / WORK_DIR / chunk.name
    claim = take_chunk(out, identity, folder)
    if claim is None:
        return False
    with claim.holding():
        try:
            ChunkTrainer(recipe, config, chunk, folder).run(progress)
        finally:  # finished, or interrupted (Ctrl-C, an error): free for the next worker at once
            release_claim(claim)
    return True


def train_chunks(recipe: ZooRecipe, config: BuildConfig, out: Path, identity: dict[str, Any], plan: list[Chunk],
                 worker: tuple[int, int] | None) -> None:
    """Train every chunk of ``plan`` this process can claim, in :func:`worker_order`."""
    work = out / WORK_DIR
    updates = TrainingSchedule(steps=config.steps).updates
    done = sum(chunk.runs for chunk in plan if is_finished(work / chunk.name)) * updates
    with tqdm(total=config.runs * updates, initial=done, desc=f"training {recipe.kind.name}", unit=" model-steps",
              unit_scale=True, smoothing=0.05) as progress:
        for chunk in worker_order(plan, worker):
            if not work.is_dir():
                return  # another worker wrote the zoo
            train_chunk(recipe, config, out, identity, chunk, progress)


def describe_claims(work: Path, chunks: list[Chunk]) -> str:
    """Who holds the claims of ``chunks``, in words."""
    holders = {}
    for chunk in chunks:
        record, stale = claim_state(work / chunk.name)
        key = "unclaimed" if record is None else f"{record.describe()}{' (stale)' if stale else ''}"
        holders.setdefault(key, []).append(chunk.name)
    return "; ".join(f"{key}: {', '.join(names)}" for key, names in holders.items())


def finalize_build(recipe: ZooRecipe, config: BuildConfig, identity: dict[str, Any], out: Path, plan: list[Chunk]) -> None:
    """Write the zoo from the finished chunks and discard the work folder, once: under the build lock, by the first
    process to get there (the others find the work folder gone)."""
    with build_lock(out, identity):
        work = out / WORK_DIR
        if not work.is_dir():
            return
        _finalize(recipe, config, identity, out, [work / chunk.name for chunk in plan])
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
        info_fields={"builder": identity, "snapshot_steps": snapshot_steps, "notes": [STEP_CONVENTION, *recipe.notes()]},
        card_fields={
            "steps": config.steps,
            "provenance": "rebuilt with the batched builder of rnn-zoos",
            **provenance_fields(build_command(kind.name, config), device_description(config.device)),
            "seeds": f"zoo seed {config.seed}; run r uses the seed `SeedSequence([{config.seed}, r])` (stored in `seed`), "
            "which alone determines all its random numbers",
            **recipe.card_fields(),
        },
    )
