"""The on-Hub zoo format, version 1: columns, the weights blob and ``meta/info.json``.

This module is the one place that fixes the format (DESIGN.md section 3). A zoo folder::

    README.md                       dataset card; its YAML ``configs`` map splits to data files
    data/{split}-0000i-of-0000N.parquet
    meta/info.json                  :class:`ZooInfo`

A minor version only adds optional fields to ``meta/info.json`` (1.1: ``log_probs_reproduction``), so
this library reads every 1.x record and ignores the fields of later minor versions it does not know.
"""

from __future__ import annotations

import hashlib
import json
import math
import struct
from collections.abc import Callable, Hashable, Sequence
from dataclasses import asdict, dataclass, field, fields
from pathlib import Path
from typing import Any

import numpy as np
import safetensors.torch
import torch
from datasets import Array2D, Array3D, Features, List, Value

from .errors import ZooError
from .lstm import LSTMArchitecture, Params
from .splits import Criterion
from .tasks.formal_lang import task_entropy

FORMAT_VERSION = "1.1"
SPLITS = ("train", "validation", "ood")
INFO_PATH = "meta/info.json"
DATA_DIR = "data"
CARD_PATH = "README.md"
RELEASE_SOURCE = "paper-release"
"""``builder["source"]`` of a zoo imported from the paper's original release (``python -m builders.import_release``)."""


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


# --- the weights blob -------------------------------------------------------------------------

def encode_weights(params: Params, architecture: LSTMArchitecture) -> bytes:
    """One RNN's parameters (no model dimension) as a self-describing safetensors file, in bytes.

    The header is rewritten with sorted keys (safetensors writes its metadata in hash-map order),
    so equal weights always give equal bytes.
    """
    metadata = {"format": "pt", "cell": "lstm", **{k: str(v) for k, v in architecture.to_dict().items()}}
    tensors = {name: params[name].detach().to("cpu", torch.float32).contiguous() for name in architecture.parameter_shapes()}
    blob = safetensors.torch.save(tensors, metadata=metadata)
    (size,) = struct.unpack("<Q", blob[:8])
    header = json.dumps(json.loads(blob[8 : 8 + size]), separators=(",", ":"), sort_keys=True).encode()
    header += b" " * (-len(header) % 8)
    return struct.pack("<Q", len(header)) + header + blob[8 + size :]


def weights_header(blob: bytes) -> dict[str, Any]:
    """The JSON header of a safetensors blob (tensor names, dtypes, shapes and ``__metadata__``)."""
    try:
        (size,) = struct.unpack("<Q", blob[:8])
        header = json.loads(blob[8 : 8 + size])
        if not isinstance(header, dict):
            raise ValueError("header is not a JSON object")
    except (struct.error, ValueError, UnicodeDecodeError) as error:
        raise ZooError(f"weights blob is not a safetensors file ({error}); the zoo file holding it is corrupt") from None
    return header


def weights_architecture(blob: bytes) -> LSTMArchitecture:
    """The architecture recorded in a weights blob's metadata."""
    metadata = weights_header(blob).get("__metadata__", {})
    if metadata.get("cell") != "lstm":
        raise ZooError(f"weights blob holds a {metadata.get('cell', 'unknown')!r} cell; rnn_zoos reads LSTM weights (cell 'lstm')")
    try:
        return LSTMArchitecture(**{key: int(metadata[key]) for key in ("input_size", "hidden_size", "num_layers", "output_size")})
    except (KeyError, ValueError) as error:
        raise ZooError(f"weights blob metadata lacks a valid {error}; it was not written by rnn_zoos") from None


def decode_weights(blob: bytes, architecture: LSTMArchitecture | None = None) -> Params:
    """Decode a weights blob into named float32 tensors (no model dimension).

    If ``architecture`` is given, the blob must hold exactly that architecture (a foreign blob raises
    :class:`ZooError` naming what differs).
    """
    found = weights_architecture(blob)
    if architecture is not None and found != architecture:
        raise ZooError(f"weights blob holds {found}, expected {architecture}; it belongs to another zoo")
    expected = found.parameter_shapes()
    tensors = safetensors.torch.load(blob)
    shapes = {name: tuple(tensor.shape) for name, tensor in tensors.items()}
    if shapes != expected:
        raise ZooError(f"weights blob tensors {shapes} do not match its metadata {found}; the blob is corrupt")
    if any(tensor.dtype != torch.float32 for tensor in tensors.values()):
        raise ZooError("weights blob holds tensors that are not float32; rnn_zoos format v1 stores float32 weights")
    return {name: tensors[name] for name in expected}


# --- meta/info.json ---------------------------------------------------------------------------

@dataclass
class SplitInfo:
    """One split of a zoo: its tasks, its runs and its files."""

    tasks: list[Any]
    runs: list[int]
    num_rows: int
    num_bytes: int
    """Size of the rows in Arrow memory."""
    files: list[str]


@dataclass
class LogProbsReproduction:
    """How exactly an imported release's weights reproduce its stored ``log_probs`` from its stored ``inputs``.

    Measured over every row at import (float32, ``rnn_zoos.lstm``, as :mod:`rnn_zoos.verify` recomputes them).
    Only a zoo imported from the paper's release carries it; ``verify`` then accepts a row whose largest error
    is within ``max_abs_error`` (plus a margin for float32 rounding across machines).
    """

    max_abs_error: float
    """The largest absolute difference between recomputed and stored log-probabilities, over all rows."""
    mean_abs_error: float
    """The mean absolute difference over all rows, sequences, positions and classes."""
    rows: int
    """The rows measured (all of them)."""
    worst_run: int
    worst_step: int
    """The row holding ``max_abs_error``."""
    reason: str
    """Why the weights reproduce the stored log-probabilities only approximately."""

    def __post_init__(self) -> None:
        """Coerce the numbers read from JSON; errors must be finite and non-negative (else ``ValueError``)."""
        self.max_abs_error, self.mean_abs_error = float(self.max_abs_error), float(self.mean_abs_error)
        self.rows, self.worst_run, self.worst_step = int(self.rows), int(self.worst_run), int(self.worst_step)
        if not all(math.isfinite(value) and value >= 0 for value in (self.max_abs_error, self.mean_abs_error)):
            raise ValueError(f"log_probs_reproduction errors must be finite and >= 0, not {self.max_abs_error}, {self.mean_abs_error}")


def known_fields(cls: type, raw: dict[str, Any]) -> dict[str, Any]:
    """The entries of ``raw`` that are fields of the dataclass ``cls``: a later minor version's additions are dropped."""
    names = {entry.name for entry in fields(cls)}
    return {key: value for key, value in raw.items() if key in names}


@dataclass
class ZooInfo:
    """The typed record stored as ``meta/info.json``."""

    zoo: str
    architecture: LSTMArchitecture
    builder: dict[str, Any]
    """The configuration that determines the zoo's content (a rebuild with it gives the same zoo)."""
    snapshot_steps: list[int]
    splits: dict[str, SplitInfo]
    checksums: dict[str, str]
    """``sha256`` of every data file, by path relative to the zoo folder."""
    notes: list[str] = field(default_factory=list)
    format_version: str = FORMAT_VERSION
    log_probs_reproduction: LogProbsReproduction | None = None
    """Set only by the import of the paper's release (format 1.1): see :class:`LogProbsReproduction`."""

    @property
    def num_rows(self) -> int:
        """Rows over all splits."""
        return sum(split.num_rows for split in self.splits.values())

    def to_json(self) -> str:
        """The record as indented JSON."""
        return json.dumps(asdict(self), indent=2) + "\n"

    @classmethod
    def from_json(cls, text: str, source: str = "meta/info.json") -> ZooInfo:
        """Parse a record, refusing a format major version this library does not read.

        Fields this library does not know (added by a later minor version) are ignored.
        """
        try:
            raw = json.loads(text)
            version = str(raw["format_version"])
        except (ValueError, KeyError, TypeError) as error:
            raise ZooError(f"{source} is not a zoo info record ({error}); rebuild the zoo or download it again") from None
        check_format_version(version, source)
        try:
            raw = known_fields(cls, raw)
            raw["architecture"] = LSTMArchitecture(**raw["architecture"])
            raw["splits"] = {name: SplitInfo(**known_fields(SplitInfo, split)) for name, split in raw["splits"].items()}
            if (record := raw.get("log_probs_reproduction")) is not None:
                raw["log_probs_reproduction"] = LogProbsReproduction(**known_fields(LogProbsReproduction, record))
            return cls(**raw)
        except (KeyError, TypeError, ValueError, AttributeError) as error:
            raise ZooError(f"{source} is missing or has malformed fields ({error}); rebuild the zoo or download it again") from None

    @classmethod
    def load(cls, folder: str | Path) -> ZooInfo:
        """Read ``meta/info.json`` of a zoo folder."""
        path = Path(folder) / INFO_PATH
        if not path.is_file():
            raise ZooError(f"{path} not found: {folder} is not a built zoo (build one with python -m builders.<zoo>)")
        return cls.from_json(path.read_text(), str(path))


def check_format_version(version: str, source: str) -> None:
    """Refuse a format major version other than this library's."""
    major = version.split(".")[0]
    if major != FORMAT_VERSION.split(".")[0]:
        raise ZooError(
            f"{source} has format version {version}; this rnn_zoos reads format version {FORMAT_VERSION.split('.')[0]}.x: "
            "upgrade rnn_zoos (pip install -U rnn-zoos) or use a zoo of a supported version"
        )


def file_sha256(path: str | Path) -> str:
    """Hex sha256 of a file, read in 1 MiB blocks."""
    digest = hashlib.sha256()
    with open(path, "rb") as handle:
        for block in iter(lambda: handle.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()
