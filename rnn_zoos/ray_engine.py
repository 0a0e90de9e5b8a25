"""Ray as the engine of a build and of a reproduction's pretraining runs (``pip install "rnn-zoos[ray]"``).

``rnn-zoos build ZOO ... --ray [ADDRESS]`` freezes the chunk plan as any worker does, then submits
one Ray task per unfinished chunk (``num_gpus=1`` each on CUDA, one CPU otherwise), retried when a
worker dies; a task claims its chunk (:mod:`rnn_zoos.claims`, taking over the claim of a dead
attempt), trains it, and feeds the driver's progress bar. The driver writes the zoo once every
task is done. ``rnn-zoos reproduce ... --ray [ADDRESS]`` runs its pretraining runs (one per
encoder) as parallel tasks in the same way. Without ADDRESS a local Ray instance is started.
"""

from __future__ import annotations

import dataclasses
import os
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

from tqdm.auto import tqdm

from .build_config import BuildConfig
from .errors import ZooError

TASK_RETRIES = 3
"""How often a Ray task whose worker died is run again."""


def _ray() -> Any:
    """The ``ray`` module; :class:`ZooError` saying how to install it if it is missing."""
    try:
        import ray
    except ImportError:
        raise ZooError('--ray needs Ray: pip install "rnn-zoos[ray]" (or pip install ray)') from None
    return ray


def start_ray(address: str | None) -> Any:
    """Connect to the Ray cluster at ``address``, or start a local instance (``None`` or ``local``); returns ``ray``."""
    ray = _ray()
    if not ray.is_initialized():
        local = address in (None, "local")
        try:
            ray.init(address=None if local else address, include_dashboard=False, log_to_driver=False,
                     configure_logging=False, **({"num_cpus": int(os.environ["RNN_ZOOS_RAY_CPUS"])}
                                                   if local and os.environ.get("RNN_ZOOS_RAY_CPUS") else {}))
        except (ConnectionError, RuntimeError, ValueError) as error:
            raise ZooError(f"--ray {address}: cannot reach a Ray cluster there ({str(error).splitlines()[0]})") from None
    return ray


def run_tasks(ray: Any, function: Callable[..., Any], arguments: list[tuple], gpus: float, description: str, total: int,
              unit: str) -> list[Any]:
    """Run ``function(*arguments[i], progress)`` as Ray tasks, retried on worker death; a progress bar of ``total`` units
    is fed by the tasks through ``progress.update(n)``. Returns the results in order."""

    @ray.remote
    class Progress:
        def __init__(self) -> None:
            self.count = 0

        def update(self, amount: int) -> None:
            self.count += amount

        def value(self) -> int:
            return self.count

    counter = Progress.remote()
    remote = ray.remote(max_retries=TASK_RETRIES, retry_exceptions=False, num_gpus=gpus, num_cpus=1)(function)
    pending = [remote.remote(*args, _RemoteProgress(counter)) for args in arguments]
    results: dict[Any, Any] = {}
    with tqdm(total=total, desc=description, unit=unit, unit_scale=True, smoothing=0.05) as bar:
        waiting = list(pending)
        while waiting:
            ready, waiting = ray.wait(waiting, num_returns=len(waiting), timeout=1.0)
            for reference in ready:
                results[reference] = ray.get(reference)  # raises the task's error, after its retries
            bar.n = min(total, ray.get(counter.value.remote()))
            bar.refresh()
    return [results[reference] for reference in pending]


class _RemoteProgress:
    """A progress bar in a task: ``update(n)`` adds to the driver's counter actor."""

    def __init__(self, counter: Any) -> None:
        self.counter = counter

    def update(self, amount: int = 1) -> None:
        self.counter.update.remote(amount)


def _train_chunk(zoo: str, options: dict[str, Any], identity: dict[str, Any], first: int, stop: int, progress: Any) -> str:
    """A Ray task: claim the chunk ``[first, stop)`` of the build ``options`` describes and train it."""
    from .build import train_chunk
    from .build_folder import WORK_DIR
    from .claims import Chunk, ClaimLost, is_finished
    from .training import TrainingSchedule
    from .zoos import zoo_kind

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
    from .build import start_build
    from .build_finalize import finalize_build
    from .build_folder import WORK_DIR
    from .claims import is_finished
    from .training import TrainingSchedule
    from .zoos import zoo_kind

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


def _pretrain(options: dict[str, Any], threads: int, progress: Any) -> dict[str, Any]:
    """A Ray task: one pretraining run (resumable as any) with ``threads`` torch threads, returning its summary."""
    import torch

    from .experiments.pretrain import PretrainConfig, pretrain

    torch.set_num_threads(threads)
    summary = pretrain(PretrainConfig(**options))
    progress.update(1)
    return summary


def pretrain_with_ray(address: str | None, runs: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """Run the pretraining runs ``runs`` (:class:`PretrainConfig` options each) as parallel Ray tasks, one per GPU on CUDA,
    one per CPU otherwise; returns their summaries in order. Each task computes with as many torch threads as this process
    does, so that its numbers are exactly those of a run without Ray (float sums depend on the thread count)."""
    ray = start_ray(address)
    gpus = 1 if any(options.get("device") == "cuda" for options in runs) else 0
    import torch

    threads = torch.get_num_threads()
    return run_tasks(ray, _pretrain, [(options, threads) for options in runs], gpus, "pretraining runs on Ray", len(runs), " runs")
