"""Data-parallel training: 2 processes on gloo, as torchrun runs them."""
import os
import socket
import subprocess
import sys
from pathlib import Path

import torch
import torch.multiprocessing as mp
from safetensors.torch import load_file, save_file

from conftest import tiny_config
from gauguin.training import Trainer, load_checkpoint


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _worker(rank: int, world: int, port: int, out: str) -> None:
    os.environ.update(RANK=str(rank), LOCAL_RANK=str(rank), WORLD_SIZE=str(world),
                      MASTER_ADDR="127.0.0.1", MASTER_PORT=str(port))
    torch.set_num_threads(1)
    trainer = Trainer("dcgan", tiny_config(Path(out) / "run", steps=3, batch_size=32, device="cpu"))
    trainer.train()
    state = {f"G.{k}": v for k, v in trainer.G.state_dict().items()}
    state.update({f"D.{k}": v for k, v in trainer.D.state_dict().items()})
    save_file({k: v.contiguous() for k, v in state.items()}, str(Path(out) / f"rank{rank}.safetensors"))


def test_two_ranks_hold_identical_weights(tmp_path):
    mp.spawn(_worker, args=(2, _free_port(), str(tmp_path)), nprocs=2, join=True)
    a, b = (load_file(str(tmp_path / f"rank{r}.safetensors")) for r in (0, 1))
    assert a.keys() == b.keys()
    for key in a:
        assert torch.equal(a[key], b[key]), f"{key} differs between ranks"
    meta = load_checkpoint(tmp_path / "run" / "checkpoints" / "step_0000003")[1]
    assert meta["world_size"] == 2 and meta["sampler"]["position"] == 3 * 16  # 3 batches of 32 / 2 ranks


def test_the_cli_runs_under_torchrun(tmp_path):
    torchrun = Path(sys.executable).with_name("torchrun")
    cmd = [str(torchrun), "--standalone", "--nproc_per_node=2", "-m", "gauguin.cli", "train", "dcgan",
           "image_size=28", "g_width=8", "d_width=8", "z_dim=16", "batch_size=16", "steps=2",
           "eval_every=0", "sample_every=2", "checkpoint_every=2", "progress=false", f"out_dir={tmp_path}"]
    env = dict(os.environ, OMP_NUM_THREADS="1")
    done = subprocess.run(cmd, capture_output=True, text=True, timeout=300, env=env)
    assert done.returncode == 0, done.stderr[-3000:]
    assert done.stdout.count("gauguin: training dcgan") == 1  # rank 0 alone logs
    assert load_checkpoint(tmp_path / "checkpoints" / "step_0000002")[1]["world_size"] == 2


def test_sigterm_to_torchrun_stops_every_rank_at_the_same_step_with_a_checkpoint(tmp_path):
    """A scheduler's SIGTERM reaches torchrun, which forwards it to its ranks: they agree on the step
    (one all-reduce of the stop flag), rank 0 writes the checkpoint, and the run resumes from it."""
    import signal
    import time

    torchrun = Path(sys.executable).with_name("torchrun")
    tiny = ["image_size=28", "g_width=8", "d_width=8", "z_dim=16", "batch_size=16", "log_every=1",
            "eval_every=0", "sample_every=1000", "checkpoint_every=1000", "progress=false", f"out_dir={tmp_path}"]
    env = dict(os.environ, OMP_NUM_THREADS="1")
    cmd = [str(torchrun), "--standalone", "--nproc_per_node=2", "-m", "gauguin.cli", "train", "dcgan", *tiny]
    proc = subprocess.Popen(cmd + ["steps=100000"], stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                            env=env)
    metrics = tmp_path / "metrics.jsonl"
    deadline = time.monotonic() + 240
    while not (metrics.is_file() and len(metrics.read_text().splitlines()) >= 3):
        assert proc.poll() is None and time.monotonic() < deadline, proc.communicate()[1][-3000:]
        time.sleep(0.1)
    proc.send_signal(signal.SIGTERM)
    _, stderr = proc.communicate(timeout=240)
    saved = sorted((tmp_path / "checkpoints").glob("step_*"))
    assert len(saved) == 1, stderr[-3000:]
    meta = load_checkpoint(saved[0])[1]
    assert meta["world_size"] == 2 and len(meta["rng"]) == 2
    assert stderr.count(f"stopped by SIGTERM at step {meta['step']}") == 1  # rank 0 speaks for both
    done = subprocess.run(cmd + [f"steps={meta['step'] + 2}", "--resume"], capture_output=True, text=True,
                          timeout=300, env=env)
    assert done.returncode == 0, done.stderr[-3000:]
    assert load_checkpoint(tmp_path / "checkpoints" / f"step_{meta['step'] + 2:07d}")[1]["world_size"] == 2
