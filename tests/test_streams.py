"""Counter-based random streams: exact hash, independence of batch composition and device-free determinism."""

import numpy as np
import torch

from rnn_zoos.lstm.streams import mix32, run_seeds, stream_bits, stream_uniform


def reference_mix32(values: np.ndarray) -> np.ndarray:
    """lowbias32 with numpy's wrapping uint64 arithmetic."""
    x = values.astype(np.uint64) & np.uint64(0xFFFFFFFF)
    x ^= x >> np.uint64(16)
    x = (x * np.uint64(0x7FEB352D)) & np.uint64(0xFFFFFFFF)
    x ^= x >> np.uint64(15)
    x = (x * np.uint64(0x846CA68B)) & np.uint64(0xFFFFFFFF)
    x ^= x >> np.uint64(16)
    return x


def test_mix32_matches_reference() -> None:
    values = np.concatenate([np.arange(1000), np.random.default_rng(0).integers(0, 2**32, 10000), [2**32 - 1]])
    expected = reference_mix32(values).astype(np.int64)
    assert np.array_equal(mix32(torch.tensor(values, dtype=torch.int64)).numpy(), expected)


def test_streams_do_not_depend_on_other_runs_in_the_batch() -> None:
    seeds = torch.tensor(run_seeds(0, range(6)))
    together = stream_uniform(seeds, (17, 5), (4, 3))
    for index in range(6):
        alone = stream_uniform(seeds[index : index + 1], (17, 5), (4, 3))
        assert torch.equal(alone[0], together[index])


def test_keys_and_positions_give_different_numbers() -> None:
    seeds = torch.tensor(run_seeds(0, range(2)))
    a = stream_bits(seeds, (1, 0), (50,))
    assert not torch.equal(a, stream_bits(seeds, (1, 1), (50,)))
    assert not torch.equal(a, stream_bits(seeds, (2, 0), (50,)))
    assert not torch.equal(a[0], a[1])
    assert len(set(a.flatten().tolist())) == 100


def test_uniforms_are_uniform() -> None:
    values = stream_uniform(torch.tensor(run_seeds(1, range(20))), (3,), (5000,))
    assert values.min() >= 0 and values.max() < 1
    assert abs(values.mean().item() - 0.5) < 0.005
    histogram = torch.histc(values, bins=10, min=0, max=1) / values.numel()
    assert (histogram - 0.1).abs().max() < 0.005


def test_tensor_keys_broadcast_per_run() -> None:
    seeds = torch.tensor(run_seeds(0, range(3)))
    steps = torch.tensor([4, 9, 4]).view(3, 1)
    mixed = stream_bits(seeds, (7, steps), (5,))
    for index, step in enumerate([4, 9, 4]):
        assert torch.equal(mixed[index], stream_bits(seeds[index : index + 1], (7, step), (5,))[0])


def test_run_seeds_are_stable() -> None:
    assert run_seeds(0, [0, 1]) == run_seeds(0, range(2))
    assert run_seeds(0, [0]) != run_seeds(1, [0])
    assert all(0 <= seed < 2**32 for seed in run_seeds(5, range(100)))
