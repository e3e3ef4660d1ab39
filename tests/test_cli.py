"""End to end through the installed ``gauguin`` command."""
import json
import subprocess
import sys

import numpy as np
from PIL import Image

TINY = ["image_size=28", "g_width=8", "d_width=8", "z_dim=16", "batch_size=16", "log_every=1",
        "sample_every=2", "checkpoint_every=2", "eval_every=2", "progress=false"]


def gauguin(*args, check=True):
    done = subprocess.run([sys.executable, "-m", "gauguin.cli", *map(str, args)], capture_output=True, text=True, timeout=300)
    if check:
        assert done.returncode == 0, done.stderr[-3000:]
    return done


def test_train_sample_info_resume(tmp_path):
    run = tmp_path / "run"
    out = gauguin("train", "dcgan", *TINY, "steps=2", f"out_dir={run}")
    assert "checkpoint" in out.stdout
    grid = Image.open(run / "samples" / "latest.png")
    assert grid.size == (10 * 30 + 2, 10 * 30 + 2)  # one row per class, 10 columns of 28 px + padding

    gauguin("sample", run, "--n", 12, "--class", "sneaker", "--seed", 1, "--out", tmp_path / "s.png")
    assert Image.open(tmp_path / "s.png").size == (8 * 30 + 2, 2 * 30 + 2)
    gauguin("sample", run, "--n", 3, "--out", tmp_path / "each")
    assert sorted(p.name for p in (tmp_path / "each").iterdir()) == ["000000.png", "000001.png", "000002.png"]
    a = np.asarray(Image.open(tmp_path / "s.png"))
    gauguin("sample", run, "--n", 12, "--class", "7", "--seed", 1, "--out", tmp_path / "t.png")
    assert np.array_equal(a, np.asarray(Image.open(tmp_path / "t.png"))), "same seed and class, same samples"

    gauguin("sample", run, "--per-class", 3, "--seed", 1, "--out", tmp_path / "folders")
    folders = sorted(p.name for p in (tmp_path / "folders").iterdir())
    assert folders[0] == "0_T-shirt_top" and folders[7] == "7_Sneaker" and len(folders) == 10
    assert sorted(p.name for p in (tmp_path / "folders" / "7_Sneaker").iterdir()) == ["000000.png", "000001.png",
                                                                                     "000002.png"]
    from gauguin.data import Preprocessing, build

    dataset = build(f"folder:{tmp_path / 'folders'}", "train", Preprocessing(crop_size=28, channels=1), task="classes")
    assert len(dataset) == 30 and list(dataset.classes)[7] == "7_Sneaker"  # the layout class-folder readers take

    info = json.loads(gauguin("info", run, "--json").stdout)
    assert info["family"] == "dcgan" and info["step"] == 2 and info["classes"][7] == "Sneaker"
    assert "generator_ema" in gauguin("info", run).stdout

    gauguin("train", "dcgan", "--resume", "steps=4", f"out_dir={run}")
    assert json.loads(gauguin("info", run, "--json").stdout)["step"] == 4
    logged = [json.loads(line)["step"] for line in (run / "metrics.jsonl").read_text().splitlines()]
    assert logged.count(3) == 1 and logged.count(4) >= 1


def test_errors_are_one_clear_line(tmp_path):
    done = gauguin("sample", tmp_path / "nothing", check=False)
    assert done.returncode == 1
    assert done.stderr.strip().count("\n") == 0 and "does not exist" in done.stderr
    done = gauguin("train", "dcgan", "stpes=2", check=False)
    assert done.returncode == 1 and "did you mean 'steps'" in done.stderr
    done = gauguin("--debug", "train", "dcgan", "stpes=2", check=False)
    assert "Traceback" in done.stderr
    done = gauguin("train", "dcgna", check=False)
    assert done.returncode == 2 and "invalid choice" in done.stderr


def test_corrupt_checkpoint_is_named_and_skipped(tmp_path):
    gauguin("train", "dcgan", *TINY, "steps=4", f"out_dir={tmp_path}")
    weights = tmp_path / "checkpoints" / "step_0000004" / "weights.safetensors"
    weights.write_bytes(weights.read_bytes()[:100])
    done = gauguin("sample", tmp_path / "checkpoints" / "step_0000004", check=False)
    assert done.returncode == 1 and str(weights) in done.stderr and "earlier checkpoint" in done.stderr
    done = gauguin("info", tmp_path, "--json")  # a run folder: the newest readable checkpoint
    assert json.loads(done.stdout)["step"] == 2 and str(weights) in done.stderr
    done = gauguin("sample", tmp_path, "--class", "Unicorn", check=False)
    assert done.returncode == 1 and "unknown class 'Unicorn'" in done.stderr


def test_per_class_samples_need_a_class_conditional_model(tmp_path):
    gauguin("train", "dcgan", *TINY, "steps=1", "conditional=false", f"out_dir={tmp_path / 'run'}")
    done = gauguin("sample", tmp_path / "run", "--per-class", 2, "--out", tmp_path / "f", check=False)
    assert done.returncode == 1 and done.stderr.strip().count("\n") == 0
    assert "--per-class needs a class-conditional model" in done.stderr and "conditional=true" in done.stderr
    assert not (tmp_path / "f").exists()
