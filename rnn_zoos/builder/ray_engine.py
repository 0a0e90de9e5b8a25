"""Ray as the engine of a build (``pip install "rnn-zoos[ray]"``).

``rnn-zoos build ZOO ... --ray [ADDRESS]`` freezes the chunk plan as any worker does, then submits
one Ray task per unfinished chunk (``num_gpus=1`` each on CUDA, one CPU otherwise), retried when a
worker dies; a task claims its chunk (:mod:`rnn_zoos.builder.claims`, taking over the claim of a dead
attempt), trains it, and feeds the driver's progress bar. The driver writes the zoo once every
task is done. Without ADDRESS a local Ray instance is started (:mod:`rnn_zoos.common.ray_tasks`).
"""

from __future__ import annotations

import dataclasses
import time
from pathlib import Path
from typing import Any

from ..common.errors import ZooError
from ..common.ray_tasks import run_tasks, start_ray
from ..lstm.training import TrainingSchedule
from ..zoos import zoo_kind
from ..zoos.build_config import BuildConfig
from .build import start_build, train_chunk
from .build_finalize import finalize_build
from .build_folder import WORK_DIR
from .claims import Chunk, ClaimLost, is_finished

def _train_chunk(zoo: str, options: dict[str, Any], identity: dict[str, Any], first: int, stop: int, progress: Any) -> str:
    """A Ray task: claim the chunk ``[first, stop)`` of the build ``options`` describes and train it."""
    kind = zoo_kind(zoo)
    config = kind.build_config(**options)
    chunk, out = Chunk(first, stop), Path(config.out)
    try:
        if train_chunk(kind.recipe(config), config, out, identity, chunk, progress):
            return "trained"
    except ClaimLost as lost:  # a retry of this task took the chunk over while this attempt was stalled
        return str(lost)
    if is_finished(out / WORK_DIR / chunk.name):
        progress.update(chunk.runs * TrainingSchedule(steps=config.steps).updates)
        return "finished already"
    raise RuntimeError(f"{chunk.name} is claimed by a live worker; not trained by this task")


def build_with_ray(zoo: str, config: BuildConfig) -> Path:
    """Build the zoo ``zoo`` with the options ``config`` (``config.ray``: the cluster's address or ``local``) as Ray tasks."""
    kind = zoo_kind(zoo)
    config = dataclasses.replace(config, out=str(Path(config.out).resolve()))
    recipe = kind.recipe(config)
    out, identity, plan = start_build(recipe, config)
    if plan is None:
        return out
    ray = start_ray(config.ray)
    options = {item.name: getattr(config, item.name) for item in dataclasses.fields(config)}
    options.update(ray=None, worker=None, finalize=False, no_wait=False)
    todo = [chunk for chunk in plan if not is_finished(out / WORK_DIR / chunk.name)]
    started = time.monotonic()
    run_tasks(ray, _train_chunk, [(zoo, options, identity, chunk.first, chunk.stop) for chunk in todo],
              1 if config.device == "cuda" else 0, f"training {zoo} on Ray", sum(chunk.runs for chunk in todo) * TrainingSchedule(steps=config.steps).updates,
              " model-steps")
    unfinished = [chunk.name for chunk in plan if not is_finished(out / WORK_DIR / chunk.name)]
    if unfinished:
        raise ZooError(f"the Ray tasks ended but {', '.join(unfinished)} are not finished; run the same command again")
    finalize_build(recipe, config, identity, out, plan)
    print(f"{out}: {len(todo)} chunks trained as Ray tasks in {time.monotonic() - started:.0f} s")
    return out
