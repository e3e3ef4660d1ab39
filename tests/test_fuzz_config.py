"""Property-based fuzzing (hypothesis) of config parsing and meta.json validation: whatever comes in,
the answer is a config / a meta or the module's one clear error, never another exception."""
import dataclasses
import json

import pytest
import torch
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from gauguin.config import ConfigError
from gauguin.models.dcgan import DCGANConfig
from gauguin import checkpoint as ckpt

FUZZ = settings(max_examples=200, deadline=1000, suppress_health_check=[HealthCheck.function_scoped_fixture])
KEYS = [f.name for f in dataclasses.fields(DCGANConfig)]

json_values = st.recursive(
    st.none() | st.booleans() | st.integers(min_value=-2**80, max_value=2**80) | st.floats(allow_nan=True)
    | st.text(max_size=12),
    lambda children: st.lists(children, max_size=4) | st.dictionaries(st.text(max_size=6), children, max_size=4),
    max_leaves=12)


@FUZZ
@given(st.dictionaries(st.sampled_from(KEYS) | st.text(max_size=10) | st.integers(), json_values, max_size=6))
def test_from_dict_returns_a_config_or_a_config_error(values):
    try:
        cfg = DCGANConfig.from_dict(values)
    except ConfigError as err:
        assert "\n" not in str(err) and str(err)
        return
    cfg.validate()  # what it returned is valid
    assert DCGANConfig.from_dict(cfg.to_dict()) == cfg  # and round-trips


@FUZZ
@given(st.lists(st.tuples(st.sampled_from(KEYS) | st.text(max_size=8), st.text(max_size=20)), max_size=4))
def test_overrides_parse_or_raise_a_config_error(pairs):
    overrides = [f"{key}={text}" for key, text in pairs]
    try:
        DCGANConfig.load(None, overrides)
    except ConfigError as err:
        assert "\n" not in str(err)


@FUZZ
@given(st.binary(max_size=200) | st.text(max_size=200).map(str.encode))
def test_a_config_file_of_any_bytes_loads_or_raises_a_config_error(tmp_path_factory, content):
    path = tmp_path_factory.mktemp("yaml") / "run.yaml"
    path.write_bytes(content)
    try:
        DCGANConfig.load(path)
    except ConfigError as err:
        assert "\n" not in str(err) and str(path) in str(err) or "config" in str(err)


def _valid_meta() -> dict:
    optimizer = {"param_groups": [{"lr": 2e-4}], "scalars": {}}
    return {"format": ckpt.FORMAT, "family": "dcgan", "config": {}, "num_classes": 10, "classes": [], "data": {},
            "step": 3, "time": "t", "world_size": 1, "sampler": {}, "optimizers": {"opt_g": optimizer, "opt_d": optimizer},
            "schedulers": {"sched_g": {}, "sched_d": {}}, "ema_updates": 0, "best_metric": None, "metric_history": [],
            "rng": [{}], "precision": "fp32", "files": {name: {"sha256": "a" * 64, "bytes": 10} for name in ckpt.TENSOR_FILES}}


@FUZZ
@given(st.lists(st.tuples(st.sampled_from(sorted(_valid_meta())), st.booleans(), json_values), max_size=4))
def test_validate_meta_accepts_or_names_the_corruption(changes):
    meta = _valid_meta()
    for key, delete, value in changes:
        if delete:
            meta.pop(key, None)
        else:
            meta[key] = value
    try:
        assert ckpt.validate_meta(meta, ckpt.Path("m/meta.json")) is meta
    except ckpt.CheckpointError as err:
        assert "m/meta.json is corrupt" in str(err)


@FUZZ
@given(json_values | st.binary(max_size=100))
def test_load_checkpoint_of_any_meta_json_raises_only_checkpoint_error(tmp_path_factory, content):
    folder = tmp_path_factory.mktemp("ckpt")
    (folder / "meta.json").write_bytes(content if isinstance(content, bytes) else json.dumps(content).encode())
    with pytest.raises(ckpt.CheckpointError):
        ckpt.load_checkpoint(folder)


def test_precision_is_optional_for_older_checkpoints_but_checked_where_present():
    meta = _valid_meta()
    del meta["precision"]  # a checkpoint written before the key existed
    assert ckpt.validate_meta(meta, ckpt.Path("m/meta.json")) is meta
    with pytest.raises(ckpt.CheckpointError, match=r"m/meta.json is corrupt \('precision' must be 'fp32' or 'bf16'"):
        ckpt.validate_meta({**meta, "precision": "fp16"}, ckpt.Path("m/meta.json"))


def test_the_fuzzed_meta_template_is_the_trainers(tmp_path):
    """The template above has every key the Trainer writes (so the fuzzing covers the real schema)."""
    from conftest import tiny_config
    from gauguin.training import train

    meta = ckpt.read_meta(train("dcgan", tiny_config(tmp_path, steps=1, eval_every=0)), training=True)
    assert set(meta) == set(_valid_meta()) == set(ckpt.META_SCHEMA) | set(ckpt.TRAINING_SCHEMA) | set(ckpt.OPTIONAL_SCHEMA)
    assert torch.tensor(meta["step"]) == 1
