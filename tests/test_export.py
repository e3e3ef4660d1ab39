"""gauguin export: ONNX graphs of every generator family match PyTorch on onnxruntime (checked here,
not only in the export's own report), with dynamic batch and sizes, model.json, safetensors, the CLI."""
import json

import numpy as np
import onnxruntime as ort
import pytest
import torch
from safetensors.torch import load_file
from torch import nn

from gauguin.cli import main
from gauguin.models import DataInfo, get_family
from gauguin.models.inference import draw_inputs
from gauguin.models.spade_nets import init_spade_weights_
from gauguin.nn.spectral import SpectralNormConv2d, fold_spectral_norm
from gauguin.nn.unet import NoiseDropout
from gauguin.sampling import load_generator
from gauguin.serve import export as export_module
from gauguin.serve.export import ExportError, blocky_ids, export
from gauguin import checkpoint as ckpt

TOLERANCE = 1e-4
LABELS = ["sky", "tree", "road", "car", "person"]


def make_checkpoint(folder, family, data, ema=False, prepare=None, **config):
    """A checkpoint of a freshly built ``family`` (tiny widths) as the trainer writes it, with
    non-trivial BatchNorm statistics; ``ema`` adds perturbed EMA weights (the ones sampled)."""
    torch.manual_seed(0)
    cls = get_family(family)
    cfg = cls.config_class.from_dict(config)
    G = cls(cfg, data).generator
    for m in G.modules():
        if isinstance(m, nn.modules.batchnorm._BatchNorm):
            m.running_mean.normal_(0, 0.1)
            m.running_var.uniform_(0.5, 1.5)
    if prepare:
        prepare(G)
    weights = ckpt.module_state("generator", G)
    if ema:
        weights.update({k.replace("generator.", "generator_ema.", 1): v + 0.05 * torch.randn_like(v)
                        if v.is_floating_point() and "running_var" not in k else v.clone() for k, v in weights.items()})
    meta = {"format": "gauguin-checkpoint-1", "family": family, "config": cfg.to_dict(),
            "num_classes": data.num_classes, "classes": data.classes, "data": data.to_dict(), "step": 3,
            "time": "2026-01-01T00:00:00"}
    return ckpt.save_checkpoint(folder / "checkpoints" / "step_0000003", {"weights.safetensors": weights}, meta)


def spade_weights(G):
    """SPADE's init (gain 0.02) gives outputs of ~1e-4 at tiny widths: gain 1 makes them ~0.5, so that
    the 1e-4 tolerance means something."""
    init_spade_weights_(G, 1.0)


def semantic_data(num_labels=5, instances=True):
    return DataInfo(num_labels=num_labels, label_names=LABELS[:num_labels], has_instances=instances,
                    image_size=(32, 32), channels=3, raw_to_index=list(range(num_labels)))


def torch_inputs(loaded, n, size, generator, direction=None):
    """Inputs as a caller builds them: from the family's declared inputs (ids as layouts)."""
    graph = loaded.spec.translator(direction) if direction else loaded.spec.main
    batch = {}
    for spec in graph.data_inputs:
        if spec.kind == "label_map":
            batch[spec.name] = blocky_ids(n, size, spec.size, generator)
        elif spec.kind == "instance":
            batch[spec.name] = blocky_ids(n, size, 9, generator, cell=3)
        else:
            batch[spec.name] = torch.rand(n, spec.size, *size, generator=generator) * 2 - 1
    return draw_inputs(graph, n, generator, batch)


def assert_parity(out, loaded, file="generator.onnx", sizes=((32, 32),), batches=(1, 3), direction=None):
    """Run ``file`` on onnxruntime for every batch and size; compare with the loaded PyTorch generator."""
    for module in loaded.generator.modules():
        if isinstance(module, NoiseDropout):
            module.at_test = False  # the export is the dropout-free pix2pix
    session = ort.InferenceSession(str(out / file), providers=["CPUExecutionProvider"])
    generator = torch.Generator().manual_seed(1)
    for size in sizes:
        for n in batches:
            inputs = torch_inputs(loaded, n, size, generator, direction)
            assert [i.name for i in session.get_inputs()] == list(inputs)
            with torch.no_grad():
                graph = loaded.spec.translator(direction) if direction else loaded.spec.main
                expected = graph.run(loaded.generator, inputs).numpy()
            image, = session.run(["image"], {k: v.numpy() for k, v in inputs.items()})
            assert image.shape == expected.shape
            diff = np.abs(image - expected).max()
            assert diff <= TOLERANCE, (file, n, size, diff)
            assert np.abs(expected).max() > 0.01  # not a trivially zero output
    return session


def read_json(out):
    return json.loads((out / "model.json").read_text())


# ---------------------------------------------------------------------------- spectral norm folding
def test_fold_spectral_norm_equals_the_eval_forward():
    torch.manual_seed(0)
    net = nn.Sequential(SpectralNormConv2d(3, 64, 3, padding=1), nn.ReLU(),  # divides the weight
                        SpectralNormConv2d(64, 4, 3, stride=2, padding=1, bias=False))  # divides the output
    x = torch.randn(2, 3, 8, 8)
    for _ in range(3):
        net(x)  # training forwards move u, v
    net.eval()
    folded = fold_spectral_norm(net)
    assert not any(isinstance(m, SpectralNormConv2d) for m in folded.modules())
    assert not any("weight_u" in k or "weight_v" in k for k in folded.state_dict())
    assert isinstance(net[0], SpectralNormConv2d) and not folded.training  # the original is untouched
    u = net[0].weight_u.clone()
    with torch.no_grad():
        assert torch.allclose(folded(x), net(x), atol=1e-6, rtol=0)
    assert torch.equal(net[0].weight_u, u)  # folding ran no power iteration


# ---------------------------------------------------------------------------- ONNX parity per family
def test_dcgan_unconditional_and_a_failed_parity_check(tmp_path, monkeypatch):
    source = make_checkpoint(tmp_path / "run", "dcgan", DataInfo(num_classes=10, channels=1, image_size=(28, 28)),
                             conditional=False, image_size=28, g_width=8, d_width=8, z_dim=16)
    out = tmp_path / "export"
    monkeypatch.setattr(export_module, "PARITY_TOLERANCE", -1.0)  # every graph fails the check
    with pytest.raises(ExportError, match=r"parity check failed: generator.onnx max abs diff"):
        export(tmp_path / "run", out)
    meta = read_json(out)  # the files are written (to inspect), marked as failed
    assert meta["graphs"]["generator.onnx"]["parity"]["passed"] is False
    assert meta["source"] == {"checkpoint": str(source.resolve()), "step": 3, "written": "2026-01-01T00:00:00",
                              "weights": "generator"}
    assert meta["model"]["z_dim"] == 16 and meta["model"]["conditional"] is False
    session = assert_parity(out, load_generator(source))
    assert [i.name for i in session.get_inputs()] == ["z"]


def test_pix2pix_on_images_and_on_label_maps(tmp_path):
    source = make_checkpoint(tmp_path / "edges", "pix2pix", DataInfo(channels=1, input_channels=1,
                                                                     image_size=(32, 32)), ngf=4, ndf=4)
    export(source, tmp_path / "a", check=False)  # checked here
    assert_parity(tmp_path / "a", load_generator(source), sizes=((32, 32), (64, 96)))  # multiples of 32
    assert read_json(tmp_path / "a")["graphs"]["generator.onnx"]["spatial"] == {
        "dynamic": True, "size": [32, 32], "multiple_of": 32, "min": [32, 32]}

    source = make_checkpoint(tmp_path / "labels", "pix2pix", semantic_data(), input="labels", ngf=4, ndf=4)
    export(source, tmp_path / "b", check=False)
    session = assert_parity(tmp_path / "b", load_generator(source))
    assert [(i.name, i.type) for i in session.get_inputs()] == [("label_map", "tensor(int64)"),
                                                                 ("instance", "tensor(int64)")]


def test_pix2pixhd_with_the_feature_encoder(tmp_path):
    def clusters(G):  # k-means centres as prepare_sampling leaves them; label 2 was never seen
        G.feature_centers.normal_()
        G.feature_center_counts.copy_(torch.tensor([3, 1, 0, 2, 3]))

    source = make_checkpoint(tmp_path / "run", "pix2pixhd", semantic_data(), prepare=clusters, ngf=4, ndf=4,
                             n_blocks=1, use_features=True, nef=4, feature_clusters=3)
    out = tmp_path / "export"
    export(source, out)
    loaded = load_generator(source)
    session = assert_parity(out, loaded, sizes=((32, 32), (48, 64)))  # multiples of 16
    assert [i.name for i in session.get_inputs()] == ["label_map", "instance", "feature_draw"]
    graph = read_json(out)["graphs"]["generator.onnx"]
    assert graph["inputs"][2] == {"name": "feature_draw", "dtype": "float32", "shape": ["batch", 5]}
    assert graph["outputs"] == [{"name": "image", "dtype": "float32", "shape": ["batch", 3, "height", "width"]}]
    assert graph["dynamic_axes"]["label_map"] == {"0": "batch", "1": "height", "2": "width"}
    # the draw picks the centre: two draws, two looks, as in PyTorch
    inputs = torch_inputs(loaded, 1, (32, 32), torch.Generator().manual_seed(0))
    looks = [session.run(["image"], {**{k: v.numpy() for k, v in inputs.items()},
                                     "feature_draw": np.full((1, 5), d, np.float32)})[0] for d in (0.0, 0.99)]
    assert np.abs(looks[0] - looks[1]).max() > 1e-3
    # the paint engine feeds this graph: ids as the instance map, a seed's draw of the feature centres
    from gauguin.serve.engine import Engine, OnnxBackend

    engine = Engine(OnnxBackend(out))
    assert list(engine.info.inputs) == ["label_map", "instance", "feature_draw"] and not engine.info.style_image
    assert engine.info.to_dict()["style"] == {"seed": True, "image": False}
    ids = np.zeros((32, 32), np.int64)
    ids[8:24, 4:16], ids[8:24, 16:28] = 3, 4
    one, two = engine.generate(ids, seed=1), engine.generate(ids, seed=2)
    assert one.shape == (3, 32, 32) and np.abs(one - two).max() > 1e-3
    np.testing.assert_array_equal(one, engine.generate(ids, seed=1))
    engine.close()


def test_cyclegan_both_directions_with_dynamic_batch_and_size(tmp_path):
    source = make_checkpoint(tmp_path / "run", "cyclegan", DataInfo(channels=1, image_size=(32, 32)), ngf=4, ndf=4,
                             n_blocks=1)
    out = tmp_path / "export"
    export(source, out)
    loaded = load_generator(source)
    for direction, name in (("AtoB", "a"), ("BtoA", "b")):
        session = assert_parity(out, loaded, f"generator_{direction}.onnx", sizes=((32, 32), (24, 40), (64, 48)),
                                direction=direction)
        assert [i.name for i in session.get_inputs()] == [name]
        assert [str(d) for d in session.get_inputs()[0].shape] == ["batch", "1", "height", "width"]
    graphs = read_json(out)["graphs"]
    assert sorted(graphs) == ["generator_AtoB.onnx", "generator_BtoA.onnx"]
    assert all(g["parity"]["passed"] and g["parity"]["max_abs_diff"] <= TOLERANCE for g in graphs.values())


def test_spade_without_the_style_encoder(tmp_path):
    source = make_checkpoint(tmp_path / "run", "spade", semantic_data(instances=False), prepare=spade_weights,
                             image_size=32, ngf=4, ndf=4)
    out = tmp_path / "export"
    export(source, out, check=False)
    session = assert_parity(out, load_generator(source))
    assert [i.name for i in session.get_inputs()] == ["label_map"]
    meta = read_json(out)
    assert sorted(meta["graphs"]) == ["generator.onnx"]
    assert meta["data"]["label_names"] == LABELS and meta["model"]["use_vae"] is False
    assert meta["graphs"]["generator.onnx"]["spatial"] == {"dynamic": False, "size": [32, 32]}


def test_spade_with_the_style_encoder_and_instances(tmp_path):
    source = make_checkpoint(tmp_path / "run", "spade", semantic_data(), prepare=spade_weights, image_size=32, ngf=4,
                             ndf=4, use_vae=True, z_dim=8, encoder_input_size=128)
    out = tmp_path / "export"
    export(source, out)
    loaded = load_generator(source)
    session = assert_parity(out, loaded)
    assert [i.name for i in session.get_inputs()] == ["label_map", "instance", "z"]
    encoder = ort.InferenceSession(str(out / "style_encoder.onnx"), providers=["CPUExecutionProvider"])
    assert [i.name for i in encoder.get_inputs()] == ["style"]
    assert [o.name for o in encoder.get_outputs()] == ["mu", "logvar"]
    for n in (1, 3):
        style = torch.rand(n, 3, 32, 32) * 2 - 1
        with torch.no_grad():
            expected = loaded.generator.encode(style)
        for got, want in zip(encoder.run(["mu", "logvar"], {"style": style.numpy()}), expected):
            assert got.shape == (n, 8) and np.abs(got - want.numpy()).max() <= TOLERANCE
    meta = read_json(out)
    assert meta["model"]["use_vae"] and meta["model"]["z_dim"] == 8 and meta["model"]["use_instances"]
    assert meta["graphs"]["generator.onnx"]["inputs"] == [
        {"name": "label_map", "dtype": "int64", "shape": ["batch", 32, 32]},
        {"name": "instance", "dtype": "int64", "shape": ["batch", 32, 32]},
        {"name": "z", "dtype": "float32", "shape": ["batch", 8]}]
    assert meta["graphs"]["style_encoder.onnx"]["parity"]["passed"]


def test_simgan_refiner_any_size(tmp_path):
    source = make_checkpoint(tmp_path / "run", "simgan", DataInfo(channels=1, image_size=(28, 28)),
                             refiner_width=8, refiner_blocks=1)
    export(source, tmp_path / "export", check=False)
    session = assert_parity(tmp_path / "export", load_generator(source), sizes=((28, 28), (17, 30)))
    assert [i.name for i in session.get_inputs()] == ["synthetic"]


def test_pggan_mid_fade_in(tmp_path):
    """Stage 2 (8 px) fading in at α 0.25: the graph blends both outputs and upsamples to 16 px."""
    source = make_checkpoint(tmp_path / "run", "pggan", DataInfo(channels=1, image_size=(16, 16)),
                             prepare=lambda G: G.set_growth(2, 0.25), image_size=16, z_dim=8, fmap_base=64,
                             fmap_max=16, fade_images=10, stable_images=10)
    export(source, tmp_path / "export", check=False)
    assert_parity(tmp_path / "export", load_generator(source))
    meta = read_json(tmp_path / "export")
    assert meta["model"]["stage"] == 2 and meta["model"]["alpha"] == 0.25
    assert meta["graphs"]["generator.onnx"]["outputs"][0]["shape"] == ["batch", 1, 16, 16]


# ---------------------------------------------------------------------------- safetensors, CLI, errors
def test_safetensors_export_has_folded_weights(tmp_path):
    source = make_checkpoint(tmp_path / "run", "spade", semantic_data(), prepare=spade_weights, image_size=32, ngf=4,
                             ndf=4, use_vae=True, z_dim=8, encoder_input_size=128)
    out = tmp_path / "export"
    export(source, out, "safetensors")
    state = load_file(str(out / "generator.safetensors"))
    assert state and not any(k.endswith(("weight_u", "weight_v")) for k in state)
    meta = read_json(out)
    assert meta["export_format"] == "safetensors" and "graphs" not in meta
    assert sorted(meta["weights"]["tensors"]) == sorted(state)
    loaded = load_generator(source)
    folded = fold_spectral_norm(loaded.generator)
    folded.load_state_dict(state)  # strict: exactly the folded generator's tensors
    inputs = torch_inputs(loaded, 2, (32, 32), torch.Generator().manual_seed(0))
    with torch.no_grad():
        assert torch.allclose(loaded.spec.main.run(folded, inputs), loaded.spec.main.run(loaded.generator, inputs),
                              atol=1e-5)


def test_cli_exports_a_conditional_dcgan_with_ema_weights(tmp_path, capsys):
    data = DataInfo(num_classes=3, classes=["Shirt", "Sneaker", "Bag"], channels=1, image_size=(28, 28))
    make_checkpoint(tmp_path / "run", "dcgan", data, ema=True, image_size=28, g_width=8, d_width=8, z_dim=16,
                    ema_decay=0.999)
    out = tmp_path / "export"
    assert main(["export", str(tmp_path / "run"), "--format", "onnx", "--out", str(out)]) == 0
    printed = capsys.readouterr()
    assert "generator.onnx" in printed.out and "max abs diff" in printed.out and "generator_ema" in printed.out
    assert printed.err == ""  # the exporters' warnings and progress lines are silenced
    assert sorted(p.name for p in out.iterdir()) == ["generator.onnx", "model.json"]
    meta = read_json(out)
    assert meta["classes"] == ["Shirt", "Sneaker", "Bag"] and meta["source"]["weights"] == "generator_ema"
    assert [i["name"] for i in meta["graphs"]["generator.onnx"]["inputs"]] == ["z", "labels"]
    assert meta["graphs"]["generator.onnx"]["inputs"][1] == {"name": "labels", "dtype": "int64", "shape": ["batch"]}
    loaded = load_generator(tmp_path / "run")
    session = assert_parity(out, loaded)  # the EMA weights ...
    raw = get_family("dcgan")(loaded.family.cfg, data).generator.eval()
    ckpt.load_module_state(raw, "generator", load_file(str(next((tmp_path / "run").rglob("weights.safetensors")))), "")
    z, labels = torch.randn(2, 16), torch.tensor([0, 2])
    image, = session.run(["image"], {"z": z.numpy(), "labels": labels.numpy()})
    with torch.no_grad():
        assert np.abs(image - raw(z, labels).numpy()).max() > 1e-3  # ... not the raw generator's


def test_missing_checkpoint_is_one_clear_line(tmp_path, capsys):
    assert main(["export", str(tmp_path / "nothing"), "--out", str(tmp_path / "export")]) == 1
    err = capsys.readouterr().err
    assert "does not exist" in err and err.strip().count("\n") == 0
    assert not (tmp_path / "export").exists()
    with pytest.raises(SystemExit):
        main(["export", str(tmp_path), "--format", "tflite"])
