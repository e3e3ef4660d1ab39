"""Super-resolution speed: (1) seconds per training iteration of SRResNet and the RRDB generator at
96 px HR patches ×4, batch 16, gauguin's step against a plain fp32 PyTorch re-statement of the same
losses in this one process (``plain_iteration`` of bench/image_to_image.py: fp32, default layout, G run
again for its loss, D's gradients computed in the G step), in the PSNR phase (G alone) and the GAN phase
(G and the VGG-style D); (2) ``gauguin upscale`` throughput, megapixels of output per second, of SRResNet
×4 on a real 640×480 photo (one of the fixtures' COCO photos), for PyTorch fp32, PyTorch bf16 (autocast), and
onnxruntime on its export in fp32 and int8, each loaded as ``gauguin upscale`` loads it (the int8 export's PSNR
against fp32 printed with it).

    python bench/srgan.py            # the sizes above: several minutes on 2 cores
    python bench/srgan.py --quick    # CI: narrow networks, small patches and a small photo crop
"""
from __future__ import annotations

import argparse
import sys
import tempfile
from pathlib import Path

import numpy as np
import torch

sys.path.insert(0, str(Path(__file__).resolve().parent))
from image_to_image import best_seconds, peak_rss_gib, plain_step  # noqa: E402

from gauguin.models.srgan import SRGANConfig  # noqa: E402
from gauguin.training import Trainer, train  # noqa: E402
from gauguin.upscale import read_image, upscale_image  # noqa: E402

PHOTOS = Path(__file__).resolve().parents[2] / "shared" / "fixtures" / "coco_stuff"


def count_parameters(run: Path) -> int:
    from gauguin.sampling import load_generator

    return sum(p.numel() for p in load_generator(run).generator.parameters())


def training(generator: str, values: dict, rounds: int, iterations: int, tmp: Path) -> None:
    cfg = SRGANConfig.from_dict({"generator": generator, "out_dir": str(tmp / generator), "progress": False,
                                 "dataset": f"folder:{PHOTOS / 'train_img'}", "scale": 4, "pretrain_steps": 1,
                                 "steps": 2, **values})
    trainer = Trainer("srgan", cfg)
    plain = plain_step(trainer)
    for phase, step in (("PSNR", 0), ("GAN", 1)):
        best = best_seconds({"plain": lambda: plain(step), "gauguin": lambda: trainer.train_step(step)},
                            rounds, iterations)
        print(f"{generator:<9} {phase:<5} {best['plain']:>17.3f} {best['gauguin']:>15.3f} {trainer.precision:>9} "
              f"{best['plain'] / best['gauguin']:>5.2f}x {peak_rss_gib():>8.2f}")


def upscaling(values: dict, crop: int | None, rounds: int, tmp: Path) -> None:
    from gauguin.cli import load_upscaler
    from gauguin.serve.export import export

    run = tmp / "upscaler"
    train("srgan", SRGANConfig.from_dict({"out_dir": str(run), "progress": False, "eval_every": 0, "scale": 4,
                                          "dataset": f"folder:{PHOTOS / 'train_img'}", "image_size": 32,
                                          "batch_size": 2, "steps": 1, "pretrain_steps": 1, **values}))
    export(run, tmp / "onnx", quantize="int8")
    photo = next(p for p in sorted((PHOTOS / "train_img").glob("*.jpg")) if read_image(p).shape[:2] == (480, 640))
    pixels = read_image(photo)
    pixels = pixels[:crop, :crop] if crop else pixels
    models = {f"{backend} {precision}": load_upscaler(source, "cpu", precision, None)[0]
              for backend, source in (("pytorch", run), ("onnxruntime", tmp / "onnx"))
              for precision in (("fp32", "bf16") if backend == "pytorch" else ("fp32", "int8"))}
    outputs = {}
    best = best_seconds({k: (lambda m=m, k=k: outputs.__setitem__(k, upscale_image(m, pixels, 4, tile=256, overlap=16)))
                         for k, m in models.items()}, rounds, 1)
    h, w = pixels.shape[:2]
    reference = outputs["pytorch fp32"].astype(np.float64)
    print(f"\nupscale x4 of {photo.name} ({w}x{h} -> {4 * w}x{4 * h}), SRResNet {count_parameters(run):,} "
          f"parameters, tiles of 256 px with 16 px of context, {torch.get_num_threads()} threads")
    print(f"{'backend':<17} {'seconds':>8} {'MP/s out':>9} {'vs fp32':>8} {'PSNR vs fp32':>13}")
    for key, seconds in best.items():
        mse = np.mean((outputs[key].astype(np.float64) - reference) ** 2)
        psnr = "identical" if mse == 0 else f"{10 * np.log10(255 ** 2 / mse):.1f} dB"
        print(f"{key:<17} {seconds:>8.2f} {16 * w * h / seconds / 1e6:>9.2f} {best['pytorch fp32'] / seconds:>7.2f}x "
              f"{psnr:>13}")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--quick", action="store_true", help="narrow networks, small patches, one round (CI)")
    parser.add_argument("--rounds", type=int, default=2)
    parser.add_argument("--iterations", type=int, default=2, help="training iterations per round and variant")
    args = parser.parse_args()
    tmp = Path(tempfile.mkdtemp(prefix="gauguin-bench-srgan-"))
    if args.quick:
        rounds, iterations, crop = 1, 1, 64
        nets = {"srresnet": {"width": 8, "blocks": 2}, "rrdb": {"width": 8, "blocks": 1, "growth": 4}}
        sizes = {"image_size": 32, "batch_size": 2, "d_width": 8}
    else:
        rounds, iterations, crop = args.rounds, args.iterations, None
        nets = {"srresnet": {}, "rrdb": {"blocks": 23}}
        sizes = {"image_size": 96, "batch_size": 16}
    print(f"torch {torch.__version__}, {torch.get_num_threads()} threads, CPU capability "
          f"{torch.backends.cpu.get_cpu_capability()}; HR patches {sizes['image_size']} px x4, batch {sizes['batch_size']}")
    print(f"{'generator':<9} {'phase':<5} {'plain fp32 s/iter':>17} {'gauguin s/iter':>15} {'precision':>9} {'ratio':>6} "
          f"{'peak GiB':>8}")
    for name, values in nets.items():
        training(name, {**sizes, **values}, rounds, iterations, tmp)
    upscaling(nets["srresnet"] if args.quick else {}, crop, rounds, tmp)


if __name__ == "__main__":
    main()
