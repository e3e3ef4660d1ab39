"""Seconds per training iteration of pix2pix, CycleGAN and pix2pixHD, gauguin's step against a plain
PyTorch re-statement of the same losses in this one process, on copies of the same networks.

"plain" is the step as the reference implementations write it: fp32, default memory layout, the
generators run again for the G step (no reuse of the D step's fakes), and the discriminators'
weight gradients are computed in the G step and thrown away. "gauguin" is ``Trainer.train_step``
(precision=auto: bf16 where the CPU has it, channels-last, one generator pass, D frozen in the G
step). Each family at its embedded default (Fashion-MNIST, 32 px, the paper's widths) and batch 4.
Prints seconds per iteration (best of interleaved rounds), peak resident memory and the ratio.

    python bench/image_to_image.py            # 3 rounds of 5 iterations
    python bench/image_to_image.py --quick    # CI: narrow networks, one round of one iteration
"""
from __future__ import annotations

import argparse
import copy
import tempfile
import time
from pathlib import Path

import torch

from gauguin.models import get_family
from gauguin.training import Trainer

FAMILIES = ("pix2pix", "cyclegan", "pix2pixhd")


def plain_iteration(trainer: Trainer, G, D, opt_g, opt_d, batch: dict, step: int = 0) -> None:
    """The family's own losses, scheduled as the reference code does (see the module docstring): G runs
    forward for D's loss without a graph, and again for G's loss; D's weight gradients are computed too.
    A plan with no D update (a G-alone phase) skips D's."""
    family = trainer.family
    if family.plan(step).d_updates:
        with torch.no_grad():
            fakes = family.fakes(G, batch, step)
        loss_d, _ = family.d_loss(D, batch, fakes, step)
        opt_d.zero_grad(set_to_none=True)
        loss_d.backward()
        opt_d.step()
    loss_g, _ = family.g_loss(G, D, batch, family.fakes(G, batch, step), step)
    opt_g.zero_grad(set_to_none=True)
    opt_d.zero_grad(set_to_none=True)
    loss_g.backward()
    opt_g.step()


def plain_step(trainer: Trainer):
    """``step -> None``: :func:`plain_iteration` on fp32, default-layout copies of the trainer's networks (with
    their own Adam optimisers) and on one batch of its data."""
    cfg = trainer.cfg
    batch = {k: v.contiguous() for k, v in trainer.next_batch().items()}
    G = copy.deepcopy(trainer.G).to(memory_format=torch.contiguous_format)
    D = copy.deepcopy(trainer.D).to(memory_format=torch.contiguous_format)
    opt_g = torch.optim.Adam(G.parameters(), cfg.lr_g, betas=cfg.betas)
    opt_d = torch.optim.Adam(D.parameters(), cfg.lr_d, betas=cfg.betas)
    return lambda step: plain_iteration(trainer, G, D, opt_g, opt_d, batch, step)


def best_seconds(variants: dict, rounds: int, iterations: int) -> dict[str, float]:
    """Best-of-``rounds`` seconds per call of each variant, interleaved (one warm-up call each)."""
    for run in variants.values():
        run()
    best = {k: float("inf") for k in variants}
    for _ in range(rounds):
        for key, run in variants.items():
            start = time.perf_counter()
            for _ in range(iterations):
                run()
            best[key] = min(best[key], (time.perf_counter() - start) / iterations)
    return best


def peak_rss_gib() -> float:
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith("VmHWM:"):
            return int(line.split()[1]) / 2**20
    return float("nan")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--quick", action="store_true", help="narrow networks, one iteration (CI)")
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--iterations", type=int, default=5, help="iterations per round and variant")
    args = parser.parse_args()
    rounds, iterations = (1, 1) if args.quick else (args.rounds, args.iterations)
    widths = {"ngf": 8, "ndf": 8} if args.quick else {}
    tmp = Path(tempfile.mkdtemp(prefix="gauguin-bench-i2i-"))
    print(f"torch {torch.__version__}, {torch.get_num_threads()} threads, CPU capability "
          f"{torch.backends.cpu.get_cpu_capability()}; Fashion-MNIST defaults at 32 px, batch 4")
    print(f"{'family':<10} {'plain fp32 s/iter':>17} {'gauguin s/iter':>15} {'precision':>9} {'ratio':>6} {'peak GiB':>8}")
    for name in FAMILIES:
        cfg = get_family(name).config_class.from_dict({"batch_size": 4, "out_dir": str(tmp / name),
                                                       "progress": False, **widths})
        trainer = Trainer(name, cfg)
        plain = plain_step(trainer)
        best = best_seconds({"plain": lambda: plain(0), "gauguin": lambda: trainer.train_step(0)}, rounds, iterations)
        print(f"{name:<10} {best['plain']:>17.4f} {best['gauguin']:>15.4f} {trainer.precision:>9} "
              f"{best['plain'] / best['gauguin']:>5.2f}x {peak_rss_gib():>8.2f}")


if __name__ == "__main__":
    main()
