"""Ray as an engine of parallel tasks (``pip install "rnn-zoos[ray]"``): connect to a cluster or start a local instance,
run tasks with retries when a worker dies, and feed one progress bar from all of them. The builder's and the
reproduction's Ray engines (:mod:`rnn_zoos.builder.ray_engine`, :mod:`rnn_zoos.experiments.ray_runs`) use it.
"""

from __future__ import annotations

import os
from collections.abc import Callable
from typing import Any

from tqdm.auto import tqdm

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
