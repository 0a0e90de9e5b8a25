"""Training many RNNs as one batched model: the paper's schedule, initialisation and per-run AdamW."""

from __future__ import annotations

from dataclasses import dataclass

import torch

from .lstm import LSTMArchitecture, Params
from .streams import stream_uniform

PAPER_STEPS = 20_000
PAPER_SNAPSHOT_STEPS = (0, 100, 200, 500, 1000, 2000, 5000, 10000, 20000)
STREAM_INIT = 1
"""Stream key of the initial weights (see :mod:`rnn_zoos.streams`); builders number their own streams from 16."""


@dataclass(frozen=True)
class TrainingSchedule:
    """The paper's optimiser schedule and snapshot steps, scaled to ``steps`` optimizer updates.

    Learning rate piecewise linear from ``lr_start`` to ``lr_middle`` at half the steps and to
    ``lr_end`` at the last; snapshot steps ``round(s * steps / 20000)`` for the paper's nine s
    (halves rounded up), duplicates dropped. A snapshot at step s holds the weights after s updates.
    """

    steps: int = PAPER_STEPS
    batch_size: int = 32
    lr_start: float = 0.01
    lr_middle: float = 0.003
    lr_end: float = 0.0003

    def snapshot_steps(self) -> list[int]:
        """Sorted distinct snapshot steps."""
        return sorted({(2 * s * self.steps + PAPER_STEPS) // (2 * PAPER_STEPS) for s in PAPER_SNAPSHOT_STEPS})

    def learning_rate(self, step: int) -> float:
        """Learning rate of the update that turns the weights after ``step - 1`` updates into those after ``step``."""
        position = (step - 1) / self.steps
        if position <= 0.5:
            return self.lr_start + (self.lr_middle - self.lr_start) * position / 0.5
        return self.lr_middle + (self.lr_end - self.lr_middle) * (position - 0.5) / 0.5

    def learning_rate_tensor(self, step: torch.Tensor) -> torch.Tensor:
        """:meth:`learning_rate` of a step held in a device tensor, as a float32 tensor on that device, computed there.

        The same float64 operations in the same order, then rounded to float32: equal to
        ``float32(learning_rate(step))``, which is also what an eager step multiplies float32 weights by.
        """
        position = (step.to(torch.float64) - 1) / self.steps
        first = self.lr_start + (self.lr_middle - self.lr_start) * position / 0.5
        second = self.lr_middle + (self.lr_end - self.lr_middle) * (position - 0.5) / 0.5
        return torch.where(position <= 0.5, first, second).to(torch.float32)


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
