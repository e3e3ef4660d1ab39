"""No run lost: resume that refuses to destroy, graceful SIGTERM/SIGINT, full disks named (issue 15)."""
import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
import torch

from conftest import tiny_config
from gauguin.config import ConfigError
from gauguin import checkpoint as ckpt
from gauguin.training import load_checkpoint, run_config, train

TINY = ["image_size=28", "g_width=8", "d_width=8", "z_dim=16", "batch_size=16", "eval_every=0", "progress=false"]
ENV = dict(os.environ, OMP_NUM_THREADS="1", PYTHONUNBUFFERED="1")


def gauguin(*args, timeout=300) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "gauguin.cli", *map(str, args)], capture_output=True, text=True,
                          timeout=timeout, env=ENV)


def _snapshot(folder: Path) -> dict:
    return {p.relative_to(folder): p.read_bytes() for p in folder.rglob("*") if p.is_file()}


def test_resume_refuses_when_every_checkpoint_is_corrupt_and_overwrites_nothing(tmp_path):
    """Item 1: a wrong sha256 in every meta.json used to restart from step 0 and overwrite step_20/30."""
    train("dcgan", tiny_config(tmp_path, steps=6, checkpoint_every=2, eval_every=0))
    for path in ckpt.step_checkpoints(tmp_path / "checkpoints"):
        meta = json.loads((path / "meta.json").read_text())
        meta["files"]["weights.safetensors"]["sha256"] = "f" * 64
        (path / "meta.json").write_text(json.dumps(meta))
    before = _snapshot(tmp_path / "checkpoints")
    done = gauguin("train", "dcgan", "--resume", *TINY, "steps=10", "checkpoint_every=2", f"out_dir={tmp_path}")
    assert done.returncode == 1
    assert "none of the 3 checkpoint(s)" in done.stderr and "out_dir=NEW_FOLDER" in done.stderr
    assert "Traceback" not in done.stderr and len(done.stderr.strip().splitlines()) == 1
    assert _snapshot(tmp_path / "checkpoints") == before


def test_a_new_run_refuses_a_folder_holding_only_best(tmp_path):
    """Item 2: a folder with checkpoints/best alone was not refused, and its best was replaced."""
    train("dcgan", tiny_config(tmp_path, steps=2, eval_every=2))
    for path in ckpt.step_checkpoints(tmp_path / "checkpoints"):
        ckpt.shutil.rmtree(path)
    assert [p.name for p in (tmp_path / "checkpoints").iterdir()] == ["best"]
    before = _snapshot(tmp_path / "checkpoints")
    with pytest.raises(ConfigError, match=r"already holds checkpoints \(best\)"):
        train("dcgan", tiny_config(tmp_path, steps=2, eval_every=2))
    assert _snapshot(tmp_path / "checkpoints") == before


def test_resume_leaves_no_duplicate_metrics_rows(tmp_path):
    """Item 5: rows logged after the last checkpoint of a killed run appeared twice after --resume."""
    cfg = dict(steps=9, log_every=1, checkpoint_every=3, eval_every=0, keep_checkpoints=5)
    train("dcgan", tiny_config(tmp_path, **cfg))
    ckpt.shutil.rmtree(tmp_path / "checkpoints" / "step_0000009")  # as if killed after logging step 9
    with open(tmp_path / "metrics.jsonl", "a") as f:
        f.write('{"step": 9, "d_lo')  # and mid-row
    resumed = run_config("dcgan", None, [f"out_dir={tmp_path}", "steps=9"], resume=True)
    train("dcgan", resumed, resume=True)
    steps = [json.loads(line)["step"] for line in (tmp_path / "metrics.jsonl").read_text().splitlines()]
    assert steps == list(range(1, 10))


def _start_training(out_dir: Path, *extra) -> subprocess.Popen:
    cmd = [sys.executable, "-m", "gauguin.cli", "train", "dcgan", *TINY, "steps=100000", "log_every=1",
           "checkpoint_every=1000", "sample_every=1000", f"out_dir={out_dir}", *extra]
    return subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=ENV)


def _wait_for_step(out_dir: Path, step: int, proc: subprocess.Popen, timeout: float = 120) -> None:
    metrics = out_dir / "metrics.jsonl"
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if metrics.is_file() and len(metrics.read_text().splitlines()) >= step:
            return
        assert proc.poll() is None, proc.communicate()[1][-2000:]
        time.sleep(0.05)
    proc.kill()
    raise AssertionError(f"training did not reach step {step} in {timeout} s")


@pytest.mark.parametrize("signum, code", [(signal.SIGTERM, 143), (signal.SIGINT, 130)])
def test_a_signal_finishes_the_step_writes_a_checkpoint_and_exits_with_the_conventional_code(tmp_path, signum, code):
    """Item 5: SIGTERM exited 143 with no checkpoint (960 steps done, last checkpoint at 900)."""
    proc = _start_training(tmp_path)
    _wait_for_step(tmp_path, 3, proc)
    proc.send_signal(signum)
    _, stderr = proc.communicate(timeout=120)
    assert proc.returncode == code, stderr[-2000:]
    saved = ckpt.step_checkpoints(tmp_path / "checkpoints")
    assert len(saved) == 1, "a checkpoint at the step it stopped"
    step = load_checkpoint(saved[0])[1]["step"]
    assert step >= 3 and f"stopped by {signum.name} at step {step}" in stderr and "--resume" in stderr
    assert not [p for p in (tmp_path / "checkpoints").iterdir() if p.name.startswith(".")]
    rows = [json.loads(line)["step"] for line in (tmp_path / "metrics.jsonl").read_text().splitlines()]
    assert rows[-1] == step, "every step up to the stop was finished and logged"
    resumed = gauguin("train", "dcgan", "--resume", *TINY, f"steps={step + 2}", f"out_dir={tmp_path}")
    assert resumed.returncode == 0, resumed.stderr[-2000:]
    assert f"from step {step}" in resumed.stdout + resumed.stderr


def test_a_second_signal_aborts_at_once(tmp_path):
    proc = _start_training(tmp_path)
    _wait_for_step(tmp_path, 2, proc)
    proc.send_signal(signal.SIGTERM)
    proc.send_signal(signal.SIGTERM)
    _, stderr = proc.communicate(timeout=120)
    assert proc.returncode == 143, stderr[-2000:]
    assert "aborted by a second SIGTERM" in stderr or "stopped by SIGTERM" in stderr  # the step may end first
    assert "Traceback" not in stderr
    hidden = [p for p in (tmp_path / "checkpoints").iterdir() if p.name.startswith(".")] if (
        tmp_path / "checkpoints").is_dir() else []
    assert not hidden, "no half-written checkpoint left behind"


# ------------------------------------------------------------------ full disk (item 6)
@pytest.fixture
def small_disk(tmp_path):
    """A 2 MiB tmpfs: room for two tiny checkpoints (600 KiB each) and their samples, not for many."""
    mount = tmp_path / "disk"
    mount.mkdir()
    done = subprocess.run(["mount", "-t", "tmpfs", "-o", "size=2m", "tmpfs", str(mount)], capture_output=True,
                          text=True)
    if done.returncode != 0:
        if os.environ.get("CI"):
            pytest.fail(f"CI runs as root and must mount a tmpfs: {done.stderr.strip()}")
        pytest.skip(f"mounting a tmpfs is not permitted here: {done.stderr.strip()}")
    yield mount
    subprocess.run(["umount", "-l", str(mount)], check=False)


def test_a_full_disk_stops_with_the_path_and_the_fix_and_keeps_the_last_checkpoint(small_disk):
    out = small_disk / "run"
    done = gauguin("train", "dcgan", *TINY, "steps=400", "log_every=1", "checkpoint_every=5", "sample_every=5",
                   "keep_checkpoints=100", f"out_dir={out}")
    assert done.returncode == 1, done.stderr[-3000:]
    lines = [line for line in done.stderr.strip().splitlines() if line.strip()]
    assert "Traceback" not in done.stderr, done.stderr[-3000:]  # no thread's traceback either
    assert len(lines) == 1 and lines[0].startswith("gauguin: error:"), done.stderr[-3000:]
    assert str(out) in lines[0] and "free space" in lines[0] and "out_dir" in lines[0]
    saved = ckpt.step_checkpoints(out / "checkpoints")
    assert saved, "some checkpoints fitted before the disk filled"
    load_checkpoint(saved[-1])  # the newest complete one verifies


def test_tensorboards_writer_thread_prints_no_traceback_on_a_full_disk(small_disk, capfd):
    from gauguin.training.logger import RunLogger

    logger = RunLogger(small_disk, 10, 0, True, False)
    with open(small_disk / "ballast", "wb", buffering=0) as f:  # fill the disk
        try:
            while True:
                f.write(b"\0" * 4096)
        except OSError:
            pass
    with pytest.raises(OSError) as err:
        for step in range(200):  # the writer thread fails on a flush; the next write raises its error
            logger.image(step, "samples", torch.rand(1, 64, 64) * 2 - 1)
            logger.flush()
            time.sleep(0.01)
    assert err.value.filename == str(small_disk / "tensorboard")
    logger.close(quiet=True)
    assert "Traceback" not in capfd.readouterr().err


def test_an_os_error_of_the_logger_names_its_file(tmp_path, monkeypatch):
    from gauguin.training.logger import RunLogger

    logger = RunLogger(tmp_path, 10, 0, True, False)
    logger.jsonl.close()
    logger.jsonl = open("/dev/full", "w")  # every write fails with ENOSPC
    with pytest.raises(OSError) as err:
        logger.scalars(1, {"d_loss": 1.0})
    assert err.value.filename == str(tmp_path / "metrics.jsonl")
    logger.close(quiet=True)  # closing after the failure raises nothing more


# ------------------------------------------------------------------ bad values (item 8)
BAD_VALUES = [
    ("lr_g=-1", "lr_g", "-1"), ("lr_g=nan", "lr_g", "nan"), ("lr_g=inf", "lr_g", "inf"), ("z_dim=0", "z_dim", "0"),
    ("g_width=0", "g_width", "0"), ("g_width=-3", "g_width", "-3"), ("betas=[2,5]", "betas", "2"),
    (f"seed={2**70}", "seed", str(2**70)), ("device=tpu", "device", "tpu"), ("out_dir=/etc/hostname", "out_dir",
                                                                               "/etc/hostname"),
    ("loss=foo", "loss", "foo"), ("out_dir=" + "x" * 300, "out_dir", "xxxx"), ("d_width=1.5", "d_width", "1.5"), ("ema_decay=2", "ema_decay", "2"),
]


@pytest.mark.parametrize("override, key, value", BAD_VALUES)
def test_a_bad_value_is_refused_by_the_config_naming_key_value_and_range(override, key, value):
    from gauguin.models.dcgan import DCGANConfig

    with pytest.raises(ConfigError) as err:
        DCGANConfig.load(None, [override])
    message = str(err.value)
    assert key in message and value in message and "\n" not in message
    assert "valid keys" not in message


@pytest.mark.parametrize("content, expected", [
    (b"1: 2\n", "not an option name"),
    (b"steps: 10\n" + b"x: " + b"[" * 20000 + b"\n", "nested too deeply"),
    (b"steps: \xff\xfe\n", "not UTF-8"),
    (b"- steps\n- 10\n", "must hold a mapping"),
    (b"steps: [unclosed\n", "not valid YAML"),
])
def test_a_bad_config_file_is_named(tmp_path, content, expected):
    from gauguin.models.dcgan import DCGANConfig

    path = tmp_path / "run.yaml"
    path.write_bytes(content)
    with pytest.raises(ConfigError, match=expected) as err:
        DCGANConfig.load(path)
    assert "\n" not in str(err.value)


def test_every_family_default_config_passes_the_range_checks():
    from gauguin.models import FAMILIES, get_family

    for name in FAMILIES:
        cls = get_family(name).config_class
        cls.from_dict({})  # the papers' defaults are valid values
        positive = {n for klass in cls.__mro__ for n in vars(klass).get("positive", ())}
        fields = {f.name for f in __import__("dataclasses").fields(cls)}
        assert positive <= fields, f"{name}: positive names unknown fields {positive - fields}"


def test_the_cli_reports_a_bad_value_in_one_line(tmp_path):
    done = gauguin("train", "dcgan", *TINY, "g_width=0", f"out_dir={tmp_path}")
    assert done.returncode == 1 and done.stderr.strip() == "gauguin: error: g_width must be > 0, got 0"
    assert not (tmp_path / "checkpoints").exists()


def test_a_tiny_run_still_trains_after_the_checks(tmp_path):
    path = train("dcgan", tiny_config(tmp_path, steps=2, eval_every=0))
    assert torch.isfinite(load_checkpoint(path)[0]["weights.safetensors"]["generator.convs.0.weight"]).all()


@pytest.mark.slow
def test_a_soak_of_kills_inside_checkpoint_writes_loses_nothing(tmp_path):
    """scripts/soak_interrupts.py, short: SIGKILL and SIGTERM inside checkpoint writes and between them;
    each time the run resumes, and it ends bit-identical to the run never interrupted."""
    sys.path.insert(0, str(Path(__file__).parents[1] / "scripts"))
    from soak_interrupts import soak

    plan = [(signal.SIGKILL, True), (signal.SIGTERM, True), (signal.SIGKILL, False)]
    report = soak(tmp_path / "soak", 3, steps=30, plan=plan)
    assert report["runs_lost"] == 0, report["events"]
    assert report["final_state_equals_uninterrupted"] and report["metrics_log_equals_uninterrupted"]
    assert report["in_write"] >= 1, report["events"]  # the kills did land inside writes
