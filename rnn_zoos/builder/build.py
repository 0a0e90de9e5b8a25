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

import math
import os
import re
import sys
import time
from pathlib import Path
from typing import Any

import torch
from tqdm.auto import tqdm

from ..common.arguments import option_name
from ..zoos.build_config import BuildConfig
from .build_finalize import build_command, finalize_build
from .build_folder import LOCK_FILE, TRASH_DIR, WORK_DIR, build_lock, prepare_output
from .chunk_trainer import ChunkTrainer
from .claims import (
    Chunk, Claim, claim_chunk, claim_state, freeze_plan, has_damaged_claim, heartbeat_interval, is_finished, new_plan,
    release_claim,
)
from ..common.errors import ZooError
from ..format.info import FORMAT_VERSION, INFO_PATH
from ..lstm.streams import run_seeds
from ..lstm.training import TrainingSchedule, initial_params
from ..zoos import ZooRecipe

__all__ = ["LOCK_FILE", "TRASH_DIR", "WORK_DIR", "BuildConfig", "Chunk", "ChunkTrainer", "ZooRecipe", "build_command", "build_lock", "build_zoo"]

MEMORY_HEADROOM = 4.0
"""Peak memory of a run in a batch, over the activations autograd saves in one of its training steps.
Measured on CPU: 1.5 to 1.6 for a training step, 1.8 (sequential MNIST) and 3.1 (formal languages, which sample
1000 strings) for a snapshot; rounded up."""
_CHUNK_PATTERN = re.compile(r"runs-(\d{5})-(\d{5})")


def zoo_complete(out: Path) -> bool:
    """Whether ``out`` holds a finished zoo: ``meta/info.json`` written and the work folder gone."""
    return (out / INFO_PATH).is_file() and not (out / WORK_DIR).exists()


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
    claims (``worker = (I, N)`` prefers chunks I, I + N, ...), waits while the chunks left are
    trained by others (:func:`train_chunks`), and the first to find all finished writes the zoo. ``finalize``
    trains nothing and writes the zoo if every chunk is finished (:class:`ZooError` if not). A
    batch too large for the device's memory is refused before anything starts.
    """
    config.validate()
    if finalize and not (Path(config.out) / WORK_DIR).is_dir() and not (Path(config.out) / INFO_PATH).is_file():
        raise ZooError(f"--finalize: {config.out} holds no build to finish; run the workers (without --finalize) first")
    out, identity, plan = start_build(recipe, config, check_memory=not finalize)
    if plan is None:
        return out
    if not finalize:
        train_chunks(recipe, config, out, identity, plan, worker)
    unfinished = [chunk for chunk in plan if not is_finished(out / WORK_DIR / chunk.name)]
    if unfinished and (out / WORK_DIR).is_dir():  # training ends only when all are finished: --finalize
        raise ZooError(f"--finalize: {len(unfinished)} of {len(plan)} chunks of {out} are not finished "
                       f"({describe_claims(out / WORK_DIR, unfinished)}); run the workers to the end first")
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
        plan, _ = freeze_plan(work, new_plan(config.runs, config.batch_runs, _started_chunks(work)), config.batch_runs, config.runs)
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
    be claimed (finished, or held by a live worker). ``progress``: a bar with ``update(model_steps)``. Raises
    :class:`ClaimLost` if the claim was taken over meanwhile (this process was paused past the heartbeat timeout)."""
    folder = out / WORK_DIR / chunk.name
    claim = take_chunk(out, identity, folder)
    if claim is None:
        return False
    with claim.holding():
        try:
            ChunkTrainer(recipe, config, chunk, claim).run(progress)
        finally:  # finished, or interrupted (Ctrl-C, an error): free for the next worker at once
            release_claim(claim)
    return True


def train_chunks(recipe: ZooRecipe, config: BuildConfig, out: Path, identity: dict[str, Any], plan: list[Chunk],
                 worker: tuple[int, int] | None) -> None:
    """Train every chunk of ``plan`` this process can claim, in :func:`worker_order`, until every chunk is finished: while
    the only unfinished chunks are held by other live workers, wait for them (saying so once), taking over a claim that
    goes stale meanwhile; with ``--no-wait`` raise :class:`StillTraining` instead. Returns early if the zoo was written."""
    work = out / WORK_DIR
    updates = TrainingSchedule(steps=config.steps).updates
    done = sum(chunk.runs for chunk in plan if is_finished(work / chunk.name)) * updates
    waiting = False
    with tqdm(total=config.runs * updates, initial=done, desc=f"training {recipe.kind.name}", unit=" model-steps",
              unit_scale=True, smoothing=0.05) as progress:
        while True:
            trained = False
            for chunk in worker_order(plan, worker):
                if not work.is_dir():
                    return  # another worker wrote the zoo
                trained = train_chunk(recipe, config, out, identity, chunk, progress) or trained
            unfinished = [chunk for chunk in plan if not is_finished(work / chunk.name)]
            if not unfinished or not work.is_dir():
                return
            if trained:
                continue
            held = describe_claims(work, unfinished)
            if config.no_wait:
                raise StillTraining(f"{out}: {len(unfinished)} of {len(plan)} chunks are being trained by other workers ({held}); "
                                    "--no-wait: not waiting for them (the last to finish writes the zoo)")
            if not waiting:
                print(f"{out}: waiting for {len(unfinished)} of {len(plan)} chunks being trained by other workers ({held}); "
                      "the zoo is written once they are done", file=sys.stderr, flush=True)
                waiting = True
            time.sleep(heartbeat_interval())


class StillTraining(Exception):
    """``--no-wait``: the zoo is not complete, and what is left is being trained by other workers."""


def describe_claims(work: Path, chunks: list[Chunk]) -> str:
    """Who holds the claims of ``chunks``, in words."""
    holders = {}
    for chunk in chunks:
        record, stale = claim_state(work / chunk.name)
        key = ("a damaged claim" if has_damaged_claim(work / chunk.name) else "unclaimed") if record is None else \
            f"{record.describe()}{' (stale)' if stale else ''}"
        holders.setdefault(key, []).append(chunk.name)
    return "; ".join(f"{key}: {', '.join(names)}" for key, names in holders.items())
