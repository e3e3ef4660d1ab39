"""``gauguin``: train, sample and inspect GANs from the command line.

    gauguin train dcgan [--config run.yaml] [--resume] [key=value ...]
    gauguin sample runs/dcgan [--n 64] [--class Sneaker] [--seed 0] [--out samples.png]
    gauguin translate runs/spade --labels label.png [--style photo.jpg | --seed 0 --n 4] --out out/
    gauguin translate runs/pix2pix --input edges/ [--direction AtoB] --out out/
    gauguin refine runs/simgan --input synthetic/ --out refined/
    gauguin eval --metrics fid,kid,is,pr --real fashion-mnist:test --fake runs/dcgan
    gauguin experiment simgan-tstr [--checkpoint runs/simgan] [--oracles] --out runs/simgan_tstr
    gauguin experiment augment [--labels-per-class 10,50,100,500] [--budget 60] [--quick]
    gauguin experiment budget [--recipes bench/recipes/dcgan.yaml] [--budgets 1,2,5] [--seeds 0,1] [--quick]
    gauguin info runs/dcgan
    gauguin export runs/spade --format onnx|safetensors [--out DIR] [--opset 18] [--no-check]
    gauguin paint [runs/spade | exported/] [--retrain] [--port 7860] [--backend auto|onnx|torch]
"""
from __future__ import annotations

import argparse
import json
import os
import sys
import warnings
from pathlib import Path

from . import __version__


def _train(args) -> int:
    import dataclasses

    from .models import get_family
    from .training import run_config, train

    overrides = args.overrides + ([f"dataset={args.data}"] if args.data else [])
    fields = {f.name for f in dataclasses.fields(get_family(args.family).config_class)}
    if (args.synthetic or args.real) and not {"synthetic", "real"} <= fields:
        raise ValueError(f"--synthetic and --real are the data of refiners; {args.family} takes --data")
    overrides += [f"{key}={value}" for key, value in (("synthetic", args.synthetic), ("real", args.real)) if value]
    cfg = run_config(args.family, args.config, overrides, args.resume)
    path = train(args.family, cfg, resume=args.resume)
    if path is not None:
        print(f"gauguin: samples in {Path(cfg.out_dir) / 'samples'}, checkpoint {path}")
    return 0


def _sample(args) -> int:
    from .sampling import load_generator
    from .images import make_grid, save_png

    loaded = load_generator(args.checkpoint, args.device)
    out = Path(args.out)
    if args.per_class is not None:
        return _sample_class_folders(loaded, args.per_class, out, args.seed, args.checkpoint)
    label = loaded.class_index(args.klass) if args.klass is not None else None
    images = loaded.sample(args.n, seed=args.seed, label=label)
    if out.suffix.lower() == ".png":
        save_png(make_grid(images, args.columns), out)
        print(f"gauguin: wrote a grid of {args.n} samples to {out}")
    else:
        for i, image in enumerate(images):
            save_png(image, out / f"{i:06d}.png")
        print(f"gauguin: wrote {args.n} samples to {out}/")
    return 0


def _sample_class_folders(loaded, per_class: int, out: Path, seed: int, source: str) -> int:
    """``per_class`` samples of every class as ``out/<index>_<name>/NNNNNN.png``: the ImageFolder layout
    (class folders sorted as the model's classes), which gauguin's folder:PATH and other tools read."""
    import re

    from .images import save_png

    n = loaded.meta["num_classes"]
    if loaded.spec.main.input("class") is None or n < 2:
        raise ValueError(f"--per-class needs a class-conditional model; {source} ({loaded.meta['family']}) draws "
                         "no classes: train one with conditional=true")
    if per_class < 1 or out.suffix.lower() == ".png":
        raise ValueError(f"--per-class writes {per_class} image(s) per class into a folder: give a positive "
                         f"count and a folder for --out, not {out}")
    names = loaded.classes or [str(c) for c in range(n)]
    digits = len(str(n - 1))
    for c, name in enumerate(names):
        folder = out / f"{c:0{digits}d}_{re.sub(r'[^A-Za-z0-9._-]+', '_', name).strip('_') or c}"
        for start in range(0, per_class, 256):
            images = loaded.sample(min(256, per_class - start), seed=seed + 1_000_003 * c + start, label=c)
            for i, image in enumerate(images, start):
                save_png(image, folder / f"{i:06d}.png")
    print(f"gauguin: wrote {per_class} samples of each of {n} classes to {out}/ (a folder per class)")
    return 0


def _translate(args) -> int:
    from .sampling import load_generator

    loaded = load_generator(args.checkpoint, args.device)
    if args.labels:
        return _translate_labels(loaded, args)
    if not args.input:
        raise ValueError("gauguin translate needs --labels LABEL.png (semantic models) or --input FILE|DIR "
                         "(image-to-image models)")
    from .images import save_png

    files = _image_files(Path(args.input))
    out = Path(args.out)
    for path in files:
        image = loaded.read_image(path, loaded.input_channels)
        save_png(loaded.translate_images(image, args.direction)[0], out / f"{path.stem}.png")
    print(f"gauguin: translated {len(files)} image(s) into {out}/")
    return 0


def _translate_labels(loaded, args) -> int:
    from .nn.labels import colorize_labels
    from .images import make_grid, save_png

    label_map = loaded.read_label_map(args.labels)
    instance = loaded.read_instance_map(args.instances) if args.instances else None
    style = loaded.read_style_image(args.style) if args.style else None
    images = loaded.translate(label_map, instance, n=args.n, seed=args.seed, style=style)
    out = Path(args.out)
    stem = Path(args.labels).stem
    save_png(colorize_labels(label_map[None], loaded.data.num_labels)[0], out / f"{stem}_labels.png")
    for i, image in enumerate(images):
        save_png(image, out / (f"{stem}_style.png" if style is not None else f"{stem}_seed{args.seed}_{i:02d}.png"))
    if len(images) > 1:
        save_png(make_grid(images, len(images)), out / f"{stem}_grid.png")
    print(f"gauguin: wrote {len(images)} image(s) for {args.labels} to {out}/")
    return 0


def _image_files(source: Path, recursive: bool = False) -> list[Path]:
    """The images an --input names: the file itself, or the folder's image files (with ``recursive``,
    those of its sub-folders too), sorted."""
    from .data.folder import IMAGE_EXTENSIONS

    if not source.exists():
        raise ValueError(f"--input {source} does not exist")
    if source.is_file():
        return [source]
    found = source.rglob("*") if recursive else source.iterdir()
    files = sorted(p for p in found if p.is_file() and p.suffix.lower() in IMAGE_EXTENSIONS)
    if not files:
        raise ValueError(f"{source} holds no images ({', '.join(IMAGE_EXTENSIONS)})")
    return files


def _refine(args) -> int:
    """Refine every image under --input (sub-folders kept, so class folders keep their labels)."""
    import torch

    from .sampling import load_generator
    from .images import save_png

    loaded = load_generator(args.checkpoint, args.device)
    channels = loaded.input_channels  # a model that translates no images: the error naming what it takes
    source, out = Path(args.input), Path(args.out)
    files = _image_files(source, recursive=True)
    for start in range(0, len(files), 256):
        chunk = files[start : start + 256]
        images = [loaded.read_image(path, channels) for path in chunk]
        refined = loaded.translate_images(torch.cat(images))
        for path, image in zip(chunk, refined):
            relative = path.relative_to(source) if source.is_dir() else Path(path.name)
            save_png(image, (out / relative).with_suffix(".png"))
    print(f"gauguin: refined {len(files)} image(s) into {out}/")
    return 0


def load_upscaler(source: Path, device: str, precision: str, threads: int | None):
    """(callable on [1, C, h, w] tensors in [-1, 1], channels, scale) of a checkpoint (precision fp32 or bf16) or
    an ONNX export (fp32 or int8), as ``gauguin upscale`` runs it (bench/srgan.py times this path)."""
    if (source / "model.json").is_file():
        from .serve.engine import ImageGraph

        graph = ImageGraph(source, threads, "int8" if precision == "int8" else "fp32")
        return graph, graph.channels, graph.scale
    import torch

    from .sampling import load_generator

    loaded = load_generator(source, device)
    graph = loaded.spec.translator()
    name = graph.input("image").name
    autocast = torch.autocast(loaded.device.type, torch.bfloat16, enabled=precision == "bf16")
    loaded.generator.to(memory_format=torch.channels_last)  # oneDNN's fast convolution layout

    def run(images):
        with torch.inference_mode(), autocast:
            return loaded.run(graph, {name: images.contiguous(memory_format=torch.channels_last)})

    return run, graph.input("image").size, graph.scale


def _eval_sr(args) -> int:
    """PSNR-Y / SSIM-Y of bicubic and of each --fake upscaler on the photos of --real (folder:PATH)."""
    from .metrics.sr import evaluate_upscalers

    if not args.fake:
        raise ValueError("gauguin eval sr needs --fake MODEL[,MODEL...] (super-resolution checkpoints or exports, "
                         "each PATH or NAME=PATH)")
    models, scales = {}, set()
    for source in args.fake.split(","):  # PATH or NAME=PATH
        name, _, path = source.rpartition("=")
        model, channels, scale = load_upscaler(Path(path), "cpu", "fp32", None)
        models[name or Path(path).name or path] = (model, channels)
        scales.add(scale)
    if len(scales) != 1:
        raise ValueError(f"the models upscale by different factors ({sorted(scales)}); compare one scale at a time")
    files = []
    for part in args.real.split(","):  # folder:PATH, PATH (a folder or an image) or scikit-image
        if part.strip() == "scikit-image":
            from .data.sample_photos import scikit_image_photos

            files += scikit_image_photos()
        else:
            files += _image_files(Path(part.strip().removeprefix("folder:")), recursive=True)
    report = evaluate_upscalers(models, files[: args.n], scales.pop(), perceptual=not args.no_patches,
                                sheet=args.sheet)
    print(f"{len(report['files'])} held-out photos, x{report['scale']}; PSNR-Y / SSIM-Y border {report['scale']}"
          + ("" if args.no_patches else "; patch distances on 64 px squares (lower is better)"))
    for name, scores in report["scores"].items():
        patches = scores.get("patches")
        print(f"{name:<24} PSNR-Y {scores['psnr']:6.2f} dB   SSIM-Y {scores['ssim']:.4f}"
              + (f"   LSWD {patches['lswd']:7.2f}   FD-fmnist {patches['fd_fmnist']:8.3f}" if patches else ""))
    if args.sheet:
        print(f"gauguin: wrote {args.sheet} (a row per photo: {' | '.join(report['sheet']['columns'])})")
    if args.out:
        Path(args.out).write_text(json.dumps(report, indent=2))
    return 0


def _upscale(args) -> int:
    """Upscale every image under --input into --out (PNG, same bit depth and channels), tile by tile."""
    from .upscale import upscale_file

    if args.precision == "auto":  # bf16 where the CPU has native bf16 kernels, as training picks it
        from .training.loop import resolve_precision

        import torch

        args.precision = resolve_precision("auto", torch.device(args.device))
    model, channels, scale = load_upscaler(Path(args.model), args.device, args.precision, args.threads)
    if scale < 2:
        raise ValueError(f"{args.model} does not upscale (its outputs are its inputs' size): use gauguin translate")
    if args.scale and args.scale != scale:
        raise ValueError(f"{args.model} upscales x{scale}, not x{args.scale}: drop --scale or train with scale={args.scale}")
    source, out = Path(args.input), Path(args.out)
    files = _image_files(source, recursive=True)
    failed = []
    for path in files:
        target = out / (path.relative_to(source) if source.is_dir() else Path(path.name)).with_suffix(".png")
        target.parent.mkdir(parents=True, exist_ok=True)
        try:
            upscale_file(model, channels, scale, path, target, args.tile, args.overlap, progress=not args.quiet)
        except ValueError as err:  # a bad file: named, skipped, the others written
            failed.append(str(err))
            print(f"gauguin: skipped {err}", file=sys.stderr)
    print(f"gauguin: upscaled {len(files) - len(failed)} image(s) x{scale} into {out}/"
          + (f"; {len(failed)} skipped" if failed else ""))
    return 1 if failed else 0


def _experiment(args) -> int:
    if args.name == "augment":
        return _experiment_augment(args)
    if args.name == "budget":
        return _experiment_budget(args)
    from .config import TrainConfig
    from .experiments.simgan_tstr import format_report, simgan_tstr

    values = TrainConfig.read_values(None, args.overrides + ([f"steps={args.steps}"] if args.steps else []))
    out = Path(args.out or "runs/simgan_tstr")
    report = simgan_tstr(args.checkpoint, out, values, classifier_epochs=args.epochs, images=args.images,
                         seed=args.seed, device=args.device, oracles=args.oracles)
    print(format_report(report))
    print(f"gauguin: wrote {out / 'report.json'}")
    return 0


def _numbers(text: str, kind, flag: str) -> tuple:
    try:
        return tuple(kind(part) for part in text.split(",") if part.strip())
    except ValueError:
        raise ValueError(f"{flag} {text!r} must be comma-separated numbers, e.g. {flag} 10,50") from None


def _experiment_augment(args) -> int:
    from .config import TrainConfig
    from .experiments import augment

    quick = dict(labels_per_class=(10,), seeds=(0,), budget_minutes=2.5, classifier_steps=60,
                 unlabelled_images=5000, test_images=2000) if args.quick else {}
    options = {**quick, **{key: value for key, value in dict(
        labels_per_class=args.labels_per_class and _numbers(args.labels_per_class, int, "--labels-per-class"),
        seeds=args.seeds and _numbers(args.seeds, int, "--seeds"), budget_minutes=args.budget,
        classifier_steps=args.classifier_steps).items() if value}}
    overrides = TrainConfig.read_values(None, args.overrides)
    out = Path(args.out or ("runs/augment_quick" if args.quick else "runs/augment"))
    report = augment.run(data=args.data, out_dir=out, gan_overrides=overrides, device=args.device, **options)
    print(augment.format_table(report), end="")
    print(f"gauguin: wrote {out / 'table.md'}, {out / 'accuracy.png'} and {out / 'report.json'}")
    return 0


def _experiment_budget(args) -> int:
    from .config import TrainConfig
    from .experiments import budget

    recipes = budget.read_recipes(args.recipes) if args.recipes else [budget.main_job_recipe()]
    overrides = TrainConfig.read_values(None, args.overrides)
    if args.quick:
        overrides = {**budget.QUICK_OVERRIDES, **overrides}
    for recipe in recipes:
        recipe.overrides.update(overrides)
    options = dict(budgets_minutes=_numbers(args.budgets, float, "--budgets") if args.budgets else
                   (budget.QUICK_MINUTES,) if args.quick else (1.0, 2.0, 5.0),
                   seeds=_numbers(args.seeds, int, "--seeds") if args.seeds else (0,) if args.quick else (0, 1),
                   samples=args.samples or (budget.QUICK_SAMPLES if args.quick else 10_000))
    out = Path(args.out or ("runs/budget_quick" if args.quick else "runs/budget"))
    report = budget.run(recipes, out_dir=out, progress=not args.quick, **options)
    print(budget.format_table(report), end="")
    print(f"gauguin: wrote {out / 'table.md'} and {out / 'report.json'}")
    return 0


def _eval(args) -> int:
    if args.action == "train-classifier":
        from .metrics import train_fmnist_classifier

        done = train_fmnist_classifier(args.out or None, epochs=args.epochs or 3, seed=args.seed)
        print(f"gauguin: fmnist classifier {done['path']}: {done['accuracy']:.2%} on the real test split "
              f"(weights sha256 {done['sha256'][:16]}, {done['seconds']:.0f} s)")
        return 0
    if args.action == "train-segmenter":
        from .data import Preprocessing, build
        from .metrics.segmenter import default_segmenter_path, train_segmenter

        out = args.out or default_segmenter_path(args.data)
        train_data, test_data = (build(args.data, split, Preprocessing(augment=False), task="label_maps")
                                 for split in ("train", "val"))
        done = train_segmenter(train_data, test_data, out, args.data, epochs=args.epochs or 1, seed=args.seed)
        print(f"gauguin: segmenter {done['path']}: mIoU {done['miou']:.3f}, pixel accuracy "
              f"{done['pixel_accuracy']:.3f} on the real held-out split ({done['seconds']:.0f} s)")
        return 0
    if args.action == "sr":
        return _eval_sr(args)
    from .metrics.evaluate import evaluate, format_table

    if not args.fake:
        raise ValueError("gauguin eval needs --fake: a checkpoint or run folder, or a folder of images")
    report = evaluate(args.metrics.split(","), args.real, args.fake, n=args.n, extractor=args.extractor,
                      weights=args.weights, seed=args.seed, segmenter=args.segmenter)
    print(format_table(report))
    if args.out:
        Path(args.out).write_text(json.dumps(report, indent=2))
        print(f"gauguin: wrote {args.out}")
    return 0


def _info(args) -> int:
    from .sampling import read_checkpoint

    folder, tensors, meta = read_checkpoint(args.checkpoint)
    weights = tensors["weights.safetensors"]
    networks = sorted({k.split(".", 1)[0] for k in weights})
    params = {n: sum(v.numel() for k, v in weights.items() if k.startswith(n + ".") and v.is_floating_point()) for n in networks}
    if args.json:
        print(json.dumps({k: meta[k] for k in ("family", "step", "num_classes", "classes", "config", "best_metric")}, indent=2))
        return 0
    print(f"checkpoint   {folder}")
    print(f"family       {meta['family']}   step {meta['step']}   written {meta['time']}")
    print(f"classes      {meta['num_classes']}: {', '.join(meta.get('classes') or [])}")
    for n in networks:
        print(f"{n:<12} {params[n] / 1e6:.2f} M parameters")
    if meta.get("metric_history"):
        last = meta["metric_history"][-1]
        name = meta["config"].get("best_metric", "swd")
        best = "none" if meta["best_metric"] is None else f"{meta['best_metric']:.4f}"
        print(f"{name:<12} {last[1]:.4f} at step {last[0]} (best {best})")
    print("config       " + " ".join(f"{k}={v}" for k, v in meta["config"].items()))
    return 0


def _export(args) -> int:
    from .serve.export import OPSET, export, format_report

    description = export(args.checkpoint, args.out, args.format, opset=args.opset or OPSET, check=not args.no_check,
                         device=args.device, quantize=args.quantize)
    print(format_report(description, args.out))
    return 0


def _paint(args) -> int:
    from .serve.app import Limits, PaintServer, listen_socket
    from .serve.engine import Engine
    from .serve.paint_models import SHIPPED, load_backend

    limits = Limits(max_request_bytes=args.max_request_mb << 20)  # a bad limit or a busy port: refused
    sock = listen_socket(args.host, args.port)  # before a model is loaded (or trained)
    if args.retrain:
        if args.checkpoint is not None:
            raise ValueError("--retrain rebuilds the default model: pass no checkpoint with it")
        from .experiments.paint_model import build, work_dir

        args.checkpoint = work_dir() / "bundle"
        build(args.checkpoint)
    source = SHIPPED if args.checkpoint is None else args.checkpoint
    backend = load_backend(source, args.backend, args.precision, args.threads)
    server = PaintServer(Engine(backend, max_batch=args.max_batch), args.host, args.port, limits, log_level="info",
                         sock=sock)
    info = backend.info
    print(f"gauguin paint: {info.family} {info.image_size[1]}x{info.image_size[0]}, {info.num_labels} labels, "
          f"{type(backend).__name__} {backend.precision} — open {server.url} (Ctrl+C stops)", flush=True)
    if args.open:
        import webbrowser

        webbrowser.open(server.url)
    server.serve_forever()
    return 0


def build_parser() -> argparse.ArgumentParser:
    from .models import FAMILIES

    parser = argparse.ArgumentParser(prog="gauguin", description="Train, sample and inspect GANs.")
    parser.add_argument("--version", action="version", version=f"gauguin {__version__}")
    parser.add_argument("--debug", action="store_true", help="show full tracebacks on errors")
    sub = parser.add_subparsers(dest="command", required=True)

    p = sub.add_parser("train", help="train a model family", description="Train a family; key=value overrides config fields.")
    p.add_argument("family", choices=sorted(FAMILIES))
    p.add_argument("--config", help="YAML file of config values")
    p.add_argument("--resume", action="store_true", help="continue the run in out_dir from its newest checkpoint")
    p.add_argument("--data", help="the dataset (same as dataset=...): fashion-mnist or folder:PATH (every family); "
                                  "for the semantic families also coco-stuff:PATH, cityscapes:PATH, ade20k:PATH")
    p.add_argument("--synthetic", help="simgan: folder of labelled synthetic images (one sub-folder per class)")
    p.add_argument("--real", help="simgan: folder of unlabelled real images")
    p.add_argument("overrides", nargs="*", metavar="key=value")
    p.set_defaults(run=_train)

    p = sub.add_parser("sample", help="draw samples from a checkpoint")
    p.add_argument("checkpoint", help="checkpoint folder, or a run folder (its newest checkpoint)")
    p.add_argument("--n", type=int, default=64, help="number of samples")
    p.add_argument("--class", dest="klass", help="class index or name (conditional models)")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--columns", type=int, default=8)
    p.add_argument("--device", default="cpu")
    p.add_argument("--out", default="samples.png", help="a .png path for a grid, or a folder for one file per sample")
    p.add_argument("--per-class", type=int, metavar="K",
                   help="K samples of every class into --out/<index>_<class>/ (a class-folder dataset)")
    p.set_defaults(run=_sample)

    p = sub.add_parser("translate", help="images from a label map (SPADE) or from images (pix2pix, CycleGAN)")
    p.add_argument("checkpoint", help="checkpoint folder, or a run folder (its newest checkpoint)")
    p.add_argument("--labels", help="label PNG, stored as the training data's label files (semantic models)")
    p.add_argument("--input", help="an image file or a folder of images (image-to-image models)")
    p.add_argument("--direction", choices=["AtoB", "BtoA"], help="image-to-image: which way to translate")
    p.add_argument("--instances", help="instance-id PNG (models trained with instance maps)")
    p.add_argument("--style", help="a photo whose style to copy (models trained with use_vae)")
    p.add_argument("--n", type=int, default=1, help="number of random styles")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--device", default="cpu")
    p.add_argument("--out", default="translated", help="output folder")
    p.set_defaults(run=_translate)

    p = sub.add_parser("upscale", help="super-resolve images of any size, tile by tile, without seams")
    p.add_argument("model", help="a super-resolution checkpoint or run folder, or its ONNX export folder")
    p.add_argument("--input", required=True, help="an image file or a folder of images (sub-folders kept)")
    p.add_argument("--out", default="upscaled", help="output folder (PNG, the input's bit depth and channels)")
    p.add_argument("--scale", type=int, help="check that the model upscales by this factor")
    p.add_argument("--tile", type=int, default=256, help="tile side in input pixels (bounds memory)")
    p.add_argument("--overlap", type=int, default=16, help="context pixels around each tile (no seams)")
    p.add_argument("--precision", choices=["auto", "fp32", "bf16", "int8"], default="auto",
                   help="checkpoints: fp32 or bf16 (auto: bf16 where native); exports: fp32 or int8")
    p.add_argument("--threads", type=int, help="onnxruntime threads (exports)")
    p.add_argument("--device", default="cpu")
    p.add_argument("--quiet", action="store_true", help="no progress bar")
    p.set_defaults(run=_upscale)

    p = sub.add_parser("eval", help="evaluate generated images against real ones (FID, KID, IS, ...)",
                       description="Metrics by protocol; reference features are cached by content hash.")
    p.add_argument("action", nargs="?", choices=["train-classifier", "train-segmenter", "sr"],
                   help="train-classifier: train the fmnist extractor on real Fashion-MNIST; train-segmenter: "
                        "train the segmenter of the miou metric on real pairs of --data; sr: PSNR-Y / SSIM-Y "
                        "(border = scale) and patch distances of bicubic and the --fake upscalers on the photos of --real "
                        "(comma-separated folder:PATH, image files, scikit-image: its bundled photos)")
    p.add_argument("--metrics", default="fid,kid,is,pr,msssim", help="comma-separated: fid,kid,is,pr,msssim,accuracy,tstr,miou")
    p.add_argument("--real", default="fashion-mnist:test",
                   help="fashion-mnist:test|train, coco-stuff:PATH, cityscapes:PATH, ade20k:PATH (held-out split), folder:PATH")
    p.add_argument("--fake", help="checkpoint or run folder (samples are drawn), or a folder of images")
    p.add_argument("--n", type=int, default=10_000, help="images of each set")
    p.add_argument("--extractor", default="fmnist", help="fmnist (trained by gauguin) or inception (needs --weights)")
    p.add_argument("--weights", help="weights file of the extractor (the FID Inception weights)")
    p.add_argument("--segmenter", help="miou: segmenter weights (default: gauguin's own for the model's dataset)")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--data", default="fashion-mnist",
                   help="train-segmenter: fashion-mnist, coco-stuff:PATH, cityscapes:PATH, ade20k:PATH, folder:PATH")
    p.add_argument("--epochs", type=int, default=None, help="train-classifier / train-segmenter: epochs")
    p.add_argument("--out", help="JSON report path (train-classifier: the weights path)")
    p.add_argument("--no-patches", action="store_true", help="sr: PSNR / SSIM only, not the patch distances")
    p.add_argument("--sheet", help="sr: write a PNG of side-by-side crops (bicubic | models | real), a row per photo")
    p.set_defaults(run=_eval)

    p = sub.add_parser("refine", help="refine synthetic images with a SimGAN refiner")
    p.add_argument("checkpoint", help="checkpoint folder, or a run folder (its newest checkpoint)")
    p.add_argument("--input", required=True, help="an image, or a folder (sub-folders such as classes are kept)")
    p.add_argument("--device", default="cpu")
    p.add_argument("--out", default="refined", help="output folder")
    p.set_defaults(run=_refine)

    p = sub.add_parser("experiment", help="run a published comparison end to end",
                       description="simgan-tstr: classifiers trained on raw synthetic, refined synthetic and real "
                                   "images, tested on the real Fashion-MNIST test split. augment: does adding a "
                                   "class-conditional GAN's samples help a classifier with N labels per class?")
    p.add_argument("name", choices=["simgan-tstr", "augment", "budget"])
    p.add_argument("--checkpoint", help="simgan-tstr: a trained SimGAN refiner (default: train one first)")
    p.add_argument("--steps", type=int, help="simgan-tstr: SimGAN iterations when training one")
    p.add_argument("--epochs", type=int, default=3, help="simgan-tstr: epochs of each classifier")
    p.add_argument("--images", type=int, help="simgan-tstr: synthetic / real training images of the classifiers")
    p.add_argument("--oracles", action="store_true",
                   help="simgan-tstr: also train on ideal refinements made from each render's own real image (its "
                        "tone; its coarse shading; itself) to split the raw -> real gap")
    p.add_argument("--seed", type=int, default=0, help="simgan-tstr: the seed")
    p.add_argument("--labels-per-class", help="augment: the labelled-set sizes N (default 10,50,100,500)")
    p.add_argument("--seeds", help="augment: seeds of each N (default 0,1,2); budget: of each cell (default 0,1)")
    p.add_argument("--data", default="fashion-mnist",
                   help="augment: fashion-mnist, or folder:PATH with PATH/train/<class>/ and PATH/test/<class>/")
    p.add_argument("--budget", type=float, help="augment: wall-clock minutes of the whole grid (default 60)")
    p.add_argument("--classifier-steps", type=int, help="augment: optimiser steps of every classifier (default 500)")
    p.add_argument("--recipes", help="budget: YAML of recipes (family, config, overrides); default the main job's")
    p.add_argument("--budgets", help="budget: wall-clock minutes of training per cell (default 1,2,5)")
    p.add_argument("--samples", type=int, help="budget: generated images scored per cell (default 10000)")
    p.add_argument("--quick", action="store_true",
                   help="augment: N=10, one seed, a 2.5-minute budget; budget: 10 s, tiny widths, 500 samples (CI)")
    p.add_argument("--device", default="cpu")
    p.add_argument("--out", help="folder of the report (default runs/simgan_tstr, runs/augment)")
    p.add_argument("overrides", nargs="*", metavar="key=value",
                   help="config values of the SimGAN (simgan-tstr) or the conditional DCGAN (augment) trained")
    p.set_defaults(run=_experiment)

    p = sub.add_parser("info", help="describe a checkpoint")
    p.add_argument("checkpoint")
    p.add_argument("--json", action="store_true", help="machine-readable output")
    p.set_defaults(run=_info)

    p = sub.add_parser("export", help="export a generator for serving: ONNX graphs or safetensors, plus model.json",
                       description="ONNX graphs checked against PyTorch on onnxruntime, or the generator's weights "
                                   "as safetensors; model.json describes inputs, outputs, labels and the source.")
    p.add_argument("checkpoint", help="checkpoint folder, or a run folder (its newest checkpoint)")
    p.add_argument("--format", choices=["onnx", "safetensors"], default="onnx")
    p.add_argument("--out", default="exported", help="output folder")
    p.add_argument("--opset", type=int, help="ONNX opset version (default 18)")
    p.add_argument("--no-check", action="store_true", help="skip the onnxruntime-vs-PyTorch parity check")
    p.add_argument("--quantize", choices=["int8"], help="onnx: also write generator_int8.onnx (static int8, "
                                                        "calibrated on the training data, PSNR vs fp32 measured)")
    p.add_argument("--device", default="cpu", help="where the checkpoint is loaded and traced")
    p.set_defaults(run=_export)

    p = sub.add_parser("paint", help="the GauGAN-style painter: a web page to paint label maps and see images",
                       description="Serves the paint page and its JSON API (/api/generate, /api/labels, /api/health, "
                                   "OpenAPI at /docs). Without a checkpoint: the default model shipped with gauguin "
                                   "(SPADE with a style encoder on Fashion-MNIST silhouettes).")
    p.add_argument("checkpoint", nargs="?", help="a SPADE / pix2pixHD / pix2pix (input=labels) checkpoint or run "
                                                 "folder, a folder written by `gauguin export`, or a model bundle "
                                                 "(manifest.json)")
    p.add_argument("--retrain", action="store_true", help="rebuild the default model from scratch (train, export, "
                                                          "score: ~10 minutes on 2 cores), then serve it")
    p.add_argument("--host", default="127.0.0.1", help="address to listen on (0.0.0.0: every interface)")
    p.add_argument("--port", type=int, default=7860)
    p.add_argument("--backend", choices=["auto", "onnx", "torch"], default="auto",
                   help="auto: time every path whose quality passed the export's check and serve the fastest; "
                        "onnx: onnxruntime on the exported graph (a checkpoint is exported once and cached); "
                        "torch: PyTorch on the checkpoint")
    p.add_argument("--precision", choices=["auto", "fp32", "int8", "bf16"], default="auto",
                   help="int8 (onnxruntime's quantized graph), bf16 (PyTorch autocast), fp32, or auto: the fast "
                        "paths whose PSNR vs fp32 reached 30 dB at export, and fp32")
    p.add_argument("--threads", type=int, help="onnxruntime threads (default: one per core)")
    p.add_argument("--max-batch", type=int, default=8, help="requests batched into one forward pass at most")
    p.add_argument("--max-request-mb", type=int, default=8, help="largest request body accepted")
    p.add_argument("--open", action="store_true", help="open the page in the default browser")
    p.set_defaults(run=_paint)
    return parser


def main(argv: list[str] | None = None) -> int:
    parser = build_parser()
    args, extra = parser.parse_known_args(argv)  # key=value may also follow options such as --resume
    if extra:
        if args.command not in ("train", "experiment") or any("=" not in item or item.startswith("-") for item in extra):
            parser.error(f"unrecognized arguments: {' '.join(extra)}")
        args.overrides += extra
    if not args.debug:  # warnings as one line each, without the source line that raised them
        warnings.formatwarning = lambda message, *rest, **kw: f"gauguin: warning: {message}\n"
    try:
        return args.run(args)
    except KeyboardInterrupt as err:
        if hasattr(err, "exit_code"):  # training.signals.TrainingStopped: SIGTERM/SIGINT handled
            if os.environ.get("RANK", "0") == "0":  # under torchrun, rank 0 speaks for all
                print(f"gauguin: {err}", file=sys.stderr)
            return err.exit_code
        print("gauguin: interrupted; continue with --resume from the last checkpoint", file=sys.stderr)
        return 130
    except Exception as err:  # one clear line unless --debug
        if args.debug:
            raise
        if isinstance(err, OSError) and type(err).__str__ is OSError.__str__:  # the file, the reason, the fix
            from .fileio import describe_os_error

            print(f"gauguin: error: {describe_os_error(err)}", file=sys.stderr)
        else:
            print(f"gauguin: error: {err}", file=sys.stderr)
        return 1


if __name__ == "__main__":
    sys.exit(main())
