"""Feature-extraction speed and the total time of an FID protocol on this machine.

    python bench/eval.py           # fmnist extractor on 10k images, fid10k-fmnist, Inception on 32 images
    python bench/eval.py --quick   # CI: a few hundred images, checks that it runs

The Inception network here has random weights (none can be downloaded): its speed does not
depend on them. Figures are printed as images/s and seconds, and as ratios to the fmnist path.
"""
from __future__ import annotations

import argparse
import time

import torch

from gauguin.metrics import create_extractor, extract, fid_from_features, wrap_module
from gauguin.metrics.evaluate import count_label
from gauguin.metrics.inception import InceptionFID
from gauguin.metrics.sources import load_image_set


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--quick", action="store_true")
    args = parser.parse_args()
    n, n_inception = (300, 4) if args.quick else (10_000, 32)

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

    inception = wrap_module(InceptionFID().eval(), "inception-random", weights_hash="random")
    t0 = time.perf_counter()
    extract(inception, real[:n_inception], batch_size=16, progress=False)
    inception_ips = n_inception / (time.perf_counter() - t0)

    print(f"torch {torch.__version__}, {torch.get_num_threads()} threads, cpu {torch.backends.cpu.get_cpu_capability()}")
    print(f"fmnist extractor    : {fmnist_ips:9.1f} img/s")
    print(f"inception (299 px)  : {inception_ips:9.1f} img/s  ({fmnist_ips / inception_ips:.0f}x slower than fmnist)")
    print(f"fid{count_label(n)}-fmnist test-vs-train: {fid:.3f}, total {total:.1f} s (loading, 2 x extraction, FID)")
    print(f"fid10k-inception estimate: {2 * 10_000 / inception_ips / 60:.1f} min of extraction")


if __name__ == "__main__":
    main()
