"""pix2pixHD (Wang et al. 2018): high-resolution image synthesis from label maps.

A coarse-to-fine generator (the global generator G1; with ``n_local_enhancers=1`` the local
enhancer G2 around it, trained alone for ``fix_global_steps`` steps, then jointly, §3.1), three
PatchGANs at image scales 1, 1/2, 1/4 (§3.2), the LSGAN loss, discriminator feature matching
(λ 10, Eq. 4, with the paper code's layer weight 4/(n_layers+1)) and, given VGG19 weights, the
perceptual loss (λ 10, §3.2). Instance maps enter as boundary maps (§3.3). With ``use_features``
the instance-wise feature encoder E (§3.4) adds per-instance average features of the real image to
G's input, so one label map can give several looks: at test time features come from a style
image, or from k-means centres of the training set's instance features, drawn per label (§3.4;
clustered before each checkpoint is written). Adam 2e-4, β=(0.5, 0.999).
"""
from __future__ import annotations

import dataclasses
from typing import Any, ClassVar

import torch
from torch import Tensor, nn

from .. import losses
from ..config import ConfigError
from .base import Batch, DataInfo, Logs, Pix2PixSchedule
from .inference import Input
from .pix2pixhd_nets import InstanceFeatureEncoder, build_pix2pixhd_networks, instance_means
from .semantic import ConditionedFakes, SemanticConfig, SemanticFamily, paired_input

FEATURE_CHANNELS = 3  # the paper's instance feature width


@dataclasses.dataclass
class Pix2PixHDConfig(Pix2PixSchedule, SemanticConfig):
    """The paper's networks, losses and schedule; the data default to Fashion-MNIST silhouettes at 32 px."""

    positive: ClassVar[tuple[str, ...]] = (  # must be > 0
        "ngf", "ndf", "n_blocks", "n_blocks_local", "num_d", "n_layers_d", "nef", "feature_clusters", "cluster_images")

    out_dir: str = "runs/pix2pixhd"
    ngf: int = 64
    ndf: int = 64
    n_blocks: int = 9  # residual blocks of the global generator
    n_local_enhancers: int = 0  # 1: the local enhancer G2 at twice G1's resolution
    n_blocks_local: int = 3
    fix_global_steps: int = 0  # with G2: train only G2 for this many steps first
    num_d: int = 3
    n_layers_d: int = 3
    use_features: bool = False  # the instance-wise feature encoder
    nef: int = 16
    feature_clusters: int = 10  # k-means centres per label of the instance features (test-time sampling)
    cluster_images: int = 1000  # training images whose instance features are clustered

    def validate(self) -> None:
        super().validate()
        multiple = 2 ** (4 + self.n_local_enhancers)
        if self.image_size % multiple or self.image_size < 2 * multiple:
            raise ConfigError(f"image_size must be a multiple of {multiple} and at least {2 * multiple} for "
                              f"pix2pixHD with n_local_enhancers={self.n_local_enhancers}, got {self.image_size}")
        if self.use_features and (self.feature_clusters < 1 or self.cluster_images < 1):
            raise ConfigError("feature_clusters and cluster_images must be at least 1 with use_features")


class Pix2PixHDModel(nn.Module):
    """G, and with ``use_features`` the feature encoder E (trained with G's optimizer, as the paper)
    and the k-means centres of E's instance features per label (``feature_centers`` [labels, k, C],
    ``feature_center_counts`` [labels]: how many centres each label has; buffers, saved with G)."""

    def __init__(self, generator: nn.Module, encoder: InstanceFeatureEncoder | None, num_labels: int = 0,
                 clusters: int = 0):
        super().__init__()
        self.generator = generator
        self.encoder = encoder
        if encoder is not None:
            self.register_buffer("feature_centers", torch.zeros(num_labels, clusters, encoder.out_channels))
            self.register_buffer("feature_center_counts", torch.zeros(num_labels, dtype=torch.long))

    def forward(self, segmap: Tensor, features: Tensor | None = None) -> Tensor:
        return self.generator(segmap if features is None else torch.cat([segmap, features.to(segmap.dtype)], 1))


class Pix2PixHD(SemanticFamily):
    name = "pix2pixhd"
    config_class = Pix2PixHDConfig

    def __init__(self, cfg: Pix2PixHDConfig, data: DataInfo):
        super().__init__(cfg, data)
        nets = build_pix2pixhd_networks(
            data.num_labels, instance_edges=self.use_instances,
            feature_channels=FEATURE_CHANNELS if cfg.use_features else 0, image_channels=data.channels,
            ngf=cfg.ngf, ndf=cfg.ndf, n_local_enhancers=cfg.n_local_enhancers, num_d=cfg.num_d,
            n_layers_d=cfg.n_layers_d, n_blocks_global=cfg.n_blocks, n_blocks_local=cfg.n_blocks_local, nef=cfg.nef)
        if nets.encoder is not None and data.channels != 3:  # E is built for RGB; grey images need one channel in
            nets.encoder = InstanceFeatureEncoder(data.channels, FEATURE_CHANNELS, cfg.nef)
        self.generator = Pix2PixHDModel(nets.generator, nets.encoder, data.num_labels, cfg.feature_clusters)
        self.discriminator = nets.discriminator
        self.lsgan = losses.get_adversarial_loss("lsgan")

    # ------------------------------------------------------------------ inputs
    def _features(self, G: Pix2PixHDModel, image: Tensor, batch: dict[str, Tensor]) -> Tensor | None:
        """Per-instance average features of ``image`` (instances: the instance map, else the label map)."""
        if G.encoder is None:
            return None
        return G.encoder(image, batch.get("instance", batch["label_map"]))

    @property
    def inference(self):
        """The generator on label ids and, with the encoder, one uniform draw per (image, label) that
        picks the feature centre of that label (:func:`sampled_features`); sizes in multiples of its
        downsampling factor, at least two."""
        drawn = (Input("feature_draw", "uniform", self.data.num_labels),) if self.cfg.use_features else ()
        return self.spec(drawn, multiple=self.generator.generator.size_factor, min_blocks=2,
                         takes_style=self.cfg.use_features, use_features=self.cfg.use_features,
                         feature_clusters=self.cfg.feature_clusters)

    def generate(self, G: nn.Module, segmap: Tensor, inputs: dict[str, Any]) -> Tensor:
        """Images from label maps; with the encoder, instance features of the ``style`` image, else the
        feature centres picked by ``feature_draw`` (zero where a label has no centre, or no draw)."""
        features = None
        if G.encoder is not None:
            style = inputs.get("style")
            if style is not None:
                features = self._features(G, style.expand(len(segmap), -1, -1, -1), inputs)
            else:
                features = sampled_features(G, inputs["label_map"], inputs.get("feature_draw"))
        return G(segmap, features)

    @torch.no_grad()
    def fit_sampling(self, G: nn.Module, dataset) -> None:
        """k-means (k = ``feature_clusters``) of E's instance features of the first ``cluster_images``
        training images, per label, into G's ``feature_centers`` (the paper clusters the whole set)."""
        if G.encoder is None:
            return
        device, was_training = G.feature_centers.device, G.training
        G.eval()
        labels, vectors = [], []
        count = min(self.cfg.cluster_images, len(dataset))
        with torch.random.fork_rng(devices=[]):  # augmentation draws leave the training RNG alone
            for start in range(0, count, 32):
                batch = dataset.get_batch(torch.arange(start, min(start + 32, count)))
                label_map = batch["label_map"].to(device)
                means, segment = instance_means(G.encoder.pixel_features(batch["image"].to(device)),
                                                batch.get("instance", batch["label_map"]).to(device))
                labels.append(label_map.flatten().new_zeros(len(means)).scatter_(0, segment, label_map.flatten()))
                vectors.append(means)
        G.train(was_training)
        labels, vectors = torch.cat(labels), torch.cat(vectors)
        G.feature_centers.zero_()
        G.feature_center_counts.zero_()
        generator = torch.Generator().manual_seed(self.cfg.seed)
        for label in labels.unique().tolist():
            centers = kmeans(vectors[labels == label].cpu(), self.cfg.feature_clusters, generator)
            G.feature_centers[label, : len(centers)] = centers.to(device)
            G.feature_center_counts[label] = len(centers)

    # ------------------------------------------------------------------ losses
    def fakes(self, G, batch: Batch, step: int) -> ConditionedFakes:
        if self.cfg.n_local_enhancers:
            G.generator.freeze_global(step < self.cfg.fix_global_steps)  # coarse-to-fine (§3.1)
        segmap = self.semantic(batch)
        return ConditionedFakes(G(segmap, self._features(G, batch["image"], batch)), segmap)

    def d_loss(self, D, batch: Batch, fakes: ConditionedFakes, step: int) -> tuple[Tensor, Logs]:
        outputs = D(paired_input(fakes.source, fakes.image.detach(), batch["image"]))  # instance norm keeps
        loss = 0.0  # the halves apart
        for scale in outputs:
            fake_pred, real_pred = scale[-1].chunk(2)
            loss = loss + 0.5 * self.lsgan.d_loss(real_pred, fake_pred)
        loss = loss / len(outputs)
        return loss, {"d_loss": loss.item()}

    def g_loss(self, G, D, batch: Batch, fakes: ConditionedFakes, step: int) -> tuple[Tensor, Logs]:
        real, fake, segmap = batch["image"], fakes.image, fakes.source
        fake_out = D(torch.cat([segmap, fake], 1))
        adversarial = sum(self.lsgan.g_loss(scale[-1]) for scale in fake_out) / len(fake_out)
        loss, logs = adversarial, {"g_adv": adversarial.item()}
        matching, matching_logs = self.matching_losses(D, segmap, real, fake, fake_out,
                                                       layer_weight=4.0 / (self.cfg.n_layers_d + 1))
        loss, logs = loss + matching, {**logs, **matching_logs}
        logs["g_loss"] = loss.item()
        return loss, logs


def sampled_features(G: Pix2PixHDModel, label_map: Tensor, draw: Tensor | None) -> Tensor:
    """Feature maps [B, C, H, W] whose pixels of label l hold centre ⌊draw[b, l] · count_l⌋ of l."""
    b, (h, w) = label_map.shape[0], label_map.shape[-2:]  # shape[0], not len(): a traced batch stays dynamic
    channels = G.feature_centers.shape[-1]
    if draw is None:
        return G.feature_centers.new_zeros(b, channels, h, w)
    counts = G.feature_center_counts
    index = (draw.to(counts.device) * counts).long().clamp(max=(counts - 1).clamp(min=0))  # [B, labels]
    chosen = G.feature_centers[torch.arange(len(counts), device=counts.device), index]  # [B, labels, C]
    chosen = chosen * (counts > 0).view(1, -1, 1)  # labels never seen in training: the zero feature
    pixels = chosen.gather(1, label_map.reshape(b, -1, 1).long().expand(-1, -1, channels))  # [B, H·W, C]
    return pixels.view(b, h, w, channels).permute(0, 3, 1, 2)


def kmeans(points: Tensor, k: int, generator: torch.Generator, iterations: int = 30) -> Tensor:
    """Lloyd's k-means of ``points`` [N, C] with k-means++ seeding (Arthur & Vassilvitskii 2007);
    returns min(k, number of distinct points) centres [k', C]."""
    points = points.float()
    distinct = torch.unique(points, dim=0)
    if len(distinct) <= k:
        return distinct
    centers = points[torch.randint(len(points), (1,), generator=generator)]
    while len(centers) < k:  # each next seed drawn with probability ∝ squared distance to the nearest
        nearest = torch.cdist(points, centers).amin(1).square()
        centers = torch.cat([centers, points[torch.multinomial(nearest, 1, generator=generator)]])
    for _ in range(iterations):
        assignment = torch.cdist(points, centers).argmin(1)
        sums = torch.zeros_like(centers).index_add_(0, assignment, points)
        sizes = torch.bincount(assignment, minlength=k).unsqueeze(1)
        updated = torch.where(sizes > 0, sums / sizes.clamp(min=1), centers)  # an emptied centre stays
        if torch.equal(updated, centers):
            break
        centers = updated
    return centers
