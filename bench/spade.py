"""Seconds per SPADE training iteration (one G step + one D step): gauguin's step against the
official code's schedule, side by side in this one process, on the same networks and batches.

The ADE20K setting of the paper: 256x256, 150 labels + don't-care (151 channels, no instances),
ngf = ndf = 64, 2-scale D, hinge + feature matching + VGG19 perceptual loss (VGG19 with random
weights written to a temporary file: timing does not depend on the weights, and none can be
downloaded here). The data are synthetic files in the ADE20K layout, read by gauguin's loader.

"reference" is the official code's schedule and layers, rebuilt here with the weights of
gauguin's networks (its generator output is checked equal to gauguin's): G forward in the G step
and again (no grad) in the D step, D run separately on fake and real in both steps, D weight
gradients computed in the G step and thrown away; every SPADE layer re-interpolates the label map
and computes γ and β with two convs; spectral norm divides every weight (torch's
``spectral_norm``). "gauguin" is ``Trainer.train_step``: one G forward per iteration, D on real
and fake in one batch, D frozen in the G step, one label-map resize per resolution, one γβ conv,
spectral norm applied to the smaller of weight and output. Both run in fp32
and under bf16 autocast. Also printed: GFLOP per iteration (torch's FLOP counter), achieved
GFLOP/s and peak resident memory of each variant.

    python bench/spade.py            # the paper's ADE20K config, batch 1 and 2
    python bench/spade.py --quick    # CI: tiny widths at 64 px, one timed iteration
    python bench/spade.py --device cuda --batches 1,8   # on a GPU (peak memory = CUDA allocator's)
"""
from __future__ import annotations

import argparse
import contextlib
import copy
import tempfile
import time
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F
from PIL import Image
from torch import nn
from torch.utils.flop_counter import FlopCounterMode

from gauguin import losses
from gauguin.models.spade import SPADEConfig
from gauguin.nn.labels import semantic_input
from gauguin.nn.spade import SPADE, SegmapPyramid, SPADEResBlock
from gauguin.nn.spectral import SpectralNormConv2d
from gauguin.nn.vgg import VGG19, VGGLoss
from gauguin.training import Trainer


def make_ade20k(root: Path, n: int, size: int) -> None:
    """``n`` random photo / label pairs in the ADEChallengeData2016 layout (labels 0..150)."""
    rng = np.random.default_rng(0)
    for sub in ("images/training", "annotations/training"):
        (root / sub).mkdir(parents=True, exist_ok=True)
    for i in range(n):
        Image.fromarray(rng.integers(0, 256, (size, size, 3), dtype=np.uint8)).save(root / f"images/training/{i:04d}.jpg")
        blocks = rng.integers(0, 151, (size // 16, size // 16), dtype=np.uint8)  # label regions of 16x16 pixels
        Image.fromarray(blocks.repeat(16, 0).repeat(16, 1)).save(root / f"annotations/training/{i:04d}.png")


class OfficialSPADE(nn.Module):
    """SPADE as the official code computes it: resize the map in every layer, γ and β by two convs."""

    def __init__(self, ours: SPADE):
        super().__init__()
        self.param_free_norm = ours.param_free_norm
        self.mlp_shared = ours.mlp_shared
        hidden, norm_nc = ours.mlp_gamma_beta.in_channels, ours.norm_nc
        self.mlp_gamma, self.mlp_beta = (nn.Conv2d(hidden, norm_nc, 3, padding=1) for _ in range(2))
        with torch.no_grad():
            for conv, part in ((self.mlp_gamma, slice(0, norm_nc)), (self.mlp_beta, slice(norm_nc, 2 * norm_nc))):
                conv.weight.copy_(ours.mlp_gamma_beta.weight[part])
                conv.bias.copy_(ours.mlp_gamma_beta.bias[part])

    def forward(self, x, segmap):
        normalized = self.param_free_norm(x)
        segmap = F.interpolate(segmap, size=x.shape[-2:], mode="nearest")
        actv = F.relu(self.mlp_shared(segmap))
        return normalized * (1 + self.mlp_gamma(actv)) + self.mlp_beta(actv)


class OfficialResBlock(nn.Module):
    def __init__(self, ours: SPADEResBlock):
        super().__init__()
        self.learned_shortcut = ours.learned_shortcut
        self.conv_0, self.conv_1 = official_conv(ours.conv_0), official_conv(ours.conv_1)
        self.norm_0, self.norm_1 = OfficialSPADE(ours.norm_0), OfficialSPADE(ours.norm_1)
        if self.learned_shortcut:
            self.conv_s, self.norm_s = official_conv(ours.conv_s), OfficialSPADE(ours.norm_s)

    def forward(self, x, segmap):
        segmap = segmap.segmap if isinstance(segmap, SegmapPyramid) else segmap  # the full-size map
        x_s = self.conv_s(self.norm_s(x, segmap)) if self.learned_shortcut else x
        dx = self.conv_0(F.leaky_relu(self.norm_0(x, segmap), 0.2))
        dx = self.conv_1(F.leaky_relu(self.norm_1(dx, segmap), 0.2))
        return x_s + dx


def official_conv(ours: nn.Conv2d) -> nn.Module:
    """A plain conv, wrapped in torch's spectral_norm (weight division) where gauguin's is spectral."""
    if not isinstance(ours, SpectralNormConv2d):
        return ours
    conv = nn.Conv2d(ours.in_channels, ours.out_channels, ours.kernel_size, ours.stride, ours.padding,
                     bias=ours.bias is not None)
    conv = torch.nn.utils.spectral_norm(conv)
    with torch.no_grad():
        conv.weight_orig.copy_(ours.weight)
        conv.weight_u.copy_(ours.weight_u)
        conv.weight_v.copy_(ours.weight_v)
        if ours.bias is not None:
            conv.bias.copy_(ours.bias)
    return conv


def official_networks(G: nn.Module, D: nn.Module) -> tuple[nn.Module, nn.Module]:
    """Copies of gauguin's G and D with the official code's layers (same weights, same outputs)."""
    G, D = copy.deepcopy(G).to(memory_format=torch.contiguous_format), copy.deepcopy(D).to(memory_format=torch.contiguous_format)
    for name, child in list(G.named_children()):
        if isinstance(child, SPADEResBlock):
            setattr(G, name, OfficialResBlock(child))
    for discriminator in D.discriminators:
        for layer in discriminator.layers:
            layer[0] = official_conv(layer[0])
    device = next(G.parameters()).device  # the new layers are built on the CPU
    return G.to(device), D.to(device)


def reference_iteration(trainer: Trainer, G: nn.Module, D: nn.Module, opt_g, opt_d, batch: dict, vgg_loss) -> None:
    """One iteration of the official schedule (G step, then D step)."""
    fam = trainer.family
    hinge = losses.get_adversarial_loss("hinge")
    with trainer.autocast:  # a float32 one-hot map, default memory layout, as the official code has
        segmap = semantic_input(batch, fam.data.num_labels, fam.use_instances)
        real = batch["image"].contiguous()
        fake = G(segmap)  # G step: D's weight gradients are computed too (and thrown away)
        fake_out, real_out = D(torch.cat([segmap, fake], 1)), D(torch.cat([segmap, real], 1))
        loss = sum(hinge.g_loss(s[-1]) for s in fake_out) / len(fake_out)
        loss = loss + 10 * losses.multiscale_feature_matching_loss([s[:-1] for s in real_out],
                                                                   [s[:-1] for s in fake_out], layers="sum")
        loss = loss + 10 * official_vgg_loss(vgg_loss.vgg, fake, real)
    opt_g.zero_grad(set_to_none=True)
    opt_d.zero_grad(set_to_none=True)
    loss.backward()
    opt_g.step()
    with trainer.autocast:
        with torch.no_grad():  # D step: a second G forward
            fake = G(segmap)
        fake_out, real_out = D(torch.cat([segmap, fake], 1)), D(torch.cat([segmap, real], 1))
        loss = sum(hinge.d_loss(r[-1], f[-1]) for r, f in zip(real_out, fake_out)) / len(fake_out)
    opt_d.zero_grad(set_to_none=True)
    loss.backward()
    opt_d.step()


def official_vgg_loss(vgg: VGG19, x: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
    """The VGG loss as the official code runs it: the fp32 network, its weights cast by autocast on
    every call, no gradient cut on the real branch."""
    loss, vgg = 0.0, vgg.to(x.device)
    for w, fx, fy in zip(VGGLoss.weights, vgg(VGG19.normalize(x)), vgg(VGG19.normalize(y))):
        loss = loss + w * F.l1_loss(fx.float(), fy.detach().float())
    return loss


@torch.no_grad()
def check_same_outputs(trainer: Trainer, G_ref: nn.Module, batch: dict) -> None:
    """The official-layer generator computes what gauguin's does (eval mode, fp32)."""
    G = trainer.G.generator
    G.eval(), G_ref.eval()
    segmap = trainer.family.semantic(batch).float()
    diff = (G(segmap) - G_ref(segmap)).abs().max().item()
    G.train(), G_ref.train()
    if diff > 1e-4:
        raise AssertionError(f"the reference generator differs from gauguin's by {diff}")


def peak_memory_reset() -> None:
    if torch.cuda.is_available() and torch.cuda.is_initialized():
        torch.cuda.reset_peak_memory_stats()
    with contextlib.suppress(OSError):
        Path("/proc/self/clear_refs").write_text("5")  # resets VmHWM (Linux)


def peak_memory_gib(device: torch.device) -> float:
    """Peak CUDA allocation on a GPU, else the process's peak resident memory."""
    if device.type == "cuda":
        return torch.cuda.max_memory_allocated(device) / 2**30
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith("VmHWM:"):
            return int(line.split()[1]) / 2**20
    return float("nan")


def measure(variants: dict, rounds: int, device: torch.device) -> dict:
    """For each variant (a function running one iteration): (seconds per iteration: best of ``rounds``,
    timed in interleaved rounds so that machine noise hits every variant alike; GFLOP per iteration;
    peak GiB). Each is warmed up once, then run once under the FLOP counter."""
    flops = {}
    for name, run in variants.items():
        run()
        with FlopCounterMode(display=False) as counter:
            run()
        flops[name] = counter.get_total_flops() / 1e9
    seconds = {name: float("inf") for name in variants}
    peak = {name: 0.0 for name in variants}
    for _ in range(rounds):
        for name, run in variants.items():
            peak_memory_reset()
            start = time.perf_counter()
            run()
            if device.type == "cuda":
                torch.cuda.synchronize(device)
            seconds[name] = min(seconds[name], time.perf_counter() - start)
            peak[name] = max(peak[name], peak_memory_gib(device))
    return {name: (seconds[name], flops[name], peak[name]) for name in variants}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--quick", action="store_true", help="tiny widths at 64 px, one iteration (CI)")
    parser.add_argument("--batches", default="1,2", help="batch sizes to measure")
    parser.add_argument("--rounds", type=int, default=3, help="timed rounds (each variant once per round)")
    parser.add_argument("--device", default="cpu", help="cpu, cuda, cuda:1, ...")
    args = parser.parse_args()
    size, width, rounds = (64, 8, 1) if args.quick else (256, 64, args.rounds)
    batches = [1] if args.quick else [int(b) for b in args.batches.split(",")]
    tmp = Path(tempfile.mkdtemp(prefix="gauguin-bench-spade-"))
    make_ade20k(tmp / "ade", max(4, *batches), size)
    torch.manual_seed(0)
    torch.save(VGG19().state_dict(), tmp / "vgg19.pth")
    device = torch.device(args.device)
    where = (torch.cuda.get_device_name(device) if device.type == "cuda" else
             f"{torch.get_num_threads()} threads, CPU capability {torch.backends.cpu.get_cpu_capability()}")
    print(f"SPADE, ADE20K config ({size}x{size}, 151 label channels, ngf=ndf={width}, VGG loss), "
          f"torch {torch.__version__}, {where}")
    print(f"{'batch':>5} {'schedule':<10} {'precision':<9} {'s/iter':>8} {'GFLOP/iter':>11} {'GFLOP/s':>8} "
          f"{'peak GiB':>8} {'speed-up':>9}")
    for batch_size in batches:
        cfg = SPADEConfig(dataset=f"ade20k:{tmp / 'ade'}", image_size=size, load_size=size, channels=3,
                          ngf=width, ndf=width, batch_size=batch_size, vgg_weights=str(tmp / "vgg19.pth"),
                          precision="fp32", device=args.device, out_dir=str(tmp / f"run_{batch_size}"),
                          progress=False)
        trainer = Trainer("spade", cfg)
        batch = trainer.next_batch()
        G_ref, D_ref = official_networks(trainer.G.generator, trainer.D)
        check_same_outputs(trainer, G_ref, batch)
        opt_g = torch.optim.Adam(G_ref.parameters(), cfg.lr_g, betas=cfg.betas)
        opt_d = torch.optim.Adam(D_ref.parameters(), cfg.lr_d, betas=cfg.betas)
        autocast = {"fp32": torch.autocast(device.type, enabled=False),
                    "bf16": torch.autocast(device.type, dtype=torch.bfloat16)}

        def variant(schedule: str, precision: str):
            def run():
                trainer.autocast = autocast[precision]
                if schedule == "reference":
                    reference_iteration(trainer, G_ref, D_ref, opt_g, opt_d, batch, trainer.family.vgg_loss)
                else:
                    trainer.train_step(0)
            return run

        rows = measure({(schedule, precision): variant(schedule, precision) for precision in ("fp32", "bf16")
                        for schedule in ("reference", "gauguin")}, rounds, device)
        base = rows[("reference", "fp32")][0]
        for (schedule, precision), (seconds, gflop, peak) in rows.items():
            print(f"{batch_size:>5} {schedule:<10} {precision:<9} {seconds:>8.3f} {gflop:>11.1f} {gflop / seconds:>8.1f} "
                  f"{peak:>8.2f} {base / seconds:>8.2f}x")
        ours = rows[("gauguin", "bf16")][0]
        print(f"  gauguin bf16 vs reference fp32: {base / ours:.2f}x; vs reference under bf16 autocast: "
              f"{rows[('reference', 'bf16')][0] / ours:.2f}x; gauguin fp32 vs reference fp32: "
              f"{base / rows[('gauguin', 'fp32')][0]:.2f}x")


if __name__ == "__main__":
    main()
