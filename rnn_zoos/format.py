"""The on-Hub zoo format, version 1: columns, the weights blob and ``meta/info.json``.

This module is the one place that fixes the format (DESIGN.md section 3). A zoo folder::

    README.md                       dataset card; its YAML ``configs`` map splits to data files
    data/{split}-0000i-of-0000N.parquet
    meta/info.json                  :class:`ZooInfo`

A minor version only adds optional fields to ``meta/info.json`` (1.1: ``log_probs_reproduction``), so
this library reads every 1.x record and ignores the fields of later minor versions it does not know.
"""

from __future__ import annotations

import dataclasses
import hashlib
import json
import math
import re
import struct
import types
import typing
from collections.abc import Callable, Hashable, Sequence
from dataclasses import MISSING, asdict, dataclass, field, fields
from pathlib import Path
from typing import Any

import numpy as np
import safetensors.torch
import torch
from datasets import Array2D, Array3D, Features, List, Value
from safetensors import SafetensorError

from .errors import DamagedZooError, ZooError
from .lstm import LSTMArchitecture, Params
from .splits import Criterion
from .zoos.formal_lang import task_entropy

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

WEIGHTS_DTYPE = "F32"
"""The safetensors dtype of every tensor in a weights blob (format v1 stores float32 weights)."""
MAX_HEADER_BYTES = 1 << 20
"""The largest safetensors header a weights blob may have (a 2-layer LSTM of a zoo needs under 1 KiB)."""
MAX_DIMENSION = 1 << 16
"""The largest ``input_size``, ``hidden_size`` or ``output_size`` a weights blob may claim."""
MAX_LAYERS = 1024
"""The largest ``num_layers`` a weights blob may claim."""
ARCHITECTURE_LIMITS = {"input_size": MAX_DIMENSION, "hidden_size": MAX_DIMENSION, "num_layers": MAX_LAYERS, "output_size": MAX_DIMENSION}
MAX_TENSOR_RANK = 8
MAX_OFFSET = 1 << 62
TRUNCATION_HINT = (
    "a blob read through datasets' own 'numpy' or 'torch' format loses its trailing zero bytes to NumPy's bytes dtype: "
    "read rows with rnn_zoos.load_zoo, whose formats keep bytes intact"
)


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


def short(value: Any, limit: int = 60) -> str:
    """``repr(value)`` cut to ``limit`` characters: untrusted values in error messages stay one readable line."""
    text = repr(value)
    return text if len(text) <= limit else text[: limit - 3] + "..."


def _not_safetensors(reason: str) -> DamagedZooError:
    return DamagedZooError(f"weights blob is not a safetensors file ({reason}); the zoo file holding it is corrupt")


def _read_header(blob: bytes) -> tuple[dict[str, Any], int]:
    """The JSON header of a safetensors blob and the size of the tensor data after it, read within bounds."""
    if not isinstance(blob, bytes):
        raise ZooError(f"a weights blob is bytes (a zoo's weights cell), not {type(blob).__name__}")
    if len(blob) < 8:
        raise _not_safetensors(f"{len(blob)} bytes, too short for the 8-byte header size")
    (size,) = struct.unpack_from("<Q", blob)
    if size > min(len(blob) - 8, MAX_HEADER_BYTES):
        raise _not_safetensors(f"its header size {size:,} exceeds the {len(blob) - 8:,} bytes that follow or the limit of {MAX_HEADER_BYTES:,}")
    try:
        text = blob[8 : 8 + size].decode("utf-8")
        header = json.loads(text) if text.startswith("{") else None
    except (ValueError, RecursionError) as error:  # UnicodeDecodeError and JSONDecodeError are ValueErrors
        raise _not_safetensors(f"its header is not UTF-8 JSON: {short(str(error), 120)}") from None
    if not isinstance(header, dict):
        raise _not_safetensors("its header is not a JSON object")
    return header, len(blob) - 8 - size


def weights_header(blob: bytes) -> dict[str, Any]:
    """The JSON header of a safetensors blob (tensor names, dtypes, shapes and ``__metadata__``).

    The header's stated size must fit in the blob and under :data:`MAX_HEADER_BYTES`, and the header must be a
    UTF-8 JSON object; its entries are not checked (:func:`weights_architecture` checks them).
    """
    return _read_header(blob)[0]


def _metadata_architecture(header: dict[str, Any]) -> LSTMArchitecture:
    """The LSTM architecture that a header's ``__metadata__`` claims, every size within :data:`ARCHITECTURE_LIMITS`."""
    metadata = header.get("__metadata__", {})
    if not isinstance(metadata, dict) or not all(isinstance(value, str) for value in metadata.values()):
        raise DamagedZooError(f"weights blob metadata is {short(metadata)}, not a map of names to strings; the blob is corrupt")
    if metadata.get("cell") != "lstm":
        raise ZooError(f"weights blob holds a {short(metadata.get('cell', 'unknown'))} cell; rnn_zoos reads LSTM weights (cell 'lstm')")
    sizes = {}
    for key, limit in ARCHITECTURE_LIMITS.items():
        text = metadata.get(key, "")
        if not (text.isascii() and text.isdigit() and len(text) <= 9 and 1 <= int(text) <= limit):
            raise DamagedZooError(f"weights blob metadata {key}={short(text)} is not a whole number from 1 to {limit:,}; "
                                  "the blob was not written by rnn_zoos or is corrupt")
        sizes[key] = int(text)
    return LSTMArchitecture(**sizes)


def _is_sizes(value: Any, length: int | None = None) -> bool:
    """Whether ``value`` is a JSON list of at most :data:`MAX_TENSOR_RANK` (or exactly ``length``) sizes in ``[0, MAX_OFFSET]``."""
    return (
        isinstance(value, list)
        and (len(value) == length if length is not None else len(value) <= MAX_TENSOR_RANK)
        and all(isinstance(item, int) and not isinstance(item, bool) and 0 <= item <= MAX_OFFSET for item in value)
    )


def _tensor_shapes(header: dict[str, Any], data_size: int) -> dict[str, tuple[int, ...]]:
    """The shape of every tensor in a header, after checking each tensor's dtype and byte range.

    Every tensor must be float32 with as many bytes as its shape needs, and together their byte
    ranges must tile the ``data_size`` bytes of tensor data exactly (no gap, overlap or excess).
    """
    shapes: dict[str, tuple[int, ...]] = {}
    spans: list[tuple[int, int]] = []
    for name, entry in header.items():
        if name == "__metadata__":
            continue
        entry = entry if isinstance(entry, dict) else {}
        shape, offsets, dtype = entry.get("shape"), entry.get("data_offsets"), entry.get("dtype")
        if not (_is_sizes(shape) and _is_sizes(offsets, 2) and offsets[0] <= offsets[1]):
            raise DamagedZooError(f"weights blob tensor {short(name)} has no valid shape and data_offsets; the blob is corrupt")
        if dtype != WEIGHTS_DTYPE:
            raise DamagedZooError(f"weights blob tensor {short(name)} has the dtype {short(dtype)}; rnn_zoos format v1 stores float32 ({WEIGHTS_DTYPE}) weights")
        begin, end = offsets
        if end > data_size:
            raise DamagedZooError(f"weights blob tensor {short(name)} lies at bytes {begin:,} to {end:,} of the tensor data, but the blob "
                                  f"holds only {data_size:,}: it is truncated or its header is corrupt ({TRUNCATION_HINT})")
        if end - begin != 4 * math.prod(shape):
            raise DamagedZooError(f"weights blob tensor {short(name)} has {end - begin:,} bytes for the float32 shape {tuple(shape)}; the blob is corrupt")
        shapes[name] = tuple(shape)
        spans.append((begin, end))
    position = 0
    for begin, end in sorted(spans):
        if begin != position:
            raise DamagedZooError(f"weights blob tensors overlap or leave a gap at byte {position:,} of the tensor data; the blob is corrupt")
        position = end
    if position != data_size:
        raise DamagedZooError(f"weights blob has {data_size - position:,} bytes after its last tensor; the blob is corrupt")
    return shapes


def _listing(items: list[str], limit: int = 3) -> str:
    return ", ".join(items[:limit]) + (f" and {len(items) - limit} more" if len(items) > limit else "")


def _shape_difference(found: dict[str, tuple[int, ...]], expected: dict[str, tuple[int, ...]]) -> str:
    """The tensors that are missing, unexpected or of another shape, a few of each."""
    parts = []
    if missing := [name for name in expected if name not in found]:
        parts.append(f"missing {_listing(missing)}")
    if extra := [short(name) for name in found if name not in expected]:
        parts.append(f"unexpected {_listing(extra)}")
    if wrong := [f"{name} {found[name]} (expected {expected[name]})" for name in expected if name in found and found[name] != expected[name]]:
        parts.append(f"shapes {_listing(wrong)}")
    return "; ".join(parts)


def weights_architecture(blob: bytes) -> LSTMArchitecture:
    """The architecture recorded in a weights blob's metadata, after checking the whole blob without allocating tensors.

    A blob is untrusted input: its header must be sane (:func:`weights_header`), its metadata an LSTM
    within :data:`ARCHITECTURE_LIMITS`, and its tensors exactly the float32 tensors of that architecture,
    by name and shape, filling the blob's bytes exactly. Anything else raises :class:`ZooError`.
    """
    header, data_size = _read_header(blob)
    architecture = _metadata_architecture(header)
    shapes = _tensor_shapes(header, data_size)
    expected = architecture.parameter_shapes()
    if shapes != expected:
        raise DamagedZooError(f"weights blob tensors do not match its metadata {architecture}: {_shape_difference(shapes, expected)}; the blob is corrupt")
    return architecture


def decode_weights(blob: bytes, architecture: LSTMArchitecture | None = None) -> Params:
    """Decode a weights blob into named float32 tensors (no model dimension).

    The blob is checked completely before any tensor is allocated (:func:`weights_architecture`). If
    ``architecture`` is given, the blob must hold exactly that architecture (a foreign blob raises
    :class:`ZooError` naming what differs).
    """
    found = weights_architecture(blob)
    if architecture is not None and found != architecture:
        raise ZooError(f"weights blob holds {found}, expected {architecture}; it belongs to another zoo")
    try:
        tensors = safetensors.torch.load(blob)
    except SafetensorError as error:  # a rule of the safetensors format the checks above do not restate (e.g. JSON escapes)
        raise _not_safetensors(short(str(error), 120)) from None
    return {name: tensors[name] for name in found.parameter_shapes()}


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


MAX_INFO_BYTES = 64 << 20
"""The largest ``meta/info.json`` this library reads (the paper's zoos need well under 1 MiB)."""
DATA_FILE = re.compile(r"data/[A-Za-z0-9][A-Za-z0-9._-]*\.parquet")
"""What a data file listed in ``meta/info.json`` may be called: a Parquet file directly inside ``data/``."""
INFO_HELP = "rebuild the zoo or download it again"


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
    def from_json(cls, text: str | bytes, source: str = INFO_PATH) -> ZooInfo:
        """Parse a record, checking every field's type and value; refuses a format major version this library does not read.

        Fields this library does not know (added by a later minor version) are ignored. A malformed
        record raises :class:`DamagedZooError` naming the field.
        """
        try:
            raw = json.loads(text)
        except (ValueError, RecursionError) as error:  # UnicodeDecodeError and JSONDecodeError are ValueErrors
            raise DamagedZooError(f"{source} is not UTF-8 JSON ({short(str(error), 120)}); {INFO_HELP}") from None
        if not isinstance(raw, dict) or not isinstance(raw.get("format_version"), str):
            raise DamagedZooError(f"{source} is not a zoo info record (it has no format_version string); {INFO_HELP}")
        check_format_version(raw["format_version"], source)
        try:
            info = _from_json_value(raw, cls, "")
            _check_info(info)
        except ValueError as error:
            raise DamagedZooError(f"{source}: {error}; {INFO_HELP}") from None
        return info

    @classmethod
    def read(cls, path: Path, source: str | None = None) -> ZooInfo:
        """Read a ``meta/info.json`` file of at most :data:`MAX_INFO_BYTES`; ``source`` names it in errors (default: the path)."""
        source = source or str(path)
        if not path.is_file():
            raise ZooError(f"{source} not found: {path.parent.parent} is not a built zoo (build one with python -m builders.<zoo>)")
        if path.stat().st_size > MAX_INFO_BYTES:
            raise DamagedZooError(f"{source} has {path.stat().st_size:,} bytes, more than the {MAX_INFO_BYTES:,} an info record may have; {INFO_HELP}")
        return cls.from_json(path.read_bytes(), source)

    @classmethod
    def load(cls, folder: str | Path) -> ZooInfo:
        """Read ``meta/info.json`` of a zoo folder."""
        return cls.read(Path(folder) / INFO_PATH)


def _field_path(where: str, name: str) -> str:
    return f"{where}.{name}" if where else name


def _expect(valid: bool, value: Any, what: str, where: str) -> None:
    """Raise ``ValueError`` saying that the field ``where`` should be ``what`` unless ``valid``."""
    if not valid:
        raise ValueError(f"{where[:80]} is {short(value)}, expected {what}")


def _from_json_value(value: Any, hint: Any, where: str) -> Any:
    """``value`` parsed from JSON, checked against the type ``hint`` and converted (objects into dataclasses).

    Raises ``ValueError`` naming the field (``where``, such as ``splits.train.num_rows``) and what it
    should be. An object's keys that are not fields of its dataclass (a later minor version's) are ignored.
    """
    origin, args = typing.get_origin(hint), typing.get_args(hint)
    if hint is Any:
        return value
    if dataclasses.is_dataclass(hint):
        _expect(isinstance(value, dict), value, "an object", where)
        hints = typing.get_type_hints(hint)
        required = [entry.name for entry in fields(hint) if entry.default is MISSING and entry.default_factory is MISSING]
        if missing := [name for name in required if name not in value]:
            raise ValueError(f"{_field_path(where, missing[0])} is missing")
        return hint(**{entry.name: _from_json_value(value[entry.name], hints[entry.name], _field_path(where, entry.name))
                       for entry in fields(hint) if entry.name in value})
    if origin in (typing.Union, types.UnionType):  # X | None
        return None if value is None else _from_json_value(value, next(arg for arg in args if arg is not type(None)), where)
    if origin is list:
        _expect(isinstance(value, list), value, "a list", where)
        return [_from_json_value(item, args[0], f"{where}[{index}]") for index, item in enumerate(value)]
    if origin is dict:
        _expect(isinstance(value, dict), value, "an object", where)
        return {key: _from_json_value(item, args[1], _field_path(where, key)) for key, item in value.items()}
    if hint is float:
        _expect(isinstance(value, (int, float)) and not isinstance(value, bool), value, "a number", where)
        return float(value)
    _expect(isinstance(value, hint) and not isinstance(value, bool), value, "an integer" if hint is int else "a string", where)
    return value


def _check_info(info: ZooInfo) -> None:
    """The checks of a parsed record beyond types: the zoo is known, its splits are the format's, counts are
    non-negative, data files lie in ``data/`` and tasks are tasks of the zoo. Raises ``ValueError`` naming the field."""
    _expect(info.zoo in ZOO_SPECS, info.zoo, f"a zoo this rnn_zoos reads ({', '.join(sorted(ZOO_SPECS))}; a newer rnn_zoos may read more)", "zoo")
    spec = ZOO_SPECS[info.zoo]
    if missing := [name for name in SPLITS if name not in info.splits]:
        raise ValueError(f"splits lacks the split {missing[0]!r} (a zoo has the splits {', '.join(SPLITS)})")
    if unknown := [name for name in info.splits if name not in SPLITS]:
        raise ValueError(f"splits has the unknown split {short(unknown[0])} (a zoo has the splits {', '.join(SPLITS)})")
    for name, split in info.splits.items():
        where = f"splits.{name}"
        _expect(split.num_rows >= 0, split.num_rows, "a count >= 0", f"{where}.num_rows")
        _expect(split.num_bytes >= 0, split.num_bytes, "a count >= 0", f"{where}.num_bytes")
        for index, path in enumerate(split.files):
            _expect(bool(DATA_FILE.fullmatch(path)), path, "a Parquet file in data/", f"{where}.files[{index}]")
        for index, task in enumerate(split.tasks):
            _expect(_is_task(spec, task), task, f"a {spec.name} task", f"{where}.tasks[{index}]")
    for path in info.checksums:
        _expect(bool(DATA_FILE.fullmatch(path)), path, "a Parquet file in data/", "a key of checksums")


def _is_task(spec: ZooSpec, task: Any) -> bool:
    """Whether ``task`` (from JSON) is a task cell of a ``spec`` zoo: its task key can be formed."""
    try:
        spec.task_key(task)
    except (TypeError, ValueError, OverflowError):
        return False
    return True


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
