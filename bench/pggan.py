"""PGGAN training throughput per stage: gauguin's step against a plain PyTorch re-statement of the
same step, in this one process, on the same networks (configs/pggan_fashion.yaml) and real batches.

The plain step is how the algorithm is usually written: fp32, default memory layout, G run again
for the G step, D's weight gradients computed in the G step too; WGAN-GP + drift, Adam 1e-3
β=(0, 0.99), EMA. gauguin's is ``Trainer.train_step`` at an iteration of the stage's stable phase.
Prints images/s per stage (4, 8, 16, 32 px) and the ratios.

    python bench/pggan.py            # 10 timed iterations per stage and variant, best of 3 rounds
    python bench/pggan.py --quick    # CI: 2 iterations at tiny widths
"""
from __future__ import annotations

import argparse
import copy
import tempfile
import time

import torch

from gauguin import losses
from gauguin.models.pggan import PGGANConfig
from gauguin.training import Trainer


def plain_step(G, D, G_ema, opt_g, opt_d, real: torch.Tensor, z_dim: int, cfg: PGGANConfig) -> None:
    z = torch.randn(len(real), z_dim)
    fake = G(z)
    real_scores, fake_scores = D(real), D(fake.detach())
    loss = (fake_scores.mean() - real_scores.mean() + cfg.lambda_gp * losses.gradient_penalty(D, real, fake)
            + cfg.drift * losses.drift_penalty(real_scores))
    opt_d.zero_grad()
    loss.backward()
    opt_d.step()
    loss = -D(G(torch.randn(len(real), z_dim))).mean()  # G runs again; D's gradients are computed too
    opt_g.zero_grad()
    opt_d.zero_grad()
    loss.backward()
    opt_g.step()
    with torch.no_grad():
        for p_ema, p in zip(G_ema.parameters(), G.parameters()):
            p_ema.lerp_(p, 1 - cfg.ema_decay)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--quick", action="store_true", help="tiny widths, 2 iterations (CI)")
    parser.add_argument("--iterations", type=int, default=10)
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--fmap-base", type=int, help="nets' fmap_base (default: the preset's)")
    parser.add_argument("--fmap-max", type=int, help="nets' fmap_max (default: the preset's)")
    args = parser.parse_args()
    iterations, rounds = (2, 1) if args.quick else (args.iterations, args.rounds)
    values = PGGANConfig.read_values("configs/pggan_fashion.yaml")
    values.update(out_dir=tempfile.mkdtemp(prefix="gauguin-bench-pggan-"), progress=False, eval_metrics=[], best_metric="swd")
    values.update({key: value for key, value in (("fmap_base", args.fmap_base), ("fmap_max", args.fmap_max)) if value})
    if args.quick:
        values.update(fmap_base=128, fmap_max=16, z_dim=16, fade_images=64, stable_images=64, batch_size=16)
    cfg = PGGANConfig.from_dict(values)
    trainer = Trainer("pggan", cfg)
    G, D = copy.deepcopy(trainer.G).to(memory_format=torch.contiguous_format), copy.deepcopy(trainer.D)
    D = D.to(memory_format=torch.contiguous_format)
    G_ema = copy.deepcopy(G)
    opt_g = torch.optim.Adam(G.parameters(), cfg.lr_g, betas=cfg.betas)
    opt_d = torch.optim.Adam(D.parameters(), cfg.lr_d, betas=cfg.betas)
    schedule, family = trainer.family.schedule, trainer.family
    print(f"PGGAN {cfg.image_size} px, fmap_base {cfg.fmap_base}, fmap_max {cfg.fmap_max}, batch {cfg.batch_size}, "
          f"torch {torch.__version__}, {torch.get_num_threads()} threads, CPU {torch.backends.cpu.get_cpu_capability()}, "
          f"gauguin precision {trainer.precision}")
    print(f"{'stage':>5} {'size':>5} {'plain fp32 img/s':>17} {'gauguin img/s':>14} {'ratio':>6}")
    start = 0
    for stage, fading, count in schedule.phases:
        if fading:
            start += count
            continue
        step = start + count // 2  # the middle of the stage's stable phase
        start += count
        batch = trainer.next_batch(family.plan(step).batch_size)
        real = family.real_at(batch["image"].contiguous(), stage, 1.0)
        G.set_growth(stage, 1.0), D.set_growth(stage, 1.0), G_ema.set_growth(stage, 1.0)
        best = {"plain": float("inf"), "gauguin": float("inf")}
        runs = {"plain": lambda: plain_step(G, D, G_ema, opt_g, opt_d, real, cfg.z_dim, cfg),
                "gauguin": lambda: trainer.train_step(step)}
        for run in runs.values():  # warm-up
            run()
        for _ in range(rounds):  # interleaved rounds, best of each
            for name, run in runs.items():
                began = time.perf_counter()
                for _ in range(iterations):
                    run()
                best[name] = min(best[name], (time.perf_counter() - began) / iterations)
        size = len(real) / best["plain"], len(real) / best["gauguin"]
        print(f"{stage:>5} {real.shape[-1]:>5} {size[0]:>17.1f} {size[1]:>14.1f} {size[1] / size[0]:>5.2f}x")


if __name__ == "__main__":
    main()
