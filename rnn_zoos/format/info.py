"""The on-Hub zoo format, version 2: columns, the weights blob and ``meta/info.json``.

This module is the one place that fixes the format (ARCHITECTURE.md, "The on-Hub format"). A zoo folder::

    README.md                       dataset card; its YAML ``configs`` map splits to data files
    data/{split}-0000i-of-0000N.parquet
    meta/info.json                  :class:`ZooInfo`

A minor version only adds optional fields to ``meta/info.json`` (1.1: ``log_probs_reproduction``), so
this library reads every record of a major version it reads and ignores the fields of later minor
versions it does not know. A major version changes what columns mean or which there are: 2.0 built
zoos follow the official code's conventions (``step`` s holds the weights after s + 1 updates; the
formal-language ``accuracy`` is the official order-insensitive count, with ``accuracy_ordered`` added;
sequential MNIST split, batches and recordings as the official builder). Zoos of format 1 still load,
with their columns (:meth:`ZooKind.features_for`) and their earlier meanings stated
(:meth:`ZooInfo.earlier_conventions`).
"""

from __future__ import annotations

import dataclasses
import hashlib
import json
import math
import re
import types
import typing
from dataclasses import MISSING, asdict, dataclass, field, fields
from pathlib import Path
from collections.abc import Mapping
from typing import Any, Protocol


from ..common.errors import DamagedZooError, ZooError, short
from ..lstm.functional import LSTMArchitecture

FORMAT_VERSION = "2.0"
READ_MAJORS = (1, 2)
"""The major format versions this library reads, oldest first."""
VERSION = re.compile(r"(\d{1,4})\.(\d{1,4})")
SPLITS = ("train", "validation", "ood")
INFO_PATH = "meta/info.json"
DATA_DIR = "data"
CARD_PATH = "README.md"
RELEASE_SOURCE = "paper-release"
"""``builder["source"]`` of a zoo imported from the paper's original release (``python -m builders.import_release``)."""

ROWS_PER_SHARD = 1000
"""Rows per data file: about 110 MB for the zoo of formal languages."""
ROW_GROUP_SIZE = 100
"""Rows per Parquet row group: the unit a streaming reader fetches."""


def shard_paths(split: str, num_rows: int) -> list[str]:
    """Relative paths of a split's data files: ``data/{split}-0000i-of-0000N.parquet``; none for an empty split."""
    count = -(-num_rows // ROWS_PER_SHARD)
    return [f"{DATA_DIR}/{split}-{index:05d}-of-{count:05d}.parquet" for index in range(count)]


def shard_rows(num_rows: int, index: int) -> int:
    """Rows of data file ``index`` of a split of ``num_rows`` rows: :data:`ROWS_PER_SHARD`, the last file the rest (0 past the end)."""
    return max(0, min(ROWS_PER_SHARD, num_rows - index * ROWS_PER_SHARD))


# --- meta/info.json ---------------------------------------------------------------------------

class KnownZoo(Protocol):
    """What the format needs of a zoo kind to check a record (:class:`rnn_zoos.zoos.ZooKind` has it)."""

    name: str

    def is_task(self, task: Any) -> bool:
        """Whether ``task`` is a task of this kind of zoo."""


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

    Measured over every row at import (float32, ``rnn_zoos.lstm``, as :mod:`rnn_zoos.hub.verify` recomputes them).
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

    def conventions_note(self, source: str, earlier: list[str]) -> str | None:
        """One line stating the ``earlier`` meanings of this zoo's columns (its kind's
        :meth:`~rnn_zoos.zoos.ZooKind.earlier_conventions`) for the zoo ``source``; None if there are none."""
        if not earlier:
            return None
        return f"{source} was built under format {self.format_version}, with earlier meanings: {'; '.join(earlier)}"

    def to_json(self) -> str:
        """The record as indented JSON."""
        return json.dumps(asdict(self), indent=2) + "\n"

    @classmethod
    def from_json(cls, text: str | bytes, source: str = INFO_PATH, zoos: Mapping[str, KnownZoo] | None = None) -> ZooInfo:
        """Parse a record, checking every field's type and value; refuses a format major version this library does not read.

        Fields this library does not know (added by a later minor version) are ignored. A malformed
        record raises :class:`DamagedZooError` naming the field. ``zoos`` are the zoo kinds a reader knows
        (:func:`rnn_zoos.zoos.known_zoos`): the zoo must be one of them and its splits' tasks tasks of it. The
        format does not import the zoo kinds itself (they build on it); without ``zoos`` only the record's
        structure is checked.
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
            _check_info(info, zoos)
        except ValueError as error:
            raise DamagedZooError(f"{source}: {error}; {INFO_HELP}") from None
        return info

    @classmethod
    def read(cls, path: Path, source: str | None = None, zoos: Mapping[str, KnownZoo] | None = None) -> ZooInfo:
        """Read a ``meta/info.json`` file of at most :data:`MAX_INFO_BYTES`; ``source`` names it in errors (default: the
        path); ``zoos`` as in :meth:`from_json`."""
        source = source or str(path)
        if not path.is_file():
            raise ZooError(f"{source} not found: {path.parent.parent} is not a built zoo (build one with rnn-zoos build ZOO)")
        if path.stat().st_size > MAX_INFO_BYTES:
            raise DamagedZooError(f"{source} has {path.stat().st_size:,} bytes, more than the {MAX_INFO_BYTES:,} an info record may have; {INFO_HELP}")
        return cls.from_json(path.read_bytes(), source, zoos)

    @classmethod
    def load(cls, folder: str | Path, zoos: Mapping[str, KnownZoo] | None = None) -> ZooInfo:
        """Read ``meta/info.json`` of a zoo folder; ``zoos`` as in :meth:`from_json`."""
        return cls.read(Path(folder) / INFO_PATH, zoos=zoos)


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


def _check_info(info: ZooInfo, zoos: Mapping[str, KnownZoo] | None) -> None:
    """The checks of a parsed record beyond types: the zoo is one of ``zoos`` (when given), its splits are the format's,
    counts are non-negative, data files lie in ``data/`` and tasks are tasks of the zoo. Raises ``ValueError`` naming the field."""
    kind = None
    if zoos is not None:
        known = sorted(zoos)
        _expect(info.zoo in zoos, info.zoo, f"a zoo this rnn_zoos reads ({', '.join(known)}; a newer rnn_zoos may read more)", "zoo")
        kind = zoos[info.zoo]
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
        for index, task in enumerate(split.tasks if kind is not None else []):
            _expect(kind.is_task(task), task, f"a {kind.name} task", f"{where}.tasks[{index}]")
    for path in info.checksums:
        _expect(bool(DATA_FILE.fullmatch(path)), path, "a Parquet file in data/", "a key of checksums")


class EarlierFormatWarning(UserWarning):
    """Issued when a zoo built under an earlier format is loaded: some of its columns mean something else than now
    (:meth:`ZooInfo.earlier_conventions`)."""


def check_format_version(version: str, source: str) -> None:
    """Refuse a format version that is not ``MAJOR.MINOR`` (:class:`DamagedZooError`) or whose major version this library
    does not read (:class:`ZooError`)."""
    match = VERSION.fullmatch(version)
    if match is None:
        raise DamagedZooError(f"{source} has the format version {short(version)}, which is not MAJOR.MINOR; {INFO_HELP}")
    if int(match[1]) not in READ_MAJORS:
        readable = " and ".join(f"{major}.x" for major in READ_MAJORS)
        raise ZooError(
            f"{source} has format version {version}; this rnn_zoos reads format versions {readable}: "
            "upgrade rnn_zoos (pip install -U rnn-zoos) or use a zoo of a supported version"
        )


def file_sha256(path: str | Path) -> str:
    """Hex sha256 of a file, read in 1 MiB blocks."""
    digest = hashlib.sha256()
    with open(path, "rb") as handle:
        for block in iter(lambda: handle.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()
