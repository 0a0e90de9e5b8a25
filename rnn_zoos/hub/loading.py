"""Loading zoos: ``resolve_zoo``, ``load_zoo``, ``to_module`` and a DataLoader collate function.

A zoo is a plain ``datasets`` dataset (``datasets.load_dataset(folder_or_repo_id)`` works as is);
:func:`load_zoo` adds what a plain load cannot know: it refuses a format version it does not read,
reads exactly the data files that ``meta/info.json`` lists (an extra file in ``data/`` is named in a
warning, never mixed in), checks them against their checksums and schema and reloads them when they
changed (``datasets`` keeps serving its cache of files that were replaced), returns an empty split as an
empty dataset, and formats rows as torch tensors or NumPy arrays with the ``weights`` bytes intact.

A zoo folder or Hub repo is untrusted input: every problem with it raises :class:`ZooError` (a
:class:`DamagedZooError` for damaged files) with a message that names the file.
"""

from __future__ import annotations

import json
import math
import os
import time
import warnings
from collections.abc import Iterator, Mapping, Sequence
from pathlib import Path
from typing import Any

import datasets
import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq
import torch
from datasets.exceptions import DatasetGenerationError
from datasets.formatting import _register_formatter
from datasets.formatting.formatting import NumpyArrowExtractor
from datasets.formatting.np_formatter import NumpyFormatter
from datasets.formatting.torch_formatter import TorchFormatter
from ..common.errors import DamagedZooError, ZooError
from ..common.files import atomic_write
from ..format.info import DATA_DIR, INFO_PATH, ROW_GROUP_SIZE, SPLITS, EarlierFormatWarning, ZooInfo, file_sha256, shard_rows, short
from ..zoos import ZooKind, zoo_kind
from ..format.blob import decode_weights, weights_architecture
from .sources import ZooSource, resolve_zoo
from ..lstm.functional import LSTMWithHead, Params, stack_params

Zoo = datasets.Dataset | datasets.IterableDataset | datasets.DatasetDict | datasets.IterableDatasetDict


# --- row formats that keep bytes intact -------------------------------------------------------

class BytesKeepingExtractor(NumpyArrowExtractor):
    """``datasets``' NumPy extraction, except that binary columns become object arrays of Python ``bytes``.

    ``datasets`` turns a binary column into NumPy's fixed-width bytes dtype, which drops trailing zero
    bytes: a weights blob whose last float is 0.0 would come back shortened and unreadable.
    """

    def _arrow_array_to_numpy(self, pa_array: pa.Array | pa.ChunkedArray) -> np.ndarray:
        if pa.types.is_binary(pa_array.type) or pa.types.is_large_binary(pa_array.type) or pa.types.is_fixed_size_binary(pa_array.type):
            values = np.empty(len(pa_array), dtype=object)
            values[:] = pa_array.to_pylist()
            return values
        return super()._arrow_array_to_numpy(pa_array)


class ZooTorchFormatter(TorchFormatter):
    """``datasets``' torch format with binary cells kept as exact ``bytes``."""

    numpy_arrow_extractor = BytesKeepingExtractor


class ZooNumpyFormatter(NumpyFormatter):
    """``datasets``' NumPy format with binary cells kept as exact ``bytes``."""

    numpy_arrow_extractor = BytesKeepingExtractor


ROW_FORMATS: dict[str, str | None] = {"torch": "rnn_zoos_torch", "numpy": "rnn_zoos_numpy", "python": None}
"""The row formats of :func:`load_zoo`, by name, and the ``datasets`` format type of each (``Dataset.with_format``)."""
_register_formatter(ZooTorchFormatter, ROW_FORMATS["torch"])
_register_formatter(ZooNumpyFormatter, ROW_FORMATS["numpy"])


def conventions_note(info: ZooInfo, source: str) -> str | None:
    """One line stating how the columns of the zoo ``source`` (with the record ``info``) differ in meaning from those of
    a zoo built now (:meth:`~rnn_zoos.zoos.ZooKind.earlier_conventions`); None if they do not."""
    return info.conventions_note(source, zoo_kind(info.zoo).earlier_conventions(info.builder))


def read_info(name_or_path: str | Path, revision: str | None = None) -> ZooInfo:
    """``meta/info.json`` of a local zoo folder or a Hub dataset repo, with the format version and every field checked."""
    return resolve_zoo(name_or_path, revision).info()


# --- checking data files ----------------------------------------------------------------------

def unlisted_files(folder: Path, info: ZooInfo) -> list[str]:
    """The entries of a zoo folder's ``data/`` that ``meta/info.json`` does not list, as relative paths."""
    listed = {path for split in info.splits.values() for path in split.files}
    data = folder / DATA_DIR
    entries = sorted(path.relative_to(folder).as_posix() for path in data.iterdir()) if data.is_dir() else []
    return [path for path in entries if path not in listed]


ROW_GROUP_SLACK_BYTES = 4 << 20
"""What a row group may take uncompressed beyond twice its rows' raw size (:func:`max_row_bytes`): dictionary pages, levels."""


def max_row_bytes(kind: ZooKind) -> int:
    """An upper bound on the raw size of one sound row of a ``kind`` zoo: its recorded arrays, its float32 weights and 8 KiB
    for the blob's header, the task and the scalar columns."""
    recorded = sum(math.prod(feature.shape) * np.dtype(feature.dtype).itemsize for feature in (kind.inputs_feature, kind.log_probs_feature))
    return recorded + 4 * kind.architecture.num_parameters + (8 << 10)


def check_data_file(path: Path, label: str, kind: ZooKind, format_version: str, rows: int) -> None:
    """Raise :class:`DamagedZooError` (naming the file ``label``) unless the Parquet file at ``path`` has the columns of a
    ``kind`` zoo of format ``format_version`` and, by its footer, ``rows`` rows in row groups of at most :data:`ROW_GROUP_SIZE` rows, each no larger
    uncompressed than such rows can be.

    Only the footer is read, so a crafted file cannot make a reader decode more rows, or larger cells, than
    ``meta/info.json`` and the zoo's columns allow (as far as the footer tells the truth about its pages).
    """
    try:
        metadata = pq.read_metadata(path)
        found = datasets.Features.from_arrow_schema(metadata.schema.to_arrow_schema())
    except Exception as error:  # pyarrow and datasets raise many types for a damaged footer or schema metadata
        raise DamagedZooError(f"{label} is not a readable Parquet file ({type(error).__name__}: {short(str(error), 200)})") from None
    expected = kind.features_for(format_version)
    if found != expected:
        differing = sorted(name for name in {*found, *expected} if found.get(name) != expected.get(name))
        raise DamagedZooError(f"{label} does not have the {kind.name} schema: the columns {', '.join(differing)} are missing, extra or of "
                              "another type; rebuild the zoo or download it again")
    groups = [metadata.row_group(index) for index in range(metadata.num_row_groups)]
    found_rows = sum(group.num_rows for group in groups)
    if metadata.num_rows != rows or found_rows != rows:
        raise DamagedZooError(f"{label} holds {max(metadata.num_rows, found_rows):,} rows, {INFO_PATH} says {rows:,}; "
                              "rebuild the zoo or download it again")
    for group in groups:
        if group.num_rows > ROW_GROUP_SIZE:
            raise DamagedZooError(f"{label} has a row group of {group.num_rows:,} rows; a zoo's data files hold at most {ROW_GROUP_SIZE} "
                                  "rows per row group: rebuild the zoo or download it again")
        if group.total_byte_size > (limit := 2 * group.num_rows * max_row_bytes(kind) + ROW_GROUP_SLACK_BYTES):
            raise DamagedZooError(f"{label} has a row group of {group.num_rows:,} rows taking {group.total_byte_size:,} bytes uncompressed, "
                                  f"more than the {limit:,} such rows of a {kind.name} zoo can take: rebuild the zoo or download it again")


def _fingerprints_path() -> Path:
    return Path(datasets.config.HF_DATASETS_CACHE) / "rnn_zoos_verified_files.json"


CHANGE_TIME_SLACK_NS = 2_000_000_000
"""A file whose status changed this recently when it was hashed is hashed again at its next check: on a file system with
coarse timestamps a later change within the same tick could leave its status unchanged."""


class _VerifiedFiles:
    """Files whose checksum was verified, by resolved path, with the status they had then (:func:`_fingerprint`)."""

    def __init__(self) -> None:
        try:
            records = json.loads(_fingerprints_path().read_text())
        except (OSError, ValueError):
            records = {}
        self.records: dict[str, Any] = records if isinstance(records, dict) else {}
        self.changed = False

    def check(self, path: Path, label: str, checksum: str) -> None:
        """Raise :class:`DamagedZooError` (naming the file ``label``) unless the file's sha256 is ``checksum``; hash it unless
        its status is what it was when it last passed."""
        key, stat = str(path.resolve()), path.stat()
        fingerprint = _fingerprint(stat, checksum)
        if self.records.get(key) == fingerprint:
            return
        hashed_at = time.time_ns()
        if file_sha256(path) != checksum:
            raise DamagedZooError(f"{label} does not match its checksum in {INFO_PATH} (corrupt or truncated); rebuild the zoo or download it again")
        if hashed_at - stat.st_ctime_ns > CHANGE_TIME_SLACK_NS:
            self.records[key] = fingerprint
        self.changed = True

    def save(self) -> None:
        """Record the files that passed."""
        if self.changed:
            with atomic_write(_fingerprints_path()) as temporary:
                temporary.write_text(json.dumps(self.records, indent=1))


def _fingerprint(stat: os.stat_result, checksum: str) -> list[Any]:
    """What must be unchanged for a file that matched ``checksum`` to be trusted without hashing it again.

    Besides size and modification time, which anyone can set back, it holds the file's identity (device, inode) and its
    status-change time (``st_ctime``), which the kernel sets on every write, rename or ``touch`` and no user can set back.
    """
    return [stat.st_size, stat.st_mtime_ns, stat.st_ctime_ns, stat.st_ino, stat.st_dev, checksum]


def checked_data_files(source: ZooSource, info: ZooInfo, split: str) -> tuple[list[Path], bool]:
    """The data files of ``split`` on this machine (downloaded from a Hub repo), each checked.

    Every file must exist and match its checksum in ``meta/info.json``, the zoo's schema and the rows that
    ``meta/info.json`` gives it (:func:`check_data_file`). Returns the paths and whether any file changed since
    it was last checked (``datasets``' cache of it is then stale).
    """
    kind = zoo_kind(info.zoo)
    verified = _VerifiedFiles()
    paths = []
    for index, relative in enumerate(info.splits[split].files):
        label = f"{source.name}/{relative}"
        if relative not in info.checksums:
            raise DamagedZooError(f"{label} has no checksum in {INFO_PATH}; rebuild the zoo or download it again")
        path = source.file(relative)
        if not path.is_file():
            raise DamagedZooError(f"{label} is missing: the zoo is incomplete; rebuild it or download it again")
        verified.check(path, label, info.checksums[relative])
        check_data_file(path, label, kind, info.format_version, shard_rows(info.splits[split].num_rows, index))
        paths.append(path)
    verified.save()
    return paths, verified.changed


# --- load_zoo ---------------------------------------------------------------------------------

def load_zoo(
    name_or_path: str | Path, split: str | None = None, streaming: bool = False, revision: str | None = None, format: str = "torch"
) -> Zoo:
    """Load a zoo from a local folder or a Hub repo id.

    Args:
        name_or_path: a zoo folder, or a Hub dataset repo id such as ``user/my-zoo``.
        split: ``train``, ``validation`` or ``ood``; all three (a dict) if None.
        streaming: return ``IterableDataset``\\ s that read the Parquet files lazily.
        revision: branch, tag or commit of a Hub repo.
        format: ``torch`` (tensors: ``inputs`` int64, ``log_probs`` float32, as ``datasets``' torch format
            gives), ``numpy`` or ``python`` (lists).

    Only the data files that ``meta/info.json`` lists are read; each is checked against its checksum
    (for a Hub repo, after downloading it; streaming from the Hub reads the files unchecked). The
    ``weights`` column stays exact ``bytes`` in every format (decode with :func:`decode_weights` or
    :func:`to_module`); do not re-format with ``datasets``' own ``"numpy"`` or ``"torch"`` formats,
    which drop a blob's trailing zero bytes: use this ``format`` argument.
    """
    if split is not None and split not in SPLITS:
        raise ZooError(f"unknown split {split!r}; a zoo has the splits {', '.join(SPLITS)}")
    if format not in ROW_FORMATS:
        raise ZooError(f"unknown format {format!r}; load_zoo gives rows as {', '.join(ROW_FORMATS)}")
    source = resolve_zoo(name_or_path, revision)
    info = source.info()
    kind = zoo_kind(info.zoo)
    wanted = [split] if split else list(SPLITS)
    if note := conventions_note(info, source.name):
        warnings.warn(note, EarlierFormatWarning, stacklevel=2)
    if source.folder is not None and (unlisted := unlisted_files(source.folder, info)):
        warnings.warn(f"{source.name}: {', '.join(unlisted)} not listed in {INFO_PATH}, so not loaded; "
                      "run rnn-zoos verify on the zoo", stacklevel=2)
    loaded = _read_splits(source, info, kind, wanted, streaming)
    for name in wanted:
        dataset = loaded[name] if name in loaded else _empty_split(kind.features_for(info.format_version), name, streaming)
        loaded[name] = dataset.with_format(ROW_FORMATS[format])
    if split:
        return loaded[split]
    return (datasets.IterableDatasetDict if streaming else datasets.DatasetDict)(loaded)


def _split_files(info: ZooInfo, name: str) -> list[str]:
    """The files of a split; DamagedZooError if they disagree with its row count (files without rows, or rows without files)."""
    entry = info.splits[name]
    if bool(entry.files) != bool(entry.num_rows):
        raise DamagedZooError(f"{INFO_PATH}: split {name} has {entry.num_rows} rows and {len(entry.files)} files; rebuild the zoo or download it again")
    return entry.files


def _read_splits(source: ZooSource, info: ZooInfo, kind: ZooKind, wanted: list[str], streaming: bool) -> dict[str, Any]:
    """The non-empty splits among ``wanted``, read with ``datasets``' Parquet reader from exactly their listed files."""
    files = {name: _split_files(info, name) for name in wanted}
    files = {name: relatives for name, relatives in files.items() if relatives}
    if not files:
        return {}
    changed = False
    if streaming and source.folder is None:  # stream from the Hub: the files are not downloaded, so not checked
        data_files = {name: [source.hub_url(relative) for relative in relatives] for name, relatives in files.items()}
    else:
        checked = {name: checked_data_files(source, info, name) for name in files}
        data_files = {name: [str(path.absolute()) for path in paths] for name, (paths, _) in checked.items()}
        changed = any(fresh for _, fresh in checked.values())
    kwargs: dict[str, Any] = {"streaming": streaming}
    if changed and not streaming:
        kwargs["download_mode"] = "force_redownload"
    try:
        loaded = dict(datasets.load_dataset("parquet", data_files=data_files, **kwargs))
    except (DatasetGenerationError, pa.ArrowException, OSError) as error:
        cause = error.__cause__ or error  # datasets wraps the reader's error
        raise DamagedZooError(f"{source.name}: the data files could not be read ({type(cause).__name__}: {short(str(cause), 200)}); "
                              "run rnn-zoos verify on the zoo") from None
    for name, dataset in loaded.items():
        _check_split(source, info, kind, name, dataset)
    return loaded


def _check_split(source: ZooSource, info: ZooInfo, kind: ZooKind, name: str, dataset: datasets.Dataset | datasets.IterableDataset) -> None:
    """A loaded split has the zoo's columns and, unless streamed, the row count of ``meta/info.json``."""
    if dataset.features is not None and dataset.features != kind.features_for(info.format_version):
        raise DamagedZooError(f"{source.name}: split {name} does not have the columns of a {info.zoo} zoo; rebuild it or download it again")
    if isinstance(dataset, datasets.Dataset) and len(dataset) != info.splits[name].num_rows:
        raise DamagedZooError(f"{source.name}: split {name} has {len(dataset)} rows in its files, {INFO_PATH} says {info.splits[name].num_rows}; "
                              "rebuild the zoo or download it again")


def _empty_split(features: datasets.Features, name: str, streaming: bool) -> datasets.Dataset | datasets.IterableDataset:
    """An empty split with the zoo's columns ``features`` (``datasets`` cannot load a split without files)."""
    if streaming:
        return datasets.IterableDataset.from_generator(_no_rows, features=features, split=name)
    return datasets.Dataset.from_dict({column: [] for column in features}, features=features, split=name)


def _no_rows() -> Iterator[dict[str, Any]]:
    """The rows of an empty split."""
    yield from ()


# --- rows to models ---------------------------------------------------------------------------

def to_module(blob: bytes) -> LSTMWithHead:
    """Turn a ``weights`` cell into a ready ``torch.nn.Module`` (``lstm`` + ``head``) in eval mode.

    The blob is checked completely before the module is allocated (:func:`rnn_zoos.format.weights_architecture`).
    """
    architecture = weights_architecture(blob)
    module = LSTMWithHead(architecture)
    module.load_state_dict(decode_weights(blob, architecture))
    return module.eval()


def collate_rows(rows: Sequence[Mapping[str, Any]]) -> dict[str, Any]:
    """Collate zoo rows for a ``torch.utils.data.DataLoader``: batched named weights and stacked columns.

    Returns a dict with ``weights`` = ``{name: [B, ...]}`` (the layout of :mod:`rnn_zoos.lstm`) and
    every other column stacked into a tensor with a leading batch dimension.
    """
    if not rows:
        raise ValueError("collate_rows needs at least one row")
    batch: dict[str, Any] = {}
    for column in rows[0]:
        if column == "weights":
            batch["weights"] = decode_batch([row["weights"] for row in rows])
        else:
            batch[column] = torch.stack([torch.as_tensor(row[column]) for row in rows])
    return batch


def decode_batch(weights: Sequence[bytes]) -> Params:
    """Decode many ``weights`` cells into batched parameters ``{name: [B, ...]}``."""
    return stack_params([decode_weights(blob) for blob in weights])
