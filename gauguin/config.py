"""Typed run configs: dataclasses with the papers' defaults, loadable from YAML and ``key=value``.

Every family has one config class deriving from :class:`TrainConfig`, whose fields are the
options the shared training loop understands. Unknown keys and badly typed values raise
:class:`ConfigError` naming the key and the closest valid one.
"""
from __future__ import annotations

import dataclasses
import difflib
import math
import re
import types
import typing
from pathlib import Path
from typing import Any, ClassVar, Literal

import yaml


# what may pick the "best" checkpoint: the scalar -> (the eval_metrics entry that gives it, higher is better)
BEST_METRICS = {"swd": ("", False), "fid": ("fid", False), "kid": ("kid", False), "accuracy": ("accuracy", True),
                "precision": ("pr", True), "recall": ("pr", True), "is": ("is", True), "miou": ("miou", True),
                "pixel_accuracy": ("miou", True)}


class ConfigError(ValueError):
    """A config key or value is wrong; the message says which and how to fix it."""


@dataclasses.dataclass
class TrainConfig:
    """Options of the shared training loop (``gauguin.training``).

    Every number must be finite and >= 0; the fields named in ``positive`` (here and in the family
    configs, collected over the class hierarchy) must be > 0.
    """

    positive: ClassVar[tuple[str, ...]] = (
        "image_size", "channels", "steps", "batch_size", "lr_g", "lr_d", "d_steps_per_g_step",
        "g_steps_per_iteration", "log_every", "sample_every", "checkpoint_every", "keep_checkpoints", "eval_samples")
    MAX_SEED: ClassVar[int] = 2**32 - 1

    # data
    dataset: str = "fashion-mnist"  # KIND[:PATH]: fashion-mnist, folder:PATH, ... (gauguin.data.build)
    data_root: str = ""  # folder of images (dataset=folder) or of the IDX files ("" = search)
    image_size: int = 32
    channels: int = 1
    labels_per_class: int = 0  # few labels: only N training images of each class, class-balanced (0 = all)
    subset_seed: int = 0  # which N images (gauguin.data.subsets.balanced_subset)
    # optimisation
    steps: int = 5000  # generator steps
    max_seconds: float = 0.0  # also stop (with a checkpoint) after this much training wall time (0 = no limit)
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
    best_metric: str = "swd"  # the evaluated scalar that picks the "best" checkpoint: swd, or one of eval_metrics' (BEST_METRICS)
    progress: bool = True

    # ------------------------------------------------------------------ loading
    @classmethod
    def from_dict(cls, values: dict[str, Any], source: str = "config") -> "TrainConfig":
        if not isinstance(values, dict):
            raise ConfigError(f"{source} must be a mapping of key: value, got {type(values).__name__}")
        fields = {f.name: f for f in dataclasses.fields(cls)}
        hints = typing.get_type_hints(cls)
        kwargs = {}
        for key, value in values.items():
            if not isinstance(key, str):
                raise ConfigError(f"{source}: key {key!r} ({type(key).__name__}) is not an option name; keys are "
                                  "names such as steps or lr_g")
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
                raise ConfigError(f"config file {path} does not exist" + (" (it is a folder)" if path.is_dir() else ""))
            try:
                text = path.read_bytes().decode("utf-8")
            except UnicodeDecodeError as err:
                raise ConfigError(f"config file {path} is not UTF-8 text (byte {err.start}); save it as UTF-8") from None
            except OSError as err:
                raise ConfigError(f"config file {path} cannot be read: {err.strerror}") from None
            loaded = _parse_yaml(text, f"config file {path}") or {}
            if not isinstance(loaded, dict):
                raise ConfigError(f"config file {path} must hold a mapping of key: value, not a "
                                  f"{type(loaded).__name__}")
            values.update(loaded)
        for item in overrides:
            key, sep, text = item.partition("=")
            if not sep:
                raise ConfigError(f"override {item!r} must look like key=value")
            values[key.strip()] = _parse_yaml(text, f"override {item!r}") if text.strip() else ""
        return values

    @classmethod
    def load(cls, path: str | Path | None = None, overrides: list[str] = ()) -> "TrainConfig":
        """Defaults, then the YAML file, then ``key=value`` overrides."""
        return cls.from_dict(cls.read_values(path, overrides))

    def to_dict(self) -> dict[str, Any]:
        return {f.name: _plain(getattr(self, f.name)) for f in dataclasses.fields(self)}

    def validate(self) -> None:
        """Value ranges and cross-field checks; families extend this."""
        self._check_ranges()
        if not 0.0 <= self.ema_decay < 1.0:
            raise ConfigError(f"ema_decay must be in [0, 1), got {self.ema_decay}")
        if not 0.0 <= self.lr_decay_start <= 1.0:
            raise ConfigError(f"lr_decay_start must be in [0, 1], got {self.lr_decay_start}")
        if not all(0.0 <= b < 1.0 for b in self.betas):
            raise ConfigError(f"betas must be two numbers in [0, 1) (Adam's β1, β2), got {list(self.betas)}")
        if self.seed > self.MAX_SEED:
            raise ConfigError(f"seed must be in [0, {self.MAX_SEED}], got {self.seed}")
        if not re.fullmatch(r"auto|cpu|cuda(:\d+)?|mps", self.device):
            raise ConfigError(f"device must be auto, cpu, cuda, cuda:N or mps, got {self.device!r}")
        if self.best_metric not in BEST_METRICS:
            raise ConfigError(f"best_metric must be one of {', '.join(BEST_METRICS)}, got {self.best_metric!r}"
                              f"{_suggest(self.best_metric, BEST_METRICS)}")
        source = BEST_METRICS[self.best_metric][0]
        if source and source not in self.eval_metrics:
            raise ConfigError(f"best_metric={self.best_metric} needs {source} in eval_metrics "
                              f"(e.g. eval_metrics=[{source}])")
        if self.channels not in (1, 3):
            raise ConfigError(f"channels must be 1 (grey) or 3 (RGB), got {self.channels}")
        out = Path(self.out_dir)
        try:
            if "\0" in self.out_dir:
                raise ValueError("a NUL character")
            blocked = next((p for p in (out, *out.parents) if p.exists() and not p.is_dir()), None)
        except (OSError, ValueError) as err:
            raise ConfigError(f"out_dir={self.out_dir[:80]!r} is not a usable folder path "
                              f"({getattr(err, 'strerror', None) or err}); set out_dir to a folder path") from None
        if blocked is not None:
            raise ConfigError(f"out_dir={self.out_dir}: {blocked} is a file, not a folder; set out_dir to a folder path")

    def _check_ranges(self) -> None:
        """Every number finite and >= 0; the ``positive`` fields of this class and its bases > 0."""
        positive = {name for klass in type(self).__mro__ for name in vars(klass).get("positive", ())}
        for f in dataclasses.fields(self):
            value = getattr(self, f.name)
            numbers = value if isinstance(value, tuple) else (value,)
            for number in numbers:
                if isinstance(number, bool) or not isinstance(number, (int, float)):
                    continue
                if not math.isfinite(number):
                    raise ConfigError(f"{f.name} must be a finite number, got {value}")
                if number < 0 or (number == 0 and f.name in positive):
                    bound = "> 0" if f.name in positive else ">= 0"
                    raise ConfigError(f"{f.name} must be {bound}, got {value}")


def _parse_yaml(text: str, where: str) -> Any:
    try:
        return yaml.safe_load(text)
    except yaml.YAMLError as err:
        raise ConfigError(f"{where} is not valid YAML: {' '.join(str(err).split())}") from None
    except RecursionError:
        raise ConfigError(f"{where} is nested too deeply to be a config (keys hold numbers, strings or "
                          "short lists)") from None


def _suggest(key: str, valid, what: str = "keys") -> str:
    close = difflib.get_close_matches(key, [str(v) for v in valid], n=1, cutoff=0.5)
    return f"; did you mean {close[0]!r}?" if close else f"; valid {what}: {', '.join(sorted(map(str, valid)))}"


def _coerce(value: Any, hint: Any, where: str) -> Any:
    origin = typing.get_origin(hint)
    if origin is Literal:
        choices = typing.get_args(hint)
        if value not in choices:
            close = _suggest(str(value), choices, "values")
            raise ConfigError(f"{where} must be one of {list(choices)}, got {value!r}{close if 'did you' in close else ''}")
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
