"""GAN data augmentation with few labels: does adding generated images help a classifier?

For each labelled-set size N (N images of every class, drawn class-balanced by the seed) the
project's classifier (:func:`~gauguin.metrics.classifier.fit_classifier`, the same number of
optimiser steps in every row) is trained on

- ``real``: the N·K labelled images alone;
- ``real + classic aug``: the same under random flips, shifts (crops), rotations and scalings;
- ``real + GAN r``: plus samples of a class-conditional DCGAN trained on the labelled images (the main
  job's recipe with DiffAugment, Zhao et al. 2020, for few images), r = synthetic:real per class;
  ``GAN only``: the samples alone (CAS / GAN-train, Ravuri & Vinyals 2019);
- ``real + pseudo-labels``: plus the unlabelled images the classic-aug classifier is most sure of,
  with its labels (self-training, the yardstick of the semi-supervised rows);
- ``real + semi-GAN r`` / ``semi-GAN only``: the same conditional GAN trained on the labelled and the
  pseudo-labelled images, so it learns from what a user with few labels also has;

and tested on the whole real test split, for several seeds (mean ± standard deviation). The GANs
share the wall-clock budget: each gets what is left after the classifiers, measured as it goes.

    gauguin experiment augment --labels-per-class 10,50,100,500 --budget 60 --out runs/augment
"""
from __future__ import annotations

import json
import math
import shutil
import statistics
import sys
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path

import torch
import torch.nn.functional as F
from torch import Tensor

from ..data import Preprocessing, build
from ..data.errors import BadDataError
from ..data.subsets import balanced_subset
from ..fileio import write_bytes_atomic
from ..images import save_png
from ..metrics.classifier import classifier_accuracy, fit_classifier
from ..models.dcgan import DCGANConfig
from ..sampling import load_generator
from ..training import train
from .plot import line_chart

GAN_RECIPE = {"batch_size": 64, "diffaugment": "translation,cutout"}  # configs/dcgan_fashion.yaml + DiffAugment
MIN_GAN_SECONDS = 10.0  # less than this trains nothing worth sampling
GAN_SETUP_SECONDS = 5.0  # a GAN run's time besides training (data, checkpoint), until one is measured
BATCH_SIZE = 64  # the classifiers'


# ------------------------------------------------------------------------------ augmentation
def classic_augment(images: Tensor, generator: torch.Generator, flip: bool = True, degrees: float = 10.0,
                    scale: float = 0.1, shift: float = 2 / 32) -> Tensor:
    """Each image under its own random horizontal flip, rotation (±``degrees``), scaling (1 ± ``scale``)
    and shift (± ``shift`` of the side, i.e. a random crop of a padded image), one bilinear resampling;
    the background outside is black (-1)."""
    n = len(images)
    u = torch.rand(n, 4, generator=generator) * 2 - 1
    angle, zoom = u[:, 0] * math.radians(degrees), 1 + u[:, 1] * scale
    mirror = torch.where(torch.rand(n, generator=generator) < 0.5, -1.0, 1.0) if flip else torch.ones(n)
    cos, sin = torch.cos(angle) / zoom, torch.sin(angle) / zoom
    theta = torch.stack([torch.stack([cos * mirror, -sin, u[:, 2] * 2 * shift], 1),
                         torch.stack([sin * mirror, cos, u[:, 3] * 2 * shift], 1)], 1)
    grid = F.affine_grid(theta.to(images), list(images.shape), align_corners=False)
    return F.grid_sample(images + 1, grid, mode="bilinear", padding_mode="zeros", align_corners=False) - 1


def ratio_name(ratio: float) -> str:
    """0.25 -> "1:4", 1 -> "1:1", 4 -> "4:1" (synthetic : real)."""
    return f"{ratio:g}:1" if ratio >= 1 else f"1:{1 / ratio:g}"


def row_names(ratios: tuple[float, ...]) -> list[str]:
    gan_rows = [f"real + GAN {ratio_name(r)}" for r in ratios] + ["GAN only"]
    semi_rows = [f"real + semi-GAN {ratio_name(r)}" for r in ratios] + ["semi-GAN only"]
    return ["real", "real + classic aug", *gan_rows, "real + pseudo-labels", *semi_rows]


# ------------------------------------------------------------------------------------- data
@dataclass
class Split:
    images: Tensor  # [N, C, H, W] in [-1, 1]
    labels: Tensor  # int64 [N]


@dataclass
class ExperimentData:
    spec: str  # the training split's dataset spec (the GANs train on it)
    train: Split
    test: Split
    classes: tuple[str, ...]
    channels: int


def load_data(data: str, image_size: int, test_images: int | None) -> ExperimentData:
    """The train and test splits in memory; ``folder:PATH`` needs ``PATH/train/<class>/`` and ``PATH/test/<class>/``."""
    kind, _, path = data.partition(":")
    if kind == "fashion-mnist" and not path:
        specs, channels = {"train": "fashion-mnist", "test": "fashion-mnist"}, 1
    elif kind == "folder" and path:
        root = Path(path).expanduser()
        missing = [split for split in ("train", "test") if not (root / split).is_dir()]
        if missing:
            raise BadDataError(f"{root} has no {missing[0]}/ folder: the experiment needs {root}/train/<class>/ "
                               f"(labelled and unlabelled images) and {root}/test/<class>/ (to test on)")
        specs, channels = {split: f"folder:{root / split}" for split in ("train", "test")}, 3
    else:
        raise BadDataError(f"--data {data!r}: use fashion-mnist or folder:PATH (with PATH/train/<class>/ and "
                           "PATH/test/<class>/)")
    prep = Preprocessing(crop_size=image_size, channels=channels, augment=False)
    splits = {split: build(spec, split, prep, task="classes") for split, spec in specs.items()}
    classes = tuple(splits["train"].classes)
    if len(classes) < 2:
        raise BadDataError(f"{specs['train']} has {len(classes)} class; a classifier needs at least 2 class folders")
    if tuple(splits["test"].classes) != classes:
        raise BadDataError(f"the test classes {list(splits['test'].classes)} are not the train classes {list(classes)}:"
                           " give both splits the same class folders")
    tensors = {}
    for split, dataset in splits.items():
        count = len(dataset) if split == "train" or not test_images else min(test_images, len(dataset))
        tensors[split] = Split(*dataset.get_batch(torch.arange(count)))
    return ExperimentData(specs["train"], tensors["train"], tensors["test"], classes, channels)


def write_class_folders(images: Tensor, labels: Tensor, classes: tuple[str, ...], out: Path) -> Path:
    """``out/<index>_<class>/NNNNNN.png``: a dataset folder:PATH (and any ImageFolder reader) reads."""
    digits = len(str(len(classes) - 1))
    for i, (image, label) in enumerate(zip(images, labels.tolist())):
        name = "".join(ch if ch.isalnum() or ch in "._-" else "_" for ch in classes[label])
        save_png(image, out / f"{label:0{digits}d}_{name}" / f"{i:06d}.png")
    return out


def pseudo_labels(model, images: Tensor, fraction: float, num_classes: int) -> tuple[Tensor, Tensor]:
    """Indices and predicted labels of the ``fraction`` of each predicted class that ``model`` is most
    confident of (confidence-ranked self-training, as in Lee 2013's pseudo-labels)."""
    with torch.no_grad():
        probs = torch.cat([model(images[i : i + 2000]).softmax(1) for i in range(0, len(images), 2000)])
    confidence, predicted = probs.max(1)
    picked = []
    for c in range(num_classes):
        members = torch.nonzero(predicted == c).flatten()
        keep = math.ceil(fraction * len(members))
        picked.append(members[confidence[members].argsort(descending=True)[:keep]])
    picked = torch.cat(picked)
    return picked, predicted[picked]


# ----------------------------------------------------------------------------------- budget
@dataclass
class Budget:
    """Splits ``seconds`` among the GANs: each gets what is left after the classifiers still to
    train (at the rate measured so far, everything that is not a GAN counted per classifier)."""

    seconds: float
    gans_left: int
    classifiers_left: int
    started: float = field(default_factory=time.perf_counter)
    gan_wall: float = 0.0  # seconds spent in GAN runs
    gan_training: float = 0.0  # of which training (the rest: data loading, checkpoints, sampling)
    gans_done: int = 0
    classifiers_done: int = 0

    def classifier_done(self) -> None:
        self.classifiers_done += 1
        self.classifiers_left -= 1

    def next_gan_seconds(self) -> float:
        elapsed = time.perf_counter() - self.started
        per_classifier = (elapsed - self.gan_wall) / max(self.classifiers_done, 1)
        overhead = (self.gan_wall - self.gan_training) / self.gans_done if self.gans_done else GAN_SETUP_SECONDS
        left = self.seconds - elapsed - per_classifier * self.classifiers_left
        return max(MIN_GAN_SECONDS, left / max(self.gans_left, 1) - overhead)

    def gan_done(self, wall: float, training: float) -> None:
        self.gan_wall += wall
        self.gan_training += training
        self.gans_done += 1
        self.gans_left -= 1


def check_budget(minutes: float, cells: int, classifiers_per_cell: int, classifier_steps: int,
                 data: ExperimentData) -> None:
    """A budget that cannot give each GAN MIN_GAN_SECONDS after the classifiers is an error naming
    the smallest that can (classifier speed measured on a few steps here)."""
    probe, timings = 10, []
    for _ in range(2):  # the first fit also pays for one-off kernel set-up
        started = time.perf_counter()
        fit_classifier(data.train.images[: probe * BATCH_SIZE], data.train.labels[: probe * BATCH_SIZE], epochs=1,
                       progress=False, batch_size=BATCH_SIZE, num_classes=len(data.classes))
        timings.append((time.perf_counter() - started) / probe)
    per_step = min(timings)
    needed = cells * (classifiers_per_cell * classifier_steps * per_step + 2 * (MIN_GAN_SECONDS + GAN_SETUP_SECONDS))
    if minutes * 60 < needed:
        raise ValueError(f"--budget {minutes:g} minutes is too short to train anything for this grid ({cells} cells "
                         f"x 2 GANs of at least {MIN_GAN_SECONDS:g} s + {classifiers_per_cell} classifiers of "
                         f"{classifier_steps} steps): give --budget {math.ceil(needed / 60)} or more, or fewer "
                         "--labels-per-class / --seeds")


# ------------------------------------------------------------------------------- experiment
@dataclass
class Cell:
    """One (N, seed): the classifiers' test accuracy per row, and what the GANs and labeller did."""

    labels_per_class: int
    seed: int
    accuracy: dict[str, float] = field(default_factory=dict)
    details: dict = field(default_factory=dict)


class Experiment:
    def __init__(self, data: ExperimentData, out_dir: Path, ratios: tuple[float, ...], classifier_steps: int,
                 pseudo_fraction: float, unlabelled_images: int | None, gan_overrides: dict, budget: Budget,
                 device: str, progress: bool):
        self.data, self.out_dir, self.ratios = data, out_dir, ratios
        self.classifier_steps, self.pseudo_fraction = classifier_steps, pseudo_fraction
        self.unlabelled_images, self.gan_overrides = unlabelled_images, gan_overrides
        self.budget, self.device, self.progress = budget, device, progress

    def classifier(self, images: Tensor, labels: Tensor, seed: int, augment=None):
        epochs = max(1, math.ceil(self.classifier_steps * BATCH_SIZE / len(images)))  # same steps in every row
        model = fit_classifier(images, labels, epochs=epochs, seed=seed, progress=False, batch_size=BATCH_SIZE,
                               num_classes=len(self.data.classes), augment=augment)
        self.budget.classifier_done()
        return model

    def test(self, model) -> float:
        return classifier_accuracy(model, self.data.test.images, self.data.test.labels)

    def train_gan(self, folder: Path, seed: int, **data_options) -> tuple[object, dict]:
        """A class-conditional DCGAN on ``data_options``' data for the seconds the budget gives it."""
        seconds = self.budget.next_gan_seconds()
        values = {**GAN_RECIPE, "steps": 10**7, **self.gan_overrides, "max_seconds": seconds, "seed": seed,
                  "out_dir": str(folder), "channels": self.data.channels, "eval_every": 0, "sample_every": 10**7,
                  "checkpoint_every": 10**7, "keep_checkpoints": 1, "progress": self.progress, **data_options}
        started = time.perf_counter()
        checkpoint = train("dcgan", DCGANConfig.from_dict(values, "the experiment's GAN config"))
        wall = time.perf_counter() - started
        self.budget.gan_done(wall, seconds)
        return load_generator(checkpoint, self.device), {"seconds": round(wall, 1), "steps": int(
            checkpoint.name.rpartition("_")[2]), "checkpoint": str(checkpoint)}

    def augmented_rows(self, name: str, gan, images: Tensor, labels: Tensor, n: int, seed: int) -> dict[str, float]:
        """``real + NAME r`` for each ratio and ``NAME only``: samples drawn once, as many as the largest ratio."""
        k = len(self.data.classes)
        per_class = max(1, round(max(self.ratios) * n))
        pool = torch.stack([gan.sample(per_class, seed=seed * 1_000_003 + c, label=c) for c in range(k)])  # [K, S, ...]
        rows = {}
        for ratio in self.ratios:
            take = max(1, round(ratio * n))
            fake = pool[:, :take].flatten(0, 1)
            fake_labels = torch.arange(k).repeat_interleave(take)
            model = self.classifier(torch.cat([images, fake]), torch.cat([labels, fake_labels]), seed)
            rows[f"real + {name} {ratio_name(ratio)}"] = self.test(model)
        model = self.classifier(pool.flatten(0, 1), torch.arange(k).repeat_interleave(per_class), seed)
        rows[f"{name} only"] = self.test(model)
        return rows

    def cell(self, n: int, seed: int) -> Cell:
        data, cell = self.data, Cell(n, seed)
        folder = self.out_dir / f"n{n}_seed{seed}"
        picked = balanced_subset(data.train.labels, n, seed, data.classes, f"the training split of {data.spec}")
        images, labels = data.train.images[picked], data.train.labels[picked]
        cell.accuracy["real"] = self.test(self.classifier(images, labels, seed))
        labeller = self.classifier(images, labels, seed, augment=classic_augment)
        cell.accuracy["real + classic aug"] = self.test(labeller)

        gan, cell.details["gan"] = self.train_gan(folder / "gan", seed, dataset=data.spec, labels_per_class=n,
                                                  subset_seed=seed)
        cell.accuracy.update(self.augmented_rows("GAN", gan, images, labels, n, seed))

        rest = torch.ones(len(data.train.labels), dtype=torch.bool)
        rest[picked] = False
        unlabelled = torch.nonzero(rest).flatten()
        if self.unlabelled_images:
            unlabelled = unlabelled[torch.randperm(len(unlabelled), generator=torch.Generator().manual_seed(seed))
                                    [: self.unlabelled_images]]
        chosen, guessed = pseudo_labels(labeller, data.train.images[unlabelled], self.pseudo_fraction, len(data.classes))
        chosen = unlabelled[chosen]
        cell.details["pseudo_labels"] = {"images": len(chosen), "of_unlabelled": len(unlabelled),
                                         "precision": (guessed == data.train.labels[chosen]).float().mean().item()}
        semi_images, semi_labels = torch.cat([images, data.train.images[chosen]]), torch.cat([labels, guessed])
        cell.accuracy["real + pseudo-labels"] = self.test(self.classifier(semi_images, semi_labels, seed))
        semi_folder = write_class_folders(semi_images, semi_labels, data.classes, folder / "semi_data")
        semi, cell.details["semi_gan"] = self.train_gan(folder / "semi_gan", seed, dataset=f"folder:{semi_folder}")
        cell.accuracy.update(self.augmented_rows("semi-GAN", semi, images, labels, n, seed))
        return cell


def run(labels_per_class: tuple[int, ...] = (10, 50, 100, 500), seeds: tuple[int, ...] = (0, 1, 2),
        data: str = "fashion-mnist", budget_minutes: float = 60.0, out_dir: str | Path = "runs/augment",
        ratios: tuple[float, ...] = (0.25, 1.0, 4.0), classifier_steps: int = 500, pseudo_fraction: float = 0.2,
        unlabelled_images: int | None = None, test_images: int | None = None, gan_overrides: dict | None = None,
        image_size: int = 32, device: str = "cpu", progress: bool = True) -> dict:
    """Run the grid (every N x every seed); returns the report and writes ``report.json``, ``table.md``
    and ``accuracy.png`` into ``out_dir``. A grid run again with the same settings keeps the cells it
    finished (each in ``<out>/n<N>_seed<S>/cell.json``) and runs the others in their share of the budget. Bad input (an N above the smallest class, one class, a budget
    too short, an unconditional GAN) is an error before anything trains."""
    if not labels_per_class or not seeds or not ratios or min(ratios) <= 0:
        raise ValueError("give at least one labels-per-class N, one seed and positive synthetic:real ratios")
    if (gan_overrides or {}).get("conditional", True) is False:
        raise ValueError("GAN augmentation adds samples of each class: the GAN must be class-conditional; "
                         "remove conditional=false")
    if not 0 < pseudo_fraction <= 1:
        raise ValueError(f"pseudo_fraction must be in (0, 1], got {pseudo_fraction}")
    out_dir = Path(out_dir)
    ds = load_data(data, image_size, test_images)
    for n in labels_per_class:  # every N checked before anything trains
        balanced_subset(ds.train.labels, n, 0, ds.classes, f"the training split of {ds.spec}")
    settings = {"data": data, "ratios": list(ratios), "classifier_steps": classifier_steps,
                "pseudo_fraction": pseudo_fraction, "unlabelled_images": unlabelled_images, "test_images": test_images,
                "gan_overrides": dict(gan_overrides or {}), "image_size": image_size,
                "budget_minutes_per_cell": budget_minutes / (len(labels_per_class) * len(seeds))}
    done = finished_cells(out_dir, settings)
    todo = [(n, seed) for n in labels_per_class for seed in seeds if (n, seed) not in done]
    per_cell = len(row_names(ratios))
    share = budget_minutes * len(todo) / (len(labels_per_class) * len(seeds))  # a resumed grid: the cells left's
    if todo:
        check_budget(share, len(todo), per_cell, classifier_steps, ds)
    budget = Budget(share * 60, gans_left=2 * len(todo), classifiers_left=per_cell * len(todo))
    experiment = Experiment(ds, out_dir, tuple(ratios), classifier_steps, pseudo_fraction, unlabelled_images,
                            dict(gan_overrides or {}), budget, device, progress)
    results = []
    for n in labels_per_class:
        for seed in seeds:
            if (n, seed) in done:
                results.append(done[n, seed])
                continue
            shutil.rmtree(out_dir / f"n{n}_seed{seed}", ignore_errors=True)  # an interrupted cell starts again
            results.append(experiment.cell(n, seed))
            write_bytes_atomic(out_dir / f"n{n}_seed{seed}" / "cell.json",
                               json.dumps({"settings": settings, **asdict(results[-1])}, indent=2).encode())
            if progress:
                print(f"gauguin: N={n} seed {seed}: " + ", ".join(f"{k} {100 * v:.1f}" for k, v in
                                                                  results[-1].accuracy.items()), file=sys.stderr)
    report = summarise(results, row_names(ratios), ds, time.perf_counter() - budget.started, budget_minutes)
    write_report(report, out_dir)
    return report


def finished_cells(out_dir: Path, settings: dict) -> dict[tuple[int, int], Cell]:
    """The cells an earlier run of the same settings finished (``<out>/n<N>_seed<S>/cell.json``); cells of
    other settings are an error rather than mixed into the table."""
    done = {}
    for path in sorted(out_dir.glob("n*_seed*/cell.json")):
        try:
            saved = json.loads(path.read_text())
            cell = Cell(saved["labels_per_class"], saved["seed"], saved["accuracy"], saved["details"])
        except (OSError, ValueError, KeyError, TypeError):
            continue  # unreadable: the cell is run again
        if saved.get("settings") != json.loads(json.dumps(settings)):
            raise ValueError(f"{path} is a cell of another experiment setting ({saved.get('settings')}); give another "
                             f"--out, or remove {out_dir} to start again")
        done[cell.labels_per_class, cell.seed] = cell
    return done


def summarise(cells: list[Cell], rows: list[str], data: ExperimentData, seconds: float, budget_minutes: float) -> dict:
    table = {}
    for row in rows:
        table[row] = {}
        for n in sorted({c.labels_per_class for c in cells}):
            values = [c.accuracy[row] for c in cells if c.labels_per_class == n]
            table[row][str(n)] = {"mean": statistics.fmean(values),
                                  "std": statistics.stdev(values) if len(values) > 1 else 0.0, "seeds": values}
    return {"data": data.spec, "classes": list(data.classes), "test_images": len(data.test.labels),
            "budget_minutes": budget_minutes, "seconds": round(seconds, 1), "rows": rows, "accuracy": table,
            "cells": [{"labels_per_class": c.labels_per_class, "seed": c.seed, "accuracy": c.accuracy, **c.details}
                      for c in cells]}


def format_table(report: dict) -> str:
    """Markdown: a row per variant, a column per N, test accuracy % as mean ± std over the seeds."""
    sizes = list(report["accuracy"]["real"])
    seeds = len(report["accuracy"]["real"][sizes[0]]["seeds"])
    lines = [f"Test accuracy (%) on {report['test_images']} real test images, mean ± std over {seeds} seed(s); "
             f"N labelled images per class of {report['data']}.", "",
             "| classifier trained on | " + " | ".join(f"N = {n}" for n in sizes) + " |",
             "| --- |" + " --- |" * len(sizes)]
    for row in report["rows"]:
        cells = report["accuracy"][row]
        best = {n: max(report["accuracy"][r][n]["mean"] for r in report["rows"]) for n in sizes}
        lines.append(f"| {row} | " + " | ".join(
            ("**{}**" if cells[n]["mean"] == best[n] else "{}").format(
                f"{100 * cells[n]['mean']:.1f} ± {100 * cells[n]['std']:.1f}") for n in sizes) + " |")
    precision = {n: statistics.fmean(c["pseudo_labels"]["precision"] for c in report["cells"]
                                     if str(c["labels_per_class"]) == n) for n in sizes}
    lines += ["", "Pseudo-label precision: " + ", ".join(f"N = {n}: {100 * p:.1f} %" for n, p in precision.items())
              + f". Whole run: {report['seconds'] / 60:.1f} min (budget {report['budget_minutes']:g})."]
    return "\n".join(lines) + "\n"


def write_report(report: dict, out_dir: Path) -> None:
    out_dir.mkdir(parents=True, exist_ok=True)
    write_bytes_atomic(out_dir / "report.json", json.dumps(report, indent=2).encode())
    write_bytes_atomic(out_dir / "table.md", format_table(report).encode())
    sizes = [int(n) for n in report["accuracy"]["real"]]
    lines = {row: [(n, 100 * report["accuracy"][row][str(n)]["mean"], 100 * report["accuracy"][row][str(n)]["std"])
                   for n in sizes] for row in report["rows"]}
    line_chart(lines, "labelled images per class (N)", "test accuracy (%)", out_dir / "accuracy.png")
