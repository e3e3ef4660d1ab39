"""Evaluation protocols on real Fashion-MNIST with the fmnist extractor (trained once, cached)."""
import json
import subprocess
import sys

import pytest
import torch

from conftest import tiny_config
from gauguin.config import ConfigError
from gauguin.metrics import cache
from gauguin.metrics.evaluate import evaluate, tstr
from gauguin.metrics.sources import ImageSet, load_image_set
from gauguin.training import train


@pytest.fixture(autouse=True)
def _private_stats_cache(tmp_path, monkeypatch):
    monkeypatch.setattr(cache, "cache_dir", lambda: tmp_path / "stats")


def test_real_against_real_is_close_and_noise_grows_fid(tmp_path):
    base = evaluate(["fid"], "fashion-mnist:test", "fashion-mnist:train", n=2000, progress=False)
    assert list(base["results"]) == ["fid2k-fmnist-fashion-mnist:test"]
    fid_real = base["results"]["fid2k-fmnist-fashion-mnist:test"]
    previous = fid_real
    for sigma in (0.1, 0.3):
        noisy_dir = tmp_path / f"noisy{sigma}"
        images = load_image_set("fashion-mnist:train", n=2000).images
        noisy = (images + sigma * torch.randn(images.shape, generator=torch.Generator().manual_seed(0))).clamp(-1, 1)
        _save_pngs(noisy, noisy_dir)
        fid = evaluate(["fid"], "fashion-mnist:test", f"folder:{noisy_dir}", n=2000, progress=False)
        value = next(iter(fid["results"].values()))
        assert value > previous, f"FID must grow with noise: {fid_real} then {previous} then {value}"
        previous = value
    assert fid_real < 0.25 * previous


def _save_pngs(images, folder):
    from gauguin.images import save_png

    for i, image in enumerate(images):
        save_png(image, folder / f"{i:05d}.png")


def test_cache_is_reused_and_invalidated_by_content(tmp_path):
    _save_pngs(load_image_set("fashion-mnist:test", n=64).images, tmp_path / "ref")
    args = (["fid"], f"folder:{tmp_path / 'ref'}", "fashion-mnist:train")
    with pytest.warns(UserWarning, match="covariance is singular with 64 samples of 128 features"):
        first = evaluate(*args, n=64, progress=False)
        second = evaluate(*args, n=64, progress=False)
    assert (first["reference_cache_hit"], second["reference_cache_hit"]) == (False, True)
    assert first["results"] == second["results"]
    _save_pngs(-load_image_set("fashion-mnist:test", n=1).images, tmp_path / "ref")  # change one file
    with pytest.warns(UserWarning, match="covariance is singular"):
        assert evaluate(*args, n=64, progress=False)["reference_cache_hit"] is False


@pytest.mark.slow
def test_tstr_baseline_and_shuffled_labels_give_chance():
    train_set = load_image_set("fashion-mnist:train", n=3000, seed=1)
    real = tstr(train_set, progress=False)
    assert real["train_on_fake"] > 0.75 and real["train_on_real"] > 0.75
    shuffled = ImageSet(train_set.images, train_set.labels[torch.randperm(3000)], "shuffled", "x")
    assert tstr(shuffled, progress=False)["train_on_fake"] < 0.2


def test_checkpoint_evaluation_and_cli(tmp_path):
    train("dcgan", tiny_config(tmp_path / "run", steps=2, eval_every=0))
    report_path = tmp_path / "report.json"
    done = subprocess.run([sys.executable, "-m", "gauguin.cli", "eval", "--metrics", "fid,kid,is,pr,msssim,accuracy",
                           "--fake", str(tmp_path / "run"), "--n", "200", "--out", str(report_path)],
                          capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stderr[-2000:]
    report = json.loads(report_path.read_text())
    names = set(report["results"])
    assert {"fid200-fmnist-fashion-mnist:test", "kid200-fmnist-fashion-mnist:test", "is200-fmnist-fashion-mnist:test",
            "prdc200-fmnist-fashion-mnist:test", "accuracy200-fmnist-fashion-mnist:test"} <= names
    assert "fid200" in done.stdout
    bad = subprocess.run([sys.executable, "-m", "gauguin.cli", "eval", "--metrics", "fdi", "--fake", str(tmp_path / "run")],
                         capture_output=True, text=True, timeout=120)
    assert bad.returncode == 1 and "did you mean 'fid'" in bad.stderr


def test_cli_kid_is_pr_real_against_real(tmp_path):
    """Two real splits: KID indistinguishable from 0, precision and recall high, IS well above 1."""
    out = tmp_path / "real.json"
    done = subprocess.run([sys.executable, "-m", "gauguin.cli", "eval", "--metrics", "kid,is,pr", "--real",
                           "fashion-mnist:test", "--fake", "fashion-mnist:train", "--n", "2000", "--out", str(out)],
                          capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stderr[-2000:]
    results = json.loads(out.read_text())["results"]
    kid = results["kid2k-fmnist-fashion-mnist:test"]
    assert abs(kid["mean"]) < 3 * kid["std"] + 1e-3
    prdc = results["prdc2k-fmnist-fashion-mnist:test"]
    assert prdc["precision"] > 0.6 and prdc["recall"] > 0.6
    assert results["is2k-fmnist-fashion-mnist:test"]["mean"] > 4.0


def test_training_loop_logs_eval_metrics(tmp_path):
    """eval_metrics are computed every eval_every steps, logged (metrics.jsonl, TensorBoard) and can pick the best."""
    cfg = tiny_config(tmp_path / "run", steps=4, eval_every=2, eval_metrics=["fid", "accuracy", "pr"],
                      eval_samples=160, best_metric="fid")
    train("dcgan", cfg)
    rows = [json.loads(line) for line in (tmp_path / "run" / "metrics.jsonl").read_text().splitlines()]
    evals = [r for r in rows if "fid" in r]
    assert [r["step"] for r in evals] == [2, 4]
    assert all(r["fid"] > 0 and 0 <= r["accuracy"] <= 1 and "recall" in r for r in evals)
    assert list((tmp_path / "run" / "tensorboard").glob("events.out.tfevents.*"))
    meta = json.loads((tmp_path / "run" / "checkpoints" / "best" / "meta.json").read_text())
    assert meta["best_metric"] == pytest.approx(min(r["fid"] for r in evals), rel=1e-5)
    with pytest.raises(ConfigError, match="did you mean 'fid'"):
        train("dcgan", tiny_config(tmp_path / "bad", eval_metrics=["fdi"]))


def test_a_higher_is_better_metric_picks_the_checkpoint_with_its_largest_value(tmp_path):
    cfg = tiny_config(tmp_path / "run", steps=6, eval_every=2, eval_metrics=["accuracy"], eval_samples=160,
                      best_metric="accuracy")
    train("dcgan", cfg)
    last = json.loads((tmp_path / "run" / "checkpoints" / "step_0000006" / "meta.json").read_text())
    best = json.loads((tmp_path / "run" / "checkpoints" / "best" / "meta.json").read_text())
    values = [value for _, value in last["metric_history"]]
    assert len(values) == 3 and last["best_metric"] == best["best_metric"] == max(values)
    assert best["step"] == last["metric_history"][values.index(max(values))][0]


@pytest.mark.parametrize("options, message", [
    (dict(best_metric="miou"), "best_metric=miou needs miou in eval_metrics"),
    (dict(best_metric="recall", eval_metrics=["fid"]), "needs pr in eval_metrics"),
    (dict(best_metric="acuracy", eval_metrics=["accuracy"]), "did you mean 'accuracy'"),
])
def test_best_metric_must_be_one_that_is_evaluated(tmp_path, options, message):
    with pytest.raises(ConfigError, match=message):
        tiny_config(tmp_path / "run", **options)
