"""Counter-based random streams: random numbers as a pure function of (seed, keys, index).

Every random number a builder uses (task choice, initial weights, training data, sampled strings)
is computed from the run's seed and a few integer keys (which stream, which step) by a hash, on
whatever device the tensors live on. So a run gets the same numbers whether it is trained alone
or beside 999 others, on the CPU or on a GPU, from the start or resumed from a checkpoint; no
generator state needs saving.

The hash is ``lowbias32`` (Chris Wellons' integer hash), computed on int64 tensors that hold
32-bit values, with the multiplications split so that no intermediate product overflows.
"""

from __future__ import annotations

import math

import numpy as np
import torch

_MASK32 = 0xFFFFFFFF


def _mul32(x: torch.Tensor, constant: int) -> torch.Tensor:
    """``(x * constant) mod 2**32`` for int64 tensors holding values below 2**32, without overflow."""
    low, high = constant & 0xFFFF, constant >> 16
    return (x * low + (((x * high) & _MASK32) << 16)) & _MASK32


def mix32(x: torch.Tensor) -> torch.Tensor:
    """Hash 32-bit values (held in an int64 tensor) to 32-bit values; a bijection on [0, 2**32)."""
    x = x & _MASK32
    x = x ^ (x >> 16)
    x = _mul32(x, 0x7FEB352D)
    x = x ^ (x >> 15)
    x = _mul32(x, 0x846CA68B)
    return x ^ (x >> 16)


def run_seeds(zoo_seed: int, runs: range | list[int]) -> list[int]:
    """The seed of each run of a zoo: a 32-bit value drawn from ``SeedSequence([zoo_seed, run])``."""
    return [int(np.random.SeedSequence([zoo_seed, run]).generate_state(1, np.uint32)[0]) for run in runs]


def stream_bits(seeds: torch.Tensor, keys: tuple[int | torch.Tensor, ...], shape: tuple[int, ...]) -> torch.Tensor:
    """32-bit random words of shape ``[len(seeds), *shape]``, a pure function of seed, keys and position.

    ``keys`` are ints, or tensors broadcastable to ``[len(seeds), *shape]`` (e.g. a per-run step).
    """
    lead = seeds.to(torch.int64).reshape(-1, *([1] * len(shape)))
    words = mix32(lead)
    for key in keys:
        words = mix32(words ^ (torch.as_tensor(key, dtype=torch.int64, device=seeds.device) & _MASK32))
    count = math.prod(shape)
    position = torch.arange(count, dtype=torch.int64, device=seeds.device).reshape(shape)
    return mix32(mix32(words ^ position) + 0x9E3779B9)


def stream_uniform(seeds: torch.Tensor, keys: tuple[int | torch.Tensor, ...], shape: tuple[int, ...]) -> torch.Tensor:
    """Uniform floats in [0, 1) (24 random bits, exact in float32) of shape ``[len(seeds), *shape]``."""
    return (stream_bits(seeds, keys, shape) >> 8).to(torch.float32) * (2.0**-24)


def stream_permutation(seeds: torch.Tensor, keys: tuple[int | torch.Tensor, ...], count: int) -> torch.Tensor:
    """A random permutation of ``range(count)`` per seed, ``[len(seeds), count]`` int64: the order of 32-bit words of
    the stream (ties, rare, kept in position order), a pure function of seed and keys like every stream."""
    return torch.argsort(stream_bits(seeds, keys, (count,)), dim=-1, stable=True)
