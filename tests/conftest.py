"""Shared test helpers."""
import os

import pytest

from gauguin.models.dcgan import DCGANConfig


def tiny_config(out_dir, **overrides) -> DCGANConfig:
    """A DCGAN small enough for a step in a few milliseconds (28 px, widths 8)."""
    values = dict(image_size=28, g_width=8, d_width=8, z_dim=16, batch_size=16, steps=4, log_every=2,
                  sample_every=2, checkpoint_every=2, eval_every=2, progress=False, out_dir=str(out_dir))
    values.update(overrides)
    return DCGANConfig.from_dict(values)


def pytest_configure(config):
    """Under pytest-xdist (``-n N``) each worker gets its share of the cores, not all of them each: its torch
    and onnxruntime threads, and (by OMP_NUM_THREADS) those of the CLI runs it starts. Oversubscribed cores
    cost far more than the share: spin-waiting thread pools slowed some tests 5x."""
    workers = int(os.environ.get("PYTEST_XDIST_WORKER_COUNT", "1"))
    if workers > 1:
        import torch

        share = max(1, (os.cpu_count() or 1) // workers)
        os.environ["OMP_NUM_THREADS"] = str(share)
        torch.set_num_threads(share)


@pytest.fixture(scope="module")
def one_torch_thread():
    """One intra-op thread for modules of tiny tensors: on a busy CPU, thread hand-offs cost more than the work."""
    import torch

    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)


@pytest.fixture(scope="session")
def paint_checkpoint(tmp_path_factory):
    """A tiny SPADE with a style encoder on Fashion-MNIST silhouettes (32 px, 11 labels), 20 steps:
    enough for a checkpoint whose output depends on the label map, for the paint server's tests."""
    from gauguin.models.spade import SPADEConfig
    from gauguin.training import train

    out = tmp_path_factory.mktemp("paint_spade")
    cfg = SPADEConfig.from_dict(dict(
        dataset="fashion-mnist", image_size=32, channels=1, ngf=8, ndf=8, use_vae=True, encoder_input_size=128,
        batch_size=8, steps=20, log_every=10, sample_every=20, checkpoint_every=20, eval_every=0, progress=False,
        out_dir=str(out)))
    return train("spade", cfg)
