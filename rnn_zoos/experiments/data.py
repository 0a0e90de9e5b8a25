"""A zoo split held as tensors on the training device, so that batches cost an index, not a decode; and the checks
the baseline scripts make of their ``--zoo``, ``--out`` and other options before they write anything."""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch

from rnn_zoos.common.arguments import check_device, option_name  # noqa: F401  (check_device re-exported)
from rnn_zoos.common.errors import ZooError
from rnn_zoos.hub.loading import decode_batch, load_zoo, read_info
from rnn_zoos.format.info import SPLITS, ZooInfo
from rnn_zoos.zoos import ZooKind, zoo_kind
from rnn_zoos.lstm.functional import Params
from rnn_zoos.lstm.symmetry import permute_hidden, random_permutations

from ..models.encoders import check_encoder, resolve_encoder
from ..models.modeling import RNNEncoderConfig

LIGHT = ("run", "step", "accuracy")
READ_ROWS = 500
"""Rows decoded at a time while loading (bounds the memory of the conversion)."""


@dataclass
class ZooTensors:
    """The rows of one split: batched weights, recorded inputs and log-probs (as stored: int16 / float16), and light columns."""

    kind: ZooKind
    weights: Params
    inputs: torch.Tensor
    log_probs: torch.Tensor
    columns: dict[str, torch.Tensor]
    tasks: list

    def __len__(self) -> int:
        return len(self.inputs)

    def to(self, device: str | torch.device) -> ZooTensors:
        """The same rows on ``device``."""
        return ZooTensors(
            self.kind,
            {name: tensor.to(device) for name, tensor in self.weights.items()},
            self.inputs.to(device),
            self.log_probs.to(device),
            {name: tensor.to(device) for name, tensor in self.columns.items()},
            self.tasks,
        )

    def select(self, mask: torch.Tensor) -> ZooTensors:
        """The rows where ``mask`` is true."""
        index = torch.nonzero(mask.to(self.inputs.device)).flatten()
        return ZooTensors(self.kind, {name: tensor[index] for name, tensor in self.weights.items()}, self.inputs[index],
                          self.log_probs[index], {name: tensor[index.to(tensor.device)] for name, tensor in self.columns.items()},
                          [self.tasks[i] for i in index.tolist()])

    @staticmethod
    def concat(parts: list[ZooTensors]) -> ZooTensors:
        """The rows of several parts, one after the other."""
        first = parts[0]
        return ZooTensors(first.kind, {name: torch.cat([part.weights[name] for part in parts]) for name in first.weights},
                          torch.cat([part.inputs for part in parts]), torch.cat([part.log_probs for part in parts]),
                          {name: torch.cat([part.columns[name] for part in parts]) for name in first.columns},
                          [task for part in parts for task in part.tasks])

    def params(self, index: torch.Tensor, generator: torch.Generator | None = None, permute: bool = False) -> Params:
        """The weights of rows ``index``; with ``permute``, their hidden neurons permuted (same functions) by one
        random permutation per layer for the whole batch, as the paper's augmentation does."""
        params = {name: tensor[index] for name, tensor in self.weights.items()}
        if permute:
            params = permute_hidden(params, random_permutations(params, generator, shared=True))
        return params

    def sequences(self, index: torch.Tensor, sequence: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """Model inputs ``[B * k, T, I]`` and target log-probs ``[B * k, T, O]`` of sequences ``[B, k]`` of rows ``index [B]``."""
        rows = index.unsqueeze(1).expand_as(sequence)
        inputs = self.kind.model_inputs(self.inputs[rows, sequence].flatten(0, 1))
        return inputs, self.log_probs[rows, sequence].flatten(0, 1).float()


def load_splits(zoo: str | Path, device: str | torch.device = "cpu", revision: str | None = None) -> dict[str, ZooTensors]:
    """Every split of a zoo, as tensors on ``device``: load once, share between runs."""
    return {split: load_split(zoo, split, device, revision) for split in SPLITS}


def load_split(zoo: str | Path, split: str, device: str | torch.device = "cpu", revision: str | None = None) -> ZooTensors:
    """Load one split of a zoo (folder or Hub id, at ``revision``) into tensors on ``device``."""
    info = read_info(zoo, revision)
    kind = zoo_kind(info.zoo)
    dataset = load_zoo(zoo, split=split, format="numpy", revision=revision)
    weights: dict[str, list[torch.Tensor]] = {name: [] for name in kind.architecture.parameter_shapes()}
    inputs, log_probs, tasks = [], [], []
    present = kind.features_for(info.format_version)  # a zoo of an earlier format may lack some extra columns
    columns: dict[str, list[np.ndarray]] = {name: [] for name in (*LIGHT, *kind.extra_columns) if name in present}
    for start in range(0, len(dataset), READ_ROWS):
        rows = dataset[start : start + READ_ROWS]
        decoded = decode_batch(list(rows["weights"]))
        for name in weights:
            weights[name].append(decoded[name])
        inputs.append(torch.from_numpy(np.asarray(rows["inputs"])))
        log_probs.append(torch.from_numpy(np.asarray(rows["log_probs"])))
        tasks += [kind.task_key(task) for task in rows["task"]]
        for name in columns:
            columns[name].append(np.asarray(rows[name]))
    shapes = kind.architecture.parameter_shapes()
    empty = lambda shape, dtype: torch.zeros((0, *shape), dtype=dtype)  # noqa: E731
    return ZooTensors(
        kind,
        {name: torch.cat(parts) if parts else empty(shapes[name], torch.float32) for name, parts in weights.items()},
        torch.cat(inputs) if inputs else empty(kind.inputs_feature.shape, torch.float32),
        torch.cat(log_probs) if log_probs else empty(kind.log_probs_feature.shape, torch.float16),
        {name: torch.from_numpy(np.concatenate(parts)) if parts else torch.zeros(0) for name, parts in columns.items()},
        tasks,
    ).to(device)


# --- checking options before anything is written ------------------------------------------------

def check_counts(**counts: int) -> None:
    """Raise :class:`ZooError` for the first of ``counts`` (option field -> value) that is below 1."""
    for field, value in counts.items():
        if value < 1:
            raise ZooError(f"{option_name(field)} must be at least 1, got {value}")


def check_encoders(option: str, names: Iterable[str], kind: ZooKind | None = None, **options: Any) -> None:
    """Raise :class:`ZooError` naming ``option`` for the first of ``names`` (encoder references from the command line)
    that names no encoder, or, given the zoo's ``kind``, whose encoder for its RNNs fails or returns embeddings of
    another shape (:func:`rnn_zoos.models.encoders.check_encoder`; ``options``: further
    :meth:`RNNEncoderConfig.for_zoo` options). A ``MODULE:CLASS`` name imports MODULE, running its code."""
    for name in names:
        try:
            if kind is None:
                resolve_encoder(name)
            else:
                check_encoder(name, RNNEncoderConfig.for_zoo(name, kind, **options).shape)
        except ZooError as error:
            raise ZooError(f"{option} {error}") from None


def check_zoo(zoo: str | Path, revision: str | None = None) -> ZooInfo:
    """The info record of the zoo (a zoo folder or a Hub dataset id, at ``revision``), read before anything is written:
    :class:`ZooError` with one line for a missing folder, an invalid id or an unreadable record."""
    return read_info(zoo, revision)


