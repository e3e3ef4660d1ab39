"""Typed run configs: dataclasses with the papers' defaults, loadable from YAML and ``key=value``.

Every family has one config class deriving from :class:`TrainConfig`, whose fields are the
options the shared training loop understands. Unknown keys and badly typed values raise
:class:`ConfigError` naming the key and the closest valid one.
"""
from __future__ import annotations

import dataclasses
import difflib
import types
import typing
from pathlib import Path
from typing import Any, Literal

import yaml


class ConfigError(ValueError):
    """A config key or value is wrong; the message says which and how to fix it."""


@dataclasses.dataclass
class TrainConfig:
    """Options of the shared training loop (``gauguin.training``)."""

    # data
    dataset: str = "fashion_mnist"  # "fashion_mnist" or "folder"
    data_root: str = ""  # folder of images (dataset=folder) or of the IDX files ("" = search)
    image_size: int = 32
    channels: int = 1
    # optimisation
    steps: int = 5000  # generator steps
    batch_size: int = 128  # global batch; split over ranks under torchrun
    lr_g: float = 2e-4
    lr_d: float = 2e-4
    betas: tuple[float, float] = (0.5, 0.999)  # Adam's (beta1, beta2); RMSprop ignores them
    optimizer: Literal["adam", "rmsprop", "sgd"] = "adam"  # sgd: plain SGD (SimGAN's)
    d_steps_per_g_step: int = 1  # discriminator updates per iteration
    g_steps_per_iteration: int = 1  # generator updates per iteration, after D's (SimGAN's K_g)
    lr_decay_start: float = 1.0  # fraction of `steps` after which lr decays linearly to 0 (1.0 = constant)
    ema_decay: float = 0.999  # EMA of G weights used for sampling (0 = no EMA)
    precision: Literal["auto", "fp32", "bf16"] = "auto"  # auto: bf16 where the hardware has it natively
    channels_last: bool = True
    seed: int = 0
    device: str = "auto"  # "auto", "cpu", "cuda", "cuda:1", ...
    # output
    out_dir: str = "runs/dcgan"
    log_every: int = 50
    sample_every: int = 500
    checkpoint_every: int = 1000
    keep_checkpoints: int = 3  # keep the last K (the best is kept on top)
    eval_every: int = 1000  # evaluate every N steps (0 = never): SWD always, plus `eval_metrics`
    eval_metrics: tuple[str, ...] = ()  # also computed, e.g. [fid, kid, is, pr, accuracy] (gauguin.metrics)
    eval_samples: int = 1024  # generated images per evaluation (as many real ones)
    eval_extractor: str = "fmnist"  # feature extractor of eval_metrics: fmnist, or inception with eval_weights
    eval_weights: str = ""  # weights file of the extractor ("" = its default)
    eval_segmenter: str = ""  # segmenter of the miou metric (semantic families; "" = gauguin's own)
    best_metric: Literal["swd", "fid"] = "swd"  # which evaluated metric picks the "best" checkpoint
    progress: bool = True

    # ------------------------------------------------------------------ loading
    @classmethod
    def from_dict(cls, values: dict[str, Any], source: str = "config") -> "TrainConfig":
        fields = {f.name: f for f in dataclasses.fields(cls)}
        hints = typing.get_type_hints(cls)
        kwargs = {}
        for key, value in values.items():
            if key not in fields:
                raise ConfigError(f"{source}: unknown key {key!r}{_suggest(key, fields)}")
            kwargs[key] = _coerce(value, hints[key], f"{source}: {key}")
        cfg = cls(**kwargs)
        cfg.validate()
        return cfg

    @classmethod
    def read_values(cls, path: str | Path | None = None, overrides: list[str] = ()) -> dict[str, Any]:
        """Raw values of a YAML file then ``key=value`` overrides (values parsed as YAML)."""
        values: dict[str, Any] = {}
        if path is not None:
            path = Path(path)
            if not path.is_file():
                raise ConfigError(f"config file {path} does not exist")
            try:
                loaded = yaml.safe_load(path.read_text()) or {}
            except yaml.YAMLError as err:
                raise ConfigError(f"config file {path} is not valid YAML: {err}") from None
            if not isinstance(loaded, dict):
                raise ConfigError(f"config file {path} must hold a mapping of key: value")
            values.update(loaded)
        for item in overrides:
            key, sep, text = item.partition("=")
            if not sep:
                raise ConfigError(f"override {item!r} must look like key=value")
            values[key.strip()] = yaml.safe_load(text) if text.strip() else ""
        return values

    @classmethod
    def load(cls, path: str | Path | None = None, overrides: list[str] = ()) -> "TrainConfig":
        """Defaults, then the YAML file, then ``key=value`` overrides."""
        return cls.from_dict(cls.read_values(path, overrides))

    def to_dict(self) -> dict[str, Any]:
        return {f.name: _plain(getattr(self, f.name)) for f in dataclasses.fields(self)}

    def validate(self) -> None:
        """Cross-field checks; families extend this."""
        positive = ["image_size", "channels", "steps", "batch_size", "d_steps_per_g_step", "g_steps_per_iteration",
                    "log_every",
                    "sample_every", "checkpoint_every", "keep_checkpoints", "eval_samples"]
        for key in positive:
            if getattr(self, key) <= 0:
                raise ConfigError(f"{key} must be > 0, got {getattr(self, key)}")
        if not 0.0 <= self.ema_decay < 1.0:
            raise ConfigError(f"ema_decay must be in [0, 1), got {self.ema_decay}")
        if not 0.0 <= self.lr_decay_start <= 1.0:
            raise ConfigError(f"lr_decay_start must be in [0, 1], got {self.lr_decay_start}")
        if self.best_metric == "fid" and "fid" not in self.eval_metrics:
            raise ConfigError("best_metric=fid needs fid in eval_metrics (e.g. eval_metrics=[fid])")
        if self.channels not in (1, 3):
            raise ConfigError(f"channels must be 1 (grey) or 3 (RGB), got {self.channels}")


def _suggest(key: str, valid) -> str:
    close = difflib.get_close_matches(key, list(valid), n=1, cutoff=0.5)
    return f"; did you mean {close[0]!r}?" if close else f"; valid keys: {', '.join(sorted(valid))}"


def _coerce(value: Any, hint: Any, where: str) -> Any:
    origin = typing.get_origin(hint)
    if origin is Literal:
        choices = typing.get_args(hint)
        if value not in choices:
            raise ConfigError(f"{where} must be one of {list(choices)}, got {value!r}{_suggest(str(value), choices)}")
        return value
    if origin in (typing.Union, types.UnionType):
        args = [a for a in typing.get_args(hint) if a is not type(None)]
        if value is None:
            return None
        return _coerce(value, args[0], where)
    if origin is tuple and typing.get_args(hint)[1:] == (Ellipsis,):  # any length; "a,b" also accepted
        if isinstance(value, str):
            value = [v.strip() for v in value.split(",") if v.strip()]
        if not isinstance(value, (list, tuple)):
            raise ConfigError(f"{where} must be a list, got {value!r}")
        return tuple(_coerce(v, typing.get_args(hint)[0], where) for v in value)
    if origin is tuple:
        args = typing.get_args(hint)
        if not isinstance(value, (list, tuple)) or len(value) != len(args):
            raise ConfigError(f"{where} must be a list of {len(args)} values, got {value!r}")
        return tuple(_coerce(v, a, where) for v, a in zip(value, args))
    if hint is float and isinstance(value, (int, float)) and not isinstance(value, bool):
        return float(value)
    if hint is float and isinstance(value, str):  # YAML 1.1 reads "1e-4" (no dot) as a string
        try:
            return float(value)
        except ValueError:
            pass
    if hint is str and isinstance(value, (int, float)) and not isinstance(value, bool):
        return str(value)
    if hint in (int, float, str, bool) and (type(value) is not hint):
        raise ConfigError(f"{where} must be {hint.__name__}, got {value!r} ({type(value).__name__})")
    return value


def _plain(value: Any) -> Any:
    return list(value) if isinstance(value, tuple) else value
