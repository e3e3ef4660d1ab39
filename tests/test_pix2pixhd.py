"""pix2pixHD: real layouts with instance maps and features, coarse-to-fine freezing, learning."""
import math
from pathlib import Path

import pytest
import torch

from gauguin.data import FashionMNISTSilhouettes
from gauguin.models.pix2pixhd import Pix2PixHDConfig
from gauguin.sampling import load_generator
from gauguin.training import Trainer, train

FIXTURES = Path(__file__).resolve().parents[2] / "shared" / "fixtures"


def hd_config(out_dir, **overrides) -> Pix2PixHDConfig:
    values = dict(ngf=8, ndf=8, n_blocks=2, batch_size=4, steps=2, log_every=1, sample_every=2, checkpoint_every=2,
                  eval_every=0, progress=False, out_dir=str(out_dir))
    values.update(overrides)
    return Pix2PixHDConfig.from_dict(values)


def test_coco_stuff_with_instance_edges_and_features(tmp_path):
    if not (FIXTURES / "coco_stuff").is_dir():
        pytest.skip("../shared/fixtures is not beside the repository")
    cfg = hd_config(tmp_path / "run", dataset=f"coco-stuff:{FIXTURES / 'coco_stuff'}", channels=3, image_size=64,
                    load_size=72, batch_size=2, use_features=True)
    trainer = Trainer("pix2pixhd", cfg)
    G = trainer.family.generator
    assert G.generator.in_channels == 183 + 1 + 3  # labels + don't-care, instance edges, instance features
    logs = trainer.train_step(0)
    assert all(math.isfinite(v) for v in logs.values())


def test_local_enhancer_trains_alone_first(tmp_path):
    trainer = Trainer("pix2pixhd", hd_config(tmp_path / "run", n_local_enhancers=1, image_size=64,
                                             fix_global_steps=1))
    enhancer = trainer.family.generator.generator
    before = {k: v.clone() for k, v in enhancer.global_body.state_dict().items()}
    local_before = [p.clone() for p in enhancer.local_parameters()]
    trainer.train_step(0)  # step 0 < fix_global_steps: G1 frozen
    assert all(torch.equal(before[k], v) for k, v in enhancer.global_body.state_dict().items()
               if v.is_floating_point())
    assert any(not torch.equal(a, b) for a, b in zip(local_before, enhancer.local_parameters()))
    trainer.train_step(1)  # then jointly
    assert any(not torch.equal(before[k], v) for k, v in enhancer.global_body.state_dict().items())


def test_learns_fashion_silhouettes(tmp_path):
    train("pix2pixhd", hd_config(tmp_path / "run", steps=150, batch_size=8, ngf=16, ndf=16, n_blocks=3,
                                 log_every=50, sample_every=150, checkpoint_every=150))
    loaded = load_generator(tmp_path / "run")
    data = FashionMNISTSilhouettes("test", crop_size=32, augment=False).get_batch(torch.arange(200))
    with torch.no_grad():
        fake = loaded.family.generate(loaded.generator, loaded.family.inputs_like(data))
    inside = data["label_map"] > 0
    gap = fake[:, 0][inside].mean().item() - fake[:, 0][~inside].mean().item()
    print(f"\npix2pixhd learning test: brightness gap inside - outside {gap:.3f}")
    assert gap > 0.5  # an untrained generator: ~0
