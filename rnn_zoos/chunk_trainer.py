"""Training one chunk of runs as one batched model: snapshots and checkpoints to resume from.

A :class:`ChunkTrainer` takes the runs ``chunk.first`` to ``chunk.stop - 1`` from their initial
weights (or the last checkpoint) to the last step, writing a Parquet part per snapshot step.
"""

from __future__ import annotations

import time
from dataclasses import dataclass
from pathlib import Path

import torch
from tqdm.auto import tqdm

from .blob import encode_weights
from .build_config import BuildConfig
from .files import atomic_write
from .layout import write_parquet
from .streams import run_seeds
from .training import BatchedAdamW, TrainingSchedule, initial_params
from .zoos import ZooRecipe

CHECKPOINT_SECONDS = 120.0
"""Checkpoint at least this often between snapshots, so an interruption loses little work."""


@dataclass(frozen=True, order=True)
class Chunk:
    """Runs ``first`` to ``stop - 1``, trained together as one batched model."""

    first: int
    stop: int

    @property
    def name(self) -> str:
        return f"runs-{self.first:05d}-{self.stop - 1:05d}"


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
        self.params = {name: tensor.requires_grad_() for name, tensor in initial_params(recipe.kind.architecture, self.seeds).items()}
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
            architecture = self.recipe.kind.architecture
            cpu = {name: tensor.cpu() for name, tensor in params.items()}
            weights = [encode_weights({name: tensor[index] for name, tensor in cpu.items()}, architecture)
                       for index in range(len(self.seed_values))]
        rows = {"run": list(range(self.chunk.first, self.chunk.stop)), "step": [step] * len(weights),
                "seed": self.seed_values, **columns, "weights": weights}
        features = self.recipe.kind.features
        write_parquet(self.folder / f"step-{step:06d}.parquet", features, [{name: rows[name] for name in features}])
