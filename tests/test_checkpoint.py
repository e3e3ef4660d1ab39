import json

import pytest
import torch

from gauguin.training import checkpoint as ckpt


def _files(value: float):
    return {"weights.safetensors": {"net.w": torch.full((3, 3), value)}, "train_state.safetensors": {"x": torch.arange(4)}}


def test_round_trip(tmp_path):
    path = ckpt.save_checkpoint(tmp_path / "step_0000001", _files(1.5), {"step": 1, "config": {"a": [1, 2]}})
    tensors, meta = ckpt.load_checkpoint(path)
    assert torch.equal(tensors["weights.safetensors"]["net.w"], torch.full((3, 3), 1.5))
    assert meta["step"] == 1 and meta["config"] == {"a": [1, 2]}
    assert set(meta["files"]) == {"weights.safetensors", "train_state.safetensors"}


def test_optimizer_round_trip_is_exact():
    net = torch.nn.Linear(3, 2)
    opt = torch.optim.Adam(net.parameters(), lr=1e-3, betas=(0.0, 0.99))
    net(torch.randn(5, 3)).sum().backward()
    opt.step()
    tensors, info = ckpt.flatten_optimizer(opt, "opt")
    info = json.loads(json.dumps(info))  # as it travels through meta.json
    fresh = torch.optim.Adam(net.parameters(), lr=1.0)
    ckpt.unflatten_optimizer(fresh, "opt", tensors, info)
    a, b = opt.state_dict(), fresh.state_dict()
    assert a["param_groups"] == b["param_groups"]
    for i in a["state"]:
        for k in a["state"][i]:
            assert torch.equal(torch.as_tensor(a["state"][i][k]), torch.as_tensor(b["state"][i][k]))


def test_a_killed_writer_leaves_the_previous_checkpoint(tmp_path, monkeypatch):
    ckpt.save_checkpoint(tmp_path / "step_0000001", _files(1.0), {"step": 1})
    real_save = ckpt.save_file
    calls = []

    def dying_save(tensors, filename):
        calls.append(filename)
        real_save(tensors, filename)
        if len(calls) == 2:
            with open(filename, "r+b") as f:  # half-written second file, then the process "dies"
                f.truncate(10)
            raise KeyboardInterrupt

    monkeypatch.setattr(ckpt, "save_file", dying_save)
    with pytest.raises(KeyboardInterrupt):
        ckpt.save_checkpoint(tmp_path / "step_0000002", _files(2.0), {"step": 2})
    assert [p.name for p in ckpt.step_checkpoints(tmp_path)] == ["step_0000001"]
    assert not list(tmp_path.glob(".*tmp"))
    path, tensors, meta = ckpt.load_latest(tmp_path)
    assert meta["step"] == 1 and tensors["weights.safetensors"]["net.w"][0, 0] == 1.0


def test_overwrite_in_place_is_atomic(tmp_path, monkeypatch):
    ckpt.save_checkpoint(tmp_path / "best", _files(1.0), {"step": 1})
    monkeypatch.setattr(ckpt, "save_file", lambda *a: (_ for _ in ()).throw(OSError("disk full")))
    with pytest.raises(OSError):
        ckpt.save_checkpoint(tmp_path / "best", _files(2.0), {"step": 2})
    assert ckpt.load_checkpoint(tmp_path / "best")[1]["step"] == 1


@pytest.mark.parametrize("damage", ["truncate", "flip", "meta"])
def test_corrupt_checkpoint_is_named_and_the_previous_one_used(tmp_path, damage):
    ckpt.save_checkpoint(tmp_path / "step_0000001", _files(1.0), {"step": 1})
    newest = ckpt.save_checkpoint(tmp_path / "step_0000002", _files(2.0), {"step": 2})
    target = newest / ("meta.json" if damage == "meta" else "weights.safetensors")
    data = bytearray(target.read_bytes())
    if damage == "truncate":
        data = data[: len(data) // 2]
    else:
        data[-3] ^= 0xFF
    target.write_bytes(bytes(data))
    with pytest.raises(ckpt.CheckpointError, match=str(target.name)):
        ckpt.load_checkpoint(newest)
    with pytest.warns(UserWarning, match="skipping corrupt checkpoint"):
        path, _, meta = ckpt.load_latest(tmp_path)
    assert meta["step"] == 1 and path.name == "step_0000001"


def test_not_a_checkpoint(tmp_path):
    with pytest.raises(ckpt.CheckpointError, match="not a gauguin checkpoint"):
        ckpt.load_checkpoint(tmp_path)


def test_prune_keeps_the_newest(tmp_path):
    for step in range(1, 6):
        ckpt.save_checkpoint(tmp_path / f"step_{step:07d}", _files(step), {"step": step})
    ckpt.prune(tmp_path, keep=2)
    assert [p.name for p in ckpt.step_checkpoints(tmp_path)] == ["step_0000004", "step_0000005"]


def test_weights_that_do_not_fit_get_a_clear_error():
    net = torch.nn.Linear(3, 2)
    tensors = {"generator.weight": torch.zeros(5, 3), "generator.bias": torch.zeros(5)}
    with pytest.raises(ckpt.CheckpointError, match="do not fit this network"):
        ckpt.load_module_state(net, "generator", tensors, "x.safetensors")
