"""The one training loop every family uses.

A family (``gauguin.models``) supplies networks, its fakes and D and G losses, its schedule as
data (``plan(step)``) and its inference spec; this loop owns data order, optimizers (TTUR learning
rates, betas), autocast, gradient averaging across ranks, EMA of G, gradient-norm monitoring,
sample grids (drawn from the inference spec), the family's quality metric, logging and
exact-resume checkpoints.
"""
from __future__ import annotations

import math
import os
import signal
import time
import warnings
from dataclasses import dataclass, field
from pathlib import Path

import torch
from torch import nn

from .. import checkpoint as ckpt
from ..config import BEST_METRICS, ConfigError, TrainConfig
from ..images import make_grid, save_png
from ..metrics import create_extractor, extract, sliced_wasserstein
from ..metrics.evaluate import EXTRACTOR_METRICS, check_metric_names, compute_metrics, flat_scores
from ..metrics.sources import ImageSet
from ..models import DataInfo, GANFamily, get_family
from ..models.base import Plan
from ..models.inference import draw_inputs, grid_rows, picture_of
from ..nn.layers import bf16_pays_on_cpu, native_bf16
from .distributed import (DistInfo, any_rank, average_gradients, barrier, broadcast_buffers, broadcast_flag,
                          broadcast_module, gather_objects, init_distributed, shutdown)
from .ema import EMA
from .logger import RunLogger
from .rng import capture_rng, restore_rng, seed_all
from .sampler import EpochBatchSampler
from .signals import StopSignals, TrainingStopped

GRID_COLUMNS = 10


def resolve_device(name: str, local_rank: int = 0) -> torch.device:
    if name == "auto":
        return torch.device(f"cuda:{local_rank}" if torch.cuda.is_available() else "cpu")
    device = torch.device(name)
    if device.type == "cuda" and not torch.cuda.is_available():
        raise ConfigError("device=cuda was asked for but no CUDA GPU is visible; use device=cpu or device=auto")
    if device.type == "cuda" and device.index is None:  # plain "cuda": this rank's GPU
        device = torch.device("cuda", local_rank)
    return device


def resolve_precision(precision: str, device: torch.device) -> str:
    """``auto`` → bf16 on GPUs with bf16 and on CPUs where it is faster (timed: ``bf16_pays_on_cpu``), else fp32.

    CPUs without native bf16 (AVX2 only) emulate its convolutions some 30x slower than fp32."""
    native = native_bf16_on(device)
    if precision == "auto":
        return "bf16" if native and (device.type == "cuda" or bf16_pays_on_cpu()) else "fp32"
    if precision == "bf16" and not native:
        warnings.warn(f"precision=bf16 on a {device.type} without native bf16 is emulated and far slower "
                      "than fp32; use precision=auto", stacklevel=2)
    return precision


def native_bf16_on(device: torch.device) -> bool:
    return torch.cuda.is_bf16_supported() if device.type == "cuda" else native_bf16()


def run_config(family: str, config_file: str | None, overrides: list[str], resume: bool) -> TrainConfig:
    """The config of a run: defaults < checkpointed config (when resuming) < YAML file < overrides."""
    cls = get_family(family).config_class
    values = cls.read_values(config_file, overrides)
    if not resume:
        return cls.from_dict(values)
    root = Path(cls.from_dict(values).out_dir) / "checkpoints"
    found = ckpt.latest_meta(root, training=True)  # the Trainer verifies the files
    if found is None and ckpt.step_checkpoints(root):
        ckpt.resume_point(root, move_corrupt=False)  # raises, naming every checkpoint's fault
    if found is None:
        raise ConfigError(f"--resume: no checkpoint under {root}; drop --resume to start a new run")
    path, meta = found
    if meta["family"] != family:
        raise ConfigError(f"--resume: {path} is a {meta['family']} run, not {family}")
    return cls.from_dict({**meta["config"], **values})


@dataclass
class TrainState:
    """Everything that changes during training besides network weights."""

    step: int = 0
    best_metric: float | None = None  # the best value of cfg.best_metric so far
    history: list = field(default_factory=list)


class Trainer:
    def __init__(self, family_name: str, cfg: TrainConfig, resume: bool = False):
        self.cfg = cfg
        self.family_name = family_name
        self.device = resolve_device(cfg.device, int(os.environ.get("LOCAL_RANK", "0")))
        self.dist: DistInfo = init_distributed(self.device)
        if cfg.batch_size % self.dist.world_size:
            raise ConfigError(f"batch_size={cfg.batch_size} must divide by the {self.dist.world_size} ranks")
        if self.device.type == "cuda":
            torch.cuda.set_device(self.device)
        self.out_dir = Path(cfg.out_dir)
        self.ckpt_dir = self.out_dir / "checkpoints"
        found = self._resume_point() if resume else None
        self.precision = self._precision(found[2] if found else None)
        self.autocast = torch.autocast(self.device.type, dtype=torch.bfloat16, enabled=self.precision == "bf16")
        if not resume and (saved := ckpt.saved_checkpoints(self.ckpt_dir)):
            raise ConfigError(f"{self.ckpt_dir} already holds checkpoints ({', '.join(p.name for p in saved[:4])}); "
                              "pass --resume to continue that run or set out_dir=... to start a new one")

        seed_all(cfg.seed)  # same initial weights on every rank
        family_cls = get_family(family_name)
        self.dataset = family_cls.build_dataset(cfg)
        self.data_info = DataInfo.of(self.dataset)
        self.family: GANFamily = family_cls(cfg, self.data_info)
        fmt = torch.channels_last if cfg.channels_last else torch.contiguous_format
        self.G = self.family.generator.to(self.device, memory_format=fmt)
        self.D = self.family.discriminator.to(self.device, memory_format=fmt)
        self.memory_format = fmt
        broadcast_module(self.G, self.dist)
        broadcast_module(self.D, self.dist)
        self.opt_g = self._optimizer(self.G, cfg.lr_g)
        self.opt_d = self._optimizer(self.D, cfg.lr_d)
        self.sched_g = torch.optim.lr_scheduler.LambdaLR(self.opt_g, self.lr_factor)
        self.sched_d = torch.optim.lr_scheduler.LambdaLR(self.opt_d, self.lr_factor)
        self.ema = EMA(self.G, cfg.ema_decay) if cfg.ema_decay > 0 else None
        self._stats_fresh_at = -1  # EMA update count at which its BatchNorm statistics were recomputed
        self.sampler = EpochBatchSampler(len(self.dataset), cfg.batch_size // self.dist.world_size, cfg.seed,
                                         self.dist.rank, self.dist.world_size)
        self.state = TrainState()
        self.last_checkpoint: Path | None = None  # the newest step checkpoint this process wrote
        try:
            check_metric_names(list(cfg.eval_metrics))
        except ValueError as err:
            raise ConfigError(f"eval_metrics: {err}") from None
        self._extractor = self._real_features = None  # of eval_metrics, made at the first evaluation
        seed_all(cfg.seed + 1 + self.dist.rank)  # ranks draw different noise
        if found is not None:
            self._restore(*found)
        with torch.random.fork_rng(devices=[]):  # the grid must not move the training RNG (exact resume)
            self.grid_inputs, self.grid_real = self._grid_inputs()

    def _resume_point(self) -> tuple[Path, dict, dict]:
        """The newest checkpoint that verifies; rank 0 first repairs interrupted writes and moves newer
        corrupt checkpoints aside, the other ranks then read what it left."""
        error = None
        if self.dist.is_main:
            try:
                ckpt.recover_interrupted_writes(self.ckpt_dir)
                found = ckpt.resume_point(self.ckpt_dir)
            except ckpt.CheckpointError as err:
                error = err
        if broadcast_flag(error is not None, self.dist):  # every rank stops, none waits for rank 0
            raise error or ckpt.CheckpointError(f"rank 0 found no checkpoint under {self.ckpt_dir} to resume")
        return found if self.dist.is_main else ckpt.resume_point(self.ckpt_dir, move_corrupt=False)

    def _precision(self, meta: dict | None) -> str:
        """``cfg.precision`` resolved once for the whole run: ``auto`` is timed on this CPU (a close call can go
        either way on a busy machine), so a resumed run keeps the precision its checkpoint was trained in and
        every rank takes rank 0's choice; otherwise an exact resume would silently change numerics."""
        recorded = (meta or {}).get("precision")  # fp32 or bf16 (checkpoint.OPTIONAL_SCHEMA); older ones lack it
        asked = recorded if self.cfg.precision == "auto" and recorded else self.cfg.precision
        if self.cfg.precision == "auto" and recorded == "bf16" and not native_bf16_on(self.device):
            warnings.warn(f"this run was trained in bf16, which this {self.device.type} lacks (emulated, ~30x "
                          "slower): it continues in fp32, so it is not bit-identical to an uninterrupted run; "
                          "set precision=bf16 to keep bf16 anyway", stacklevel=2)
            asked = "fp32"
        precision = resolve_precision(asked, self.device)
        return "bf16" if broadcast_flag(precision == "bf16", self.dist) else "fp32"

    def lr_factor(self, step: int) -> float:
        """Constant, then linear decay to 0 from ``lr_decay_start * steps`` (pix2pix/CycleGAN schedule)."""
        start = self.cfg.lr_decay_start * self.cfg.steps
        if self.cfg.lr_decay_start >= 1.0 or step < start:
            return 1.0
        return max(0.0, (self.cfg.steps - step) / (self.cfg.steps - start))

    def _optimizer(self, module: nn.Module, lr: float) -> torch.optim.Optimizer:
        if self.cfg.optimizer == "rmsprop":
            return torch.optim.RMSprop(module.parameters(), lr=lr)
        if self.cfg.optimizer == "sgd":
            return torch.optim.SGD(module.parameters(), lr=lr)
        return torch.optim.Adam(module.parameters(), lr=lr, betas=self.cfg.betas, fused=True)

    # ------------------------------------------------------------------ the loop
    def next_batch(self, size: int | None = None) -> dict[str, torch.Tensor]:
        """The next batch of this rank: ``size`` (global) images, default ``batch_size``."""
        count = size // self.dist.world_size if size else None
        batch = as_batch(self.dataset.get_batch(self.sampler.next_indices(count)))
        batch = {k: v.to(self.device, non_blocking=True) for k, v in batch.items()}
        return {k: v.contiguous(memory_format=self.memory_format) if v.dim() == 4 and v.is_floating_point() else v
                for k, v in batch.items()}  # images (and image inputs) in the networks' layout

    def _update(self, loss: torch.Tensor, optimizer: torch.optim.Optimizer, network: nn.Module) -> None:
        """One optimizer step of ``network`` on ``loss`` (gradients averaged over the ranks)."""
        optimizer.zero_grad(set_to_none=True)
        loss.backward()
        average_gradients(network, self.dist)
        optimizer.step()

    def train_step(self, step: int, plan: Plan | None = None) -> dict[str, float]:
        """One iteration as the family's ``plan(step)`` says: its D updates, then its G updates; the
        first G update takes the last D batch, and when one D update precedes it also its fakes (made
        with their graph, so G runs forward once). Returns the losses."""
        fam, G, D = self.family, self.G, self.D
        plan = plan or fam.plan(step)
        share = plan.d_updates == 1 and plan.g_updates >= 1
        logs: dict[str, float] = {}
        batch = fakes = None
        for _ in range(plan.d_updates):
            batch = self.next_batch(plan.batch_size)
            with self.autocast:
                with torch.set_grad_enabled(share):
                    fakes = fam.fakes(G, batch, step)
                loss_d, logs_d = fam.d_loss(D, batch, fakes, step)
            self._update(loss_d, self.opt_d, D)
            logs.update(logs_d)
        if plan.g_updates:
            D.requires_grad_(False)  # no wasted D weight gradients in the G step
        for _ in range(plan.g_updates):
            batch = batch if batch is not None else self.next_batch(plan.batch_size)
            with self.autocast:
                fakes = fakes if share else fam.fakes(G, batch, step)
                loss_g, logs_g = fam.g_loss(G, D, batch, fakes, step)
            self._update(loss_g, self.opt_g, G)
            logs.update(logs_g)
            batch, fakes, share = None, None, False  # a further G update takes a new batch
        D.requires_grad_(True)
        with warnings.catch_warnings():  # pretraining phases leave one optimizer idle: not a misuse here
            warnings.filterwarnings("ignore", "Detected call of `lr_scheduler.step", UserWarning)
            self.sched_g.step()
            self.sched_d.step()
        if self.dist.enabled:  # keep BatchNorm statistics identical across ranks
            broadcast_buffers(G, self.dist)
            broadcast_buffers(D, self.dist)
        if self.ema is not None and plan.g_updates:
            self.ema.update(G)
        return logs

    def train(self) -> Path | None:
        cfg = self.cfg
        total = None if cfg.max_seconds else cfg.steps  # under a time limit the bar counts, with no false ETA
        logger = RunLogger(self.out_dir, total, self.state.step, self.dist.is_main, cfg.progress)
        if self.dist.is_main:
            self.out_dir.mkdir(parents=True, exist_ok=True)
            logger.write(f"gauguin: training {self.family_name} on {cfg.dataset} ({len(self.dataset)} images, "
                         f"{self._data_summary()}) on {self.device} x{self.dist.world_size}, "
                         f"{self.precision}, from step {self.state.step}")
        images_per_step = cfg.batch_size * max(cfg.d_steps_per_g_step, cfg.g_steps_per_iteration)
        logger.images_per_second(self.state.step * images_per_step)
        try:
            with StopSignals(announce=self.dist.is_main) as stop:
                self._train_until_done_or_stopped(logger, stop, images_per_step)
        except BaseException:
            logger.close(quiet=True)  # the error in flight is the one to report
            raise
        logger.close()
        barrier(self.dist)
        shutdown(self.dist)
        return self.last_checkpoint

    def _train_until_done_or_stopped(self, logger: RunLogger, stop: StopSignals, images_per_step: int) -> None:
        cfg = self.cfg
        if cfg.eval_every:  # before the clock starts: its first use may train it (max_seconds is training time)
            self._load_extractor()
        started = time.perf_counter()
        while self.state.step < cfg.steps:
            plan = self.family.plan(self.state.step)
            logs = self.train_step(self.state.step, plan)
            self.state.step = step = self.state.step + 1
            logger.advance()
            out_of_time = bool(cfg.max_seconds) and any_rank(time.perf_counter() - started >= cfg.max_seconds,
                                                             self.dist)
            last = step == cfg.steps or out_of_time
            if step % cfg.log_every == 0 or last:
                logs.update(grad_norm_g=_grad_norm(self.G), grad_norm_d=_grad_norm(self.D),
                            lr_g=self.sched_g.get_last_lr()[0], lr_d=self.sched_d.get_last_lr()[0],
                            img_per_s=logger.images_per_second(step * images_per_step))
                if not all(math.isfinite(v) for v in logs.values()):
                    raise FloatingPointError(f"step {step}: non-finite values {logs}; lower the learning rates "
                                             "or try precision=fp32, and resume from the last checkpoint")
                logger.scalars(step, logs)
            if self.dist.is_main and (step % cfg.sample_every == 0 or last or plan.ends_phase):
                self.write_grid(logger, step)
            improved = False
            if plan.ends_phase or cfg.eval_every and (step % cfg.eval_every == 0 or last):
                improved = broadcast_flag(self.evaluate(logger, step), self.dist)
            periodic = step % cfg.checkpoint_every == 0 or last
            if periodic or improved:
                self.save(step, improved, periodic)
            if out_of_time:
                logger.write(f"gauguin: max_seconds={cfg.max_seconds:g} reached at step {step} of {cfg.steps}")
                return
            if any_rank(stop.requested is not None, self.dist):  # every rank stops at the same step
                if not periodic:
                    self.save(step, best=False, periodic=True)
                barrier(self.dist)
                raise TrainingStopped(stop.requested or signal.SIGTERM, self.ckpt_dir / f"step_{step:07d}", step)

    def _data_summary(self) -> str:
        info = self.data_info
        if info.num_labels:
            return f"{info.num_labels} labels"
        return f"{info.num_classes} classes" if info.num_classes > 1 else "no classes"

    # ------------------------------------------------------------------ sampling and metric
    def sampling_generator(self) -> nn.Module:
        """EMA generator with BatchNorm statistics recomputed for its weights, or G in eval mode."""
        if self.ema is None:
            return self.G
        model = self.ema.model
        norms = [m for m in model.modules() if isinstance(m, nn.modules.batchnorm._BatchNorm)]
        # "standing statistics": running averages of the EMA weights' own activations
        if norms and self._stats_fresh_at != self.ema.updates:
            momenta = [m.momentum for m in norms]
            for m in norms:
                m.reset_running_stats()
                m.momentum = None
            model.train()
            gen = torch.Generator().manual_seed(self.cfg.seed + 7)
            main = self.family.inference.main
            with torch.no_grad(), torch.random.fork_rng(devices=[]):  # augmentation must not move training's RNG
                for _ in range(4):  # inputs like the data's (translating families have no others)
                    batch = as_batch(self.dataset.get_batch(torch.randint(len(self.dataset), (256,), generator=gen)))
                    main.run(model, _to(draw_inputs(main, len(batch["image"]), gen, batch), self.device))
            for m, momentum in zip(norms, momenta):
                m.momentum = momentum
            self._stats_fresh_at = self.ema.updates
        return model

    @torch.no_grad()
    def generate(self, inputs: dict, batch: int = 256) -> torch.Tensor:
        model = self.sampling_generator()
        was_training = model.training
        model.eval()
        n = len(next(iter(inputs.values())))
        run = self.family.inference.main.run
        out = [run(model, _to({k: v[i : i + batch] for k, v in inputs.items()}, self.device)).float().cpu()
               for i in range(0, n, batch)]
        model.train(was_training)
        return torch.cat(out)

    def _grid_inputs(self) -> tuple[dict[str, torch.Tensor], torch.Tensor | None]:
        """Inputs of the fixed sample grid, and the real images shown with them: noise-driven families
        one row per class (or 8 rows), translating ones the first ``GRID_COLUMNS`` training examples."""
        spec, gen = self.family.inference, torch.Generator().manual_seed(self.cfg.seed)
        if spec.noise_driven:
            classes = spec.main.input("class")
            labels = torch.arange(classes.size).repeat_interleave(GRID_COLUMNS) if classes else None
            n = len(labels) if labels is not None else 8 * GRID_COLUMNS
            return draw_inputs(spec.main, n, gen, {"label": labels} if classes else None), None
        batch = as_batch(self.dataset.get_batch(torch.arange(GRID_COLUMNS) % len(self.dataset)))
        return draw_inputs(spec.main, GRID_COLUMNS, gen, batch), batch["image"]

    def write_grid(self, logger: RunLogger, step: int) -> None:
        """Rows: the generated images; translating families: their inputs, the outputs, the real images."""
        fake = self.generate(self.grid_inputs)
        if self.grid_real is not None:
            fake = grid_rows(picture_of(self.grid_inputs, self.family.inference.main), fake, self.grid_real)
        grid = make_grid(fake, GRID_COLUMNS)
        save_png(grid, self.out_dir / "samples" / f"step_{step:07d}.png")
        save_png(grid, self.out_dir / "samples" / "latest.png")
        logger.image(step, "samples", grid)

    def evaluate(self, logger: RunLogger, step: int) -> bool:
        """SWD (always) and ``eval_metrics`` of ``eval_samples`` generated images against as many real ones
        (the same real ones every time, with the real class mix); True if ``best_metric`` is the best so far."""
        if not self.dist.is_main:
            return False
        gen = torch.Generator().manual_seed(self.cfg.seed + 11)
        idx = torch.randperm(len(self.dataset), generator=gen)[: self.cfg.eval_samples]
        with torch.random.fork_rng(devices=[]):  # augmentation must not move the training RNG, and draws
            torch.manual_seed(self.cfg.seed + 11)  # the same crops at every evaluation (the cached real
            batch = as_batch(self.dataset.get_batch(idx))  # features are of the first one's images)
        real, labels, main = batch["image"], batch.get("label"), self.family.inference.main
        fake = self.generate(draw_inputs(main, len(real), gen, batch))
        scores = {"swd": sliced_wasserstein(real, fake)}
        if self.cfg.eval_metrics:
            fake_set = ImageSet(fake, labels if main.input("class") else None, "generated", "",
                                batch.get("label_map"), self.cfg.dataset)
            scores.update(self._eval_metrics(real, fake_set))
        value = scores[self.cfg.best_metric]
        self.state.history.append([step, value])
        logger.scalars(step, scores)
        higher_is_better = BEST_METRICS[self.cfg.best_metric][1]
        if math.isfinite(value) and (self.state.best_metric is None or (
                value > self.state.best_metric if higher_is_better else value < self.state.best_metric)):
            self.state.best_metric = value
            return True
        return False

    def _load_extractor(self) -> None:
        """The feature extractor of ``eval_metrics`` (none if they need none), once per run, on rank 0."""
        if self.dist.is_main and self._extractor is None and set(self.cfg.eval_metrics) & EXTRACTOR_METRICS:
            self._extractor = create_extractor(self.cfg.eval_extractor, self.cfg.eval_weights or None, self.device)

    def _eval_metrics(self, real: torch.Tensor, fake_set: ImageSet) -> dict[str, float]:
        """``eval_metrics`` as flat scalars (``kid``, ``is``: means; ``pr``, ``miou``: each of their numbers)."""
        self._load_extractor()
        if self._extractor is not None and self._real_features is None:  # once per run
            self._real_features = extract(self._extractor, real, progress=False)
        values = compute_metrics(list(self.cfg.eval_metrics), fake_set, self._extractor, self._real_features,
                                 seed=self.cfg.seed, progress=False, segmenter=self.cfg.eval_segmenter or None,
                                 real_images=real)
        return flat_scores(values)

    # ------------------------------------------------------------------ checkpoints
    def save(self, step: int, best: bool, periodic: bool) -> Path | None:
        rng = gather_objects(capture_rng(), self.dist)  # collective: every rank takes part
        if not self.dist.is_main:
            return None
        for model in (self.G, self.ema.model) if self.ema is not None else (self.G,):
            self.family.fit_sampling(model, self.dataset)
        weights = {**ckpt.module_state("generator", self.G), **ckpt.module_state("discriminator", self.D)}
        if self.ema is not None:
            self.sampling_generator()
            weights.update(ckpt.module_state("generator_ema", self.ema.model))
        state, meta_opt = {}, {}
        for name, opt in (("opt_g", self.opt_g), ("opt_d", self.opt_d)):
            tensors, meta_opt[name] = ckpt.flatten_optimizer(opt, name)
            state.update(tensors)
        for name, part in self.family.training_state().items():
            state.update({f"family.{name}.{k}": v for k, v in part.state_dict().items()})
        rng_meta = []
        for rank, r in enumerate(rng):
            state[f"rng.{rank}.torch"] = r["torch"]
            if "cuda" in r:
                state[f"rng.{rank}.cuda"] = r["cuda"]
            rng_meta.append({"numpy": r["numpy"], "python": r["python"]})
        meta = {
            "format": "gauguin-checkpoint-1",
            "family": self.family_name,
            "config": self.cfg.to_dict(),
            "num_classes": self.data_info.num_classes,
            "classes": self.data_info.classes,
            "data": self.data_info.to_dict(),
            "step": step,
            "time": time.strftime("%Y-%m-%dT%H:%M:%S"),
            "world_size": self.dist.world_size,
            "precision": self.precision,  # what `auto` resolved to: a resume keeps it
            "sampler": self.sampler.state_dict(),
            "optimizers": meta_opt,
            "schedulers": {"sched_g": self.sched_g.state_dict(), "sched_d": self.sched_d.state_dict()},
            "ema_updates": self.ema.updates if self.ema is not None else 0,
            "best_metric": self.state.best_metric if self.state.best_metric is not None and math.isfinite(
                self.state.best_metric) else None,
            "metric_history": self.state.history,
            "rng": rng_meta,
        }
        files = {"weights.safetensors": weights, "train_state.safetensors": state}
        path = None
        if periodic:
            path = self.last_checkpoint = ckpt.save_checkpoint(self.ckpt_dir / f"step_{step:07d}", files, meta)
            ckpt.prune(self.ckpt_dir, self.cfg.keep_checkpoints)
        if best:
            ckpt.save_checkpoint(self.ckpt_dir / "best", files, meta)
        return path

    def _restore(self, path: Path, tensors: dict, meta: dict) -> None:
        source = str(path / "weights.safetensors")
        weights, state = tensors["weights.safetensors"], tensors["train_state.safetensors"]
        ckpt.load_module_state(self.G, "generator", weights, source)
        ckpt.load_module_state(self.D, "discriminator", weights, source)
        if self.ema is not None:
            ckpt.load_module_state(self.ema.model, "generator_ema", weights, source)
            self.ema.updates = meta["ema_updates"]
        ckpt.unflatten_optimizer(self.opt_g, "opt_g", state, meta["optimizers"]["opt_g"])
        ckpt.unflatten_optimizer(self.opt_d, "opt_d", state, meta["optimizers"]["opt_d"])
        self.sched_g.load_state_dict(meta["schedulers"]["sched_g"])
        self.sched_d.load_state_dict(meta["schedulers"]["sched_d"])
        for sched in (self.sched_g, self.sched_d):  # re-derive: a resumed run may have a new `steps`
            for group, base in zip(sched.optimizer.param_groups, sched.base_lrs):
                group["lr"] = base * self.lr_factor(sched.last_epoch)
        if meta["world_size"] != self.dist.world_size:
            raise ConfigError(f"{path} was written by {meta['world_size']} rank(s); resume it with as many "
                              f"(now {self.dist.world_size}) for an exact continuation")
        self.sampler.load_state_dict(meta["sampler"])
        for name, part in self.family.training_state().items():
            prefix = f"family.{name}."
            part.load_state_dict({k[len(prefix):]: v for k, v in state.items() if k.startswith(prefix)})
        rank = self.dist.rank
        rng = {"torch": state[f"rng.{rank}.torch"], **meta["rng"][rank]}
        if f"rng.{rank}.cuda" in state:
            rng["cuda"] = state[f"rng.{rank}.cuda"]
        restore_rng(rng)
        self.state = TrainState(meta["step"], meta["best_metric"], meta["metric_history"])


def as_batch(batch) -> dict[str, torch.Tensor]:
    """A dataset's batch as a dict: (images, labels) of class datasets become ``image`` / ``label``."""
    return batch if isinstance(batch, dict) else {"image": batch[0], "label": batch[1]}


def _to(inputs: dict, device: torch.device) -> dict:
    return {k: v.to(device) for k, v in inputs.items()}


def _grad_norm(module: nn.Module) -> float:
    grads = [p.grad.detach().float().norm() for p in module.parameters() if p.grad is not None]
    return torch.stack(grads).norm().item() if grads else 0.0


def train(family: str, cfg: TrainConfig, resume: bool = False) -> Path | None:
    """Train ``family`` with ``cfg``; returns the last checkpoint folder (on rank 0)."""
    return Trainer(family, cfg, resume).train()
