"""The SR evaluation protocol (PSNR-Y / SSIM-Y with a cropped border): hand-computed cases and torchmetrics."""
import math

import pytest
import torch
from torchmetrics.functional.image import peak_signal_noise_ratio, structural_similarity_index_measure

from gauguin.metrics.sr import psnr_y, rgb_to_y, sr_scores, ssim_y


def test_y_of_a_hand_computed_pixel():
    pixel = torch.tensor([1.0, 0.5, 0.0], dtype=torch.float64).view(1, 3, 1, 1)
    assert rgb_to_y(pixel).item() == pytest.approx(16 + 65.481 + 0.5 * 128.553, abs=1e-12)  # 145.7575
    assert rgb_to_y(torch.zeros(1, 3, 2, 2)).unique().item() == pytest.approx(16.0)
    assert rgb_to_y(torch.ones(1, 3, 2, 2)).unique().item() == pytest.approx(235.0)
    grey = torch.rand(2, 1, 4, 5, dtype=torch.float64)
    assert torch.equal(rgb_to_y(grey), grey * 255)
    u8 = torch.tensor([[[[255]], [[0]], [[51]]]], dtype=torch.uint8)
    assert rgb_to_y(u8).item() == pytest.approx(16 + 65.481 + 0.2 * 24.966, abs=1e-12)
    assert rgb_to_y(torch.rand(2, 3, 4, 5)).shape == (2, 1, 4, 5)


def test_identical_images_have_infinite_psnr_and_unit_ssim():
    x = torch.rand(2, 3, 24, 24, generator=torch.Generator().manual_seed(0))
    assert psnr_y(x, x, 2).tolist() == [math.inf, math.inf]
    assert ssim_y(x, x, 2).tolist() == pytest.approx([1.0, 1.0], abs=1e-12)


@pytest.mark.parametrize("k", [1, 3, 10])
def test_a_constant_offset_of_k_grey_levels_gives_20_log10_255_over_k(k):
    hr = torch.rand(3, 1, 20, 20, dtype=torch.float64, generator=torch.Generator().manual_seed(k)) * 0.9
    sr = hr + k / 255.0
    expected = 20 * math.log10(255 / k)
    assert psnr_y(sr, hr, 4).tolist() == pytest.approx([expected] * 3, abs=1e-9)
    # the same offset on Y from an RGB offset: ΔY = (65.481 + 128.553 + 24.966) Δ = 219 Δ
    hr_rgb = hr.expand(3, 3, 20, 20) * 0.5
    sr_rgb = hr_rgb + k / 219.0
    assert psnr_y(sr_rgb, hr_rgb, 0).tolist() == pytest.approx([expected] * 3, abs=1e-9)


def test_the_border_is_cropped():
    hr = torch.rand(2, 3, 30, 30, generator=torch.Generator().manual_seed(1))
    sr = hr.clone()
    sr[..., :3, :] = 0.0
    sr[..., -3:, :] = 1.0
    sr[..., :, :3] = 0.5
    sr[..., :, -3:] = 0.25
    assert psnr_y(sr, hr, 3).tolist() == [math.inf, math.inf]
    assert ssim_y(sr, hr, 3).tolist() == pytest.approx([1.0, 1.0], abs=1e-12)
    assert all(v < 30 for v in psnr_y(sr, hr, 2).tolist())
    assert all(v < 1 for v in ssim_y(sr, hr, 2).tolist())
    with pytest.raises(ValueError, match="border"):
        ssim_y(sr, hr, 10)  # 30 - 20 = 10 px < the 11 px window


def _structured(n: int, size: int, seed: int) -> torch.Tensor:
    """Bars, a gradient and a disc with noise: the content where SSIM's structure term matters."""
    g = torch.Generator().manual_seed(seed)
    yy, xx = torch.meshgrid(torch.arange(size, dtype=torch.float64), torch.arange(size, dtype=torch.float64),
                            indexing="ij")
    bars = ((xx // 4) % 2)
    disc = ((yy - size / 2) ** 2 + (xx - size / 3) ** 2 < (size / 4) ** 2).double()
    base = torch.stack([bars, xx / size, disc]).unsqueeze(0).repeat(n, 1, 1, 1)
    return (0.8 * base + 0.2 * torch.rand(n, 3, size, size, dtype=torch.float64, generator=g)).clamp(0, 1)


@pytest.mark.parametrize("kind", ["random", "structured"])
def test_matches_torchmetrics_on_y(kind):
    g = torch.Generator().manual_seed(7)
    if kind == "random":
        hr = torch.rand(3, 3, 40, 48, dtype=torch.float64, generator=g)
        sr = (hr + 0.1 * torch.randn(hr.shape, dtype=torch.float64, generator=g)).clamp(0, 1)
    else:
        hr = _structured(3, 48, 3)
        sr = (0.9 * hr.roll(1, dims=-1) + 0.05 + 0.03 * torch.randn(hr.shape, dtype=torch.float64, generator=g))
        sr = sr.clamp(0, 1)
    border = 4
    ys = rgb_to_y(sr)[..., border:-border, border:-border]
    yh = rgb_to_y(hr)[..., border:-border, border:-border]
    # torchmetrics reflect-pads by 5 px and averages the whole map; its 'valid' part is the map less 5 px a side
    _, ref_map = structural_similarity_index_measure(ys, yh, gaussian_kernel=True, sigma=1.5, kernel_size=11,
                                                     data_range=255.0, k1=0.01, k2=0.03, reduction="none",
                                                     return_full_image=True)
    ref_ssim = ref_map[..., 5:-5, 5:-5].flatten(1).mean(dim=1)
    ref_psnr = torch.stack([peak_signal_noise_ratio(ys[i], yh[i], data_range=255.0) for i in range(len(ys))])
    ours_ssim, ours_psnr = ssim_y(sr, hr, border), psnr_y(sr, hr, border)
    assert ours_ssim.dtype == ours_psnr.dtype == torch.float64 and ours_ssim.shape == (3,)
    assert torch.allclose(ours_ssim, ref_ssim.to(torch.float64), atol=1e-6, rtol=0)
    assert torch.allclose(ours_psnr, ref_psnr.to(torch.float64), atol=1e-6, rtol=0)
    assert 0.0 < ours_ssim.min() and ours_ssim.max() < 1.0


def test_sr_scores_and_uint8_inputs():
    hr = _structured(2, 32, 5)
    sr = (hr * 0.95 + 0.02).clamp(0, 1)
    scores = sr_scores(sr, hr, 4)
    assert scores["protocol"] == "psnr_y_ssim_y_border4"
    assert len(scores["psnr_per_image"]) == len(scores["ssim_per_image"]) == 2
    assert scores["psnr"] == pytest.approx(sum(scores["psnr_per_image"]) / 2)
    assert scores["ssim"] == pytest.approx(sum(scores["ssim_per_image"]) / 2)
    hr8, sr8 = (hr * 255).round().to(torch.uint8), (sr * 255).round().to(torch.uint8)
    assert torch.allclose(psnr_y(sr8, hr8, 4), psnr_y(sr8.double() / 255, hr8.double() / 255, 4), atol=1e-12)


def test_bad_inputs_are_named():
    with pytest.raises(ValueError, match=r"\[0, 1\]"):
        psnr_y(torch.full((1, 3, 16, 16), 2.0), torch.zeros(1, 3, 16, 16), 0)
    with pytest.raises(ValueError, match="one shape"):
        psnr_y(torch.zeros(1, 3, 16, 16), torch.zeros(1, 3, 16, 17), 0)
    with pytest.raises(ValueError, match="C = 1"):
        psnr_y(torch.zeros(1, 2, 16, 16), torch.zeros(1, 2, 16, 16), 0)


def test_patch_distances_are_zero_for_the_real_photos_and_grow_with_blur():
    """The perceptual protocol: the same squares of every set; the HR photos against themselves score 0 in FD
    (the SWD draws its 7x7 neighbourhoods per set: a sampling floor above 0), a blurred copy farther than a
    lightly blurred one, on both the weight-free SWD and the learned FD."""
    import numpy as np
    from PIL import Image, ImageFilter

    from gauguin.metrics.extractors import wrap_module
    from gauguin.metrics.sr import aligned_patches, patch_distances

    rng = np.random.default_rng(0)
    base = rng.integers(0, 256, (24, 32, 3), dtype=np.uint8)
    photos = [np.asarray(Image.fromarray(np.roll(base, k, 0)).resize((128, 96), Image.Resampling.BICUBIC))
              for k in range(3)]

    def blurred(radius):
        return [np.asarray(Image.fromarray(x).filter(ImageFilter.GaussianBlur(radius))) for x in photos]

    a, b = aligned_patches([photos, photos], 32, 5, seed=1)
    assert a.shape == (15, 3, 32, 32) and torch.equal(a, b)
    torch.manual_seed(0)
    features = torch.nn.Sequential(torch.nn.Conv2d(1, 16, 3, 2), torch.nn.ReLU(), torch.nn.Conv2d(16, 32, 3, 2),
                                   torch.nn.ReLU(), torch.nn.AdaptiveAvgPool2d(2), torch.nn.Flatten())
    extractor = wrap_module(features, "random", input_size=28)
    scores = patch_distances({"same": photos, "light": blurred(0.7), "heavy": blurred(2.0)}, photos, patch=32,
                             per_image=64, extractor=extractor)
    assert abs(scores["same"]["fd_fmnist"]) < 1e-6
    for key in ("lswd", "fd_fmnist"):
        assert scores["same"][key] < scores["light"][key] < scores["heavy"][key]
    with pytest.raises(ValueError, match="smaller than the 64 px patches"):
        patch_distances({"x": [photos[0][:50]]}, [photos[0][:50]], extractor=extractor)
