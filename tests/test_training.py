import json

import pytest
import torch

from conftest import tiny_config
from gauguin.config import ConfigError
from gauguin.training import load_checkpoint, run_config, train
from gauguin.training.ema import EMA
from gauguin.images import make_grid
from gauguin.training.sampler import EpochBatchSampler


def test_sampler_is_resumable_and_sharded():
    a = EpochBatchSampler(100, 8, seed=3)
    first = [a.next_indices() for _ in range(30)]  # crosses the epoch boundary at 12 batches
    b = EpochBatchSampler(100, 8, seed=3)
    for _ in range(17):
        b.next_indices()
    c = EpochBatchSampler(100, 8, seed=3)
    c.load_state_dict(b.state_dict())
    assert all(torch.equal(x, c.next_indices()) for x in first[17:])
    ranks = [EpochBatchSampler(100, 8, seed=3, rank=r, world_size=2).next_indices() for r in (0, 1)]
    assert not set(ranks[0].tolist()) & set(ranks[1].tolist())
    with pytest.raises(ValueError, match="fewer than one per rank"):
        EpochBatchSampler(1, 8, seed=0, world_size=2)


def test_sampler_takes_batches_of_other_sizes_and_reads_old_states():
    sampler = EpochBatchSampler(20, 4, seed=1)
    order = torch.randperm(20, generator=torch.Generator().manual_seed(1))
    assert torch.equal(sampler.next_indices(6), order[:6]) and torch.equal(sampler.next_indices(), order[6:10])
    assert torch.equal(sampler.next_indices(12), torch.randperm(20, generator=torch.Generator().manual_seed(2))[:12])
    assert sampler.state_dict() == {"epoch": 1, "position": 12}  # 12 did not fit the 10 left: a new epoch
    old = EpochBatchSampler(20, 4, seed=1)
    old.load_state_dict({"epoch": 0, "batch": 2})  # checkpoints written before variable batch sizes
    assert torch.equal(old.next_indices(), order[8:12])


def test_sampler_fills_a_batch_larger_than_the_data_from_whole_epochs():
    """10 labelled images, batches of 25: each batch is epochs e, e+1 and half of e+2; every image
    appears 2 or 3 times; a started epoch is left first; a resumed sampler draws the same."""
    def order(epoch):
        return torch.randperm(10, generator=torch.Generator().manual_seed(5 + epoch))

    sampler = EpochBatchSampler(10, 25, seed=5)
    first = sampler.next_indices()
    assert torch.equal(first, torch.cat([order(0), order(1), order(2)[:5]]))
    assert set(torch.bincount(first, minlength=10).tolist()) == {2, 3}
    assert sampler.state_dict() == {"epoch": 3, "position": 0}
    assert torch.equal(sampler.next_indices(4), order(3)[:4])
    resumed = EpochBatchSampler(10, 25, seed=5)
    resumed.load_state_dict(sampler.state_dict())
    assert torch.equal(sampler.next_indices(), torch.cat([order(4), order(5), order(6)[:5]]))  # left epoch 3
    assert torch.equal(resumed.next_indices(), torch.cat([order(4), order(5), order(6)[:5]]))


def test_ema_follows_the_formula():
    net = torch.nn.Linear(1, 1, bias=False)
    ema = EMA(net, decay=0.9)
    start = net.weight.item()
    with torch.no_grad():
        net.weight.fill_(1.0)
    ema.update(net)  # warm-up decay min(0.9, 1/10) = 0.1
    assert ema.model.weight.item() == pytest.approx(0.1 * start + 0.9)


def test_make_grid_layout():
    images = torch.stack([torch.full((1, 2, 2), float(i)) for i in range(3)])
    grid = make_grid(images, columns=2, padding=1)
    assert grid.shape == (1, 7, 7)
    assert grid[0, 1, 1] == 0 and grid[0, 1, 4] == 1 and grid[0, 4, 1] == 2 and grid[0, 4, 4] == -1


def test_exact_resume_is_bit_identical(tmp_path):
    """N steps straight == N/2 steps, stop, resume, N/2 steps: every tensor equal bit for bit."""
    straight = train("dcgan", tiny_config(tmp_path / "a", steps=8, checkpoint_every=4))
    train("dcgan", tiny_config(tmp_path / "b", steps=4, checkpoint_every=4))
    resumed = train("dcgan", run_config("dcgan", None, [f"out_dir={tmp_path / 'b'}", "steps=8"], resume=True), resume=True)
    a, meta_a = load_checkpoint(straight)
    b, meta_b = load_checkpoint(resumed)
    assert meta_a["step"] == meta_b["step"] == 8
    for name in a:
        assert a[name].keys() == b[name].keys()
        for key in a[name]:
            assert torch.equal(a[name][key], b[name][key]), f"{name}:{key} differs after resume"
    assert meta_a["sampler"] == meta_b["sampler"]
    # and training moved the weights at all
    first = load_checkpoint(tmp_path / "a" / "checkpoints" / "step_0000004")[0]["weights.safetensors"]
    assert not torch.equal(first["generator.convs.0.weight"], a["weights.safetensors"]["generator.convs.0.weight"])


def test_a_resumed_auto_run_keeps_the_precision_it_was_trained_in(tmp_path, monkeypatch):
    """precision=auto times bf16 against fp32 on the CPU; a resume must not re-decide (a busy machine can flip
    a close call), or the continuation is no longer exact."""
    import gauguin.training.loop as loop

    monkeypatch.setattr(loop, "native_bf16", lambda: True)
    monkeypatch.setattr(loop, "bf16_pays_on_cpu", lambda: False)  # the first run's timing: fp32
    path = train("dcgan", tiny_config(tmp_path / "run", steps=2, eval_every=0))
    assert load_checkpoint(path)[1]["precision"] == "fp32"
    monkeypatch.setattr(loop, "bf16_pays_on_cpu", lambda: True)  # the resume's timing would say bf16
    resumed = loop.Trainer("dcgan", run_config("dcgan", None, [f"out_dir={tmp_path / 'run'}", "steps=4"],
                                               resume=True), resume=True)
    assert resumed.precision == "fp32"
    assert loop.Trainer("dcgan", tiny_config(tmp_path / "new", eval_every=0)).precision == "bf16"  # a new run times


def test_a_bf16_run_resumed_on_a_cpu_without_bf16_continues_in_fp32_and_says_so(monkeypatch, tmp_path):
    import gauguin.training.loop as loop

    monkeypatch.setattr(loop, "native_bf16", lambda: True)
    monkeypatch.setattr(loop, "bf16_pays_on_cpu", lambda: True)
    path = train("dcgan", tiny_config(tmp_path / "run", steps=2, eval_every=0))
    assert load_checkpoint(path)[1]["precision"] == "bf16"
    monkeypatch.setattr(loop, "native_bf16", lambda: False)  # moved to an AVX2 machine: bf16 would be emulated
    cfg = run_config("dcgan", None, [f"out_dir={tmp_path / 'run'}", "steps=4"], resume=True)
    with pytest.warns(UserWarning, match="continues in fp32"):
        assert loop.Trainer("dcgan", cfg, resume=True).precision == "fp32"


def test_run_writes_samples_logs_and_keeps_last_k_and_best(tmp_path):
    cfg = tiny_config(tmp_path, steps=8, keep_checkpoints=2, log_every=1)
    train("dcgan", cfg)
    assert sorted(p.name for p in (tmp_path / "checkpoints").iterdir()) == ["best", "step_0000006", "step_0000008"]
    assert (tmp_path / "samples" / "latest.png").is_file()
    assert list((tmp_path / "tensorboard").glob("events.out.tfevents.*"))
    rows = [json.loads(line) for line in (tmp_path / "metrics.jsonl").read_text().splitlines()]
    logged = [r for r in rows if "d_loss" in r]
    assert [r["step"] for r in logged] == list(range(1, 9))
    assert all(r["grad_norm_g"] > 0 and r["grad_norm_d"] > 0 and r["img_per_s"] > 0 for r in logged)
    best = load_checkpoint(tmp_path / "checkpoints" / "best")[1]
    assert best["best_metric"] == min(swd for _, swd in best["metric_history"])


def test_d_steps_per_g_step_and_ttur(tmp_path):
    cfg = tiny_config(tmp_path, steps=2, d_steps_per_g_step=3, lr_g=1e-4, lr_d=4e-4, betas=(0.0, 0.999))
    meta = load_checkpoint(train("dcgan", cfg))[1]
    assert meta["sampler"]["position"] == 6 * cfg.batch_size  # three D batches per G step
    groups = {k: v["param_groups"][0] for k, v in meta["optimizers"].items()}
    assert (groups["opt_g"]["lr"], groups["opt_d"]["lr"]) == (1e-4, 4e-4)
    assert groups["opt_g"]["betas"] == [0.0, 0.999]
    adam_steps = load_checkpoint(tmp_path / "checkpoints" / "step_0000002")[0]["train_state.safetensors"]
    assert adam_steps["opt_d.state.0.step"].item() == 6 and adam_steps["opt_g.state.0.step"].item() == 2


def test_an_existing_run_is_not_overwritten(tmp_path):
    train("dcgan", tiny_config(tmp_path, steps=2))
    with pytest.raises(ConfigError, match="pass --resume"):
        train("dcgan", tiny_config(tmp_path, steps=2))
    with pytest.raises(ConfigError, match="no checkpoint"):
        run_config("dcgan", None, [f"out_dir={tmp_path / 'empty'}"], resume=True)


def test_trains_on_a_folder_of_rgb_images(tmp_path):
    import numpy as np
    from PIL import Image

    rng = np.random.default_rng(0)
    for cls in ("cats", "dogs"):
        (tmp_path / "data" / cls).mkdir(parents=True)
        for i in range(12):
            size = (40, 30) if i % 2 else (32, 32)  # mixed sizes are resized and cropped
            Image.fromarray(rng.integers(0, 255, (*size[::-1], 3), dtype=np.uint8)).save(tmp_path / "data" / cls / f"{i}.png")
    cfg = tiny_config(tmp_path / "run", dataset="folder", data_root=str(tmp_path / "data"), image_size=32,
                      channels=3, batch_size=8, steps=2, eval_every=2)  # eval on 24 images
    meta = load_checkpoint(train("dcgan", cfg))[1]
    assert meta["classes"] == ["cats", "dogs"] and meta["num_classes"] == 2
    assert Image.open(tmp_path / "run" / "samples" / "latest.png").mode == "RGB"


def test_max_seconds_ends_a_run_with_a_checkpoint_and_a_grid(tmp_path):
    """A time-limited run (the augmentation experiment's GANs, time-budgeted benchmarks) stops after
    max_seconds of training at a step well short of `steps`, and ends like a finished run."""
    cfg = tiny_config(tmp_path, steps=10**6, max_seconds=1.0, checkpoint_every=10**6, sample_every=10**6,
                      eval_every=0, log_every=10**6)
    last = train("dcgan", cfg)
    step = int(last.name.rpartition("_")[2])
    assert 1 <= step < 10**6
    assert (tmp_path / "samples" / f"step_{step:07d}.png").is_file()
    assert load_checkpoint(last)[1]["step"] == step


def test_auto_precision_is_bf16_only_where_it_is_native_and_timed_faster(monkeypatch):
    from gauguin.nn import layers
    from gauguin.training import loop

    cpu = torch.device("cpu")
    for native, pays, expected in ((False, True, "fp32"), (True, False, "fp32"), (True, True, "bf16")):
        monkeypatch.setattr(loop, "native_bf16", lambda native=native: native)
        monkeypatch.setattr(loop, "bf16_pays_on_cpu", lambda pays=pays: pays)
        assert loop.resolve_precision("auto", cpu) == expected
        assert loop.resolve_precision("fp32", cpu) == "fp32"
    # the timing itself: a boolean, measured once per process, never on a CPU without native bf16
    layers.bf16_pays_on_cpu.cache_clear()
    monkeypatch.setattr(layers, "native_bf16", lambda: False)
    assert layers.bf16_pays_on_cpu() is False
    layers.bf16_pays_on_cpu.cache_clear()


def test_the_bf16_timing_is_made_once_per_cpu_and_kept_so_every_run_decides_alike(monkeypatch, tmp_path):
    from gauguin.nn import layers

    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path))
    monkeypatch.setattr(layers, "native_bf16", lambda: True)
    monkeypatch.setattr(layers, "amx", lambda: False)
    timings = []

    def timed(ratio):
        def ratio_of_this_run():
            timings.append(ratio)
            return ratio
        monkeypatch.setattr(layers, "bf16_speed_ratio", ratio_of_this_run)

    def decide():
        layers.bf16_pays_on_cpu.cache_clear()  # a new process
        return layers.bf16_pays_on_cpu()

    try:
        timed(0.7)
        assert decide() is True and timings == [0.7]
        timed(1.3)  # a later run would time it the other way: the kept answer holds
        assert decide() is True and timings == [0.7]
        cache = tmp_path / "gauguin" / "precision.json"
        cache.write_text("{not json")  # a damaged cache is timed again and rewritten
        assert decide() is False and timings == [0.7, 1.3]
        assert list(json.loads(cache.read_text()).values()) == [{"bf16_over_fp32": 1.3, "margin": layers.BF16_SPEED_MARGIN}]
        monkeypatch.setattr(layers, "amx", lambda: True)  # AMX: bf16 without timing
        assert decide() is True and timings == [0.7, 1.3]
    finally:
        layers.bf16_pays_on_cpu.cache_clear()


def test_the_bf16_timing_itself_is_a_positive_ratio():
    from gauguin.nn import layers

    assert 0 < layers.bf16_speed_ratio(seconds=0.01) < float("inf")
