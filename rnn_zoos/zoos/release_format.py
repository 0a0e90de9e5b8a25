"""What a zoo kind declares about the paper's release of its zoo (:class:`ReleaseFormat`): the arrays a release folder
holds, their shapes, dtypes and value bounds, and how its rows become the zoo's columns.

The zoo kinds define these; the reader (:mod:`rnn_zoos.release.reader`) checks a release folder against them, and hands
itself to their methods as a :class:`ReleaseContent`.
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Protocol

import numpy as np

FLOATS, INTEGERS, REALS = "f", "iu", "iuf"
"""The NumPy dtype kinds a release array may have: floating-point numbers, integers, either."""
KIND_NAMES = {FLOATS: "floating-point numbers", INTEGERS: "integers", REALS: "real numbers (integers or floating-point)"}
INT32_MAX = 2**31 - 1
"""The largest run id and step a zoo stores (``int32`` columns)."""
RUN_STEP_BOUNDS = (0, INT32_MAX)
"""The bounds of a release's run ids and steps."""
MAX_ABS_WEIGHT = 1000.0
"""The largest weight a trained RNN of the paper's recipe can have: AdamW moves a weight by at most about 3.2 times the
learning rate per step ((1 - beta1) / sqrt(1 - beta2)), so the 20,001 updates of its schedule (learning rates summing to
about 82) move it by at most about 260 from its initialisation (below 0.2)."""
WEIGHT_BOUNDS = (-MAX_ABS_WEIGHT, MAX_ABS_WEIGHT)


@dataclass(frozen=True)
class ReleaseArray:
    """What one array of a release holds per snapshot (row): its shape, its dtype kind and, if bounded, its value range."""

    shape: tuple[int, ...]
    kinds: str
    """:data:`FLOATS`, :data:`INTEGERS` or :data:`REALS`."""
    bounds: tuple[Any, Any] | None = None
    """The smallest and largest value the array may hold (token ids, ``int8`` task components, weights a trained RNN can
    have): two numbers, or two tuples with one number per column of a two-dimensional array."""


class ReleaseFormat(ABC):
    """How one zoo of the paper's release is laid out and converted: defined by the zoo kind (``ZooKind.release``)."""

    prefix: str
    """The release folder's name starts with it: ``formal_languages``."""
    arrays: dict[str, ReleaseArray]
    """The arrays (``NAME.npy``) besides ``args.json``, by name."""
    run_step: str
    """The array whose first two columns are every row's run and step (its bounds keep them within :data:`RUN_STEP_BOUNDS`)."""
    task_array: str = "tasks"
    """The array holding every row's task."""
    measures_reproduction: bool = False
    """Whether the stored ``log_probs`` reproduce only approximately, so the import measures and records how exactly."""
    reproduction_reason: str = ""

    @property
    def files(self) -> tuple[str, ...]:
        """The files a release folder of this format holds."""
        return (*(f"{name}.npy" for name in self.arrays), "args.json")

    def check_args(self, args: dict[str, Any], path: Path) -> None:
        """Raise :class:`DamagedZooError` if the run options in ``args.json`` (``path``) cannot be this release's."""

    @abstractmethod
    def task_cell(self, release: ReleaseContent, row: int) -> Any:
        """The ``task`` cell of row ``row``."""

    @abstractmethod
    def columns(self, release: ReleaseContent, index: np.ndarray) -> dict[str, Any]:
        """The ``task``, ``accuracy`` and zoo-specific columns of the rows ``index``."""

    def inputs(self, stored: np.ndarray) -> np.ndarray:
        """The ``inputs`` cells of some rows from what the release stores (a repair may be due)."""
        return stored

    def log_probs(self, logits: np.ndarray) -> np.ndarray:
        """The ``log_probs`` cells of some rows from the release's ``logits``."""
        return logits.astype(np.float16)

    def repair_notes(self, release: ReleaseContent) -> list[str]:
        """Notes on what :meth:`inputs` repairs, counted over the whole release."""
        return []

    def notes(self, release: ReleaseContent) -> list[str]:
        """What the release records differently from a built zoo, for ``meta/info.json`` and the card."""
        return []

    def card_fields(self, release: ReleaseContent) -> dict[str, Any]:
        """Zoo-specific card placeholders that describe the release."""
        return {}


class ReleaseContent(Protocol):
    """What a :class:`ReleaseFormat` reads of a release folder being converted (:class:`rnn_zoos.release.reader.Release`)."""

    args: dict[str, Any]
    """The run options in ``args.json``."""
    arrays: dict[str, np.ndarray]
    """The release's arrays (memory-mapped), by name."""
    rows: int
    """The snapshots (rows) in the release."""

    def blocks(self, name: str) -> Iterator[np.ndarray]:
        """The array ``name`` a block of rows at a time."""

