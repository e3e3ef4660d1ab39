"""pix2pixHD: real layouts with instance maps and features, coarse-to-fine freezing, learning."""
import math
from pathlib import Path

import pytest
import torch

from gauguin.data import FashionMNISTSilhouettes, Preprocessing
from gauguin.models.pix2pixhd import Pix2PixHDConfig, Pix2PixHDModel, kmeans, sampled_features
from gauguin.models.pix2pixhd_nets import InstanceFeatureEncoder
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


@pytest.mark.slow
def test_learns_fashion_silhouettes(tmp_path):
    train("pix2pixhd", hd_config(tmp_path / "run", steps=150, batch_size=8, ngf=16, ndf=16, n_blocks=3,
                                 log_every=50, sample_every=150, checkpoint_every=150))
    loaded = load_generator(tmp_path / "run")
    data = FashionMNISTSilhouettes("test", Preprocessing(crop_size=32, augment=False)).get_batch(torch.arange(200))
    with torch.no_grad():
        fake = loaded.generate(loaded.inputs_like(data))
    inside = data["label_map"] > 0
    gap = fake[:, 0][inside].mean().item() - fake[:, 0][~inside].mean().item()
    print(f"\npix2pixhd learning test: brightness gap inside - outside {gap:.3f}")
    assert gap > 0.5  # an untrained generator: ~0


def test_kmeans_finds_separated_blobs():
    gen = torch.Generator().manual_seed(0)
    means = torch.tensor([[0.0, 0.0, 0.0], [5.0, 0.0, 0.0], [0.0, 5.0, 5.0]])
    points = (means.repeat_interleave(50, 0) + 0.1 * torch.randn(150, 3, generator=gen))
    centers = kmeans(points, 3, torch.Generator().manual_seed(1))
    matched = torch.stack([centers[(centers - m).norm(dim=1).argmin()] for m in means])
    assert len(centers) == 3 and (matched - means).abs().max() < 0.1, centers
    few = torch.tensor([[1.0, 2.0], [1.0, 2.0], [3.0, 4.0]])
    assert torch.equal(kmeans(few, 10, torch.Generator()), torch.tensor([[1.0, 2.0], [3.0, 4.0]]))


def test_sampled_features_pick_the_drawn_centre_of_each_label():
    G = Pix2PixHDModel(torch.nn.Identity(), InstanceFeatureEncoder(1, 3, 4), num_labels=3, clusters=2)
    G.feature_centers[1] = torch.tensor([[1.0, 1.0, 1.0], [2.0, 2.0, 2.0]])
    G.feature_centers[2, 0] = torch.tensor([7.0, 8.0, 9.0])
    G.feature_center_counts.copy_(torch.tensor([0, 2, 1]))
    label_map = torch.tensor([[[0, 1], [2, 1]], [[1, 1], [0, 2]]])
    draw = torch.tensor([[0.9, 0.2, 0.99], [0.0, 0.7, 0.5]])
    features = sampled_features(G, label_map, draw)
    assert features.shape == (2, 3, 2, 2)
    assert torch.equal(features[0, :, 0, 0], torch.zeros(3))  # label 0 has no centre: the zero feature
    assert torch.equal(features[0, :, 0, 1], torch.ones(3)) and torch.equal(features[0, :, 1, 1], torch.ones(3))
    assert torch.equal(features[0, :, 1, 0], torch.tensor([7.0, 8.0, 9.0]))
    assert torch.equal(features[1, :, 0, 0], torch.full((3,), 2.0))
    assert torch.equal(sampled_features(G, label_map, None), torch.zeros(2, 3, 2, 2))


def test_feature_clusters_are_saved_and_give_several_looks(tmp_path):
    """With use_features the checkpoint holds k-means centres of the instance features per label seen,
    and `translate` with different seeds draws different centres, hence different images."""
    train("pix2pixhd", hd_config(tmp_path / "run", use_features=True, feature_clusters=4, cluster_images=96))
    loaded = load_generator(tmp_path / "run")
    G = loaded.generator
    counts = G.feature_center_counts  # background + 10 garments, all seen; k, or fewer distinct instances
    assert counts.min() >= 1 and counts.max() == 4, counts
    assert G.feature_centers.abs().sum() > 0
    data = FashionMNISTSilhouettes("test", Preprocessing(crop_size=32, augment=False)).get_batch(torch.arange(1))
    looks = loaded.translate(data["label_map"][0], n=4, seed=0)
    assert torch.equal(looks, loaded.translate(data["label_map"][0], n=4, seed=0))
    assert (looks[0] - looks[1:]).abs().amax() > 1e-3
