"""Rotated, tiled sequential MNIST: the task of the sequential-MNIST zoo.

An image is rotated by its run's angle (degrees, counter-clockwise, about the image centre,
bilinear, black outside), normalised with (0.1307, 0.3081) and cut into 49 row-major 4x4 tiles
of 16 values; a zero ``BOS`` tile comes first, so a model reads a ``[50, 16]`` sequence. The
rotation runs on batches of images for many runs at once, on the training device.
"""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F

from ..streams import mix32

IMAGE_SIZE = 28
TILE = 4
TILES_PER_SIDE = IMAGE_SIZE // TILE
SEQUENCE_LENGTH = TILES_PER_SIDE**2 + 1
"""49 tiles after the zero BOS tile."""
TILE_VALUES = TILE * TILE
CLASSES = 10
MEAN, STD = 0.1307, 0.3081
VALIDATION_FRACTION = 0.2


def rotate(images: torch.Tensor, angles: torch.Tensor) -> torch.Tensor:
    """Rotate images counter-clockwise by ``angles`` degrees about their centre (bilinear, zeros outside).

    Args:
        images: ``[R, N, H, W]`` float images, ``N`` per run.
        angles: ``[R]`` one angle per run (degrees).

    Returns:
        ``[R, N, H, W]``; a multiple of 90 degrees moves pixels exactly (as ``torch.rot90``).
    """
    runs, count, height, width = images.shape
    radians = angles.to(images.dtype) * (math.pi / 180)
    cos, sin = torch.cos(radians), torch.sin(radians)
    # affine_grid maps output coordinates (x right, y down, in [-1, 1]) to input coordinates: a
    # counter-clockwise rotation on screen samples the input at the clockwise-rotated position.
    zero = torch.zeros_like(cos)
    theta = torch.stack([torch.stack([cos, -sin, zero], -1), torch.stack([sin, cos, zero], -1)], -2)
    theta = theta.repeat_interleave(count, dim=0)
    flat = images.reshape(runs * count, 1, height, width)
    grid = F.affine_grid(theta, list(flat.shape), align_corners=False)
    return F.grid_sample(flat, grid, mode="bilinear", padding_mode="zeros", align_corners=False).view(runs, count, height, width)


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
