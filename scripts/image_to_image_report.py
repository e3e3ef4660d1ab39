"""The image-to-image evaluation table on real Fashion-MNIST (issue 6), in one run:

* pix2pix edges -> clothing vs two baselines: the mean training image, and the same U-Net trained
  with L1 alone (no GAN): L1 and SSIM to the real garment, FID-fmnist of the outputs (test split);
* CycleGAN sneaker <-> ankle boot: the share of translated test images the fmnist classifier puts
  in the target class, and the cycle-reconstruction L1;
* pix2pixHD vs SPADE (and pix2pix with input=labels) on the silhouette label maps, same steps and
  batch: mIoU / pixel accuracy of gauguin's segmenter on their outputs (the SPADE paper's comparison).

    python scripts/image_to_image_report.py --steps 600 --out report.json
    python scripts/image_to_image_report.py --steps 3000 --cyclegan-steps 6000 --cyclegan-ngf 64 \
        --cyclegan-blocks 9 --device cuda       # longer, at CycleGAN's paper widths, on a GPU
"""
from __future__ import annotations

import argparse
import json
import tempfile
import time
from pathlib import Path

import torch
import torch.nn.functional as F

from gauguin.data import FashionMNISTSilhouettes, Preprocessing
from gauguin.data.paired import FashionMNISTEdges
from gauguin.data.unpaired import FashionMNISTDomains
from gauguin.metrics import create_extractor, extract, fid_from_features
from gauguin.metrics.fitting import fit
from gauguin.metrics.msssim import ssim
from gauguin.metrics.segmenter import load_or_train_segmenter, segmenter_scores
from gauguin.models import get_family
from gauguin.nn.unet import UnetGenerator
from gauguin.sampling import load_generator
from gauguin.training import train

N_TEST = 1000


def run(family: str, out: Path, name: str = "", **values) -> Path:
    name = name or family
    cfg = get_family(family).config_class.from_dict({"out_dir": str(out / name), "progress": False,
                                                     "eval_every": 0, **values})
    start = time.perf_counter()
    train(family, cfg)
    print(f"{name}: {cfg.steps} steps in {time.perf_counter() - start:.0f} s")
    return out / name


def image_scores(images: torch.Tensor, real: torch.Tensor, judge, real_features) -> dict[str, float]:
    return {"l1": (images - real).abs().mean().item(), "ssim": ssim(images, real).mean().item(),
            "fid_fmnist": fid_from_features(real_features.numpy(), extract(judge, images, progress=False).numpy())}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--steps", type=int, default=600)
    parser.add_argument("--batch", type=int, default=8)
    parser.add_argument("--cyclegan-steps", type=int, help="CycleGAN's steps (default: --steps)")
    parser.add_argument("--cyclegan-ngf", type=int, default=32, help="CycleGAN's widths (paper: 64)")
    parser.add_argument("--cyclegan-blocks", type=int, default=6, help="CycleGAN's residual blocks (paper: 9)")
    parser.add_argument("--device", default="auto", help="where to train and translate: auto, cpu, cuda")
    parser.add_argument("--parts", default="pix2pix,cyclegan,semantic", help="which parts of the table to run")
    parser.add_argument("--out", default="image_to_image_report.json")
    args = parser.parse_args()
    device = "cuda" if args.device == "auto" and torch.cuda.is_available() else args.device.replace("auto", "cpu")
    work = Path(tempfile.mkdtemp(prefix="gauguin-i2i-"))
    judge = create_extractor("fmnist")
    common = {"steps": args.steps, "batch_size": args.batch, "sample_every": args.steps,
              "checkpoint_every": args.steps, "log_every": 50, "device": device}
    cyclegan_steps = args.cyclegan_steps or args.steps
    report: dict = {"steps": args.steps, "batch": args.batch, "device": device,
                    "cyclegan": {"steps": cyclegan_steps, "ngf": args.cyclegan_ngf, "n_blocks": args.cyclegan_blocks}}

    parts = set(args.parts.split(","))
    if "pix2pix" in parts:
        pix2pix_table(report, work, judge, common)
    if "cyclegan" in parts:
        cycle_run = {**common, "steps": cyclegan_steps, "sample_every": cyclegan_steps,
                     "checkpoint_every": cyclegan_steps, "ngf": args.cyclegan_ngf, "ndf": args.cyclegan_ngf,
                     "n_blocks": args.cyclegan_blocks}
        cyclegan_table(report, work, judge, cycle_run)
    if "semantic" in parts:
        semantic_table(report, work, common)
    Path(args.out).write_text(json.dumps(report, indent=2))
    print(json.dumps(report, indent=2))


def pix2pix_table(report: dict, work: Path, judge, common: dict) -> None:
    """pix2pix edges -> clothing against the mean image and an L1-only U-Net (trained on as many pairs)."""
    device, steps, batch = common["device"], common["steps"], common["batch_size"]
    test = FashionMNISTEdges("test").get_batch(torch.arange(N_TEST))
    real_features = extract(judge, test["image"], progress=False)
    pix2pix = load_generator(run("pix2pix", work, ngf=32, ndf=32, **common), device)
    train_pairs = FashionMNISTEdges("train").get_batch(torch.arange(steps * batch))
    l1_only = fit(UnetGenerator(1, 1, 32, ngf=32), train_pairs["input"], train_pairs["image"],
                  lambda y, t: F.l1_loss(y, t), epochs=1, batch_size=batch, lr=2e-4, seed=0, progress=False,
                  desc="l1-only u-net")
    with torch.no_grad():
        mean_image = train_pairs["image"].mean(0, keepdim=True).expand_as(test["image"])
        report["pix2pix"] = {
            "gan_plus_l1": image_scores(pix2pix.translate_images(test["input"]), test["image"], judge, real_features),
            "l1_only": image_scores(l1_only(test["input"]), test["image"], judge, real_features),
            "mean_image": image_scores(mean_image, test["image"], judge, real_features)}


def cyclegan_table(report: dict, work: Path, judge, cycle_run: dict) -> None:
    """CycleGAN: domain transfer judged by the fmnist classifier, and cycle reconstruction."""
    cyclegan = load_generator(run("cyclegan", work, **cycle_run), cycle_run["device"])
    domains = FashionMNISTDomains("test")
    a, b = domains.get_domain("a", torch.arange(N_TEST)), domains.get_domain("b", torch.arange(N_TEST))
    class_a, class_b = domains.class_indices
    to_b, to_a = cyclegan.translate_images(a, "AtoB"), cyclegan.translate_images(b, "BtoA")
    probabilities = judge.probabilities
    report["cyclegan"].update({
        "domains": list(domains.domains),
        "a_to_b_in_target_class": (probabilities(to_b).argmax(1) == class_b).float().mean().item(),
        "b_to_a_in_target_class": (probabilities(to_a).argmax(1) == class_a).float().mean().item(),
        "untranslated_a_in_class_b": (probabilities(a).argmax(1) == class_b).float().mean().item(),
        "cycle_l1_a": (cyclegan.translate_images(to_b, "BtoA") - a).abs().mean().item(),
        "cycle_l1_b": (cyclegan.translate_images(to_a, "AtoB") - b).abs().mean().item()})


def semantic_table(report: dict, work: Path, common: dict) -> None:
    """pix2pixHD vs SPADE (and pix2pix on label maps), same data, steps and batch: segmenter scores."""
    device = common["device"]
    segmenter = load_or_train_segmenter("fashion-mnist", progress=False)
    silhouettes = FashionMNISTSilhouettes("test", Preprocessing(crop_size=32, augment=False)).get_batch(torch.arange(N_TEST))
    report["semantic"] = {}
    for name, family, options in (("spade", "spade", {"ngf": 16, "ndf": 32}),
                                  ("pix2pixhd", "pix2pixhd", {"ngf": 16, "ndf": 32, "n_blocks": 6}),
                                  ("pix2pix_labels", "pix2pix", {"input": "labels", "ngf": 32, "ndf": 32})):
        loaded = load_generator(run(family, work, name, **options, **common), device)
        with torch.no_grad():
            inputs = {key: value.to(device) for key, value in silhouettes.items()}
            images = loaded.generate(loaded.inputs_like(inputs))
        report["semantic"][name] = segmenter_scores(segmenter, images, silhouettes["label_map"])
    report["semantic"]["real_images"] = segmenter_scores(segmenter, silhouettes["image"], silhouettes["label_map"])


if __name__ == "__main__":
    main()
