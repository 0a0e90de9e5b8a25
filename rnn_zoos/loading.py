"""Loading zoos: ``load_zoo``, ``to_module`` and a DataLoader collate function.

A zoo is a plain ``datasets`` dataset (``datasets.load_dataset(folder_or_repo_id)`` works as is);
:func:`load_zoo` adds what a plain load cannot know: it refuses a format version it does not read,
checks a local folder's files against the checksums in ``meta/info.json`` and reloads them when
they changed (``datasets`` keeps serving its cache of a local folder whose files were replaced),
returns an empty split as an empty dataset, and formats rows as torch tensors.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Iterator, Mapping, Sequence
from pathlib import Path
from typing import Any

import datasets
import torch
from huggingface_hub import hf_hub_download
from huggingface_hub.errors import HfHubHTTPError, LocalEntryNotFoundError, RepositoryNotFoundError

from .errors import ZooError
from .format import INFO_PATH, SPLITS, ZooInfo, decode_weights, file_sha256, weights_architecture, zoo_spec
from .files import atomic_write
from .lstm import LSTMWithHead, Params, stack_params

Zoo = datasets.Dataset | datasets.IterableDataset | datasets.DatasetDict | datasets.IterableDatasetDict


def read_info(name_or_path: str | Path, revision: str | None = None) -> ZooInfo:
    """``meta/info.json`` of a local zoo folder or a Hub dataset repo, with the format version checked."""
    if Path(name_or_path).is_dir():
        return ZooInfo.load(name_or_path)
    try:
        path = hf_hub_download(str(name_or_path), INFO_PATH, repo_type="dataset", revision=revision)
    except RepositoryNotFoundError:
        raise ZooError(f"{name_or_path} is neither a local folder nor a dataset repo on the Hub (check the name, or log in with `hf auth login` for a private repo)") from None
    except LocalEntryNotFoundError:
        raise ZooError(f"{name_or_path} is not in the local cache and the Hub cannot be reached (HF_HUB_OFFLINE set, or no network); load it once while online") from None
    except HfHubHTTPError as error:
        raise ZooError(f"could not read {INFO_PATH} of {name_or_path} from the Hub: {error}") from None
    return ZooInfo.from_json(Path(path).read_text(), f"{name_or_path}/{INFO_PATH}")


def load_zoo(name_or_path: str | Path, split: str | None = None, streaming: bool = False, revision: str | None = None) -> Zoo:
    """Load a zoo from a local folder or a Hub repo id, rows formatted as torch tensors.

    Args:
        name_or_path: a zoo folder, or a Hub dataset repo id such as ``rnn-zoos/formal-lang``.
        split: ``train``, ``validation`` or ``ood``; all three (a dict) if None.
        streaming: return ``IterableDataset``\\ s that read the Parquet files lazily.
        revision: branch, tag or commit of a Hub repo.

    The ``weights`` column stays bytes (decode with :func:`decode_weights` or :func:`to_module`);
    numbers become tensors (``inputs`` int64, ``log_probs`` float32, as ``datasets``' torch format gives).
    """
    if split is not None and split not in SPLITS:
        raise ZooError(f"unknown split {split!r}; a zoo has the splits {', '.join(SPLITS)}")
    info = read_info(name_or_path, revision)
    local = Path(name_or_path).is_dir()
    changed = _check_local_files(Path(name_or_path), info) if local else False
    features = zoo_spec(info.zoo).features
    wanted = [split] if split else list(SPLITS)
    present = [name for name in wanted if info.splits[name].num_rows]
    loaded: dict[str, Any] = {}
    if present:
        source = str(Path(name_or_path).resolve()) if local else str(name_or_path)
        kwargs: dict[str, Any] = {"streaming": streaming}
        if not local:
            kwargs["revision"] = revision
        elif changed and not streaming:
            kwargs["download_mode"] = "force_redownload"
        if split:  # only that split's files are read
            loaded = {split: datasets.load_dataset(source, split=split, **kwargs)}
        else:
            result = datasets.load_dataset(source, **kwargs)
            loaded = {name: result[name] for name in present}
        for name, dataset in loaded.items():
            if dataset.features is not None and dataset.features != features:
                raise ZooError(f"{name_or_path}: split {name} has the columns {dataset.features}, not those of a {info.zoo} zoo; "
                               "the zoo is damaged: rebuild it or download it again")
    for name in wanted:
        if name not in loaded:
            if streaming:
                loaded[name] = datasets.IterableDataset.from_generator(_no_rows, features=features, split=name)
            else:
                loaded[name] = datasets.Dataset.from_dict({column: [] for column in features}, features=features, split=name)
        loaded[name] = loaded[name].with_format("torch")
    if split:
        return loaded[split]
    return (datasets.IterableDatasetDict if streaming else datasets.DatasetDict)(loaded)


def _no_rows() -> Iterator[dict[str, Any]]:
    """The rows of an empty split."""
    yield from ()


def _fingerprints_path() -> Path:
    return Path(datasets.config.HF_DATASETS_CACHE) / "rnn_zoos_local_fingerprints.json"


def _check_local_files(folder: Path, info: ZooInfo) -> bool:
    """Verify a local zoo's data files if they changed since the last verified load; returns whether they changed.

    The fingerprint is the size and modification time of every data file and of ``meta/info.json``.
    """
    files = sorted(info.checksums)
    for relative in files:
        if not (folder / relative).is_file():
            raise ZooError(f"{folder / relative} is missing: the zoo is incomplete; rebuild it or download it again")
    stats = [(relative, (folder / relative).stat()) for relative in [*files, INFO_PATH]]
    fingerprint = hashlib.sha256(json.dumps([(name, st.st_size, st.st_mtime_ns) for name, st in stats]).encode()).hexdigest()
    record_path = _fingerprints_path()
    try:
        records = json.loads(record_path.read_text())
    except (OSError, ValueError):
        records = {}
    key = str(folder.resolve())
    if records.get(key) == fingerprint:
        return False
    for relative in files:
        if file_sha256(folder / relative) != info.checksums[relative]:
            raise ZooError(f"{folder / relative} does not match its checksum in {INFO_PATH} (corrupt or truncated); rebuild the zoo or download it again")
    records[key] = fingerprint
    with atomic_write(record_path) as temporary:
        temporary.write_text(json.dumps(records, indent=1))
    return True


def to_module(blob: bytes) -> LSTMWithHead:
    """Turn a ``weights`` cell into a ready ``torch.nn.Module`` (``lstm`` + ``head``) in eval mode."""
    module = LSTMWithHead(weights_architecture(blob))
    module.load_state_dict(decode_weights(blob))
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
