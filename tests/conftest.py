"""Shared test helpers."""
from gauguin.models.dcgan import DCGANConfig


def tiny_config(out_dir, **overrides) -> DCGANConfig:
    """A DCGAN small enough for a step in a few milliseconds (28 px, widths 8)."""
    values = dict(image_size=28, g_width=8, d_width=8, z_dim=16, batch_size=16, steps=4, log_every=2,
                  sample_every=2, checkpoint_every=2, eval_every=2, progress=False, out_dir=str(out_dir))
    values.update(overrides)
    return DCGANConfig.from_dict(values)
