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

import contextlib
import json
import math
import os
import re
import shutil
import sys
import time
from abc import ABC, abstractmethod
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal, Optional

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq
import torch
from tqdm.auto import tqdm
from transformers import HfArgumentParser

from .errors import DamagedZooError, ZooError, describe_difference, report
from .files import atomic_write, check_out_folder, exclusive_lock, remove_temporaries
from .format import FORMAT_VERSION, INFO_PATH, ZooInfo, file_sha256
from .zoos import ZooSpec
from .blob import encode_weights
from .layout import card_template, plan_splits, write_parquet, write_zoo_layout
from .lstm import Params, lstm_forward
from .streams import run_seeds
from .training import BatchedAdamW, TrainingSchedule, initial_params

WORK_DIR = ".build"
TRASH_DIR = ".build.trash"
LOCK_FILE = ".build.lock"
"""Locked by the one builder at work in a folder; it exists while a build is unfinished."""
"""Where the kernel shows its state as files: no zoo can be written there."""
MEMORY_HEADROOM = 4.0
"""Peak memory of a run in a batch, over the activations autograd saves in one of its training steps.
Measured on CPU: 1.5 to 1.6 for a training step, 1.8 (seq-mnist) and 3.1 (formal-lang, which samples
1000 strings) for a snapshot; rounded up."""
INTERRUPTED = "interrupted; run the same command to resume"
CHECKPOINT_SECONDS = 120.0
"""Checkpoint at least this often between snapshots, so an interruption loses little work."""
_CHUNK_PATTERN = re.compile(r"runs-(\d{5})-(\d{5})")


@dataclass
class BuildConfig:
    """Options shared by every zoo builder (the command line of ``python -m builders.<zoo>``)."""

    out: str = field(metadata={"help": "folder to write the zoo to (created; an unfinished build there is resumed)"})
    runs: int = field(default=1000, metadata={"help": "number of training runs"})
    steps: int = field(default=20_000, metadata={"help": "optimizer steps per run; snapshot steps and learning-rate breakpoints scale with it"})
    seed: int = field(default=0, metadata={"help": "zoo seed; run r uses the seed SeedSequence([seed, r])"})
    device: Literal["cpu", "cuda"] = field(default="cpu", metadata={"help": "where to train"})
    runs_per_batch: Optional[int] = field(
        default=None, metadata={"help": "runs trained at once as one batched model (default: 1000 on cuda, 64 on cpu)"}
    )

    def validate(self) -> None:
        """Raise :class:`ZooError` for a value no build can use."""
        check_out_folder(self.out)
        for name in ("runs", "steps"):
            if getattr(self, name) < 1:
                raise ZooError(f"--{name} must be at least 1, got {getattr(self, name)}")
        if self.runs_per_batch is not None and self.runs_per_batch < 1:
            raise ZooError(f"--runs-per-batch must be at least 1, got {self.runs_per_batch}")
        if not 0 <= self.seed < 2**63:
            raise ZooError(f"--seed must be a non-negative 64-bit integer, got {self.seed}")
        if self.device == "cuda" and not torch.cuda.is_available():
            raise ZooError("--device cuda: no CUDA device is available here; use --device cpu")

    @property
    def batch_runs(self) -> int:
        """Runs per batched model."""
        default = 1000 if self.device == "cuda" else 64
        return min(self.runs, self.runs_per_batch or default)


def recorded_log_probs(spec: ZooSpec, params: Params, inputs: torch.Tensor) -> np.ndarray:
    """The ``log_probs`` column: float16 log-softmax outputs of M RNNs on their recorded ``inputs [M, 100, ...]``."""
    logits, _ = lstm_forward(params, spec.model_inputs(inputs))
    return torch.log_softmax(logits, dim=-1).to(torch.float16).cpu().numpy()


def parse_build_args(config_class: type[BuildConfig], prog: str, description: str, argv: list[str] | None = None) -> BuildConfig:
    """Parse a builder's command line into its config dataclass (``HfArgumentParser``; bad options exit 2 with usage)."""
    parser = HfArgumentParser(config_class, prog=prog, description=description)
    return config_class(**vars(parser.parse_args(argv)))


def run_builder(config: BuildConfig, make_recipe: Callable[[], ZooRecipe]) -> int:
    """The body of ``python -m builders.<zoo>``: check the options, make the recipe, build; returns the exit status.

    A :class:`ZooError` ends in one ``error:`` line (status 2), Ctrl-C in one line that says how to
    resume (status 130), neither with a traceback.
    """
    try:
        config.validate()
        build_zoo(make_recipe(), config)
    except ZooError as error:
        return report(error)
    except KeyboardInterrupt:
        print(INTERRUPTED, file=sys.stderr)
        return 130
    return 0


class ZooRecipe(ABC):
    """What one kind of zoo trains and records. Subclasses live in ``builders/``."""

    spec: ZooSpec

    def content_config(self) -> dict[str, Any]:
        """Options beyond :class:`BuildConfig` that change the zoo's content (recorded and checked on resume)."""
        return {}

    @abstractmethod
    def setup(self, seeds: torch.Tensor) -> dict[str, torch.Tensor]:
        """Per-run constants from the runs' seeds ``[K]``: at least ``weight_decay [K]``, usually the task."""

    @abstractmethod
    def loss(self, params: Params, runs: dict[str, torch.Tensor], seeds: torch.Tensor, step: int) -> torch.Tensor:
        """Per-run training loss ``[K]`` of the update that produces step ``step`` (data drawn for that step)."""

    @abstractmethod
    def snapshot(self, params: Params, runs: dict[str, torch.Tensor], seeds: torch.Tensor, step: int) -> dict[str, Any]:
        """Columns of the K rows of a snapshot, all but ``run``, ``step``, ``seed`` and ``weights``."""

    def card_fields(self) -> dict[str, Any]:
        """Zoo-specific ``$placeholders`` of the card template."""
        return {}

    def notes(self) -> list[str]:
        """Remarks recorded in ``meta/info.json`` (deviations, caveats)."""
        return []


@dataclass(frozen=True, order=True)
class Chunk:
    """Runs ``first`` to ``stop - 1``, trained together as one batched model."""

    first: int
    stop: int

    @property
    def name(self) -> str:
        return f"runs-{self.first:05d}-{self.stop - 1:05d}"


def zoo_identity(recipe: ZooRecipe, config: BuildConfig) -> dict[str, Any]:
    """Everything that determines a zoo's content; two builds with equal identities give the same zoo."""
    return {
        "zoo": recipe.spec.name,
        "format_version": FORMAT_VERSION,
        "runs": config.runs,
        "steps": config.steps,
        "seed": config.seed,
        **recipe.content_config(),
    }


@contextlib.contextmanager
def build_lock(out: Path, identity: dict[str, Any]) -> Iterator[None]:
    """Be the one builder at work in ``out`` for the duration of the block, holding the lock of ``OUT/.build.lock``.

    A folder that holds something other than a zoo or a build is refused before anything is
    written into it. While another builder holds the lock, a build of the same zoo waits for it and
    one of a different zoo is refused (see :func:`_wait_for_other_builder`). The lock file is
    removed on leaving unless an unfinished build stays in ``out``.
    """
    lock = out / LOCK_FILE
    with contextlib.ExitStack() as stack:
        try:
            _refuse_foreign(out)
            out.mkdir(parents=True, exist_ok=True)
            stack.enter_context(exclusive_lock(lock, on_busy=lambda: _wait_for_other_builder(out, identity)))
        except OSError as error:
            raise ZooError(f"cannot write into --out {out} ({error.strerror or error}); choose a folder you can write to") from None
        try:
            yield
        finally:
            if not (out / WORK_DIR).exists():
                lock.unlink(missing_ok=True)


def _wait_for_other_builder(out: Path, identity: dict[str, Any]) -> None:
    """Another builder holds the lock of ``out``: refuse if it builds a different zoo, else say that this one waits."""
    try:
        found = json.loads((out / WORK_DIR / "config.json").read_text())
    except (OSError, ValueError):
        found = identity  # not known yet: wait, and check once the folder is ours
    if found != identity:
        raise ZooError(f"--out {out} is being built by another process with other options ({describe_difference(found, identity)}); "
                       "wait for it to finish, or choose another --out")
    print(f"{out}: another builder is at work here; waiting for it to finish", flush=True)


def _refuse_foreign(out: Path) -> None:
    """Refuse a folder that holds files but neither a zoo nor a build (a lock file alone is a build's)."""
    if not out.is_dir() or (out / WORK_DIR).is_dir() or (out / INFO_PATH).is_file():
        return
    if any(path.name != LOCK_FILE for path in out.iterdir()):
        raise ZooError(f"--out {out} exists and is not an empty folder nor an rnn-zoos build; choose a new or empty folder")


def _prepare_output(out: Path, identity: dict[str, Any]) -> bool:
    """Check ``out`` (locked) and start or continue a build there; returns False if the zoo is already complete."""
    work = out / WORK_DIR
    if (out / INFO_PATH).is_file() and not work.exists():
        _check_finished_zoo(out, identity)
        _remove_leftovers(out)
        return False
    if work.is_dir():
        _check_unfinished_build(work, identity)
        _remove_leftovers(out)
        return True
    _refuse_foreign(out)
    work.mkdir()
    with atomic_write(work / "config.json") as temporary:
        temporary.write_text(json.dumps(identity, indent=2))
    return True


def _check_finished_zoo(out: Path, identity: dict[str, Any]) -> None:
    """Refuse a finished zoo in ``out`` that is another zoo, or whose data files do not match ``meta/info.json``."""
    info = ZooInfo.load(out)
    if info.builder != identity:
        raise ZooError(f"--out {out} holds a different zoo ({describe_difference(info.builder, identity)}); choose another --out or delete it")
    damaged = _damaged_files(out, info)
    if damaged:
        raise DamagedZooError(f"--out {out} holds this zoo, finished, but {', '.join(damaged)} ({INFO_PATH} lists every data file "
                       f"with its checksum); its training work is gone, so delete {out} and build again")


def _damaged_files(out: Path, info: ZooInfo) -> list[str]:
    """The data files of the zoo in ``out`` that are missing or differ from their checksums in ``meta/info.json``."""
    damaged = []
    for path, checksum in sorted(info.checksums.items()):
        if not (out / path).is_file():
            damaged.append(f"{path} is missing")
        elif file_sha256(out / path) != checksum:
            damaged.append(f"{path} does not match its checksum")
    return damaged


def _check_unfinished_build(work: Path, identity: dict[str, Any]) -> None:
    """Refuse to continue an unfinished build in ``work`` that is of another zoo, or whose config cannot be read."""
    config_path = work / "config.json"
    try:
        found = json.loads(config_path.read_text())
    except (OSError, ValueError):
        raise DamagedZooError(f"{config_path} is missing or unreadable; delete {work.parent} and build again") from None
    if found != identity:
        raise ZooError(f"--out {work.parent} holds an unfinished build of a different zoo ({describe_difference(found, identity)}); "
                       "rerun with its options, or choose another --out")


def _remove_leftovers(out: Path) -> None:
    """Delete what killed builds leave behind: a half-deleted work folder and temporary files."""
    shutil.rmtree(out / TRASH_DIR, ignore_errors=True)
    remove_temporaries(out)


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
    params = {name: tensor.requires_grad_() for name, tensor in initial_params(recipe.spec.architecture, seeds).items()}
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


class ChunkTrainer:
    """Trains one chunk of runs, writing a Parquet part per snapshot and checkpoints to resume from."""

    def __init__(self, recipe: ZooRecipe, config: BuildConfig, chunk: Chunk, folder: Path) -> None:
        self.recipe, self.chunk, self.folder = recipe, chunk, folder
        folder.mkdir(parents=True, exist_ok=True)
        self.schedule = TrainingSchedule(steps=config.steps)
        self.device = torch.device(config.device)
        self.seed_values = run_seeds(config.seed, range(chunk.first, chunk.stop))
        self.seeds = torch.tensor(self.seed_values, dtype=torch.int64, device=self.device)
        self.runs = recipe.setup(self.seeds)
        self.params = {name: tensor.requires_grad_() for name, tensor in initial_params(recipe.spec.architecture, self.seeds).items()}
        self.optimizer = BatchedAdamW(self.params, self.runs["weight_decay"])

    @property
    def checkpoint_path(self) -> Path:
        return self.folder / "checkpoint.pt"

    def run(self, progress: tqdm) -> None:
        """Train from the last checkpoint (or the start) to the end, then mark the chunk finished."""
        step = self._restore()
        snapshot_steps = set(self.schedule.snapshot_steps())
        if step == 0 and 0 in snapshot_steps:
            self.write_snapshot(0)
        progress.update(step * len(self.seed_values))
        saved_at = time.monotonic()
        while step < self.schedule.steps:
            step += 1
            self.train_step(step)
            progress.update(len(self.seed_values))
            if step in snapshot_steps:
                self.write_snapshot(step)
            if step in snapshot_steps or time.monotonic() - saved_at > CHECKPOINT_SECONDS:
                self._save(step)
                saved_at = time.monotonic()
        (self.folder / "finished").touch()
        self.checkpoint_path.unlink(missing_ok=True)

    def _restore(self) -> int:
        if not self.checkpoint_path.is_file():
            return 0
        state = torch.load(self.checkpoint_path, map_location=self.device, weights_only=True)
        with torch.no_grad():
            for name, tensor in self.params.items():
                tensor.copy_(state["params"][name])
        self.optimizer.load_state_dict(state["optimizer"])
        return int(state["step"])

    def _save(self, step: int) -> None:
        state = {"step": step, "params": {name: tensor.detach() for name, tensor in self.params.items()},
                 "optimizer": self.optimizer.state_dict()}
        with atomic_write(self.checkpoint_path) as temporary:
            torch.save(state, temporary)

    def train_step(self, step: int) -> None:
        """One AdamW update of every run, on the data of step ``step``."""
        self.recipe.loss(self.params, self.runs, self.seeds, step).sum().backward()
        self.optimizer.step(self.schedule.learning_rate(step))

    def write_snapshot(self, step: int) -> None:
        """Evaluate the current weights and write the chunk's rows of step ``step`` as a Parquet part."""
        with torch.no_grad():
            params = {name: tensor.detach() for name, tensor in self.params.items()}
            columns = self.recipe.snapshot(params, self.runs, self.seeds, step)
            architecture = self.recipe.spec.architecture
            cpu = {name: tensor.cpu() for name, tensor in params.items()}
            weights = [encode_weights({name: tensor[index] for name, tensor in cpu.items()}, architecture)
                       for index in range(len(self.seed_values))]
        rows = {"run": list(range(self.chunk.first, self.chunk.stop)), "step": [step] * len(weights),
                "seed": self.seed_values, **columns, "weights": weights}
        features = self.recipe.spec.features
        write_parquet(self.folder / f"step-{step:06d}.parquet", features, [{name: rows[name] for name in features}])


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
        if _prepare_output(out, identity):
            _train_and_finalize(recipe, config, identity, out)
        else:
            print(f"{out}: the zoo is already complete ({identity})")
    return out


def _train_and_finalize(recipe: ZooRecipe, config: BuildConfig, identity: dict[str, Any], out: Path) -> None:
    """Train every chunk not finished yet, write the Hub layout and discard the work folder."""
    work = out / WORK_DIR
    chunks = _plan_chunks(work, config.runs, config.batch_runs)
    total = config.runs * config.steps
    with tqdm(total=total, desc=f"training {recipe.spec.name}", unit=" model-steps", unit_scale=True, smoothing=0.05) as progress:
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
    spec = recipe.spec
    plan = plan_splits(spec, _run_tasks(chunk_folders))
    snapshot_steps = TrainingSchedule(steps=config.steps).snapshot_steps()
    write_zoo_layout(
        out,
        spec,
        plan,
        rows_of=lambda runs: _split_tables(chunk_folders, set(runs)),
        rows_per_split={split: len(entry.runs) * len(snapshot_steps) for split, entry in plan.items()},
        info_fields={"builder": identity, "snapshot_steps": snapshot_steps, "notes": recipe.notes()},
        template=card_template(recipe.spec.name),
        card_fields={
            "steps": config.steps,
            "provenance": "rebuilt with the batched builder of rnn-zoos "
            f"(`python -m builders.{spec.name.replace('-', '_')} --runs {config.runs} --steps {config.steps} --seed {config.seed}`)",
            "step_zero": "step 0 = the initial weights",
            "seeds": f"zoo seed {config.seed}; run r uses the seed `SeedSequence([{config.seed}, r])` (stored in `seed`), "
            "which alone determines all its random numbers",
            **recipe.card_fields(),
        },
    )
