"""Two hosts on one machine: one ``torchrun`` per network namespace, joined by a veth pair, c10d rendezvous, gloo.

The namespaces (``scripts/multihost.py``) hold nothing but loopback and one veth end with a private test
address (10.99.0.1/24, 10.99.0.2/24): every byte between the ranks crosses the veth pair, as between two
machines. Needs root for ``ip netns``; skipped elsewhere, except in CI (``CI`` set), where it fails.

Run as a script (what torchrun starts) this file is the gauguin CLI plus two test hooks: it dumps each
rank's final weights to ``$GAUGUIN_TEST_DUMP/rank<R>.safetensors``, and with ``GAUGUIN_TEST_PAUSE=STEP``
it stops dead after writing checkpoint STEP (touching ``$GAUGUIN_TEST_PAUSE_MARKER``) so that the host
can be killed at a known point.
"""
from __future__ import annotations

import importlib.util
import itertools
import os
import re
import shutil
import subprocess
import sys
import time
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
TORCHRUN = str(Path(sys.executable).with_name("torchrun"))
TINY = ["image_size=28", "g_width=8", "d_width=8", "z_dim=16", "batch_size=16", "eval_every=0", "progress=false",
        "precision=fp32"]  # not auto: that is timed per run, and each run here is compared with a reference run
STEPS, EVERY = 24, 12  # the runs' length and checkpoint interval: the kill lands after checkpoint EVERY
RUN_ARGS = [*TINY, f"steps={STEPS}", f"checkpoint_every={EVERY}", f"log_every={EVERY}", f"sample_every={STEPS}"]
TIMEOUT_S = 20  # GAUGUIN_DIST_TIMEOUT in these runs
LAUNCH_TIMEOUT_S = 300  # a whole launch, start-up included, on a slow CI machine
_ports = itertools.count(29400)


def _load_harness():
    spec = importlib.util.spec_from_file_location("multihost", ROOT / "scripts" / "multihost.py")
    module = importlib.util.module_from_spec(spec)
    sys.modules.setdefault(spec.name, module)  # dataclasses look their module up
    spec.loader.exec_module(sys.modules[spec.name])
    return module


def _in_ci() -> bool:
    return os.environ.get("CI", "").strip().lower() not in ("", "0", "false", "no")


@pytest.fixture(scope="module")
def multihost():
    harness = _load_harness()
    reason = harness.netns_unavailable()
    if reason:
        if _in_ci():
            pytest.fail(f"the multi-host tests are required in CI (CI={os.environ['CI']!r}) but cannot run: {reason}")
        pytest.skip(f"needs two network namespaces (root and `ip netns`): {reason}")
    return harness


@pytest.fixture(scope="module")
def hosts(multihost):
    pair = multihost.TwoHosts()
    pair.create()
    try:
        yield pair
    finally:
        pair.delete()


# ---------------------------------------------------------------------------------------------- launching
def _env(host, dump: Path, **extra) -> dict:
    env = dict(os.environ, OMP_NUM_THREADS="1", GAUGUIN_DIST_TIMEOUT=str(TIMEOUT_S), GAUGUIN_TEST_DUMP=str(dump),
               GAUGUIN_TEST_HOST=host.netns, PYTHONUNBUFFERED="1")
    env.pop("GAUGUIN_TEST_PAUSE", None)
    if host.veth:
        env["GLOO_SOCKET_IFNAME"] = host.veth
    env.update(extra)
    return env


def _launch_two_hosts(hosts, out_dir: Path, dump: Path, logs: Path, *args: str, pause_host1: int = 0):
    """One torchrun per host (c10d rendezvous on host 0's address); returns the two Popens."""
    port, run_id = next(_ports), f"gauguin-{os.getpid()}-{time.monotonic_ns()}"
    logs.mkdir(parents=True, exist_ok=True)
    procs = []
    for i, host in enumerate(hosts.hosts):
        extra = dict(GAUGUIN_TEST_PAUSE=str(pause_host1), GAUGUIN_TEST_PAUSE_MARKER=str(logs / "paused")) \
            if i == 1 and pause_host1 else {}
        cmd = [TORCHRUN, "--nnodes", "2", "--nproc_per_node", "1", "--rdzv-backend", "c10d",
               "--rdzv-endpoint", f"{hosts[0].addr}:{port}", "--rdzv-id", run_id,
               "--rdzv-conf", f"is_host={int(i == 0)},join_timeout=120", "--local-addr", host.addr,
               __file__, "train", "dcgan", *args, f"out_dir={out_dir}"]
        with open(logs / f"host{i}.log", "w") as log:
            procs.append(hosts.popen(i, cmd, env=_env(host, dump, **extra), stdout=log, stderr=subprocess.STDOUT,
                                     cwd=ROOT))
    return procs


def _wait(hosts, procs, logs: Path, timeout: float = LAUNCH_TIMEOUT_S, grace: float = 15.0) -> list[int]:
    """The exit codes of ``procs``. When one fails, the others get ``grace`` seconds (a host left waiting in
    the rendezvous would wait ``join_timeout``), then every process on both hosts is killed."""
    deadline, failed_at = time.monotonic() + timeout, None
    while any(p.poll() is None for p in procs):
        now = time.monotonic()
        if failed_at is None and any(p.returncode for p in procs):
            failed_at = now
        if now > deadline or failed_at is not None and now > failed_at + grace:
            for i in range(len(hosts.hosts)):
                hosts.kill(i)
            if now > deadline:
                raise AssertionError(f"a launch ran past {timeout} s:\n{_tails(logs)}")
            break
        time.sleep(0.05)
    return [p.wait(timeout=10) for p in procs]


def _tails(logs: Path, chars: int = 2500) -> str:
    return "\n".join(f"--- {p.name}\n{p.read_text()[-chars:]}" for p in sorted(logs.glob("*.log")))


def _run_two_hosts(hosts, out_dir, dump, logs, *args) -> float:
    start = time.monotonic()
    codes = _wait(hosts, _launch_two_hosts(hosts, out_dir, dump, logs, *args), logs)
    assert codes == [0, 0], f"exit codes {codes}\n{_tails(logs)}"
    return time.monotonic() - start


# ---------------------------------------------------------------------------------------------- comparing
def _dumps(dump: Path) -> dict[int, tuple[dict, dict]]:
    from safetensors import safe_open

    found = {}
    for path in sorted(dump.glob("rank*.safetensors")):
        with safe_open(str(path), "pt") as f:
            found[int(path.stem[4:])] = ({k: f.get_tensor(k) for k in f.keys()}, f.metadata())
    return found


def _assert_equal(a: dict, b: dict, what: str) -> None:
    import torch

    assert a.keys() == b.keys(), f"{what}: different keys {sorted(set(a) ^ set(b))[:5]}"
    differ = [k for k in a if not torch.equal(a[k], b[k])]
    assert not differ, f"{what}: {len(differ)} of {len(a)} tensors differ, e.g. {differ[:3]}"


def _checkpoint(out_dir: Path, step: int) -> tuple[dict, dict]:
    from gauguin.training import load_checkpoint

    tensors, meta = load_checkpoint(out_dir / "checkpoints" / f"step_{step:07d}")[:2]
    return tensors, meta


def _assert_same_run(out_dir: Path, dump: Path, ref_dir: Path, ref_dump: Path, what: str) -> None:
    """Both ranks' final weights and optimizer states, and the final checkpoint, bit-identical to the reference."""
    got, ref = _dumps(dump), _dumps(ref_dump)
    assert sorted(got) == sorted(ref) == [0, 1], f"{what}: dumps of ranks {sorted(got)}, reference {sorted(ref)}"
    for rank in (0, 1):
        _assert_equal(got[rank][0], ref[rank][0], f"{what}, rank {rank}")
    (weights, meta), (ref_weights, ref_meta) = _checkpoint(out_dir, STEPS), _checkpoint(ref_dir, STEPS)
    for name in ref_weights:
        _assert_equal(weights[name], ref_weights[name], f"{what}, checkpoint {name}")
    assert (meta["step"], meta["sampler"], meta["world_size"]) == (ref_meta["step"], ref_meta["sampler"], 2)


@pytest.fixture(scope="module")
def reference(hosts, tmp_path_factory):
    """An uninterrupted 2-host run of STEPS steps: its folder, its per-rank dumps, its wall time."""
    base = tmp_path_factory.mktemp("two_hosts")
    seconds = _run_two_hosts(hosts, base / "run", base / "dump", base / "logs", *RUN_ARGS)
    print(f"\nmultihost: 2 hosts x 1 rank, {STEPS} steps: {seconds:.1f} s with start-up, "
          f"{_steps_per_s(base / 'run'):.1f} steps/s")
    return base


def _steps_per_s(out_dir: Path) -> float:
    import json

    rows = [json.loads(line) for line in (out_dir / "metrics.jsonl").read_text().splitlines() if line.strip()]
    rates = [r["img_per_s"] for r in rows if "img_per_s" in r]
    return rates[-1] / 16 if rates else float("nan")  # batch_size=16 images a step


# ---------------------------------------------------------------------------------------------- the tests
def test_the_namespaces_reach_only_each_other_and_are_removed(multihost):
    pair = multihost.TwoHosts()
    with pair:
        for i, host in enumerate(pair.hosts):
            links = pair.run(i, ["ip", "-o", "link", "show"], capture_output=True, text=True).stdout
            assert sorted(re.findall(r"^\d+: ([^:@]+)", links, re.M)) == sorted(["lo", host.veth])
            assert "state UP" in links and "LOOPBACK,UP" in links
            routes = pair.run(i, ["ip", "route", "show", "table", "all"], capture_output=True, text=True).stdout
            assert "default" not in routes and f"{host.addr.rsplit('.', 1)[0]}.0/24" in routes
        pair.create()  # idempotent: re-made in place
    pair.delete()  # and again
    assert not {h.netns for h in pair.hosts} & set(multihost.namespaces())


def test_two_hosts_hold_identical_weights(reference, hosts):
    dumps = _dumps(reference / "dump")
    assert sorted(dumps) == [0, 1], _tails(reference / "logs")
    (w0, m0), (w1, m1) = dumps[0], dumps[1]
    assert {m0["host"], m1["host"]} == {h.netns for h in hosts.hosts}, (m0, m1)  # one rank on each host
    assert m0["netns"] != m1["netns"], "both ranks ran in one network namespace"
    assert m0["master_addr"] == m1["master_addr"] in {h.addr for h in hosts.hosts} and m0["world_size"] == "2"
    _assert_equal(w0, w1, "rank 0 vs rank 1")
    tensors, meta = _checkpoint(reference / "run", STEPS)
    assert meta["world_size"] == 2 and meta["sampler"]["position"] == STEPS * 8  # 16 images a step, 8 a rank
    weights = tensors["weights.safetensors"]
    for prefix, name in (("G.", "generator"), ("D.", "discriminator"), ("G_ema.", "generator_ema")):
        ours = {f"{name}.{k[len(prefix):]}": v for k, v in w0.items() if k.startswith(prefix)}
        theirs = {k: v for k, v in weights.items() if k.startswith(name + ".") and (k in ours or prefix != "G_ema.")}
        _assert_equal(ours, theirs, f"rank 0's {name} vs the checkpoint's")


def test_a_two_host_checkpoint_resumes_on_one_host_with_two_ranks(reference, hosts, tmp_path):
    run = tmp_path / "run"
    shutil.copytree(reference / "run", run)
    shutil.rmtree(run / "checkpoints" / f"step_{STEPS:07d}")  # resume from the middle, step EVERY
    logs = tmp_path / "logs"
    logs.mkdir()
    cmd = [TORCHRUN, "--standalone", "--nproc_per_node", "2", __file__, "train", "dcgan", *RUN_ARGS,
           f"out_dir={run}", "--resume"]
    one_host = type(hosts[0])(hosts[0].netns, "", hosts[0].addr)  # host 0 alone, over its loopback
    start = time.monotonic()
    with open(logs / "host0.log", "w") as log:
        proc = hosts.popen(0, cmd, env=_env(one_host, tmp_path / "dump"), stdout=log, stderr=subprocess.STDOUT,
                           cwd=ROOT)
    assert _wait(hosts, [proc], logs) == [0], _tails(logs)
    print(f"\nmultihost: 1 host x 2 ranks, steps {EVERY}..{STEPS}: {time.monotonic() - start:.1f} s with start-up, "
          f"{_steps_per_s(run):.1f} steps/s")
    assert f"from step {EVERY}" in (logs / "host0.log").read_text()
    _assert_same_run(run, tmp_path / "dump", reference / "run", reference / "dump", "resumed on 1 host")


def test_a_killed_host_stops_the_other_with_one_clear_line_and_resume_is_exact(reference, hosts, tmp_path):
    run, dump, logs = tmp_path / "run", tmp_path / "dump", tmp_path / "logs"
    procs = _launch_two_hosts(hosts, run, dump, logs, *RUN_ARGS, pause_host1=EVERY)
    deadline = time.monotonic() + LAUNCH_TIMEOUT_S
    while not (logs / "paused").exists():  # host 1 wrote its part of checkpoint EVERY and stopped dead
        assert time.monotonic() < deadline and all(p.poll() is None for p in procs), _tails(logs)
        time.sleep(0.02)
    killed = hosts.kill(1)  # SIGKILL to every process of host 1: torchrun and its worker
    start = time.monotonic()
    assert len(killed) >= 2, killed
    said = None
    while procs[0].poll() is None and time.monotonic() - start < TIMEOUT_S + 60:
        if said is None and "gauguin: error:" in (logs / "host0.log").read_text():
            said = time.monotonic() - start
        time.sleep(0.02)
    detected = time.monotonic() - start
    if procs[0].poll() is None:
        hosts.kill(0)
        pytest.fail(f"host 0 still ran {detected:.0f} s after host 1 was killed:\n{_tails(logs)}")
    code = procs[0].returncode
    procs[1].wait(timeout=10)
    text = (logs / "host0.log").read_text()
    errors = [line for line in text.splitlines() if line.startswith("gauguin: error:")]
    print(f"\nmultihost: host 1 killed; host 0 said so after {said or detected:.1f} s, its torchrun exited after "
          f"{detected:.1f} s: {errors[0] if errors else '(no error line)'}")
    assert code != 0, text[-3000:]
    assert len(errors) == 1 and re.fullmatch(
        r"gauguin: error: rank [01]: lost contact with the other ranks \(.+\); "
        r"continue with --resume once every host is back", errors[0]), text[-3000:]
    assert "Traceback" not in text.split("gauguin: error:")[0], text[-3000:]  # the worker printed no traceback
    assert detected < TIMEOUT_S + 30, f"took {detected:.1f} s"
    saved = run / "checkpoints"
    assert (saved / f"step_{EVERY:07d}").is_dir() and not (saved / f"step_{STEPS:07d}").exists()

    shutil.rmtree(dump, ignore_errors=True)
    _run_two_hosts(hosts, run, dump, tmp_path / "logs_resume", *RUN_ARGS, "--resume")
    assert f"from step {EVERY}" in "".join(p.read_text() for p in (tmp_path / "logs_resume").glob("*.log"))
    _assert_same_run(run, dump, reference / "run", reference / "dump", "killed and resumed on 2 hosts")


def _silent_peer(rank: int, port: int, result: str) -> None:
    import torch

    from gauguin.training.distributed import LostContactError, average_gradients, init_distributed

    os.environ.update(RANK=str(rank), LOCAL_RANK=str(rank), WORLD_SIZE="2", MASTER_ADDR="127.0.0.1",
                      MASTER_PORT=str(port), GAUGUIN_DIST_TIMEOUT="2")
    info = init_distributed(torch.device("cpu"))
    if rank == 1:  # alive but silent, as a host behind a cut cable: no close ever reaches rank 0
        deadline = time.monotonic() + 60
        while not os.path.exists(result) and time.monotonic() < deadline:
            time.sleep(0.05)
        os._exit(0)
    layer = torch.nn.Linear(2, 1)
    layer(torch.ones(1, 2)).sum().backward()
    start = time.monotonic()
    try:
        average_gradients(layer, info)
        message = "no error"
    except LostContactError as err:
        message = str(err)
    Path(result + ".tmp").write_text(f"{time.monotonic() - start:.3f}\n{message}")
    os.replace(result + ".tmp", result)
    os._exit(0)


def test_a_silent_peer_times_out_after_gauguin_dist_timeout(tmp_path):
    import socket

    import torch.multiprocessing as mp

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    result = tmp_path / "result"
    mp.spawn(_silent_peer, args=(port, str(result)), nprocs=2, join=True)
    seconds, message = result.read_text().split("\n", 1)
    print(f"\nmultihost: a silent peer detected after {float(seconds):.1f} s (GAUGUIN_DIST_TIMEOUT=2)")
    assert message.startswith("rank 0: lost contact with the other ranks (no answer within 2 s (GAUGUIN_DIST_TIMEOUT)")
    assert message.endswith("; in all_reduce of gradients); continue with --resume once every host is back")
    assert 1.5 < float(seconds) < 15


def test_the_collective_timeout_comes_from_the_environment(monkeypatch):
    from gauguin.config import ConfigError
    from gauguin.training.distributed import collective_timeout

    monkeypatch.delenv("GAUGUIN_DIST_TIMEOUT", raising=False)
    assert collective_timeout().total_seconds() == 300
    monkeypatch.setenv("GAUGUIN_DIST_TIMEOUT", "20")
    assert collective_timeout().total_seconds() == 20
    for bad in ("0", "-5", "soon", "inf"):
        monkeypatch.setenv("GAUGUIN_DIST_TIMEOUT", bad)
        with pytest.raises(ConfigError, match="GAUGUIN_DIST_TIMEOUT"):
            collective_timeout()


def test_a_backend_error_becomes_one_line_and_other_errors_pass_through(monkeypatch):
    from gauguin.training import distributed
    from gauguin.training.distributed import LostContactError

    monkeypatch.setenv("RANK", "1")
    gloo = RuntimeError("[../third_party/gloo/gloo/transport/tcp/pair.cc:534] Read error [10.99.0.1]:5120: "
                        "Connection reset by peer. This is typically caused by a remote worker hanging or bugs in the "
                        "application. Check the logs of the remote worker before reporting an error. GLHF!\nmore")
    with pytest.raises(LostContactError) as caught, distributed._collective("barrier"):
        raise gloo
    assert str(caught.value) == ("rank 1: lost contact with the other ranks (Read error [10.99.0.1]:5120: Connection "
                                 "reset by peer; in barrier); continue with --resume once every host is back")
    assert caught.value.__cause__ is gloo
    with pytest.raises(RuntimeError, match="^CUDA out of memory$"), distributed._collective("barrier"):
        raise RuntimeError("CUDA out of memory")  # not a lost peer: unchanged


# ---------------------------------------------------------------------------------------------- as torchrun's worker
def _worker_main(argv: list[str]) -> int:
    from safetensors.torch import save_file

    from gauguin import cli
    from gauguin.training import loop

    train, save = loop.Trainer.train, loop.Trainer.save
    pause = int(os.environ.get("GAUGUIN_TEST_PAUSE", "0") or 0)

    def dumping_train(self):
        path = train(self)
        if not os.environ.get("GAUGUIN_TEST_DUMP"):
            return path
        state = {}
        state.update({f"G.{k}": v for k, v in self.G.state_dict().items()})
        state.update({f"D.{k}": v for k, v in self.D.state_dict().items()})
        if self.ema is not None:  # its weights; its BatchNorm statistics are rank 0's, recomputed for samples
            state.update({f"G_ema.{k}": v for k, v in self.ema.model.named_parameters()})
        for name, opt in (("opt_g", self.opt_g), ("opt_d", self.opt_d)):
            for index, values in opt.state_dict()["state"].items():
                state.update({f"{name}.{index}.{k}": v for k, v in values.items() if hasattr(v, "contiguous")})
        dump = Path(os.environ["GAUGUIN_TEST_DUMP"])
        dump.mkdir(parents=True, exist_ok=True)
        save_file({k: v.detach().contiguous().cpu() for k, v in state.items()},
                  str(dump / f"rank{self.dist.rank}.safetensors"),
                  metadata={"host": os.environ.get("GAUGUIN_TEST_HOST", ""), "netns": os.readlink("/proc/self/ns/net"),
                            "master_addr": os.environ.get("MASTER_ADDR", ""), "world_size": str(self.dist.world_size)})
        return path

    def pausing_save(self, step, *args, **kwargs):
        out = save(self, step, *args, **kwargs)
        if step == pause:
            Path(os.environ["GAUGUIN_TEST_PAUSE_MARKER"]).touch()
            time.sleep(3600)  # stopped dead until killed
        return out

    loop.Trainer.train = dumping_train
    if pause:
        loop.Trainer.save = pausing_save
    return cli.main(argv)


if __name__ == "__main__":
    sys.exit(_worker_main(sys.argv[1:]))
