"""Nearest-neighbour rotation of images exactly as PIL's ``Image.rotate`` computes it, batched on any device.

The paper's sequential-MNIST builder rotates uint8 PIL images with torchvision's
``RandomRotation([a, a])``: the angle as float32, then ``Image.rotate(angle, NEAREST, expand=False,
fillcolor=0)``. :func:`rotate` reproduces that pixel for pixel (``rotate(x / 255) == PIL(x) / 255``).
"""

from __future__ import annotations

import functools
import math

import torch

QUARTER_TURNS = {
    0.0: (1.0, 0.0, 0.0, 1.0),
    90.0: (0.0, -1.0, 1.0, 0.0),
    180.0: (-1.0, 0.0, 0.0, -1.0),
    270.0: (0.0, 1.0, -1.0, 0.0),
}
"""``Image.rotate``'s exact shortcuts (a copy and transposes): angle to the source-from-output matrix ``(a, b, d, e)``."""


def rotate(images: torch.Tensor, angles: torch.Tensor) -> torch.Tensor:
    """Rotate images counter-clockwise by ``angles`` degrees about their centre, exactly as the paper's builder.

    The paper's builder rotates uint8 PIL images with torchvision's ``RandomRotation([a, a])``: the
    angle as float32, then ``Image.rotate(angle, NEAREST, expand=False, fillcolor=0)``. This
    reproduces that pixel for pixel (so ``rotate(x / 255) == PIL(x) / 255`` exactly): each run's
    source pixel per output pixel is computed on the CPU as PIL computes it, then all runs' pixels
    are gathered at once on the images' device. Pixels from outside the image are 0.

    Args:
        images: ``[R, N, H, W]`` float images, ``N`` per run.
        angles: ``[R]`` one angle per run (degrees).

    Returns:
        ``[R, N, H, W]``; a multiple of 90 degrees moves pixels exactly (as ``torch.rot90``).
    """
    return rotate_from(images, rotation_sources(angles.to(images.device), *images.shape[-2:]))


def rotation_sources(angles: torch.Tensor, height: int, width: int) -> torch.Tensor:
    """:func:`source_indices` of ``angles [R]``, on their device: the angles are read on the host, so a builder calls
    this once per batch of runs rather than at every step (a step then needs no synchronisation)."""
    return _sources_on(tuple(angles.detach().to("cpu", torch.float32).tolist()), height, width, angles.device)


def rotate_from(images: torch.Tensor, sources: torch.Tensor) -> torch.Tensor:
    """:func:`rotate` with the source pixels already computed (:func:`rotation_sources`): a gather on the device."""
    runs, count, height, width = images.shape
    flat = images.reshape(runs, count, height * width)
    gathered = flat.gather(2, sources.clamp(min=0).unsqueeze(1).expand(runs, count, height * width))
    zero = torch.zeros((), dtype=images.dtype, device=images.device)
    return torch.where(sources.unsqueeze(1) >= 0, gathered, zero).view(runs, count, height, width)


@functools.lru_cache(maxsize=4)
def _sources_on(angles: tuple[float, ...], height: int, width: int, device: torch.device) -> torch.Tensor:
    """:func:`source_indices` on ``device``, kept: a batch of runs rotates by the same angles at every step."""
    return source_indices(list(angles), height, width).to(device)


def source_indices(angles: list[float], height: int, width: int) -> torch.Tensor:
    """Where PIL's nearest-neighbour rotation of an ``H x W`` image by each angle (degrees) takes each output pixel from.

    Follows PIL's ``affine_fixed``: 16.16 fixed point, source column ``(a2 + y * a1 + x * a0) >> 16``
    and row ``(a5 + y * a4 + x * a3) >> 16`` of output pixel ``(x, y)``; exact for images under
    2**14 pixels a side.

    Returns:
        int64 ``[len(angles), H * W]``, row-major: the row-major index of the source pixel, or -1
        where it lies outside the image (PIL fills 0 there).
    """
    # int32 like PIL's C ints (and fast): no overflow below 2**14 pixels a side.
    fixed = torch.tensor([pil_fixed_point_matrix(angle, height, width) for angle in angles], dtype=torch.int32)
    a0, a1, a2, a3, a4, a5 = fixed.view(len(angles), 6).T[..., None, None]
    rows = torch.arange(height, dtype=torch.int32).view(height, 1)
    columns = torch.arange(width, dtype=torch.int32).view(1, width)
    source_x = (a2 + rows * a1 + columns * a0) >> 16
    source_y = (a5 + rows * a4 + columns * a3) >> 16
    inside = (source_x >= 0) & (source_x < width) & (source_y >= 0) & (source_y < height)
    return torch.where(inside, source_y * width + source_x, -1).flatten(1).to(torch.int64)


def pil_fixed_point_matrix(angle: float, height: int, width: int) -> tuple[int, int, int, int, int, int]:
    """``(a0, ..., a5)``: :func:`pil_rotation_matrix` in PIL's 16.16 fixed point, the offsets moved to pixel centres.

    A matrix with zero ``b`` and ``d`` takes PIL's scaling path instead; it is reached only within
    ~3e-14 degrees of 0, 180 or 360, where both paths give an exact copy or half turn.
    """
    a, b, c, d, e, f = pil_rotation_matrix(angle, height, width)
    return _fix(a), _fix(b), _fix(c + a * 0.5 + b * 0.5), _fix(d), _fix(e), _fix(f + d * 0.5 + e * 0.5)


def pil_rotation_matrix(angle: float, height: int, width: int) -> tuple[float, float, float, float, float, float]:
    """The source-from-output affine matrix ``(a, b, c, d, e, f)`` of ``Image.rotate(angle)`` about the centre ``(W/2, H/2)``.

    Computed in Python floats exactly as PIL does; the copy and transposes PIL takes as shortcuts
    (0 and 180 degrees, 90 and 270 on square images) get their exact integer matrices.
    """
    angle = angle % 360.0
    if angle in QUARTER_TURNS and (angle in (0.0, 180.0) or height == width):
        a, b, d, e = QUARTER_TURNS[angle]
    else:
        radians = -math.radians(angle)
        a, b = round(math.cos(radians), 15), round(math.sin(radians), 15)
        d, e = round(-math.sin(radians), 15), round(math.cos(radians), 15)
    centre_x, centre_y = width / 2, height / 2
    return a, b, a * -centre_x + b * -centre_y + centre_x, d, e, d * -centre_x + e * -centre_y + centre_y


def _fix(value: float) -> int:
    """PIL's ``FIX``: a float in 16.16 fixed point, rounded half up."""
    return math.floor(value * 65536.0 + 0.5)
