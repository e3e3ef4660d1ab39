"""Contract tests run for every registered family (a new family gets them by registering), and for
``toy``: a newcomer's family written in one file (tests/toy_family.py) plus one registry line."""
import ast
import base64
import inspect
import io
import json
import math
import shutil
import urllib.request
from pathlib import Path

import numpy as np
import pytest
import torch

from gauguin.models import FAMILIES, GANFamily, get_family
from gauguin.sampling import load_generator
from gauguin.training import load_checkpoint, run_config, train

TOY = "toy_family:Toy"  # the one registry line of the newcomer's family
COMMON = dict(steps=2, log_every=1, sample_every=2, checkpoint_every=2, eval_every=0, progress=False)
TINY = {  # the smallest networks each family builds, on its embedded default data
    "dcgan": dict(image_size=28, g_width=8, d_width=8, z_dim=16, batch_size=8),
    "pix2pix": dict(ngf=4, ndf=4, batch_size=2),
    "pix2pixhd": dict(ngf=4, ndf=4, n_blocks=1, num_d=1, batch_size=2, feature_clusters=2, cluster_images=8),
    "cyclegan": dict(ngf=4, ndf=4, n_blocks=1, batch_size=2, pool_size=4),
    "spade": dict(ngf=4, ndf=4, z_dim=8, batch_size=2),
    "simgan": dict(refiner_width=8, refiner_blocks=1, batch_size=8, buffer_size=16, pretrain_refiner_steps=1,
                   pretrain_discriminator_steps=1),
    "pggan": dict(image_size=8, z_dim=16, fmap_base=64, fmap_max=16, fade_images=32, stable_images=32, batch_size=8),
    "srgan": dict(width=8, blocks=1, d_width=4, batch_size=4, pretrain_steps=1),
    "toy": dict(batch_size=4),
}
EVERY_FAMILY = sorted(FAMILIES) + ["toy"]


@pytest.fixture(autouse=True)
def toy_registered(monkeypatch):
    monkeypatch.setitem(FAMILIES, "toy", TOY)


def _config(family: str, out_dir, **values):
    return get_family(family).config_class.from_dict({**TINY[family], **COMMON, "out_dir": str(out_dir), **values})


def test_every_registered_family_has_a_tiny_config():
    assert sorted(TINY) == sorted(EVERY_FAMILY)


def test_the_family_contract_has_at_most_eight_hooks():
    hooks = [name for name, _ in inspect.getmembers(GANFamily) if not name.startswith("_")
             and (inspect.isfunction(getattr(GANFamily, name)) or isinstance(inspect.getattr_static(GANFamily, name),
                                                                          (property, classmethod)))]
    assert sorted(hooks) == sorted(["build_dataset", "plan", "fakes", "d_loss", "g_loss", "inference",
                                    "training_state", "fit_sampling"])


def test_serving_sampling_and_the_cli_never_name_a_family():
    """Adding a family touches models/<family>.py and one registry line: no code here switches on a name."""
    root = Path(__file__).resolve().parents[1] / "gauguin"
    names = set(FAMILIES)
    for path in [*sorted((root / "serve").glob("*.py")), root / "sampling.py", root / "cli.py"]:
        strings = {node.value.lower() for node in ast.walk(ast.parse(path.read_text()))
                   if isinstance(node, ast.Constant) and isinstance(node.value, str)}
        assert not strings & names, f"{path.name} names {strings & names}"


@pytest.mark.parametrize("ema", [0.999, 0.0], ids=["ema", "no-ema"])
@pytest.mark.parametrize("family", EVERY_FAMILY)
def test_trains_writes_a_grid_and_a_checkpoint_that_load_generator_reads(family, ema, tmp_path, one_torch_thread):
    """Two steps with and without an EMA of G (BatchNorm statistics re-estimated on inputs like the
    data's: it used to stop the translating families at their first sample grid); finite losses; the
    checkpoint's sampling weights are what load_generator gives, and they generate finite images."""
    path = train(family, _config(family, tmp_path, ema_decay=ema))
    assert (tmp_path / "samples" / "latest.png").is_file()
    rows = [json.loads(line) for line in (tmp_path / "metrics.jsonl").read_text().splitlines()]
    losses = [v for row in rows for k, v in row.items() if "loss" in k]
    assert losses and all(math.isfinite(v) for v in losses)
    tensors, meta = load_checkpoint(path)
    weights = tensors["weights.safetensors"]
    prefix = "generator_ema." if ema else "generator."
    assert any(k.startswith("generator_ema.") for k in weights) == bool(ema)
    loaded = load_generator(path)
    assert loaded.meta["family"] == family and meta["step"] == 2 and not loaded.generator.training
    state = loaded.generator.state_dict()
    for key, value in weights.items():
        if key.startswith(prefix):
            assert torch.equal(state[key[len(prefix):]], value), key
    images = _generated(loaded)
    size = tuple(s * loaded.spec.main.scale for s in loaded.spec.image_size)
    assert images.shape[1:] == (loaded.spec.channels, *size) and torch.isfinite(images).all()


def _generated(loaded) -> torch.Tensor:
    """Two images from the spec alone: sampled, or translated from the family's own data."""
    if loaded.spec.noise_driven:
        return loaded.sample(2, seed=0)
    data = type(loaded.family).build_dataset(loaded.family.cfg)
    batch = data.get_batch(torch.arange(2))
    return loaded.generate(loaded.inputs_like(batch, torch.Generator().manual_seed(0)))


@pytest.mark.parametrize("family", EVERY_FAMILY)
def test_resume_is_exact(family, tmp_path, one_torch_thread):
    """3 steps straight == the same run killed after step 2 and resumed: every tensor and the data
    position equal (the learning-rate schedule spans the same 3 steps in both)."""
    common = dict(steps=3, checkpoint_every=1, sample_every=100, log_every=1, keep_checkpoints=5)
    straight = train(family, _config(family, tmp_path / "a", **common))
    train(family, _config(family, tmp_path / "b", **common))
    shutil.rmtree(tmp_path / "b" / "checkpoints" / "step_0000003")  # as if killed before step 3 was saved
    cfg = run_config(family, None, [f"out_dir={tmp_path / 'b'}"], resume=True)
    resumed = train(family, cfg, resume=True)
    (a, meta_a), (b, meta_b) = load_checkpoint(straight), load_checkpoint(resumed)
    assert meta_a["step"] == meta_b["step"] == 3 and meta_a["sampler"] == meta_b["sampler"]
    for name in a:
        assert a[name].keys() == b[name].keys()
        for key in a[name]:
            assert torch.equal(a[name][key], b[name][key]), f"{family}: {name}:{key} differs after resume"
    first = load_checkpoint(tmp_path / "a" / "checkpoints" / "step_0000001")[0]["weights.safetensors"]
    assert any(not torch.equal(first[k], a["weights.safetensors"][k]) for k in first if k.startswith("generator."))


@pytest.mark.parametrize("family", EVERY_FAMILY)
def test_every_graph_of_the_spec_exports_to_onnx_with_parity(family, tmp_path, one_torch_thread):
    """The export reads the inference spec alone: one ONNX file per declared graph, each checked
    against eager PyTorch (the export raises past 1e-4), inputs named and described as declared."""
    from gauguin.serve.export import export

    path = train(family, _config(family, tmp_path / "run", ema_decay=0.0))
    description = export(path, tmp_path / "onnx")
    spec = load_generator(path).spec
    assert sorted(description["graphs"]) == sorted(f"{g.file}.onnx" for g in spec.graphs)
    for graph in spec.graphs:
        entry = description["graphs"][f"{graph.file}.onnx"]
        assert entry["parity"]["passed"] and (tmp_path / "onnx" / entry["file"]).is_file()
        assert [i["name"] for i in entry["inputs"]] == [i.name for i in graph.inputs]
        assert entry["declared_inputs"] == [i.to_dict() for i in graph.inputs]


def test_the_newcomers_family_trains_translates_exports_and_is_painted(tmp_path, one_torch_thread):
    """The toy family through the CLI (train, translate) and the paint server (export, engine, HTTP),
    none of which was touched to add it."""
    from PIL import Image

    from gauguin.cli import main
    from gauguin.serve.app import PaintServer
    from gauguin.serve.engine import Engine
    from gauguin.serve.paint_models import load_backend

    run = tmp_path / "run"
    assert main(["train", "toy", "--data", "fashion-mnist", f"out_dir={run}", "batch_size=4", "steps=3",
                 "sample_every=3", "checkpoint_every=3", "eval_every=0", "progress=false"]) == 0
    label_map = np.zeros((32, 32), np.uint8)
    label_map[8:24, 8:24] = 3
    Image.fromarray(label_map).save(tmp_path / "map.png")
    assert main(["translate", str(run), "--labels", str(tmp_path / "map.png"), "--seed", "5",
                 "--out", str(tmp_path / "out")]) == 0
    translated = np.asarray(Image.open(tmp_path / "out" / "map_seed5_00.png"), np.int16)
    with PaintServer(Engine(load_backend(run, precision="fp32", log=lambda *_: None))) as server:
        body = json.dumps({"label_map": base64.b64encode((tmp_path / "map.png").read_bytes()).decode(), "seed": 5})
        request = urllib.request.Request(server.url + "/api/generate", body.encode(),
                                         {"Content-Type": "application/json"})
        with urllib.request.urlopen(request, timeout=60) as response:
            painted = np.asarray(Image.open(io.BytesIO(response.read())), np.int16)
    assert painted.shape == translated.shape == (32, 32)
    assert np.abs(painted - translated).max() <= 1  # one seed, one image: the page's is translate's


FORBIDDEN_IMPORTS = {  # package -> what it must not import (cli -> serve/metrics/training -> models -> nn, losses)
    "nn": {"models", "training", "serve", "metrics", "sampling", "cli", "experiments"},
    "data": {"nn", "models", "training", "serve", "metrics", "sampling", "cli", "experiments", "losses"},
    "models": {"training", "serve", "metrics", "sampling", "cli", "experiments"},
    "sampling": {"training", "serve", "metrics", "cli", "experiments"},
    "serve": {"training", "cli", "experiments"},
    "metrics": {"training", "serve", "cli"},
    "training": {"serve", "cli"},
    "checkpoint": {"nn", "data", "models", "training", "serve", "metrics", "sampling", "cli"},
    "images": {"nn", "data", "models", "training", "serve", "metrics", "sampling", "cli"},
}


def _imported_parts(path: Path, package_root: Path) -> set[str]:
    """The top-level gauguin modules / packages ``path`` imports (relative imports resolved)."""
    here = path.relative_to(package_root.parent).with_suffix("").parts  # ("gauguin", "serve", "engine")
    parts = set()
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.ImportFrom):
            if node.level:
                base = here[: len(here) - node.level]
                name = ".".join([*base, node.module] if node.module else base)
                names = [name] if node.module else [f"{name}.{a.name}" for a in node.names]
            else:
                names = [node.module or ""]
        elif isinstance(node, ast.Import):
            names = [a.name for a in node.names]
        else:
            continue
        parts |= {n.split(".")[1] for n in names if n.startswith("gauguin.") and n.count(".") >= 1}
    return parts


def test_imports_go_one_way():
    """cli → serve / metrics / training → sampling → models → nn, losses, data; checkpoint and image
    files at the bottom: serving and sampling never import the loop, data no network or family."""
    root = Path(__file__).resolve().parents[1] / "gauguin"
    for path in sorted(root.rglob("*.py")):
        part = path.relative_to(root).parts[0].removesuffix(".py")
        bad = _imported_parts(path, root) & FORBIDDEN_IMPORTS.get(part, set())
        assert not bad, f"{path.relative_to(root.parent)} imports {sorted(bad)}"
