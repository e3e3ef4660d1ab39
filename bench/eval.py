"""Feature-extraction speed and the total time of an FID protocol on this machine.

    python bench/eval.py           # fmnist extractor on 10k images, fid10k-fmnist, Inception on 64 images per path
    python bench/eval.py --quick   # CI: a few hundred images and 8 Inception images per path, checks that it runs

The Inception network here has random weights (none can be downloaded): its speed does not
depend on them. Three Inception paths are timed on the same 28x28 grey images, in alternating
batches so that a busy CPU slows them alike: the plain module (BatchNorm, ReLU, NCHW, as
loaded), the same module channels-last (the extractor before its fast path), and the fast
inference copy that create_extractor("inception", weights) runs (FastInceptionFID: BatchNorm
folded, fused ReLU, channels-last, merged 1x1 convolutions). Each path gets one untimed warm-up
batch (oneDNN primitive creation, weight packing); the fast copy's build time is printed apart.
The fid10k-inception estimate is the extraction of 2 x 10k images by the fast path.
"""
from __future__ import annotations

import argparse
import copy
import os
import time

import torch

from gauguin.metrics import create_extractor, extract, fid_from_features, wrap_module
from gauguin.metrics.evaluate import count_label
from gauguin.metrics.extractors import InceptionExtractor
from gauguin.metrics.inception import INPUT_SIZE, InceptionFID
from gauguin.metrics.sources import load_image_set

INCEPTION_GFLOP = 11.42  # per 299x299 image: 2 x the multiply-adds of its 94 convolutions (+0.004 for fc)


def time_inception(images: torch.Tensor, per_path: int, quick: bool) -> tuple[dict, float]:
    """img/s of the plain, channels-last and fast Inception paths over ``per_path`` images each,
    in rounds of 32 images (8 with ``quick``) that every path runs in turn, each path with the
    batch size it runs best at on a 2-core CPU (plain: 16, fast: 32); and the seconds to build
    the fast copy."""
    net = InceptionFID().eval()
    paths = {"plain": wrap_module(net, "inception-plain", weights_hash="random"),
             "channels-last": InceptionExtractor(copy.deepcopy(net), fast=False)}
    t0 = time.perf_counter()
    paths["fast"] = InceptionExtractor(copy.deepcopy(net))
    build = time.perf_counter() - t0
    round_size = 8 if quick else 32
    batch = {"plain": min(16, round_size), "channels-last": min(16, round_size), "fast": round_size}
    seconds = dict.fromkeys(paths, 0.0)
    for name, ext in paths.items():  # warm-up, untimed
        extract(ext, images[:batch[name]], batch_size=batch[name], progress=False)
    for start in range(0, per_path, round_size):
        chunk = images[start:min(start + round_size, per_path)]
        for name, ext in paths.items():
            t0 = time.perf_counter()
            extract(ext, chunk, batch_size=batch[name], progress=False)
            seconds[name] += time.perf_counter() - t0
    return {name: per_path / s for name, s in seconds.items()}, build

def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--quick", action="store_true")
    args = parser.parse_args()
    n, n_inception = (300, 8) if args.quick else (10_000, 64)
    load = os.getloadavg()[0]  # before this run's work: > 0.5 means another process shares the CPU

    start = time.perf_counter()
    real = load_image_set("fashion-mnist:test", n=n).images
    fake = load_image_set("fashion-mnist:train", n=n).images
    fmnist = create_extractor("fmnist")
    t0 = time.perf_counter()
    real_f = extract(fmnist, real, batch_size=500, progress=False)
    fmnist_ips = n / (time.perf_counter() - t0)
    fake_f = extract(fmnist, fake, batch_size=500, progress=False)
    fid = fid_from_features(real_f.numpy(), fake_f.numpy())
    total = time.perf_counter() - start

    ips, build = time_inception(real, n_inception, args.quick)
    fast = ips["fast"]

    print(f"torch {torch.__version__}, {torch.get_num_threads()} threads, cpu {torch.backends.cpu.get_cpu_capability()}, "
          f"load average at start {load:.2f}")
    print(f"fmnist extractor    : {fmnist_ips:9.1f} img/s")
    print(f"inception ({INPUT_SIZE} px) plain module        : {ips['plain']:7.2f} img/s")
    print(f"inception ({INPUT_SIZE} px) channels-last module: {ips['channels-last']:7.2f} img/s")
    print(f"inception ({INPUT_SIZE} px) fast path           : {fast:7.2f} img/s  "
          f"({fast / ips['plain']:.2f}x plain, {fast / ips['channels-last']:.2f}x channels-last, in this run; "
          f"{fast * INCEPTION_GFLOP:.0f} GFLOP/s; {fmnist_ips / fast:.0f}x slower than fmnist; "
          f"copy built in {build:.2f} s)")
    print(f"fid{count_label(n)}-fmnist test-vs-train: {fid:.3f}, total {total:.1f} s (loading, 2 x extraction, FID)")
    print(f"fid10k-inception estimate: {2 * 10_000 / fast / 60:.1f} min of extraction "
          f"(fast path; the plain module: {2 * 10_000 / ips['plain'] / 60:.1f} min)")


if __name__ == "__main__":
    main()
