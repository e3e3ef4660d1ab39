"""PGGAN: equalized LR, pixel norm, fade-in exactness, the growth schedule, exact resume, learning."""
import json

import pytest
import torch
import torch.nn.functional as F

from gauguin.config import ConfigError
from gauguin.models import DataInfo
from gauguin.models.pggan import PGGAN, GrowthSchedule, PGGANConfig
from gauguin.models.pggan_nets import PGDiscriminator, PGGenerator
from gauguin.nn.layers import EqualizedConv2d, EqualizedLinear, MinibatchStddev, PixelNorm
from gauguin.sampling import load_generator
from gauguin.training import train


def tiny(out_dir, **overrides) -> PGGANConfig:
    values = dict(image_size=16, fmap_base=256, fmap_max=32, z_dim=32, fade_images=64, stable_images=64,
                  batch_size=16, log_every=2, sample_every=1000, checkpoint_every=1000, eval_every=0,
                  progress=False, out_dir=str(out_dir))
    values.update(overrides)
    return PGGANConfig.from_dict(values)


def test_paper_1024_networks_have_23_1m_parameters_each():
    with torch.device("meta"):
        G, D = PGGenerator(1024, 3), PGDiscriminator(1024, 3)
    for net in (G, D):
        count = sum(p.numel() for p in net.parameters())
        assert abs(count - 23.1e6) < 0.05e6, count  # the paper's Table 2: 23.1M each


def test_equalized_layers_store_unit_weights_and_scale_by_he():
    torch.manual_seed(0)
    conv, dense = EqualizedConv2d(64, 128, 3), EqualizedLinear(512, 256)
    for layer, fan_in in ((conv, 64 * 9), (dense, 512)):
        assert abs(layer.weight.std().item() - 1.0) < 0.02
        effective = layer.weight * layer.scale
        assert effective.std().item() == pytest.approx((2 / fan_in) ** 0.5, rel=0.02)
    x = torch.randn(2, 64, 5, 5)
    assert torch.allclose(conv(x), F.conv2d(x, conv.weight * (2 / 576) ** 0.5, conv.bias, padding=1))


def test_pixel_norm_gives_unit_mean_square_per_pixel():
    x = torch.randn(3, 16, 4, 4) * 7 + 2
    y = PixelNorm()(x)
    assert torch.allclose(y.square().mean(1), torch.ones(3, 4, 4), atol=1e-5)


def test_minibatch_stddev_appends_the_groups_mean_std():
    x = torch.randn(8, 3, 2, 2)
    out = MinibatchStddev(4)(x)
    assert out.shape == (8, 4, 2, 2)
    groups = x.view(4, 2, 3, 2, 2)  # sample i belongs to group i % 2 (the official layout)
    expected = (groups.var(0, unbiased=False) + 1e-8).sqrt().mean((1, 2, 3))
    assert torch.allclose(out[:, 3, 0, 0], expected.repeat(4), atol=1e-6)


@pytest.mark.parametrize("stage", [2, 3])
def test_fade_in_starts_exactly_at_the_previous_stage(stage):
    torch.manual_seed(0)
    G, D = PGGenerator(16, 1, z_dim=32, fmap_base=256, fmap_max=32), PGDiscriminator(16, 1, fmap_base=256, fmap_max=32)
    z = torch.randn(8, 32)
    G.set_growth(stage - 1, 1.0)
    previous = G(z)
    G.set_growth(stage, 0.0)
    assert torch.equal(G(z), F.interpolate(previous, scale_factor=2, mode="nearest"))
    x = torch.randn(8, 1, 4 * 2 ** (stage - 1), 4 * 2 ** (stage - 1))
    D.set_growth(stage - 1, 1.0)
    expected = D(F.avg_pool2d(x, 2))
    D.set_growth(stage, 0.0)
    assert torch.equal(D(x), expected)


def test_at_alpha_one_only_the_new_path_counts():
    torch.manual_seed(1)
    G, D = PGGenerator(16, 1, z_dim=32, fmap_base=256, fmap_max=32), PGDiscriminator(16, 1, fmap_base=256, fmap_max=32)
    z, x = torch.randn(4, 32), torch.randn(4, 1, 16, 16)
    G.set_growth(3, 1.0), D.set_growth(3, 1.0)
    before_g, before_d = G(z), D(x)
    with torch.no_grad():  # the previous stage's to-RGB / from-RGB no longer matter
        G.to_rgb[1].weight.add_(5.0)
        D.from_rgb[1].weight.add_(5.0)
    assert torch.equal(G(z), before_g) and torch.equal(D(x), before_d)
    G.set_growth(3, 0.5)
    assert not torch.equal(G(z), before_g)


def test_schedule_stages_alpha_and_batch_sizes():
    schedule = GrowthSchedule(stages=3, fade_images=40, stable_images=20, batch_sizes=(10, 10, 5))
    assert schedule.phases == [(1, False, 2), (2, True, 4), (2, False, 2), (3, True, 8), (3, False, 4)]
    assert schedule.total_steps == 20
    assert schedule.at(0) == (1, 1.0, 0) and schedule.at(2) == (2, 0.0, 20) and schedule.at(4) == (2, 0.5, 40)
    assert schedule.at(8) == (3, 0.0, 80) and schedule.at(12) == (3, 0.5, 100)
    assert schedule.stage_ends() == {2, 8, 20}
    with pytest.raises(ConfigError, match="one batch size per stage"):
        PGGANConfig.from_dict({"image_size": 32, "stage_batch_sizes": [16, 16]})
    with pytest.raises(ConfigError, match="power of two"):
        PGGANConfig.from_dict({"image_size": 48})
    assert PGGANConfig.from_dict({"image_size": 16, "fade_images": 64, "stable_images": 64,
                                  "batch_size": 16}).steps == 4 + 4 + 4 + 4 + 4


def test_resume_mid_fade_is_bit_exact(tmp_path):
    cfg = tiny(tmp_path / "a", stage_batch_sizes=[16, 16, 8])  # 4 + 4 + 4 + 8 + 8 iterations
    train("pggan", cfg)
    train("pggan", tiny(tmp_path / "b", stage_batch_sizes=[16, 16, 8], steps=14, checkpoint_every=14))  # mid-fade 3
    meta = json.loads((tmp_path / "b/checkpoints/step_0000014/meta.json").read_text())
    assert meta["step"] == 14
    train("pggan", tiny(tmp_path / "b", stage_batch_sizes=[16, 16, 8]), resume=True)
    a, b = (load_generator(tmp_path / name) for name in "ab")
    assert a.generator.growth() == b.generator.growth() == (3, 1.0)
    for (name, p), q in zip(a.generator.state_dict().items(), b.generator.state_dict().values()):
        assert torch.equal(p, q), name


def test_a_run_past_the_schedule_also_ends_a_phase_at_its_last_step(tmp_path):
    """Stage ends (20 steps here) and the last step are evaluated, so checkpoints/best/ follows training that
    goes on at the final resolution after the growth schedule."""
    family = PGGAN(tiny(tmp_path, steps=30), DataInfo(channels=1))
    ends = [step + 1 for step in range(30) if family.plan(step).ends_phase]
    assert ends == sorted(family.schedule.stage_ends()) + [30] and ends[-2] == 20


@pytest.mark.slow
def test_learning_swd_falls_between_stage_ends(tmp_path):
    """Through 4x4, 8x8 and 16x16 on real Fashion-MNIST: the sliced Wasserstein distance of samples
    to real images (logged at each stage's end, at 16 px) falls from stage to stage."""
    cfg = tiny(tmp_path / "run", fade_images=6400, stable_images=6400, batch_size=32, fmap_max=64,
               eval_samples=512, eval_metrics=["lswd"], log_every=100)
    train("pggan", cfg)
    rows = [json.loads(line) for line in (tmp_path / "run" / "metrics.jsonl").read_text().splitlines()]
    swd = [row["swd"] for row in rows if "swd" in row]
    print(f"\npggan learning test: SWD at the stage ends {[round(s, 3) for s in swd]}; "
          f"Laplacian SWD {[round(r['lswd'], 1) for r in rows if 'lswd' in r]}")
    assert len(swd) == 3 and swd[0] > swd[1] > swd[2] and swd[2] < 0.7 * swd[0]  # seed 0: 0.262, 0.236, 0.102
    assert (tmp_path / "run" / "samples" / f"step_{cfg.steps:07d}.png").is_file()
