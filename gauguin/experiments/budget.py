"""Quality per CPU-minute: train each recipe for a fixed wall-clock budget, then score it by protocol.

A recipe is a family, an optional config file and ``key=value`` overrides. Each (recipe, budget,
seed) cell trains with ``max_seconds`` = the budget (the step count is unbounded, so a recipe is
judged by what it reaches in that time on this machine, not by its step count; a recipe whose lr decays
keeps its ``steps``, which the budget caps) and is scored on
``samples`` generated images (class-balanced for a class-conditional generator) against the real
Fashion-MNIST test split:

- ``accuracy``: GAN-test accuracy (Shmelkov et al. 2018): the share of samples that the project's
  classifier (the ``fmnist`` extractor) puts in their conditioning class;
- ``accuracy_second``, ``fid_second``: the same by a second, differently trained classifier (other
  seed, epochs, batch and learning rate), so that a recipe tuned to the first one is caught;
- ``fid``, ``kid``, ``precision`` / ``recall`` (Kynkäänniemi et al. 2019) on the first one's features;
- ``tstr``: a classifier trained only on the samples, tested on the real test split, as a fraction
  of the same classifier trained on as many real training images (Shmelkov et al. 2018 "GAN-train");
- ``miou`` / ``pixel_accuracy`` for semantic families (images made from held-out label maps);
- image translators by their own protocol (:mod:`.translation`): pix2pix's L1 / SSIM to the real target
  and FID-fmnist, CycleGAN's target-class accuracy, FID-fmnist and cycle L1 each way.

Cells are kept as ``<out>/<recipe>/<budget>min_seed<S>/cell.json``: a rerun with the same settings
resumes. ``report.json`` and ``table.md`` hold the mean and spread over seeds.

    gauguin experiment budget --recipes bench/recipes/dcgan.yaml --budgets 1,2,5 --seeds 0,1
"""
from __future__ import annotations

import json
import math
import statistics
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path

import yaml

from ..config import ConfigError, TrainConfig
from ..fileio import user_cache_dir, write_bytes_atomic
from ..metrics.classifier import train_fmnist_classifier
from ..metrics.evaluate import Evaluation, compute_metrics, count_label, flat_scores, tstr
from ..metrics.extractors import create_extractor
from ..metrics.sources import ImageSet, generated_image_set, load_image_set, match_images
from ..models import get_family
from ..sampling import load_generator
from ..training import train
from .translation import is_translator, translation_scores

REAL = "fashion-mnist:test"
MAIN_JOB_CONFIG = "configs/dcgan_fashion.yaml"  # the recipe when none is given, from the repository root
QUICK_OVERRIDES = {"g_width": 8, "d_width": 8, "batch_size": 16}  # --quick: the machinery, not quality
QUICK_MINUTES, QUICK_SAMPLES = 10 / 60, 500
PROTOCOL_VERSION = 3  # 3: TSTR is gauguin eval's (its real baseline trained with the cell's seed);
# 2: real images at the generator's size; 1: fakes resized to Fashion-MNIST's 28 px
SECOND_CLASSIFIER = {"epochs": 2, "seed": 1, "batch_size": 256, "lr": 2e-3}  # the first: 3 epochs, seed 0, 128, 3e-3
IMAGE_METRICS = ("accuracy", "fid", "kid", "pr", "tstr")  # of a class-conditional generator
SEMANTIC_METRICS = ("miou", "fid", "kid", "pr")
DIRECTIONS = ("AtoB", "BtoA")  # of an unpaired translator's scores (translation.py)
COLUMNS = {  # table column -> (heading, format, higher is better)
    "accuracy": ("GAN-test acc %", "{:.1f}", True), "accuracy_second": ("2nd clf acc %", "{:.1f}", True),
    "fid": ("FID-fmnist", "{:.3f}", False), "fid_second": ("FID 2nd clf", "{:.3f}", False),
    "kid": ("KID ×10³", "{:.2f}", False), "precision": ("precision", "{:.3f}", True),
    "recall": ("recall", "{:.3f}", True), "tstr": ("TSTR %", "{:.1f}", True),
    "miou": ("mIoU", "{:.3f}", True), "pixel_accuracy": ("pixel acc", "{:.3f}", True),
    "l1": ("L1", "{:.4f}", False), "ssim": ("SSIM", "{:.4f}", True),
    **{f"{key}_{way}": (f"{heading} {way}", fmt, higher) for way in DIRECTIONS for key, (heading, fmt, higher)
       in {"accuracy": ("target class %", "{:.1f}", True), "fid": ("FID-fmnist", "{:.3f}", False),
           "cycle_l1": ("cycle L1", "{:.4f}", False)}.items()},
    "steps": ("steps", "{:.0f}", True), "images_per_second": ("img/s", "{:.0f}", True),
}
PERCENT = {"accuracy", "accuracy_second", "tstr"} | {f"accuracy_{way}" for way in DIRECTIONS}
SCALE = {"kid": 1e3}


@dataclass
class Recipe:
    """A family, its config file (or none: the family's defaults) and overrides of it."""

    name: str
    family: str
    config: str | None = None
    overrides: dict = field(default_factory=dict)
    metrics: tuple[str, ...] = ()  # () = by the generator: IMAGE_METRICS or SEMANTIC_METRICS

    def values(self) -> dict:
        return {**TrainConfig.read_values(self.config), **self.overrides}


def main_job_recipe() -> Recipe:
    """``make train``'s recipe; the class-conditional DCGAN's defaults outside the repository."""
    return Recipe("main-job", "dcgan", MAIN_JOB_CONFIG if Path(MAIN_JOB_CONFIG).is_file() else None)


def read_recipes(path: str | Path) -> list[Recipe]:
    """Recipes from YAML: ``family``, ``config``, ``metrics`` and ``common`` (overrides) at the top are every
    recipe's defaults; ``recipes`` maps each name to its overrides, optionally with its own ``family`` /
    ``config`` / ``metrics``.
    Every recipe's config is checked here, so a typo fails before anything trains."""
    path = Path(path)
    try:
        loaded = yaml.safe_load(path.read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError, yaml.YAMLError) as err:
        raise ConfigError(f"recipes file {path} cannot be read ({type(err).__name__}: {err}); give a YAML file with a "
                          "'recipes:' mapping of name -> key: value overrides") from None
    if not isinstance(loaded, dict) or not isinstance(loaded.get("recipes"), dict) or not loaded["recipes"]:
        raise ConfigError(f"recipes file {path} needs a 'recipes:' mapping of name -> key: value overrides")
    recipes = []
    for name, body in loaded["recipes"].items():
        body = {**(loaded.get("common") or {}), **(body or {})}
        family, config = body.pop("family", loaded.get("family", "dcgan")), body.pop("config", loaded.get("config"))
        recipe = Recipe(str(name), family, config, body, tuple(body.pop("metrics", loaded.get("metrics", ()))))
        check_recipe(recipe, f"recipe {name!r} of {path}")
        recipes.append(recipe)
    return recipes


def check_recipe(recipe: Recipe, source: str) -> None:
    get_family(recipe.family).config_class.from_dict({**recipe.values(), "out_dir": "runs/budget-check"}, source)


# ------------------------------------------------------------------------------------- scoring
class Scorer:
    """The real test split at each generator's size, both classifiers' features of it, and the real-trained
    TSTR baselines (per image count, size and seed); each made once."""

    def __init__(self, samples: int, progress: bool):
        self.samples, self.progress = samples, progress
        self.extractors = {"": create_extractor("fmnist"), "_second": create_extractor("fmnist", second_classifier())}
        self._real: dict[int, tuple[ImageSet, dict]] = {}
        self._baselines: dict[tuple[int, int, int], float] = {}

    def real(self, size: int) -> tuple[ImageSet, dict]:
        """The real test images at ``size`` px (resized as training resizes them) and their features."""
        if size not in self._real:
            real = load_image_set(REAL, image_size=size)
            self._real[size] = real, {suffix: Evaluation(real, ex, progress=False).real_features()
                                      for suffix, ex in self.extractors.items()}
        return self._real[size]

    def score(self, checkpoint: Path, metrics: tuple[str, ...], seed: int) -> tuple[dict, dict]:
        """Flat scores (for the table) and protocol-named ones (for the record) of ``checkpoint``; an image
        translator by its own protocol (:mod:`.translation`)."""
        loaded = load_generator(checkpoint)
        if is_translator(loaded):
            real_features = self.real(loaded.spec.image_size[0])[1][""]
            return translation_scores(loaded, self.extractors[""], real_features, self.samples, seed)
        fake = generated_image_set(loaded, self.samples, seed)
        real, real_features = self.real(fake.images.shape[-1])
        fake.images = match_images(fake.images, real.images)
        metrics = metrics or (SEMANTIC_METRICS if fake.label_maps is not None else
                              IMAGE_METRICS if fake.labels is not None else ("fid", "kid", "pr"))
        count = count_label(len(fake.images))
        flat, named = {}, {}
        for suffix, extractor in self.extractors.items():
            wanted = [m for m in metrics if m != "tstr" and (not suffix or m in ("accuracy", "fid"))]
            values = compute_metrics(wanted, fake, extractor, real_features[suffix], seed, progress=False)
            named.update({f"{name}{count}-fmnist{suffix.replace('_', '-')}-{real.name}": value
                          for name, value in values.items()})
            flat.update(flat_scores(values, suffix))
        if "tstr" in metrics:
            result = tstr(fake, seed, progress=False, baselines=self._baselines)
            flat["tstr"] = result["train_on_fake"] / result["train_on_real"]
            named[f"tstr{count}-{real.name}"] = result
        return flat, named



def second_classifier() -> Path:
    """The second opinion: the same network trained differently, cached beside the first."""
    tag = "-".join(f"{k}{v:g}" for k, v in SECOND_CLASSIFIER.items())  # another setting, another file
    path = user_cache_dir("classifiers", f"fmnist-second-{tag}.safetensors")
    if not path.is_file():
        print("gauguin: training the second Fashion-MNIST classifier (once, about a minute)", file=sys.stderr)
        result = train_fmnist_classifier(path, progress=False, **SECOND_CLASSIFIER)
        print(f"gauguin: second classifier test accuracy {result['accuracy']:.2%}, saved to {path}", file=sys.stderr)
    return path


# ------------------------------------------------------------------------------------- running
def train_cell(recipe: Recipe, seconds: float, seed: int, folder: Path, progress: bool) -> tuple[Path, dict]:
    """Train ``recipe`` for ``seconds`` of wall time; its last checkpoint and what it reached. A recipe whose lr
    decays (``lr_decay_start`` < 1) keeps its own ``steps`` (the schedule needs its end) and stops at the budget
    if that comes first."""
    config_class = get_family(recipe.family).config_class
    values = {**recipe.values(), "max_seconds": seconds, "seed": seed, "out_dir": str(folder),
              "eval_every": 0, "sample_every": 10**7, "checkpoint_every": 10**7, "keep_checkpoints": 1,
              "progress": progress}
    if config_class.from_dict(values, f"recipe {recipe.name}").lr_decay_start >= 1.0:
        values["steps"] = 10**7  # a constant lr: as many steps as the budget allows
    cfg = config_class.from_dict(values, f"recipe {recipe.name}")
    started = time.perf_counter()
    checkpoint = train(recipe.family, cfg)
    wall = time.perf_counter() - started
    steps = int(checkpoint.name.rpartition("_")[2])
    return checkpoint, {"steps": steps, "wall_seconds": round(wall, 1),
                        "images_per_second": steps * cfg.batch_size * cfg.d_steps_per_g_step / min(wall, seconds)}


def run(recipes: list[Recipe], budgets_minutes: tuple[float, ...] = (1.0, 2.0, 5.0), seeds: tuple[int, ...] = (0, 1),
        out_dir: str | Path = "runs/budget", samples: int = 10_000, progress: bool = True) -> dict:
    """Every recipe x budget x seed; returns the report and writes ``report.json`` and ``table.md``."""
    out_dir = Path(out_dir)
    if not recipes:
        raise ValueError("no recipes to run")
    if len({r.name for r in recipes}) != len(recipes):
        raise ValueError("recipe names must be unique")
    for recipe in recipes:
        check_recipe(recipe, f"recipe {recipe.name!r}")
    scorer = Scorer(samples, progress)
    cells = []
    for minutes in budgets_minutes:
        for seed in seeds:  # seeds outer: a slow spell of the machine does not hit every seed of one recipe
            for recipe in recipes:
                cells.append(run_cell(scorer, recipe, minutes, seed, out_dir, progress))
                report = summarise(cells, samples)
                write_report(report, out_dir)
    return report


def run_cell(scorer: Scorer, recipe: Recipe, minutes: float, seed: int, out_dir: Path, progress: bool) -> dict:
    """One cell: kept as it is when its settings and protocol are this run's; rescored from its checkpoint
    when only the scoring protocol changed; else trained and scored."""
    folder = out_dir / recipe.name / f"{budget_name(minutes).replace(' ', '')}_seed{seed}"
    settings = json.loads(json.dumps({"family": recipe.family, "values": recipe.values(),
                                      "metrics": list(recipe.metrics), "samples": scorer.samples}))
    saved = folder / "cell.json"
    cell = _read_cell(saved)
    if cell is not None and same_training(cell.get("settings"), settings):
        if cell.get("protocol") == PROTOCOL_VERSION:
            return cell
        if Path(cell["checkpoint"]).is_dir():
            print(f"gauguin: rescoring {saved} with protocol {PROTOCOL_VERSION}", file=sys.stderr)
            return _write_cell(saved, cell, scorer.score(Path(cell["checkpoint"]), recipe.metrics, seed))
    if saved.is_file():
        print(f"gauguin: {saved} holds another setting or is unreadable; training it again", file=sys.stderr)
    checkpoint, reached = train_cell(recipe, minutes * 60, seed, folder / "run", progress)
    cell = {"recipe": recipe.name, "minutes": minutes, "seed": seed, "settings": settings, "reached": reached,
            "wall_seconds": reached["wall_seconds"], "checkpoint": str(checkpoint)}
    return _write_cell(saved, cell, scorer.score(checkpoint, recipe.metrics, seed))


NOT_TRAINING = ("eval_every", "eval_metrics", "eval_samples", "eval_extractor", "eval_weights", "eval_segmenter",
                "best_metric", "log_every", "sample_every", "checkpoint_every", "keep_checkpoints", "out_dir", "progress")


def same_training(saved: dict | None, settings: dict) -> bool:
    """Whether a kept cell trained as ``settings`` would: the two resolve to the same config (a default written
    out counts as the default), and options a cell overrides or never uses (evaluation, logging, output) may
    differ, so a preset that gains an evaluation keeps its measured cells."""
    def training(entry: dict) -> dict:
        config_class = get_family(entry["family"]).config_class
        values = config_class.from_dict({**entry["values"], "out_dir": "runs/budget-check"}).to_dict()
        return {**entry, "values": json.loads(json.dumps({k: v for k, v in values.items() if k not in NOT_TRAINING}))}

    if not (isinstance(saved, dict) and isinstance(saved.get("values"), dict) and saved.get("family") == settings["family"]):
        return False
    try:
        return training(saved) == training(settings)
    except ConfigError:  # a kept cell of an option that no longer exists
        return False


def _read_cell(path: Path) -> dict | None:
    try:
        cell = json.loads(path.read_text())
    except (OSError, ValueError):
        return None  # missing or unreadable: run it again
    if "reached" not in cell and "scores" in cell:  # cells of protocol 1 kept these among the scores
        cell["reached"] = {key: cell["scores"][key] for key in ("steps", "images_per_second")}
    return cell


def _write_cell(path: Path, cell: dict, scored: tuple[dict, dict]) -> dict:
    flat, named = scored
    reached = cell["reached"]
    cell = {**cell, "protocol": PROTOCOL_VERSION, "protocols": named,
            "scores": {**flat, "steps": reached["steps"], "images_per_second": reached["images_per_second"]}}
    if not all(math.isfinite(v) for v in cell["scores"].values()):
        print(f"gauguin: {path.parent}: non-finite scores {cell['scores']}", file=sys.stderr)
    path.parent.mkdir(parents=True, exist_ok=True)
    write_bytes_atomic(path, json.dumps(cell, indent=2).encode())
    return cell


def summarise(cells: list[dict], samples: int) -> dict:
    rows: dict[str, dict] = {}
    for cell in cells:
        row = rows.setdefault(f"{cell['recipe']}|{cell['minutes']}", {"recipe": cell["recipe"],
                                                                          "minutes": cell["minutes"], "seeds": []})
        row["seeds"].append(cell["seed"])
        for name, value in cell["scores"].items():
            row.setdefault("values", {}).setdefault(name, []).append(value)
    for row in rows.values():
        row["mean"] = {k: statistics.fmean(v) for k, v in row["values"].items()}
        row["std"] = {k: statistics.stdev(v) if len(v) > 1 else 0.0 for k, v in row["values"].items()}
    return {"samples": samples, "real": f"{REAL} at the generators' size", "second_classifier": SECOND_CLASSIFIER, "rows": list(rows.values()),
            "cells": cells}


def format_table(report: dict) -> str:
    """Markdown: a row per recipe and budget, mean ± spread over seeds; the best of each budget in bold."""
    names = [c for c in COLUMNS if any(c in row["mean"] for row in report["rows"])]
    lines = [f"Scores of {report['samples']} samples (an image translator: of up to as many held-out inputs) against "
             f"{report['real']}, mean ± std over the seeds (GAN-test accuracy and TSTR in %, TSTR as a share of the "
             "real-trained classifier's accuracy).", "",
             "| recipe | budget | seeds | " + " | ".join(COLUMNS[c][0] for c in names) + " |",
             "| --- | --- | --- |" + " --- |" * len(names)]
    for row in report["rows"]:
        peers = [r for r in report["rows"] if r["minutes"] == row["minutes"]]
        cells = []
        for name in names:
            if name not in row["mean"]:
                cells.append("")
                continue
            heading, fmt, higher = COLUMNS[name]
            scale = 100 if name in PERCENT else SCALE.get(name, 1)
            text = fmt.format(scale * row["mean"][name])
            if len(row["seeds"]) > 1:
                text += " ± " + fmt.format(scale * row["std"][name])
            best = (max if higher else min)(r["mean"].get(name, -math.inf if higher else math.inf) for r in peers)
            cells.append(f"**{text}**" if len(peers) > 1 and row["mean"][name] == best and name not in (
                "steps", "images_per_second") else text)
        lines.append(f"| {row['recipe']} | {budget_name(row['minutes'])} | {len(row['seeds'])} | " + " | ".join(cells) + " |")
    return "\n".join(lines) + "\n"


def budget_name(minutes: float) -> str:
    """1.0 -> "1 min", 0.1667 -> "10 s"."""
    return f"{minutes:g} min" if minutes >= 1 else f"{minutes * 60:.0f} s"


def write_report(report: dict, out_dir: Path) -> None:
    out_dir.mkdir(parents=True, exist_ok=True)
    write_bytes_atomic(out_dir / "report.json", json.dumps(report, indent=2).encode())
    write_bytes_atomic(out_dir / "table.md", format_table(report).encode())


__all__ = ["Recipe", "format_table", "main_job_recipe", "read_recipes", "run"]
