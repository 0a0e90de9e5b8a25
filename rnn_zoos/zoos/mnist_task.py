"""Rotated, tiled sequential MNIST, the task of the sequential-MNIST zoo: images to the sequences a run's RNN reads, the
official split of MNIST's training images, the training objective and the official evaluation's measures.

An image is rotated by its run's angle (degrees, counter-clockwise, about the image centre, black
outside) with nearest-neighbour sampling exactly as the paper's builder does it (torchvision's
``RandomRotation`` on PIL images, i.e. PIL's ``Image.rotate`` with ``NEAREST``), normalised with
(0.1307, 0.3081) and cut into 49 row-major 4x4 tiles of 16 values; a zero ``BOS`` tile comes first,
so a model reads a ``[50, 16]`` sequence. The rotation runs on batches of images for many runs at
once, on the training device.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F

from ..lstm.streams import mix32
from .base import SequenceModel
from .rotation import rotate

IMAGE_SIZE = 28
TILE = 4
TILES_PER_SIDE = IMAGE_SIZE // TILE
SEQUENCE_LENGTH = TILES_PER_SIDE**2 + 1
"""49 tiles after the zero BOS tile."""
TILE_VALUES = TILE * TILE
CLASSES = 10
MEAN, STD = 0.1307, 0.3081
HASH_KEYS = (0x58A849AF6CBF585A, 0x5CA118CB4D828A5E)
"""The two 64-bit keys of the official split (``utilities.hash64``)."""


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
    """The official split of MNIST's training images (``utilities.hash64``): an image is in validation unless its index
    XORed with two fixed 64-bit keys is below 8 modulo 10 (12,002 of the 60,000)."""
    return (indices.to(torch.int64) ^ HASH_KEYS[0] ^ HASH_KEYS[1]) % 10 >= 8


def legacy_is_validation(indices: torch.Tensor) -> torch.Tensor:
    """The split of zoos built under format 1 (rnn-zoos' own hash of the index, 20 % validation), for scoring them."""
    return mix32(indices.to(torch.int64) ^ 0x5EED) % 10 < 2


EVALUATION_BUDGET = 2**27
"""Largest number of gate activations (models x images x 50 x 4 x hidden) one evaluation pass may hold."""
EVAL_BATCH, EVAL_BATCHES = 1000, 13
"""The official ``evaluate_model``: shuffled batches of 1000 images, at most 13 (it stops after batch index 12)."""


def image_scores(model: SequenceModel, angles: torch.Tensor, images: torch.Tensor, labels: torch.Tensor, index: torch.Tensor,
                 hidden_size: int) -> tuple[torch.Tensor, torch.Tensor]:
    """Training objective and last-position correctness, each ``[M, n]``, of M models on images of ``images [N, 28, 28]``
    in [0, 1] (labels ``[N]``): model m reads the images ``index[m]`` (``index [M, n]``, or ``[n]`` for every model),
    rotated by its angle (``angles [M]``); in passes of at most :data:`EVALUATION_BUDGET` gate activations of models
    ``hidden_size`` wide."""
    models = len(angles)
    index = index.expand(models, -1) if index.dim() == 1 else index
    per_pass = max(1, EVALUATION_BUDGET // (models * SEQUENCE_LENGTH * 4 * hidden_size))
    losses, correct = [], []
    for start in range(0, index.shape[1], per_pass):
        part = index[:, start : start + per_pass]
        logits, _ = model(model_inputs(images[part], angles), None)
        losses.append(sequence_loss(logits, labels[part]))
        correct.append(logits[:, :, -1].argmax(dim=-1) == labels[part])
    return torch.cat(losses, dim=1), torch.cat(correct, dim=1)


def loader_metrics(losses: torch.Tensor, correct: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """The official ``evaluate_model``'s loss and accuracy ``[M]`` from per-image scores ``[M, n]`` in loader order: the
    mean of the batches' mean losses (batches of :data:`EVAL_BATCH`; a last, smaller batch counts as much as a full one)
    and the fraction of all images predicted right."""
    batch_means = torch.stack([losses[:, start : start + EVAL_BATCH].mean(dim=1) for start in range(0, losses.shape[1], EVAL_BATCH)], dim=1)
    return batch_means.mean(dim=1), correct.float().mean(dim=1)
