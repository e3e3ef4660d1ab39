"""Seconds per SPADE training iteration (one G step + one D step): gauguin's step against the
official code's schedule, side by side in this one process, on the same networks and batches.

The ADE20K setting of the paper: 256x256, 150 labels + don't-care (151 channels, no instances),
ngf = ndf = 64, 2-scale D, hinge + feature matching + VGG19 perceptual loss (VGG19 with random
weights written to a temporary file: timing does not depend on the weights, and none can be
downloaded here). The data are synthetic files in the ADE20K layout, read by gauguin's loader.

"reference" is the official schedule, built from gauguin's networks: G forward in the G step
and again (no grad) in the D step, D run separately on fake and real in both steps, D weight
gradients computed in the G step and thrown away. "gauguin" is ``Trainer.train_step``: one G
forward per iteration, D on real and fake in one batch, D frozen in the G step. Both run in fp32
and under bf16 autocast. Also printed: GFLOP per iteration (torch's FLOP counter), achieved
GFLOP/s and peak resident memory of each variant.

    python bench/spade.py            # the paper's ADE20K config, batch 1 and 2
    python bench/spade.py --quick    # CI: tiny widths at 64 px, one timed iteration
"""
from __future__ import annotations

import argparse
import contextlib
import tempfile
import time
from pathlib import Path

import numpy as np
import torch
from PIL import Image
from torch.utils.flop_counter import FlopCounterMode

from gauguin import losses
from gauguin.models.spade import SPADEConfig
from gauguin.nn.vgg import VGG19
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


def reference_iteration(trainer: Trainer, batch: dict, vgg_loss) -> None:
    """One iteration of the official schedule (G step, then D step) on the trainer's networks."""
    fam, G, D = trainer.family, trainer.G.generator, trainer.D
    hinge = losses.get_adversarial_loss("hinge")
    with trainer.autocast:
        segmap, real = fam.semantic(batch), batch["image"]
        fake = G(segmap)  # G step: D's weight gradients are computed too (and thrown away)
        fake_out, real_out = D(torch.cat([segmap, fake], 1)), D(torch.cat([segmap, real], 1))
        loss = sum(hinge.g_loss(s[-1]) for s in fake_out) / len(fake_out)
        loss = loss + 10 * losses.multiscale_feature_matching_loss([s[:-1] for s in real_out],
                                                                   [s[:-1] for s in fake_out], layers="sum")
        loss = loss + 10 * vgg_loss(fake, real)
    trainer.opt_g.zero_grad(set_to_none=True)
    trainer.opt_d.zero_grad(set_to_none=True)
    loss.backward()
    trainer.opt_g.step()
    with trainer.autocast:
        with torch.no_grad():  # D step: a second G forward
            fake = G(segmap)
        fake_out, real_out = D(torch.cat([segmap, fake], 1)), D(torch.cat([segmap, real], 1))
        loss = sum(hinge.d_loss(r[-1], f[-1]) for r, f in zip(real_out, fake_out)) / len(fake_out)
    trainer.opt_d.zero_grad(set_to_none=True)
    loss.backward()
    trainer.opt_d.step()


def peak_rss_reset() -> None:
    with contextlib.suppress(OSError):
        Path("/proc/self/clear_refs").write_text("5")  # resets VmHWM (Linux)


def peak_rss_gib() -> float:
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith("VmHWM:"):
            return int(line.split()[1]) / 2**20
    return float("nan")


def measure(run, iterations: int) -> tuple[float, float, float]:
    """(seconds per iteration, GFLOP per iteration, peak RSS GiB) of ``run()``: one warm-up."""
    run()
    with FlopCounterMode(display=False) as counter:
        run()
    peak_rss_reset()
    start = time.perf_counter()
    for _ in range(iterations):
        run()
    seconds = (time.perf_counter() - start) / iterations
    return seconds, counter.get_total_flops() / 1e9, peak_rss_gib()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--quick", action="store_true", help="tiny widths at 64 px, one iteration (CI)")
    parser.add_argument("--batches", default="1,2", help="batch sizes to measure")
    parser.add_argument("--iterations", type=int, default=2, help="timed iterations per variant")
    args = parser.parse_args()
    size, width, iterations = (64, 8, 1) if args.quick else (256, 64, args.iterations)
    batches = [1] if args.quick else [int(b) for b in args.batches.split(",")]
    tmp = Path(tempfile.mkdtemp(prefix="gauguin-bench-spade-"))
    make_ade20k(tmp / "ade", 4, size)
    torch.manual_seed(0)
    torch.save(VGG19().state_dict(), tmp / "vgg19.pth")
    print(f"SPADE, ADE20K config ({size}x{size}, 151 label channels, ngf=ndf={width}, VGG loss), "
          f"torch {torch.__version__}, {torch.get_num_threads()} threads, CPU capability "
          f"{torch.backends.cpu.get_cpu_capability()}")
    print(f"{'batch':>5} {'schedule':<10} {'precision':<9} {'s/iter':>8} {'GFLOP/iter':>11} {'GFLOP/s':>8} "
          f"{'peak GiB':>8} {'speed-up':>9}")
    for batch_size in batches:
        rows = {}
        for precision in ("fp32", "bf16"):
            cfg = SPADEConfig(dataset=f"ade20k:{tmp / 'ade'}", image_size=size, load_size=size, channels=3,
                              ngf=width, ndf=width, batch_size=batch_size, vgg_weights=str(tmp / "vgg19.pth"),
                              precision=precision, out_dir=str(tmp / f"run_{precision}"), progress=False)
            trainer = Trainer("spade", cfg)
            batch = trainer.next_batch()
            rows[("reference", precision)] = measure(
                lambda: reference_iteration(trainer, batch, trainer.family.vgg_loss), iterations)
            rows[("gauguin", precision)] = measure(lambda: trainer.train_step(0), iterations)
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
