"""The time-budgeted quality benchmark (gauguin.experiments.budget): the machinery, not the figures."""
import json
import math

import pytest

from gauguin import cli
from gauguin.config import ConfigError
from gauguin.experiments import budget
from gauguin.metrics.classifier import default_classifier_path


@pytest.fixture
def one_classifier(monkeypatch):
    """The second opinion is the first classifier here: training a second one is a minute the test need not spend."""
    monkeypatch.setattr(budget, "second_classifier", default_classifier_path)


def test_a_ten_second_budget_writes_the_table_with_finite_scores(tmp_path, one_classifier, capsys):
    out = tmp_path / "budget"
    assert cli.main(["experiment", "budget", "--quick", "--samples", "200", "--out", str(out), "z_dim=16"]) == 0
    report = json.loads((out / "report.json").read_text())
    (cell,) = report["cells"]
    assert cell["settings"]["values"]["z_dim"] == 16 and cell["minutes"] == budget.QUICK_MINUTES
    scores = cell["scores"]
    assert set(scores) >= {"accuracy", "accuracy_second", "fid", "fid_second", "kid", "precision", "recall", "tstr",
                           "steps", "images_per_second"}
    assert all(math.isfinite(v) for v in scores.values()), scores
    assert scores["steps"] >= 1 and 0 <= scores["accuracy"] <= 1 and scores["fid"] > 0  # steps: whatever 10 s gives
    assert any(name.startswith("fid200-fmnist-") for name in cell["protocols"])  # named by protocol
    table = (out / "table.md").read_text()
    assert "| main-job | 10 s | 1 |" in table and "GAN-test acc %" in table
    assert "main-job" in capsys.readouterr().out

    # a rerun of the same settings keeps the cell instead of training again
    before = (out / "main-job" / "10s_seed0" / "cell.json").stat().st_mtime_ns
    assert cli.main(["experiment", "budget", "--quick", "--samples", "200", "--out", str(out), "z_dim=16"]) == 0
    assert (out / "main-job" / "10s_seed0" / "cell.json").stat().st_mtime_ns == before


def test_recipes_file_is_checked_before_anything_trains(tmp_path):
    good = tmp_path / "recipes.yaml"
    good.write_text("family: dcgan\ncommon: {batch_size: 32, d_width: 16}\n"
                    "recipes:\n  base: {}\n  hinge: {loss: hinge, d_width: 32}\n")
    recipes = budget.read_recipes(good)
    assert [r.name for r in recipes] == ["base", "hinge"] and recipes[0].values() == {"batch_size": 32, "d_width": 16}
    assert recipes[1].values() == {"batch_size": 32, "loss": "hinge", "d_width": 32}  # a recipe's own value wins
    bad = tmp_path / "bad.yaml"
    bad.write_text("recipes:\n  typo: {los: hinge}\n")
    with pytest.raises(ConfigError, match="recipe 'typo'.*unknown key 'los'.*did you mean 'loss'"):
        budget.read_recipes(bad)
    empty = tmp_path / "empty.yaml"
    empty.write_text("family: dcgan\n")
    with pytest.raises(ConfigError, match="needs a 'recipes:' mapping"):
        budget.read_recipes(empty)


def test_table_marks_the_best_of_each_budget():
    def row(name, acc, fid):
        return {"recipe": name, "minutes": 1.0, "seeds": [0, 1], "mean": {"accuracy": acc, "fid": fid},
                "std": {"accuracy": 0.01, "fid": 0.1}}
    table = budget.format_table({"samples": 10, "real": "r", "rows": [row("a", 0.8, 2.0), row("b", 0.9, 3.0)]})
    assert "| a | 1 min | 2 | 80.0 ± 1.0 | **2.000 ± 0.100** |" in table
    assert "| b | 1 min | 2 | **90.0 ± 1.0** | 3.000 ± 0.100 |" in table


def test_a_recipe_whose_lr_decays_keeps_its_steps_under_the_budget(tmp_path):
    recipe = budget.Recipe("decay", "dcgan", None, {**budget.QUICK_OVERRIDES, "steps": 3, "lr_decay_start": 0.5})
    checkpoint, reached = budget.train_cell(recipe, 600, 0, tmp_path / "run", progress=False)
    assert reached["steps"] == 3 and checkpoint.name == "step_0000003"  # the schedule's end, well inside 10 min


def test_a_kept_cell_still_counts_when_only_evaluation_options_changed():
    saved = {"family": "spade", "values": {"steps": 2000, "eval_every": 500}, "metrics": [], "samples": 10_000}
    evaluated = {**saved, "values": {"steps": 2000, "eval_every": 250, "eval_metrics": ["miou"], "best_metric": "miou"}}
    assert budget.same_training(saved, evaluated)  # a preset that gains an evaluation keeps its measured cells
    assert budget.same_training(saved, {**saved, "values": {"steps": 2000, "lr_g": 1e-4}})  # the default, written out
    assert not budget.same_training(saved, {**saved, "values": {"steps": 2000, "lr_g": 2e-4}})
    assert not budget.same_training({**saved, "values": {"stepz": 2000}}, saved)  # an option that no longer exists
    assert not budget.same_training(saved, {**saved, "values": {"steps": 3000, "eval_every": 500}})
    assert not budget.same_training(saved, {**saved, "samples": 500})
    assert not budget.same_training(None, saved)


def test_a_paired_translator_is_scored_by_l1_ssim_and_fid_of_its_held_out_outputs(tmp_path, one_classifier):
    recipe = budget.Recipe("p2p", "pix2pix", None, {"ngf": 8, "ndf": 8, "batch_size": 4, "image_size": 32})
    report = budget.run([recipe], (budget.QUICK_MINUTES,), (0,), tmp_path / "budget", samples=200, progress=False)
    (cell,) = report["cells"]
    scores = cell["scores"]
    assert set(scores) >= {"l1", "ssim", "fid", "kid", "precision", "recall", "steps"}
    assert all(math.isfinite(v) for v in scores.values()), scores
    assert 0 < scores["l1"] < 2 and -1 <= scores["ssim"] <= 1 and scores["fid"] > 0
    assert "l1200-fashion-mnist:val" in cell["protocols"]
    assert "| L1 | SSIM |" in (tmp_path / "budget" / "table.md").read_text()


def test_an_unpaired_translator_is_scored_each_way_against_a_hand_computation(tmp_path, one_classifier):
    from gauguin.metrics.extractors import create_extractor
    from gauguin.models import get_family
    from gauguin.sampling import load_generator
    from gauguin.training import train

    cfg = get_family("cyclegan").config_class.from_dict(
        {"ngf": 8, "ndf": 8, "n_blocks": 1, "batch_size": 2, "steps": 3, "image_size": 32, "progress": False,
         "out_dir": str(tmp_path / "run"), "eval_every": 0, "sample_every": 3, "checkpoint_every": 3})
    checkpoint = train("cyclegan", cfg)
    scores, named = budget.Scorer(1000, progress=False).score(checkpoint, (), 0)
    assert all(math.isfinite(scores[f"{key}_{way}"]) for key in ("accuracy", "fid", "cycle_l1")
               for way in ("AtoB", "BtoA")), scores
    # all 1,000 held-out sneakers: the round trip and the classifier's verdict, computed here
    loaded = load_generator(checkpoint)
    domains = type(loaded.family).build_dataset(loaded.family.cfg, split="val")
    sneakers = domains.get_domain("a", range(domains.len_a))
    boots = loaded.translate_images(sneakers, "AtoB")
    cycle = (loaded.translate_images(boots, "BtoA") - sneakers).abs().mean().item()
    in_boot_class = (create_extractor("fmnist").probabilities(boots).argmax(1) == domains.class_indices[1]).float().mean()
    assert scores["cycle_l1_AtoB"] == pytest.approx(cycle, rel=1e-4)
    assert scores["accuracy_AtoB"] == pytest.approx(in_boot_class.item(), abs=1e-6)
    assert "cycle_l1_AtoB1k-fashion-mnist:val" in named
