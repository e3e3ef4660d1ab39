"""Training throughput of gauguin's conditional DCGAN against a plain textbook PyTorch loop.

Both train the same architecture (32x32 grey, default widths, batch 128) on the same real
Fashion-MNIST batches in this one process; the textbook loop is the classic recipe: fp32,
default memory layout, D(real) and D(fake.detach()) as two backward passes, and a G step that
also computes D's weight gradients. Prints images/s of each and their ratio.

    python bench/dcgan.py            # full: 30 timed steps each, best of 3 rounds
    python bench/dcgan.py --quick    # CI: a few steps, checks that both loops run
    python bench/dcgan.py --device cuda   # on a GPU
"""
from __future__ import annotations

import argparse
import tempfile
import time

import torch
from torch import nn

from gauguin.data import FashionMNIST, Preprocessing
from gauguin.models import DataInfo
from gauguin.models.dcgan import DCGAN, DCGANConfig
from gauguin.training import Trainer


class TextbookGenerator(nn.Module):
    """The DCGAN generator as tutorials write it: z ++ embedding → ConvT/BN/ReLU → tanh."""

    def __init__(self, z_dim=100, width=64, classes=10, channels=1):
        super().__init__()
        self.embed = nn.Embedding(classes, z_dim)
        self.net = nn.Sequential(
            nn.ConvTranspose2d(2 * z_dim, width * 4, 4, 1, 0, bias=False), nn.BatchNorm2d(width * 4), nn.ReLU(True),
            nn.ConvTranspose2d(width * 4, width * 2, 4, 2, 1, bias=False), nn.BatchNorm2d(width * 2), nn.ReLU(True),
            nn.ConvTranspose2d(width * 2, width, 4, 2, 1, bias=False), nn.BatchNorm2d(width), nn.ReLU(True),
            nn.ConvTranspose2d(width, channels, 4, 2, 1), nn.Tanh())

    def forward(self, z, y):
        return self.net(torch.cat([z, self.embed(y)], 1)[:, :, None, None])


class TextbookDiscriminator(nn.Module):
    """Conv/BN/LeakyReLU down to 4x4, linear head plus a projection term."""

    def __init__(self, width=64, classes=10, channels=1):
        super().__init__()
        self.features = nn.Sequential(
            nn.Conv2d(channels, width, 4, 2, 1), nn.LeakyReLU(0.2, True),
            nn.Conv2d(width, width * 2, 4, 2, 1, bias=False), nn.BatchNorm2d(width * 2), nn.LeakyReLU(0.2, True),
            nn.Conv2d(width * 2, width * 4, 4, 2, 1, bias=False), nn.BatchNorm2d(width * 4), nn.LeakyReLU(0.2, True),
            nn.Flatten())
        self.head = nn.Linear(width * 4 * 16, 1)
        self.embed = nn.Embedding(classes, width * 4 * 16)

    def forward(self, x, y):
        h = self.features(x)
        return self.head(h).squeeze(1) + (self.embed(y) * h).sum(1)


def synchronize(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize(device)


def textbook_steps(dataset: FashionMNIST, batch: int, steps: int, device: torch.device, seed: int = 0) -> float:
    """Seconds per step of the tutorial loop."""
    torch.manual_seed(seed)
    G, D = TextbookGenerator().to(device), TextbookDiscriminator().to(device)
    opt_g = torch.optim.Adam(G.parameters(), 2e-4, betas=(0.5, 0.999))
    opt_d = torch.optim.Adam(D.parameters(), 2e-4, betas=(0.5, 0.999))
    bce = nn.BCEWithLogitsLoss()
    gen = torch.Generator().manual_seed(seed)
    elapsed = 0.0
    for step in range(steps + 2):  # two warm-up steps
        start = time.perf_counter()
        real, y = dataset.get_batch(torch.randint(0, len(dataset), (batch,), generator=gen))
        real, y = real.to(device), y.to(device)
        ones, zeros = torch.ones(batch, device=device), torch.zeros(batch, device=device)
        D.zero_grad()
        bce(D(real, y), ones).backward()
        fake = G(torch.randn(batch, 100, device=device), y)
        bce(D(fake.detach(), y), zeros).backward()
        opt_d.step()
        G.zero_grad()
        bce(D(fake, y), ones).backward()
        opt_g.step()
        synchronize(device)
        if step >= 2:
            elapsed += time.perf_counter() - start
    return elapsed / steps


def gauguin_steps(batch: int, steps: int, precision: str, device: torch.device) -> float:
    """Seconds per step of gauguin's own training step (data, D and G updates, EMA)."""
    with tempfile.TemporaryDirectory() as out:
        cfg = DCGANConfig(image_size=32, batch_size=batch, precision=precision, device=str(device), out_dir=out,
                          progress=False)
        trainer = Trainer("dcgan", cfg)
        elapsed = 0.0
        for step in range(steps + 2):
            start = time.perf_counter()
            trainer.train_step(step)
            synchronize(device)
            if step >= 2:
                elapsed += time.perf_counter() - start
    return elapsed / steps


def _count(module: nn.Module) -> int:
    return sum(p.numel() for p in module.parameters())


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--quick", action="store_true", help="a few steps: checks the bench runs (CI)")
    parser.add_argument("--steps", type=int, default=30)
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--batch", type=int, default=128)
    parser.add_argument("--precision", default="auto", help="gauguin's precision (auto, fp32, bf16)")
    parser.add_argument("--device", default="cpu", help="cpu, cuda, cuda:1, ...")
    args = parser.parse_args()
    device = torch.device(args.device)
    steps, rounds = (3, 1) if args.quick else (args.steps, args.rounds)

    dataset = FashionMNIST("train", Preprocessing(crop_size=32))
    ours_nets = DCGAN(DCGANConfig(), DataInfo(num_classes=10))
    for mine, theirs in ((ours_nets.generator, TextbookGenerator()), (ours_nets.discriminator, TextbookDiscriminator())):
        assert _count(mine) == _count(theirs), "the textbook loop must train the same architecture"
    plain, ours = [], []
    for _ in range(rounds):  # interleaved, best of each: robust to other load on the machine
        plain.append(textbook_steps(dataset, args.batch, steps, device))
        ours.append(gauguin_steps(args.batch, steps, args.precision, device))
    plain_ips, ours_ips = args.batch / min(plain), args.batch / min(ours)
    where = (torch.cuda.get_device_name(device) if device.type == "cuda" else
             f"{torch.get_num_threads()} threads, cpu capability {torch.backends.cpu.get_cpu_capability()}")
    print(f"torch {torch.__version__}, {where}, batch {args.batch}, {steps} steps x {rounds} rounds")
    print(f"textbook fp32 loop : {plain_ips:8.1f} img/s")
    print(f"gauguin ({args.precision:>5})   : {ours_ips:8.1f} img/s")
    print(f"ratio              : {ours_ips / plain_ips:.2f}x")


if __name__ == "__main__":
    main()
