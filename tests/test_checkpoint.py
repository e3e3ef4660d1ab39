import json

import pytest
import torch

from gauguin import checkpoint as ckpt


def _files(value: float):
    return {"weights.safetensors": {"net.w": torch.full((3, 3), value)}, "train_state.safetensors": {"x": torch.arange(4)}}


def _meta(step: int, **changes) -> dict:
    """A meta.json as the Trainer writes it (less the ``files`` that save_checkpoint adds)."""
    optimizer = {"param_groups": [], "scalars": {}}
    meta = {"format": ckpt.FORMAT, "family": "dcgan", "config": {"a": [1, 2]}, "num_classes": 10, "classes": [],
            "data": {}, "step": step, "time": "2026-12-01T00:00:00", "world_size": 1, "sampler": {},
            "optimizers": {"opt_g": optimizer, "opt_d": optimizer}, "schedulers": {"sched_g": {}, "sched_d": {}},
            "ema_updates": 0, "best_metric": None, "metric_history": [], "rng": [{}]}
    return {**meta, **changes}


def test_round_trip(tmp_path):
    path = ckpt.save_checkpoint(tmp_path / "step_0000001", _files(1.5), _meta(1))
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
    ckpt.save_checkpoint(tmp_path / "step_0000001", _files(1.0), _meta(1))
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
        ckpt.save_checkpoint(tmp_path / "step_0000002", _files(2.0), _meta(2))
    assert [p.name for p in ckpt.step_checkpoints(tmp_path)] == ["step_0000001"]
    assert not list(tmp_path.glob(".*tmp"))
    path, tensors, meta = ckpt.load_latest(tmp_path)
    assert meta["step"] == 1 and tensors["weights.safetensors"]["net.w"][0, 0] == 1.0


def test_overwrite_in_place_is_atomic(tmp_path, monkeypatch):
    ckpt.save_checkpoint(tmp_path / "best", _files(1.0), _meta(1))
    monkeypatch.setattr(ckpt, "save_file", lambda *a: (_ for _ in ()).throw(OSError("disk full")))
    with pytest.raises(OSError):
        ckpt.save_checkpoint(tmp_path / "best", _files(2.0), _meta(2))
    assert ckpt.load_checkpoint(tmp_path / "best")[1]["step"] == 1


@pytest.mark.parametrize("damage", ["truncate", "flip", "meta"])
def test_corrupt_checkpoint_is_named_and_the_previous_one_used(tmp_path, damage):
    ckpt.save_checkpoint(tmp_path / "step_0000001", _files(1.0), _meta(1))
    newest = ckpt.save_checkpoint(tmp_path / "step_0000002", _files(2.0), _meta(2))
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
        ckpt.save_checkpoint(tmp_path / f"step_{step:07d}", _files(step), _meta(step))
    ckpt.prune(tmp_path, keep=2)
    assert [p.name for p in ckpt.step_checkpoints(tmp_path)] == ["step_0000004", "step_0000005"]


def test_weights_that_do_not_fit_get_a_clear_error():
    net = torch.nn.Linear(3, 2)
    tensors = {"generator.weight": torch.zeros(5, 3), "generator.bias": torch.zeros(5)}
    with pytest.raises(ckpt.CheckpointError, match="do not fit this network"):
        ckpt.load_module_state(net, "generator", tensors, "x.safetensors")


# ------------------------------------------------------------------ meta.json schema (issue 15, item 3)
def _drop(meta: dict, dotted: str) -> dict:
    """``meta`` without the key at the dotted path (``files.weights.safetensors.bytes``)."""
    meta = json.loads(json.dumps(meta))
    parent, key = meta, dotted
    if dotted.startswith("files."):
        name, _, field = dotted[len("files."):].rpartition(".")
        parent, key = meta["files"][name], field
    del parent[key]
    return meta


@pytest.mark.parametrize("damage", ["files", "family", "config", "optimizers", "files.weights.safetensors.bytes",
                                    "files.train_state.safetensors.sha256", "a JSON list", "step as a string",
                                    "rng of another world size"])
def test_a_meta_json_off_its_schema_is_corrupt_and_the_previous_checkpoint_used(tmp_path, damage):
    ckpt.save_checkpoint(tmp_path / "step_0000001", _files(1.0), _meta(1))
    newest = ckpt.save_checkpoint(tmp_path / "step_0000002", _files(2.0), _meta(2))
    meta = json.loads((newest / "meta.json").read_text())
    if damage == "a JSON list":
        meta = [meta]
    elif damage == "step as a string":
        meta["step"] = "2"
    elif damage == "rng of another world size":
        meta["rng"] = [{}, {}]
    else:
        meta = _drop(meta, damage)
    (newest / "meta.json").write_text(json.dumps(meta))
    with pytest.raises(ckpt.CheckpointError, match=r"meta\.json is corrupt"):
        ckpt.load_checkpoint(newest)
    assert ckpt.latest_meta(tmp_path)[0].name == "step_0000001"
    with pytest.warns(UserWarning, match="moved it to"):
        path, _, meta = ckpt.resume_point(tmp_path)
    assert meta["step"] == 1 and path.name == "step_0000001"
    assert (tmp_path / "step_0000002.corrupt" / "meta.json").is_file(), "the corrupt checkpoint is kept, aside"


def test_save_refuses_a_meta_that_load_would_refuse(tmp_path):
    with pytest.raises(ckpt.CheckpointError, match="'step' must be an integer"):
        ckpt.save_checkpoint(tmp_path / "step_0000001", _files(1.0), {**_meta(1), "step": -1})
    assert not list(tmp_path.iterdir())


# ------------------------------------------------------------------ resume never destroys (items 1, 6)
@pytest.mark.parametrize("damage", ["truncate", "wrong sha256 in meta.json"])
def test_resume_refuses_when_no_checkpoint_verifies_and_changes_nothing(tmp_path, damage):
    for step in (1, 2, 3):
        path = ckpt.save_checkpoint(tmp_path / f"step_{step:07d}", _files(step), _meta(step))
        if damage == "truncate":
            with open(path / "weights.safetensors", "r+b") as f:
                f.truncate(40)
        else:
            meta = json.loads((path / "meta.json").read_text())
            meta["files"]["weights.safetensors"]["sha256"] = "0" * 64
            (path / "meta.json").write_text(json.dumps(meta))
    before = {p.relative_to(tmp_path): p.read_bytes() for p in tmp_path.rglob("*") if p.is_file()}
    with pytest.raises(ckpt.CheckpointError, match="none of the 3 checkpoint") as err:
        ckpt.resume_point(tmp_path)
    message = str(err.value)
    assert all(f"step_000000{s}" in message for s in (1, 2, 3)) and "out_dir=" in message
    assert "\n" not in message
    after = {p.relative_to(tmp_path): p.read_bytes() for p in tmp_path.rglob("*") if p.is_file()}
    assert after == before


def test_recovery_of_a_write_killed_between_its_two_renames(tmp_path):
    ckpt.save_checkpoint(tmp_path / "best", _files(1.0), _meta(1))
    (tmp_path / "best").rename(tmp_path / ".best.old")  # killed after moving the old best aside
    (tmp_path / ".step_0000002.tmp").mkdir()  # and another write killed half-way
    ckpt.recover_interrupted_writes(tmp_path)
    assert ckpt.load_checkpoint(tmp_path / "best")[1]["step"] == 1
    assert sorted(p.name for p in tmp_path.iterdir()) == ["best"]


def test_a_failed_write_names_the_folder_and_the_fix(tmp_path, monkeypatch):
    import errno

    ckpt.save_checkpoint(tmp_path / "step_0000001", _files(1.0), _meta(1))

    def full_disk(tensors, filename):
        raise OSError(errno.ENOSPC, "No space left on device")

    monkeypatch.setattr(ckpt, "save_file", full_disk)
    with pytest.raises(ckpt.CheckpointWriteError) as err:
        ckpt.save_checkpoint(tmp_path / "step_0000002", _files(2.0), _meta(2))
    message = str(err.value)
    assert "step_0000002" in message and "free space" in message and "intact" in message
    assert err.value.errno == errno.ENOSPC
    assert [p.name for p in tmp_path.iterdir()] == ["step_0000001"]


def test_a_checkpoint_without_training_state_samples_but_does_not_resume(tmp_path):
    training_keys = set(ckpt.TRAINING_SCHEMA)
    meta = {k: v for k, v in _meta(1).items() if k not in training_keys}
    path = ckpt.save_checkpoint(tmp_path / "step_0000001", {"weights.safetensors": _files(1.0)["weights.safetensors"]},
                                meta)
    assert ckpt.load_checkpoint(path)[1]["step"] == 1  # sampling, export, serving
    with pytest.raises(ckpt.CheckpointError, match="none of the 1 checkpoint.*no 'world_size'"):
        ckpt.resume_point(tmp_path)
    partial = dict(_meta(1), optimizers=None)  # training keys present but one wrong: corrupt for every use
    with pytest.raises(ckpt.CheckpointError, match="'optimizers' must be"):
        ckpt.validate_meta({**partial, "files": ckpt.read_meta(path)["files"]}, tmp_path / "meta.json")
