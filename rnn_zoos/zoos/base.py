"""What a zoo is: :class:`ZooKind`, one object per kind of zoo that owns everything zoo-specific.

A zoo kind fixes the columns and the RNN architecture of its zoo, its tasks and split criterion,
how a run is trained and what a snapshot records (:meth:`ZooKind.recipe`), its card and plots, how
an RNN (or an emulator standing in for it) is scored on its task, the properties downstream probes
predict, and, for the paper's zoos, how the original release is read. Everything else in the
library looks the kind up by name (:func:`rnn_zoos.zoos.zoo_kind`); adding a zoo is adding one
module that defines and registers a kind.
"""

from __future__ import annotations

import importlib.resources
from abc import ABC, abstractmethod
from collections.abc import Callable, Hashable, Sequence
from typing import TYPE_CHECKING, Any

import numpy as np
import torch
from datasets import Features, Value

from .build_config import BuildConfig
from ..lstm.functional import LSTMArchitecture, Params, lstm_forward

if TYPE_CHECKING:  # imported for annotations only: these modules import the registry
    import matplotlib.axes
    import pyarrow as pa

    from .release_format import ReleaseFormat
    from .targets import Target

SequenceModel = Callable[[torch.Tensor, Any], tuple[torch.Tensor, Any]]
"""M models on inputs ``[M, B, T, input_size]`` and a carried state (None at the start) -> logits ``[M, B, T, output_size]``
and the new state: the RNNs of a zoo (:func:`rnn_model`), or an emulator standing in for each of them."""
Plot = tuple[str, str, Callable[["matplotlib.axes.Axes", "ZooKind", dict[str, "pa.Table"]], None]]
"""A card plot: caption, file name under ``assets/``, and a function drawing it from each split's light columns."""


def version_key(version: str) -> tuple[int, int]:
    """A format version ``MAJOR.MINOR`` as a pair of ints, for comparing versions (ValueError if it is not one)."""
    major, minor = version.split(".")
    return int(major), int(minor)


def legacy_build(builder: dict[str, Any]) -> bool:
    """Whether the zoo whose builder record is ``builder`` was built by rnn-zoos under format 1 (its ``step`` s holds the
    weights after s updates, step 0 the initial weights; a zoo kind may add its own differences). A zoo imported from
    the paper's release records no ``format_version`` in its builder record and keeps the release's conventions."""
    version = builder.get("format_version")
    return isinstance(version, str) and version.split(".")[0] == "1"


LEGACY_STEP = ("step s holds the weights after s optimizer updates (step 0: the initial weights; a run made `steps` "
               "updates); since format 2 it holds them after s + 1 updates, as the official loop records them")
"""How ``step`` differs in a zoo built under format 1 (:func:`legacy_build`)."""


CLONED_MEASURES = ("paper", "rnn_zoos")
"""The measures of cloned performance (:meth:`ZooKind.cloned_scores`)."""


def rnn_model(params: Params) -> SequenceModel:
    """The RNNs ``params`` (``{name: [M, ...]}``) as a :data:`SequenceModel`."""
    return lambda inputs, state: lstm_forward(params, inputs, state)


def recorded_log_probs(kind: ZooKind, params: Params, inputs: torch.Tensor) -> np.ndarray:
    """The ``log_probs`` column: float16 log-softmax outputs of M RNNs on their recorded ``inputs [M, 100, ...]``."""
    logits, _ = lstm_forward(params, kind.model_inputs(inputs))
    return torch.log_softmax(logits, dim=-1).to(torch.float16).cpu().numpy()


class ZooRecipe(ABC):
    """How the runs of a zoo train and what each snapshot records; made by :meth:`ZooKind.recipe` for one build."""

    def __init__(self, kind: ZooKind) -> None:
        self.kind = kind

    def content_config(self) -> dict[str, Any]:
        """Options beyond :class:`BuildConfig` that change the zoo's content (recorded and checked on resume)."""
        return {}

    @abstractmethod
    def setup(self, seeds: torch.Tensor) -> dict[str, torch.Tensor]:
        """Per-run constants from the runs' seeds ``[K]``: at least ``weight_decay [K]``, usually the task."""

    def prepare(self, runs: dict[str, torch.Tensor], seeds: torch.Tensor, step: int) -> None:
        """Update, in place, per-run tensors of ``runs`` that :meth:`loss` reads at the loop's step ``step`` (such as an
        epoch's batch order); called on the host before every update, also the first after resuming. Nothing by default."""

    @abstractmethod
    def loss(self, params: Params, runs: dict[str, torch.Tensor], seeds: torch.Tensor, step: int) -> torch.Tensor:
        """Per-run training loss ``[K]`` of the update at the loop's step ``step`` (0 to ``steps``; data drawn for that
        step). ``step`` may be an int or a 0-dim device tensor (a static step): use tensor operations on it."""

    @abstractmethod
    def snapshot(self, params: Params, runs: dict[str, torch.Tensor], seeds: torch.Tensor, step: int) -> dict[str, Any]:
        """Columns of the K rows of the snapshot at step ``step`` (after that step's update), all but ``run``, ``step``,
        ``seed`` and ``weights``."""

    def card_fields(self) -> dict[str, Any]:
        """Zoo-specific ``$placeholders`` of the card template."""
        return {}

    def notes(self) -> list[str]:
        """Remarks recorded in ``meta/info.json`` (deviations, caveats)."""
        return []


class ZooKind(ABC):
    """One kind of zoo: its format, tasks, training, card, scoring, downstream targets and release reader."""

    name: str
    """Short name, also the Hub repo name (lower case, words joined by ``-``)."""
    description: str
    """One line: what the RNNs of this zoo do (command-line help, cards)."""
    architecture: LSTMArchitecture
    task_feature: Any
    """The ``datasets`` feature of the ``task`` column."""
    extra_columns: tuple[str, ...] = ("weight_decay",)
    """Zoo-specific float32 columns after ``accuracy``."""
    columns_since: dict[str, str] = {}
    """Extra columns added after format 1.0: column -> the first format version with it (older zoos lack it)."""
    inputs_feature: Any
    log_probs_feature: Any
    token_vocab: int | None = None
    """If set, ``inputs`` are token ids: a model reads them one-hot, all but the last (next-token prediction), and
    the probing encoders' probes are distributions over the tokens; None: real-valued inputs."""
    criterion_label: str = "task"
    """What the split criterion measures (axis labels)."""
    probing_length: int
    """Default length of the probing encoders' probe sequences."""
    probing_length_fixed: bool = False
    """Whether the paper's code fixes the probe length to :attr:`probing_length` for this zoo (no length ablation)."""
    build_config: type[BuildConfig] = BuildConfig
    """The options of this zoo's builder (a subclass may add zoo-specific ones)."""
    release: ReleaseFormat | None = None
    """How the paper's original release of this zoo is read (:mod:`rnn_zoos.release`); None if it has none."""
    paper_emulation_loss: dict[str, float] = {}
    """The paper's validation emulation loss per encoder (its Table 2), shown beside a reproduction's."""
    optional_targets: tuple[str, ...] = ()
    """Targets of :meth:`targets` that a study runs only when asked for (not the paper's)."""

    # --- tasks -------------------------------------------------------------------------------

    @abstractmethod
    def task_key(self, cell: Any) -> Hashable:
        """A hashable, sortable form of a ``task`` cell (or of a task vector row)."""

    def task_cell(self, key: Hashable) -> Any:
        """A task key back in the form of a ``task`` cell (and of JSON): a list for vector tasks."""
        return list(key) if isinstance(key, tuple) else key

    @abstractmethod
    def criterion(self, vectors: np.ndarray) -> np.ndarray:
        """The split criterion of task vectors ``[U, k]`` (:meth:`task_array`): the highest tasks form the ``ood`` split."""

    @abstractmethod
    def is_task(self, cell: Any) -> bool:
        """Whether ``cell`` (read from JSON or a file) is a task of this zoo."""

    @property
    def scalar_task(self) -> bool:
        """Whether a task is one number rather than a vector."""
        return isinstance(self.task_feature, Value)

    def task_array(self, tasks: Sequence[Any]) -> np.ndarray:
        """Task cells or keys as the task vectors ``[N, k]`` the split code reads (int64 vectors, float64 numbers)."""
        if self.scalar_task:
            return np.asarray(tasks, dtype=np.float64).reshape(-1, 1)
        return np.asarray(tasks, dtype=np.int64).reshape(len(tasks), -1)

    def task_keys(self, vectors: np.ndarray) -> list[Hashable]:
        """Task vectors ``[N, k]`` (as :meth:`task_array` gives them) back as task keys."""
        return [self.task_key(row[0] if self.scalar_task else row) for row in np.asarray(vectors)]

    def task_criterion(self, tasks: Sequence[Any]) -> np.ndarray:
        """The split criterion of each of ``tasks`` (cells or keys)."""
        return self.criterion(self.task_array(tasks)) if len(tasks) else np.zeros(0)

    # --- rows --------------------------------------------------------------------------------

    def model_inputs(self, inputs: torch.Tensor) -> torch.Tensor:
        """What the RNNs read, from a batch of recorded ``inputs``: ``log_probs`` are their outputs on it."""
        if self.token_vocab is None:
            return inputs.float()
        return torch.nn.functional.one_hot(inputs[..., :-1].long(), self.token_vocab).float()

    def features_for(self, format_version: str) -> Features:
        """The columns of a zoo of this kind written in format ``format_version`` (:attr:`features` for the current one)."""
        written = version_key(format_version)
        return Features({name: feature for name, feature in self.features.items()
                         if version_key(self.columns_since.get(name, "1.0")) <= written})

    def earlier_conventions(self, builder: dict[str, Any]) -> list[str]:
        """How the columns of a zoo with the builder record ``builder`` differ in meaning from those of a zoo built now
        (a zoo built under format 1, :func:`legacy_build`); empty for a zoo of the current conventions."""
        return [LEGACY_STEP] if legacy_build(builder) else []

    def unavailable_targets(self, builder: dict[str, Any], format_version: str) -> dict[str, str]:
        """Targets of :meth:`targets` that a zoo with this builder record and format version cannot serve: name -> why."""
        return {}

    @property
    def features(self) -> Features:
        """The ``datasets`` features of a row, in column order (of the current format version)."""
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

    # --- building and the card ---------------------------------------------------------------

    @abstractmethod
    def recipe(self, config: BuildConfig) -> ZooRecipe:
        """The training recipe of a build with the options ``config`` (of type :attr:`build_config`)."""

    def card_template(self) -> str:
        """The dataset card template (Markdown with ``$placeholders``): ``dataset_cards/<name>.md``."""
        return (importlib.resources.files("rnn_zoos.dataset_cards") / f"{self.name}.md").read_text()

    def card_plots(self) -> list[Plot]:
        """Plots this zoo's card shows besides the common ones."""
        return []

    # --- scoring an RNN or its emulator on the task -------------------------------------------

    def validation_data(self, builder: dict[str, Any], source: str | None, device: torch.device) -> Any:
        """Data the task needs to score a model (MNIST: the validation images; formal languages: how the stored accuracy
        was counted); ``builder`` is the zoo's builder record, ``source`` an override given by the user. None if the
        task needs none."""
        return None

    @abstractmethod
    def cloned_scores(self, rnn: SequenceModel, emulator: SequenceModel, rows: Any, index: torch.Tensor, data: Any,
                      draw: int = 0, measures: tuple[str, ...] = CLONED_MEASURES) -> dict[str, tuple[torch.Tensor, torch.Tensor]]:
        """Scores ``(original, emulated)`` ``[len(index)]`` of the rows ``index`` of ``rows`` (a loaded split) and of the
        emulator standing in for each, by each of ``measures``: ``paper`` (as the paper's code measures it) and
        ``rnn_zoos`` (the emulator measured as the stored ``accuracy`` was). ``draw`` numbers the random draws: the
        paper's evaluation draws new samples (or images) each time it measures, so each measurement passes its own."""

    # --- downstream prediction and reproduction ------------------------------------------------

    @abstractmethod
    def targets(self) -> dict[str, Target]:
        """The properties downstream probes predict from an RNN's weights, by name."""
