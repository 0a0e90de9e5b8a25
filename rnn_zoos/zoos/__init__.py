"""The zoos this library knows, by name: their columns, architecture, tasks and split criterion."""

from __future__ import annotations

from collections.abc import Callable, Hashable, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
import torch
from datasets import Array2D, Array3D, Features, List, Value

from ..errors import ZooError
from ..lstm import LSTMArchitecture
from ..splits import Criterion
from .formal_lang import task_entropy


@dataclass(frozen=True)
class ZooSpec:
    """What distinguishes one zoo's rows from another's: architecture, task type and recorded behaviour."""

    name: str
    """Short name, also the Hub repo name: ``formal-lang``."""
    architecture: LSTMArchitecture
    task_feature: Any
    extra_columns: tuple[str, ...]
    """Zoo-specific float32 columns."""
    inputs_feature: Any
    log_probs_feature: Any
    token_vocab: int | None
    """If set, ``inputs`` are token ids: a model reads them one-hot, all but the last (next-token prediction)."""
    task_key: Callable[[Any], Hashable]
    """A hashable, sortable form of a ``task`` cell."""
    criterion: Criterion
    """The split criterion of task vectors ``[U, k]`` (:meth:`task_array`), as the paper's code computes it."""
    criterion_label: str
    probing_length: int
    """Default length of the probing encoders' probe sequences (the paper's configs: 22 for formal languages,
    the sequence length plus one, 50, for sequential MNIST)."""

    def task_cell(self, key: Hashable) -> Any:
        """A task key back in the form of a ``task`` cell (and of JSON): a list for vector tasks."""
        return list(key) if isinstance(key, tuple) else key

    def task_array(self, tasks: Sequence[Any]) -> np.ndarray:
        """Task cells or keys as the task vectors ``[N, k]`` the paper's split code reads (int64 vectors, float64 angles)."""
        if self.scalar_task:
            return np.asarray(tasks, dtype=np.float64).reshape(-1, 1)
        return np.asarray(tasks, dtype=np.int64).reshape(len(tasks), -1)

    def task_keys(self, vectors: np.ndarray) -> list[Hashable]:
        """Task vectors ``[N, k]`` (as :meth:`task_array` gives them) back as task keys."""
        return [self.task_key(row[0] if self.scalar_task else row) for row in np.asarray(vectors)]

    def task_criterion(self, tasks: Sequence[Any]) -> np.ndarray:
        """The split criterion of each of ``tasks`` (cells or keys)."""
        return self.criterion(self.task_array(tasks)) if len(tasks) else np.zeros(0)

    @property
    def scalar_task(self) -> bool:
        """Whether a task is one number (an angle) rather than a vector."""
        return isinstance(self.task_feature, Value)

    def model_inputs(self, inputs: torch.Tensor) -> torch.Tensor:
        """What the RNNs read, from a batch of recorded ``inputs``: ``log_probs`` are their outputs on it."""
        if self.token_vocab is None:
            return inputs.float()
        return torch.nn.functional.one_hot(inputs[..., :-1].long(), self.token_vocab).float()

    @property
    def features(self) -> Features:
        """The ``datasets`` features of a row, in column order."""
        columns: dict[str, Any] = {
            "run": Value("int32"),
            "step": Value("int32"),
            "seed": Value("int64"),
            "task": self.task_feature,
            "accuracy": Value("float32"),
        }
        columns.update({name: Value("float32") for name in self.extra_columns})
        columns.update(weights=Value("binary"), inputs=self.inputs_feature, log_probs=self.log_probs_feature)
        return Features(columns)


FORMAL_LANG = ZooSpec(
    name="formal-lang",
    architecture=LSTMArchitecture(input_size=6, hidden_size=32, num_layers=2, output_size=6),
    task_feature=List(Value("int8")),
    extra_columns=("weight_decay",),
    inputs_feature=Array2D((100, 42), "int16"),
    log_probs_feature=Array3D((100, 41, 6), "float16"),
    token_vocab=6,
    task_key=lambda task: tuple(int(value) for value in task),
    criterion=task_entropy,
    criterion_label="entropy of the normalised task vector",
    probing_length=22,
)

SEQ_MNIST = ZooSpec(
    name="seq-mnist",
    architecture=LSTMArchitecture(input_size=16, hidden_size=32, num_layers=2, output_size=10),
    task_feature=Value("float32"),
    extra_columns=("weight_decay", "train_loss", "val_loss", "generalization_gap"),
    inputs_feature=Array3D((100, 50, 16), "float16"),
    log_probs_feature=Array3D((100, 50, 10), "float16"),
    token_vocab=None,
    task_key=lambda task: float(np.float32(task)),
    criterion=lambda tasks: tasks.reshape(tasks.shape[0], -1).sum(-1),
    criterion_label="rotation angle (degrees)",
    probing_length=50,
)

ZOO_SPECS = {spec.name: spec for spec in (FORMAL_LANG, SEQ_MNIST)}


def zoo_spec(name: str) -> ZooSpec:
    """The spec of a zoo by name, with an error that lists the known names."""
    if name not in ZOO_SPECS:
        raise ZooError(f"unknown zoo {name!r}; known zoos: {', '.join(sorted(ZOO_SPECS))}")
    return ZOO_SPECS[name]
