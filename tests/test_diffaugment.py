"""DiffAugment (Zhao et al. 2020): each transform against what it must do to a hand-made image."""
import pytest
import torch

from gauguin.config import ConfigError
from gauguin.models.dcgan import DCGANConfig
from gauguin.nn.diffaugment import color, cutout, diff_augment, parse_policy, translation


def test_translation_shifts_by_whole_pixels_and_fills_with_zeros():
    x = torch.arange(1, 1 + 4 * 2 * 8 * 8, dtype=torch.float32).view(4, 2, 8, 8)
    torch.manual_seed(0)
    y = translation(x)  # shifts of at most 1 pixel (1/8 of 8)
    for image, moved in zip(x, y):
        matches = []
        for dy in (-1, 0, 1):
            for dx in (-1, 0, 1):
                padded = torch.nn.functional.pad(image, (1, 1, 1, 1))
                matches.append(torch.equal(moved, padded[:, 1 + dy : 9 + dy, 1 + dx : 9 + dx]))
        assert sum(matches) == 1  # exactly one shift explains it, the same for both channels


def test_cutout_zeroes_one_square_of_half_the_side_at_most():
    torch.manual_seed(1)
    y = cutout(torch.ones(64, 3, 8, 8))
    for image in y:
        assert torch.equal(image[0], image[1])  # the same hole in every channel
        rows, cols = torch.nonzero(image[0] == 0, as_tuple=True)
        assert len(rows) > 0 and rows.max() - rows.min() < 4 and cols.max() - cols.min() < 4
        assert len(rows) == (rows.max() - rows.min() + 1) * (cols.max() - cols.min() + 1)  # a rectangle
    assert (y == 0).float().sum((1, 2, 3)).max() == 3 * 16  # whole squares occur


def test_color_keeps_grey_images_grey_and_is_differentiable():
    x = torch.rand(8, 1, 4, 4, requires_grad=True)
    torch.manual_seed(2)
    y = color(x)
    mean_shift = (y.mean((1, 2, 3)) - x.mean((1, 2, 3))).abs()
    assert mean_shift.max() <= 0.5 + 1e-6  # brightness within ±0.5; contrast keeps the mean
    y.sum().backward()
    assert x.grad is not None and torch.isfinite(x.grad).all()


def test_policies_are_parsed_and_checked():
    assert parse_policy(" translation, cutout ") == ("translation", "cutout") and parse_policy("") == ()
    x = torch.randn(2, 1, 8, 8)
    assert diff_augment(x, ()) is x
    with pytest.raises(ValueError, match="unknown DiffAugment policy 'flip'"):
        parse_policy("translation,flip")
    with pytest.raises(ConfigError, match="diffaugment: unknown DiffAugment policy 'zoom'"):
        DCGANConfig.from_dict({"diffaugment": "zoom"})
