"""Downstream targets: properties of an RNN that a probe predicts from its weights.

A :class:`Target` says how its true values are read off the rows of a zoo, how a predictor's
outputs are trained and turned into predictions, how predictions are scored, and what the trivial
floor predicts. The generic ones are here (a float column, the snapshot step); a zoo kind defines
its own for its tasks (:meth:`rnn_zoos.zoos.ZooKind.targets`).
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from typing import Any

import torch
from torch import nn


class Scaler:
    """Standardises regression values with the training mean and deviation (identity for other targets)."""

    def __init__(self, mean: float | torch.Tensor = 0.0, scale: float | torch.Tensor = 1.0) -> None:
        self.mean, self.scale = torch.as_tensor(mean), torch.as_tensor(scale)


class Target(ABC):
    """A property to predict, how it is encoded for training, and how predictions are scored."""

    label: str
    """What kind of target it is, as results record it: ``regression``, ``classes``, ..."""
    primary: str
    """The metric used for model selection and reported first."""
    higher_is_better: bool

    def __init__(self, name: str) -> None:
        self.name = name

    @abstractmethod
    def values(self, rows: Any, steps: list[int]) -> torch.Tensor:
        """The true values for the rows of a loaded split (``steps``: the zoo's snapshot steps)."""

    @abstractmethod
    def output_size(self, steps: list[int]) -> int:
        """How many outputs a predictor needs."""

    def scaler(self, fit: torch.Tensor) -> Scaler:
        """How the training values ``fit`` are standardised for training (identity unless regression)."""
        return Scaler()

    @abstractmethod
    def loss(self, out: torch.Tensor, true: torch.Tensor, scaler: Scaler) -> torch.Tensor:
        """What a predictor with outputs ``out`` is trained on."""

    @abstractmethod
    def predictions(self, out: torch.Tensor, scaler: Scaler) -> torch.Tensor:
        """Predictor outputs turned into predictions in the target's own terms."""

    @abstractmethod
    def metrics(self, predicted: torch.Tensor, true: torch.Tensor) -> dict[str, float]:
        """Scores of predictions against the truth; :attr:`primary` among them."""

    @abstractmethod
    def trivial(self, fit: torch.Tensor, count: int) -> torch.Tensor:
        """The floor: ``count`` predictions made from the training values alone."""


def most_frequent(fit: torch.Tensor, count: int) -> torch.Tensor:
    """The most frequent training value (per column), ``count`` times."""
    return fit.mode(dim=0).values.expand(count, *fit.shape[1:]).clone()


class Regression(Target):
    """A float column of the zoo (``accuracy``, ``generalization_gap``, ...), trained standardised, scored by MSE."""

    label, primary, higher_is_better = "regression", "mse", False

    def values(self, rows: Any, steps: list[int]) -> torch.Tensor:
        return rows.columns[self.name].float().cpu()

    def output_size(self, steps: list[int]) -> int:
        return 1

    def scaler(self, fit: torch.Tensor) -> Scaler:
        return Scaler(fit.mean(), fit.std().clamp(min=1e-8) if len(fit) > 1 else 1.0)

    def loss(self, out: torch.Tensor, true: torch.Tensor, scaler: Scaler) -> torch.Tensor:
        return nn.functional.mse_loss(out[:, 0], (true - scaler.mean.to(true.device)) / scaler.scale.to(true.device))

    def predictions(self, out: torch.Tensor, scaler: Scaler) -> torch.Tensor:
        return out[:, 0] * scaler.scale + scaler.mean

    def metrics(self, predicted: torch.Tensor, true: torch.Tensor) -> dict[str, float]:
        return {"mse": (predicted.cpu() - true.cpu()).square().mean().item()}

    def trivial(self, fit: torch.Tensor, count: int) -> torch.Tensor:
        return torch.full((count,), fit.mean().item())


class Classes(Target):
    """A target with a fixed set of classes (a subclass says how the class indices are read), one head trained by
    cross-entropy; scored by accuracy, with the most frequent training class as the floor."""

    label, primary, higher_is_better = "classes", "accuracy", True

    def loss(self, out: torch.Tensor, true: torch.Tensor, scaler: Scaler) -> torch.Tensor:
        return nn.functional.cross_entropy(out, true)

    def predictions(self, out: torch.Tensor, scaler: Scaler) -> torch.Tensor:
        return out.argmax(-1)

    def metrics(self, predicted: torch.Tensor, true: torch.Tensor) -> dict[str, float]:
        return {"accuracy": (predicted.cpu() == true.cpu()).float().mean().item()}

    def trivial(self, fit: torch.Tensor, count: int) -> torch.Tensor:
        return most_frequent(fit, count)


class SnapshotStep(Classes):
    """Which snapshot a row is (the training step), as a class."""

    def values(self, rows: Any, steps: list[int]) -> torch.Tensor:
        return torch.tensor([steps.index(int(step)) for step in rows.columns["step"].tolist()], dtype=torch.long)

    def output_size(self, steps: list[int]) -> int:
        return len(steps)
