"""Contract tests run for every registered family (a new family gets them by registering)."""
import math

import pytest
import torch

from gauguin.models import FAMILIES, get_family
from gauguin.sampling import load_generator
from gauguin.training import load_checkpoint, train

COMMON = dict(steps=2, log_every=1, sample_every=2, checkpoint_every=2, eval_every=0, progress=False)
TINY = {  # the smallest networks each family builds, on its embedded default data
    "dcgan": dict(image_size=28, g_width=8, d_width=8, z_dim=16, batch_size=8),
    "pix2pix": dict(ngf=4, ndf=4, batch_size=2),
    "pix2pixhd": dict(ngf=4, ndf=4, n_blocks=1, num_d=1, batch_size=2, feature_clusters=2, cluster_images=8),
    "cyclegan": dict(ngf=4, ndf=4, n_blocks=1, batch_size=2, pool_size=4),
    "spade": dict(ngf=4, ndf=4, z_dim=8, batch_size=2),
    "simgan": dict(refiner_width=8, refiner_blocks=1, batch_size=8, buffer_size=16, pretrain_refiner_steps=1,
                   pretrain_discriminator_steps=1),
    "pggan": dict(image_size=8, z_dim=16, fmap_base=64, fmap_max=16, fade_images=32, stable_images=32, batch_size=8),
}


def test_every_registered_family_has_a_tiny_config():
    assert sorted(TINY) == sorted(FAMILIES)


@pytest.mark.parametrize("family", sorted(FAMILIES))
def test_trains_with_an_ema_generator_samples_and_loads(family, tmp_path, one_torch_thread):
    """EMA of G with BatchNorm statistics re-estimated on inputs like the data's: it used to stop the
    translating families at their first sample grid (they have no noise-only inputs)."""
    cfg = get_family(family).config_class.from_dict({**TINY[family], **COMMON, "ema_decay": 0.999,
                                                     "out_dir": str(tmp_path)})
    path = train(family, cfg)
    assert (tmp_path / "samples" / "latest.png").is_file()
    tensors, meta = load_checkpoint(path)
    ema = {k: v for k, v in tensors["weights.safetensors"].items() if k.startswith("generator_ema.")}
    assert ema and all(torch.isfinite(v).all() for v in ema.values() if v.is_floating_point())
    assert meta["step"] == 2 and math.isfinite(meta["metric_history"][-1][1]) if meta["metric_history"] else True
    loaded = load_generator(path)
    assert loaded.meta["family"] == family and not loaded.generator.training


def _config(family: str, out_dir, **values):
    return get_family(family).config_class.from_dict({**TINY[family], **COMMON, "out_dir": str(out_dir), **values})


@pytest.mark.parametrize("family", sorted(FAMILIES))
def test_resume_is_exact(family, tmp_path, one_torch_thread):
    """3 steps straight == the same run killed after step 2 and resumed: every tensor and the data
    position equal (the learning-rate schedule spans the same 3 steps in both)."""
    import shutil

    from gauguin.training import run_config

    common = dict(steps=3, checkpoint_every=1, sample_every=100, log_every=1, keep_checkpoints=5)
    straight = train(family, _config(family, tmp_path / "a", **common))
    train(family, _config(family, tmp_path / "b", **common))
    shutil.rmtree(tmp_path / "b" / "checkpoints" / "step_0000003")  # as if killed before step 3 was saved
    cfg = run_config(family, None, [f"out_dir={tmp_path / 'b'}"], resume=True)
    resumed = train(family, cfg, resume=True)
    (a, meta_a), (b, meta_b) = load_checkpoint(straight), load_checkpoint(resumed)
    assert meta_a["step"] == meta_b["step"] == 3 and meta_a["sampler"] == meta_b["sampler"]
    for name in a:
        assert a[name].keys() == b[name].keys()
        for key in a[name]:
            assert torch.equal(a[name][key], b[name][key]), f"{family}: {name}:{key} differs after resume"
    first = load_checkpoint(tmp_path / "a" / "checkpoints" / "step_0000001")[0]["weights.safetensors"]
    assert any(not torch.equal(first[k], a["weights.safetensors"][k]) for k in first if k.startswith("generator."))
