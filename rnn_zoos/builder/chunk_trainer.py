"""Training one chunk of runs as one batched model: snapshots, checkpoints, and how a training step is executed.

A :class:`ChunkTrainer` takes the runs ``chunk.first`` to ``chunk.stop - 1`` from their initial
weights (or the last checkpoint) through the ``steps + 1`` updates of the official loop, writing a Parquet part
per snapshot step (the weights after that step's update). Every file goes through the worker's claim
(:meth:`rnn_zoos.builder.claims.Claim.write`), so a worker whose claim was taken over writes nothing more.

A training step runs in one of two ways:

- *eager* (the default): the recipe's loss with the step as a Python int and a float learning rate,
  exactly the code path every zoo so far was built with;
- *static* (``--compile`` or ``--cuda-graphs``): the step counter and the learning rate live in
  device tensors that the step itself reads (:meth:`TrainingSchedule.learning_rate_tensor`), and AdamW
  is the fused kernel reading its learning rate from that tensor. Nothing is read back to the host,
  so the whole step (loss, backward, weight decay, AdamW) can be captured once as a CUDA graph and
  replayed (``--cuda-graphs``), and ``--compile`` compiles the loss (forward and backward) with
  :func:`torch.compile`. The random numbers are the same; the rounding differs slightly from the
  eager step (a float32 learning rate, the fused AdamW, compiled kernels), as it does between devices.
"""

from __future__ import annotations

import pickle
import time
import warnings
from pathlib import Path

import pyarrow.parquet as pq
import torch
from tqdm.auto import tqdm

from ..format.blob import encode_weights
from ..zoos.build_config import BuildConfig
from .claims import FINISHED_FILE, Chunk, Claim
from ..common.errors import DamagedZooError
from ..hub.layout import write_parquet_file
from ..lstm.streams import run_seeds
from ..lstm.training import BatchedAdamW, TrainingSchedule, adam_checkpoint_bound, initial_params
from ..zoos import ZooRecipe

CHECKPOINT_SECONDS = 120.0
"""Checkpoint at least this often between snapshots, so an interruption loses little work."""
WARMUP_STEPS = 3
"""Training steps run uncaptured before a CUDA graph is captured (lazy initialisation, compilation, autotuning)."""


class ChunkTrainer:
    """Trains one chunk of runs, writing a Parquet part per snapshot and checkpoints to resume from."""

    def __init__(self, recipe: ZooRecipe, config: BuildConfig, chunk: Chunk, claim: Claim) -> None:
        self.recipe, self.chunk, self.claim, self.folder = recipe, chunk, claim, claim.folder
        self.schedule = TrainingSchedule(steps=config.steps)
        self.device = torch.device(config.device)
        self.seed_values = run_seeds(config.seed, range(chunk.first, chunk.stop))
        self.seeds = torch.tensor(self.seed_values, dtype=torch.int64, device=self.device)
        self.runs = recipe.setup(self.seeds)
        self.params = {name: tensor.requires_grad_() for name, tensor in initial_params(recipe.kind.architecture, self.seeds).items()}
        self.static = config.compile or config.cuda_graphs
        self.cuda_graphs = config.cuda_graphs
        self.step_counter = torch.zeros((), dtype=torch.int64, device=self.device)
        learning_rate = torch.zeros((), dtype=torch.float32, device=self.device) if self.static else None
        self.optimizer = BatchedAdamW(self.params, self.runs["weight_decay"], learning_rate)
        self.loss = torch.compile(recipe.loss) if config.compile else recipe.loss
        self.graph: torch.cuda.CUDAGraph | None = None
        self.uncaptured_steps = 0

    @property
    def checkpoint_path(self) -> Path:
        return self.folder / "checkpoint.pt"

    def run(self, progress: tqdm) -> None:
        """Train from the last checkpoint (or the start) to the end, then mark the chunk finished.

        As the official loop: the update of each step ``0 .. steps``, then the snapshot if it is a snapshot step."""
        done = self._restore()
        snapshot_steps = set(self.schedule.snapshot_steps())
        progress.update(done * len(self.seed_values))
        saved_at = time.monotonic()
        for step in range(done, self.schedule.updates):
            self.train_step(step)
            progress.update(len(self.seed_values))
            if step in snapshot_steps:
                self.write_snapshot(step)
            if step in snapshot_steps or time.monotonic() - saved_at > CHECKPOINT_SECONDS:
                self._save(step + 1)
                saved_at = time.monotonic()
        with self.claim.write(self.folder / FINISHED_FILE) as temporary:
            temporary.write_text(self.claim.record.to_json())
        self.claim.remove(self.checkpoint_path)

    def _restore(self) -> int:
        """Load the last checkpoint, if any; returns the updates done (the loop step to train next)."""
        if not self.checkpoint_path.is_file():
            return 0
        if (size := self.checkpoint_path.stat().st_size) > (bound := adam_checkpoint_bound(self.params.values(), 16 << 20)):
            raise self._damaged(f"it is {size:,} bytes, more than the {bound:,} a checkpoint of this chunk can take")
        try:
            state = torch.load(self.checkpoint_path, map_location=self.device, weights_only=True)
            with torch.no_grad():
                for name, tensor in self.params.items():
                    tensor.copy_(state["params"][name])
            self.optimizer.load_state_dict(state["optimizer"])
            updates = int(state["updates"])
        except (RuntimeError, EOFError, OSError, ValueError, KeyError, TypeError, IndexError, pickle.UnpicklingError) as error:
            raise self._damaged(_reason(error)) from None
        if not 0 <= updates <= self.schedule.updates:
            raise self._damaged(f"it records {updates} updates of {self.schedule.updates}")
        return updates

    def _damaged(self, reason: str) -> DamagedZooError:
        """The error for a checkpoint that cannot be resumed from, saying what to do."""
        return DamagedZooError(f"{self.checkpoint_path} is damaged ({reason}); "
                               f"delete it and run the same command: {self.chunk.name} then trains again from its start")

    def _save(self, updates: int) -> None:
        state = {"updates": updates, "params": {name: tensor.detach() for name, tensor in self.params.items()},
                 "optimizer": self.optimizer.state_dict()}
        with self.claim.write(self.checkpoint_path) as temporary, open(temporary, "wb") as handle:
            torch.save(state, handle)  # through a Python file: a full disk is an OSError (DiskFullError), not torch's bare error

    def train_step(self, step: int) -> None:
        """One AdamW update of every run: the update of the loop's step ``step``, on that step's data."""
        self.recipe.prepare(self.runs, self.seeds, step)
        if not self.static:
            self.recipe.loss(self.params, self.runs, self.seeds, step).sum().backward()
            self.optimizer.step(self.schedule.learning_rate(step))
            return
        self.step_counter.fill_(step)  # a kernel on the device: no synchronisation
        if self.graph is not None:
            self.graph.replay()
        elif self.cuda_graphs and self.uncaptured_steps >= WARMUP_STEPS:
            self.graph = self._capture()
            self.graph.replay()
        else:
            self._uncaptured_step()

    def _static_step(self) -> None:
        """The step of ``self.step_counter`` reading nothing on the host: what a CUDA graph captures."""
        self.optimizer.learning_rate.copy_(self.schedule.learning_rate_tensor(self.step_counter))
        self.loss(self.params, self.runs, self.seeds, self.step_counter).sum().backward()
        self.optimizer.step()

    def _uncaptured_step(self) -> None:
        """:meth:`_static_step` run directly (on a side stream on CUDA, as a warm-up before capture must be)."""
        with warnings.catch_warnings():
            warnings.filterwarnings("ignore", message=".*capturable=True.*")  # a warm-up step of a capturable optimizer
            if self.device.type != "cuda":
                self._static_step()
            else:
                side = torch.cuda.Stream(self.device)
                side.wait_stream(torch.cuda.current_stream(self.device))
                with torch.cuda.stream(side):
                    self._static_step()
                torch.cuda.current_stream(self.device).wait_stream(side)
        self.uncaptured_steps += 1

    def _capture(self) -> torch.cuda.CUDAGraph:
        """Capture :meth:`_static_step` as a CUDA graph (capturing runs nothing: the caller replays it)."""
        graph = torch.cuda.CUDAGraph()
        torch.cuda.synchronize(self.device)
        with torch.cuda.graph(graph):
            self._static_step()
        return graph

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
        with self.claim.write(self.folder / f"step-{step:06d}.parquet") as temporary:
            write_parquet_file(temporary, features, [{name: rows[name] for name in features}])


def check_finished_chunk(folder: Path, chunk: Chunk, snapshot_steps: list[int]) -> None:
    """Raise :class:`DamagedZooError` naming the first snapshot part of the finished chunk in ``folder`` that is missing,
    unreadable (truncated) or not the chunk's rows, and saying how to train the chunk again."""
    advice = f"delete the folder {folder} and run the same command: {chunk.name} is then trained again"
    for step in snapshot_steps:
        part = folder / f"step-{step:06d}.parquet"
        try:
            rows = pq.read_metadata(part).num_rows
        except FileNotFoundError:
            raise DamagedZooError(f"{part} is missing from the finished chunk {chunk.name}; {advice}") from None
        except (OSError, ValueError) as error:
            raise DamagedZooError(f"{part} is damaged ({_reason(error)}); {advice}") from None
        if rows != chunk.runs:
            raise DamagedZooError(f"{part} is damaged (it holds {rows} rows, not the {chunk.runs} of {chunk.name}); {advice}")


def _reason(error: Exception) -> str:
    """The first line of ``error``'s message, at most 80 characters (its type if it has no message)."""
    text = (str(error).splitlines() or [type(error).__name__])[0]
    return text if len(text) <= 80 else text[:77] + "..."
