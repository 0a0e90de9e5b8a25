"""Training many RNNs as one batched model: the paper's schedule, initialisation and per-run AdamW."""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass

import torch

from .functional import LSTMArchitecture, Params
from .streams import stream_uniform

PAPER_STEPS = 20_000
PAPER_SNAPSHOT_STEPS = (0, 100, 200, 500, 1000, 2000, 5000, 10000, 20000)
STEP_CONVENTION = (
    "step: as the official loop records it (steps 0 to N, one AdamW update each, then a snapshot if the step is a "
    "snapshot step), the snapshot at step s holds the weights after s + 1 updates (step 0: after one update); the "
    "learning rate of update s is the official PiecewiseLinearSchedule's value at s - 1 (at 0 for s = 0)."
)
"""The step convention of every built zoo and of the paper's release, as ``meta/info.json`` notes it."""
STREAM_INIT = 1
"""Stream key of the initial weights (see :mod:`rnn_zoos.lstm.streams`); builders number their own streams from 16."""


@dataclass(frozen=True)
class TrainingSchedule:
    """The paper's optimiser schedule and snapshot steps, indexed as its builders' loop, scaled to ``steps``.

    The official loop is ``for step in range(steps + 1)``: one AdamW update, then a snapshot if ``step`` is a
    snapshot step. So a run makes ``steps + 1`` updates, numbered 0 to ``steps`` by the loop's ``step``, and the
    snapshot at step s holds the weights after s + 1 updates (step 0: after one update).

    Snapshot steps: ``round(s * steps / 20000)`` for the paper's nine s (halves rounded up), duplicates dropped.
    Learning rate: the official ``PiecewiseLinearSchedule`` through ``(0, lr_start)``, ``(m, lr_middle)`` and
    ``(steps, lr_end)``, where m is the paper's breakpoint 10,000 scaled as the snapshot steps are; the loop sets
    the rate of the next update after each update from the step just made, so update ``step`` uses the
    schedule's value at ``max(step - 1, 0)``.
    """

    steps: int = PAPER_STEPS
    batch_size: int = 32
    lr_start: float = 0.01
    lr_middle: float = 0.003
    lr_end: float = 0.0003

    @property
    def updates(self) -> int:
        """AdamW updates per run: one per loop step ``0 .. steps``."""
        return self.steps + 1

    def scaled(self, paper_step: int) -> int:
        """A step of the paper's 20,000-step schedule scaled to ``steps`` (halves rounded up)."""
        return (2 * paper_step * self.steps + PAPER_STEPS) // (2 * PAPER_STEPS)

    def snapshot_steps(self) -> list[int]:
        """Sorted distinct snapshot steps."""
        return sorted({self.scaled(s) for s in PAPER_SNAPSHOT_STEPS})

    def breakpoints(self) -> tuple[tuple[int, float], ...]:
        """The ``(time, learning rate)`` points of the piecewise linear schedule (the paper's: 0, 10,000, 20,000)."""
        return ((0, self.lr_start), (self.scaled(PAPER_STEPS // 2), self.lr_middle), (self.steps, self.lr_end))

    def learning_rate(self, step: int) -> float:
        """Learning rate of the update at the loop's step ``step`` (0 to ``steps``)."""
        time = max(step - 1, 0)
        points = self.breakpoints()
        for (start, low), (end, high) in zip(points, points[1:]):
            if time < end:  # the first segment whose end lies beyond the time (the schedule's own search)
                return low + (high - low) * (time - start) / (end - start)
        return points[-1][1]

    def learning_rate_tensor(self, step: torch.Tensor) -> torch.Tensor:
        """:meth:`learning_rate` of a step held in a device tensor, as a float32 tensor on that device, computed there.

        The same float64 operations in the same order, then rounded to float32: equal to
        ``float32(learning_rate(step))``, which is also what an eager step multiplies float32 weights by.
        """
        time = (step.to(torch.float64) - 1).clamp(min=0)
        rate = torch.full_like(time, self.breakpoints()[-1][1])
        points = self.breakpoints()
        for (start, low), (end, high) in reversed(list(zip(points, points[1:]))):
            segment = low + (high - low) * (time - start) / max(end - start, 1)  # a segment of length 0 is never chosen
            rate = torch.where(time < end, segment, rate)
        return rate.to(torch.float32)


def initial_params(architecture: LSTMArchitecture, seeds: torch.Tensor) -> Params:
    """PyTorch's default initialisation of ``nn.LSTM`` and ``nn.Linear(hidden, out)``, per run from its seed.

    Every parameter is uniform in ``[-1/sqrt(hidden), 1/sqrt(hidden)]``; the numbers come from the
    run's counter-based stream, so they do not depend on the device or on the other runs.
    """
    bound = architecture.hidden_size**-0.5
    return {
        name: (2.0 * stream_uniform(seeds, (STREAM_INIT, index), shape) - 1.0) * bound
        for index, (name, shape) in enumerate(architecture.parameter_shapes().items())
    }


def adam_checkpoint_bound(tensors: Iterable[torch.Tensor], margin: int) -> int:
    """The most bytes a checkpoint of ``tensors`` and their Adam moments can take: 4x the tensors' bytes (the weights
    and two moments, with room to spare) plus ``margin`` for everything else it holds. A larger file is refused before
    it is read."""
    return 4 * sum(tensor.numel() * tensor.element_size() for tensor in tensors) + margin


class BatchedAdamW:
    """AdamW over batched parameters ``[K, ...]`` with a weight decay per run.

    Adam is elementwise, so one ``torch.optim.AdamW`` over the stacked tensors updates every run
    exactly as its own optimizer would. The decoupled weight decay (``p *= 1 - lr * wd``, as
    ``torch.optim.AdamW`` applies it before the Adam step) is applied here with each run's own ``wd``.

    With a ``learning_rate`` tensor, :meth:`step` reads the rate from it on the device (the caller
    updates it) and Adam is the fused kernel, capturable on CUDA: a step that a CUDA graph can
    capture. Without, the rate is a float passed to each step (fused AdamW on CUDA, foreach on CPU).
    """

    def __init__(self, params: Params, weight_decay: torch.Tensor, learning_rate: torch.Tensor | None = None) -> None:
        self.params = params
        self.weight_decay = weight_decay
        self.learning_rate = learning_rate
        cuda = next(iter(params.values())).is_cuda
        if learning_rate is None:
            self.optimizer = torch.optim.AdamW(list(params.values()), lr=0.0, weight_decay=0.0, fused=cuda or None)
        else:
            self.optimizer = torch.optim.AdamW(list(params.values()), lr=learning_rate, weight_decay=0.0, fused=True, capturable=cuda)

    def step(self, lr: float | None = None) -> None:
        """Decay, then one Adam update from the gradients in ``.grad``, with learning rate ``lr`` (a float, or None for the
        optimizer's ``learning_rate`` tensor)."""
        rate = self.learning_rate if lr is None else lr
        with torch.no_grad():
            for tensor in self.params.values():
                decay = 1.0 - rate * self.weight_decay.view(-1, *([1] * (tensor.dim() - 1)))
                tensor.mul_(decay)
        if lr is not None:
            for group in self.optimizer.param_groups:
                group["lr"] = lr
        self.optimizer.step()
        self.optimizer.zero_grad(set_to_none=True)

    def state_dict(self) -> dict:
        """The Adam moments and step count, for checkpoints."""
        return self.optimizer.state_dict()

    def load_state_dict(self, state: dict) -> None:
        """Restore what :meth:`state_dict` returned, possibly by an optimizer of the other kind (float or tensor learning
        rate): the moments and step counts are taken, this optimizer's own settings kept."""
        settings = [{key: group[key] for key in ("lr", "foreach", "fused", "capturable")} for group in self.optimizer.param_groups]
        self.optimizer.load_state_dict(state)
        for group, own in zip(self.optimizer.param_groups, settings):
            group.update(own)
            if group["fused"] or group["capturable"]:  # these keep their step counts on the parameters' device
                for param in group["params"]:
                    entry = self.optimizer.state.get(param)
                    if entry:
                        entry["step"] = entry["step"].to(param.device, torch.float32)
