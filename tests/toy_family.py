"""A newcomer's family in one file: label map + z → image by one conv, one conv for D, hinge loss."""
import torch
from torch import nn

from gauguin import losses
from gauguin.models.base import GANFamily, build_data
from gauguin.models.inference import Graph, InferenceSpec, Input
from gauguin.models.semantic import LabelMapData
from gauguin.nn.labels import one_hot_labels

Z = 4  # style code length


class Toy(GANFamily):
    name, config_class, hinge = "toy", LabelMapData, losses.get_adversarial_loss("hinge")

    def __init__(self, cfg, data):
        super().__init__(cfg, data)
        self.generator = nn.Conv2d(data.num_labels + Z, data.channels, 3, padding=1)
        self.discriminator = nn.Conv2d(data.channels, 1, 4, 2, 1)

    def image(self, G, label_map, z):
        z = z[:, :, None, None].expand(-1, -1, *label_map.shape[-2:]).float()
        return torch.tanh(G(torch.cat([one_hot_labels(label_map, self.data.num_labels), z], 1)))

    @classmethod
    def build_dataset(cls, cfg, split="train"):
        return build_data(cfg, "label_maps", split, augment=split == "train")

    @property
    def inference(self):
        inputs = (Input("label_map", "label_map", self.data.num_labels), Input("z", "normal", Z))
        run = Graph("generator", inputs, lambda G, x: self.image(G, x["label_map"], x["z"]))
        return InferenceSpec((run,), self.data.image_size, self.data.channels)

    def fakes(self, G, batch, step):
        return self.image(G, batch["label_map"], torch.randn(len(batch["image"]), Z, device=batch["image"].device))

    def d_loss(self, D, batch, fakes, step):
        loss = self.hinge.d_loss(D(batch["image"]), D(fakes.detach()))
        return loss, {"d_loss": loss.item()}

    def g_loss(self, G, D, batch, fakes, step):
        loss = self.hinge.g_loss(D(fakes))
        return loss, {"g_loss": loss.item()}
