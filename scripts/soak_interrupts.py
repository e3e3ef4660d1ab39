"""Soak test of interruptions: kill a tiny training run again and again, mostly while it writes a
checkpoint, resume it each time, and check that nothing is lost.

    python scripts/soak_interrupts.py --interruptions 20 [--steps 80] [--out runs/soak] [--seed 0]

Each interruption is SIGKILL or SIGTERM (chosen at random), sent either the moment a checkpoint's
hidden temporary folder appears (inside the write) or after a random delay. After each one the run
must still resume from a checkpoint at least as new as the last one that verified, none may turn
corrupt, and at the end the final weights, optimizer state and metrics log must equal those of
the same run never interrupted (bit for bit: resume is exact on a CPU). Prints a JSON report.
"""
from __future__ import annotations

import argparse
import json
import os
import random
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path

TINY = ["image_size=28", "g_width=8", "d_width=8", "z_dim=16", "batch_size=16", "eval_every=0", "progress=false",
        "log_every=1", "checkpoint_every=1", "keep_checkpoints=2", "sample_every=1000",
        "precision=fp32"]  # not auto: that is timed per run, and the two runs compared must train alike
ENV = dict(os.environ, OMP_NUM_THREADS="1", PYTHONUNBUFFERED="1")


def _train(out: Path, steps: int, resume: bool) -> subprocess.Popen:
    cmd = [sys.executable, "-m", "gauguin.cli", "train", "dcgan", *TINY, f"steps={steps}", f"out_dir={out}"]
    return subprocess.Popen(cmd + (["--resume"] if resume else []), stdout=subprocess.DEVNULL,
                            stderr=subprocess.PIPE, text=True, env=ENV)


def _newest_verified_step(out: Path) -> int:
    from gauguin import checkpoint as ckpt

    for path in reversed(ckpt.step_checkpoints(out / "checkpoints")):
        try:
            return ckpt.load_checkpoint(path)[1]["step"]
        except ckpt.CheckpointError:
            continue
    return 0


def _interrupt(proc: subprocess.Popen, out: Path, in_write: bool, signum: int, rng: random.Random,
               timeout: float = 120) -> str:
    """Send ``signum`` inside a checkpoint write (``in_write``) or after a random delay; returns where."""
    folder, metrics = out / "checkpoints", out / "metrics.jsonl"
    launched = time.time_ns()
    deadline = time.monotonic() + timeout
    started = None
    delay = rng.uniform(0.0, 1.5)
    while time.monotonic() < deadline and proc.poll() is None:
        if started is None and folder.is_dir() and metrics.is_file() and metrics.stat().st_mtime_ns > launched:
            started = time.monotonic()  # this process is stepping (it logs every step)
        if started is not None:
            if in_write and any(p.name.endswith(".tmp") for p in folder.iterdir()):
                proc.send_signal(signum)
                return "during a checkpoint write"
            if not in_write and time.monotonic() - started > delay:
                proc.send_signal(signum)
                return f"{delay:.2f} s into training"
        time.sleep(0.001)
    return "after the run ended" if proc.poll() is not None else "never (timed out)"


def _same_final_state(a: Path, b: Path) -> bool:
    import torch

    from gauguin import checkpoint as ckpt

    ta, ma = ckpt.load_checkpoint(ckpt.step_checkpoints(a / "checkpoints")[-1])
    tb, mb = ckpt.load_checkpoint(ckpt.step_checkpoints(b / "checkpoints")[-1])
    same = ma["step"] == mb["step"] and ma["sampler"] == mb["sampler"] and ta.keys() == tb.keys()
    for name in ta:
        same = same and ta[name].keys() == tb[name].keys()
        same = same and all(torch.equal(ta[name][k], tb[name][k]) for k in ta[name])
    return same


def _logged_steps(out: Path) -> list[int]:
    return [json.loads(line)["step"] for line in (out / "metrics.jsonl").read_text().splitlines()]


def soak(out: Path, interruptions: int, steps: int, seed: int = 0,
         plan: list[tuple[int, bool]] | None = None) -> dict:
    """``interruptions`` random (signal, inside-a-write) choices, or the given ``plan`` of them."""
    rng = random.Random(seed)
    plan = plan or [(rng.choice([signal.SIGKILL, signal.SIGTERM]), rng.random() < 0.6) for _ in range(interruptions)]
    if out.exists():
        shutil.rmtree(out)
    reference, victim = out / "uninterrupted", out / "interrupted"
    done = _train(reference, steps, resume=False)
    assert done.wait() == 0, done.stderr.read()
    events, lost, last_good = [], 0, 0
    for i, (signum, in_write) in enumerate(plan):
        proc = _train(victim, steps, resume=victim.joinpath("checkpoints").is_dir() and last_good > 0)
        where = _interrupt(proc, victim, in_write=in_write, signum=signum, rng=rng)
        code = proc.wait(timeout=120)
        stderr = proc.stderr.read()
        good = _newest_verified_step(victim)
        corrupt = sorted(p.name for p in (victim / "checkpoints").glob("*.corrupt*"))
        ok = good >= last_good and not corrupt  # nothing saved was lost, nothing turned corrupt
        lost += not ok
        graceful = signum == signal.SIGTERM and code == 128 + signal.SIGTERM
        events.append({"interruption": i + 1, "signal": signal.Signals(signum).name, "when": where, "exit": code,
                       "checkpoint_on_the_way_out": graceful,
                       "resumable_from_step": good, "ok": ok, **({"stderr": stderr[-500:]} if not ok else {})})
        last_good = max(last_good, good)
        print(json.dumps(events[-1]), flush=True)
    proc = _train(victim, steps, resume=True)
    final_code = proc.wait(timeout=600)
    same = final_code == 0 and _same_final_state(reference, victim)
    logs_equal = final_code == 0 and _logged_steps(victim) == _logged_steps(reference)
    return {"interruptions": len(plan), "steps": steps, "runs_lost": lost + (not same),
            "in_write": sum(e["when"] == "during a checkpoint write" for e in events),
            "sigkill": sum(e["signal"] == "SIGKILL" for e in events),
            "sigterm_answered_with_a_checkpoint": sum(e["checkpoint_on_the_way_out"] for e in events),
            "final_state_equals_uninterrupted": same, "metrics_log_equals_uninterrupted": logs_equal,
            "events": events}


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--interruptions", type=int, default=20)
    parser.add_argument("--steps", type=int, default=80)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--out", default="runs/soak")
    args = parser.parse_args()
    report = soak(Path(args.out), args.interruptions, args.steps, args.seed)
    summary = {k: v for k, v in report.items() if k != "events"}
    print(json.dumps(summary, indent=2))
    Path(args.out, "report.json").write_text(json.dumps(report, indent=2))
    return 0 if report["runs_lost"] == 0 and report["metrics_log_equals_uninterrupted"] else 1


if __name__ == "__main__":
    sys.exit(main())
