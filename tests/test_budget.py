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
