#!/usr/bin/env python3
"""Two "hosts" on one machine, for multi-host ``torchrun`` tests: two network namespaces joined by a veth pair.

Each namespace is a host with its own network stack: loopback plus one end of the veth pair, holding a
private test address (10.99.0.1/24 and 10.99.0.2/24 by default). The namespaces have no other interface
and no route, so whatever runs in them can reach only the other namespace. Needs root (``ip netns``).

As a library (what ``tests/test_multihost.py`` uses)::

    with TwoHosts() as hosts:                     # unique names; removed on exit, and at interpreter exit
        proc = hosts.popen(0, ["python", "-m", "..."])   # ip netns exec <ns of host 0> python -m ...
        hosts.kill(1)                             # SIGKILL every process in host 1's namespace

From a shell::

    python scripts/multihost.py up [--token T]    # create; prints the namespaces, veth ends and addresses
    python scripts/multihost.py exec T 1 -- CMD   # run CMD in host 1 (0 or 1) of the pair T
    python scripts/multihost.py down T            # kill what runs in the namespaces, delete them (idempotent)
    python scripts/multihost.py list              # the pairs this script made that still exist
"""
from __future__ import annotations

import argparse
import atexit
import os
import secrets
import shutil
import signal
import subprocess
import sys
import time
from dataclasses import dataclass

PREFIX = "gauguin-mh"  # namespaces: gauguin-mh-<token>-<0|1>
VETH_PREFIX = "gmh"  # veth ends: gmh<token><a|b> (interface names have 15 characters at most)
SUBNET = "10.99.0"  # private test addresses: SUBNET.1, SUBNET.2 (/24)


@dataclass(frozen=True)
class Host:
    netns: str
    veth: str
    addr: str


def _ip(*args: str, check: bool = True) -> subprocess.CompletedProcess:
    done = subprocess.run(["ip", *args], capture_output=True, text=True)
    if check and done.returncode:
        raise RuntimeError(f"ip {' '.join(args)}: {done.stderr.strip() or f'exit status {done.returncode}'}")
    return done


def namespaces() -> list[str]:
    done = _ip("netns", "list", check=False)
    return [line.split()[0] for line in done.stdout.splitlines() if line.strip()]


def netns_unavailable() -> str | None:
    """Why two namespaces cannot be made here (``None`` when they can): not root, no iproute2, or refused."""
    if shutil.which("ip") is None:
        return "iproute2's `ip` is not installed (apt-get install iproute2)"
    if os.geteuid() != 0:
        return "`ip netns` needs root"
    probe = f"{PREFIX}-probe-{os.getpid()}-{secrets.token_hex(2)}"
    done = _ip("netns", "add", probe, check=False)
    if done.returncode:
        return f"`ip netns add` failed: {done.stderr.strip()}"
    try:
        veth = f"{VETH_PREFIX}p{secrets.token_hex(3)}"
        done = _ip("link", "add", veth, "type", "veth", "peer", "name", veth + "b", "netns", probe, check=False)
        if done.returncode:
            return f"`ip link add ... type veth` failed: {done.stderr.strip()}"
        _ip("link", "delete", veth, check=False)
    finally:
        _ip("netns", "delete", probe, check=False)
    return None


class TwoHosts:
    """Two network namespaces joined by a veth pair; ``create`` and ``delete`` are idempotent."""

    def __init__(self, token: str | None = None, subnet: str = SUBNET):
        self.token = token or secrets.token_hex(3)  # 6 hex digits: unique per run, short enough for veth names
        if not (self.token.isalnum() and len(VETH_PREFIX) + len(self.token) + 1 <= 15):
            raise ValueError(f"token {self.token!r}: letters and digits, {14 - len(VETH_PREFIX)} at most")
        self.hosts = tuple(Host(f"{PREFIX}-{self.token}-{i}", f"{VETH_PREFIX}{self.token}{'ab'[i]}",
                                f"{subnet}.{i + 1}") for i in range(2))
        self._atexit = False

    def __getitem__(self, i: int) -> Host:
        return self.hosts[i]

    def create(self) -> "TwoHosts":
        """Make (or re-make) both namespaces, the veth pair between them, addresses, links and loopback up."""
        self.delete()
        if not self._atexit:
            atexit.register(self.delete)
            self._atexit = True
        try:
            a, b = self.hosts
            for host in self.hosts:
                _ip("netns", "add", host.netns)
            _ip("link", "add", a.veth, "netns", a.netns, "type", "veth", "peer", "name", b.veth, "netns", b.netns)
            for host in self.hosts:
                _ip("-n", host.netns, "addr", "add", f"{host.addr}/24", "dev", host.veth)
                _ip("-n", host.netns, "link", "set", host.veth, "up")
                _ip("-n", host.netns, "link", "set", "lo", "up")
            self._wait_carrier()
        except BaseException:
            self.delete()
            raise
        return self

    def _wait_carrier(self, timeout: float = 10.0) -> None:
        """Wait until both veth ends report carrier (a fresh pair takes a moment)."""
        deadline = time.monotonic() + timeout
        while True:
            states = [_ip("-n", h.netns, "-o", "link", "show", "dev", h.veth).stdout for h in self.hosts]
            if all("state UP" in state for state in states):
                return
            if time.monotonic() > deadline:
                raise RuntimeError(f"veth pair {self.hosts[0].veth}/{self.hosts[1].veth} has no carrier after "
                                   f"{timeout:g} s: {' | '.join(s.strip() for s in states)}")
            time.sleep(0.02)

    def delete(self) -> None:
        """Kill whatever still runs in the namespaces, then delete them (which deletes the veth pair)."""
        existing = set(namespaces())
        for host in self.hosts:
            if host.netns in existing:
                self.kill(self.hosts.index(host))
                _ip("netns", "delete", host.netns, check=False)
        for host in self.hosts:  # a pair left in the root namespace by an interrupted create
            _ip("link", "delete", host.veth, check=False)

    def __enter__(self) -> "TwoHosts":
        return self.create()

    def __exit__(self, *exc) -> None:
        self.delete()

    # ------------------------------------------------------------------ running things on a host
    def command(self, i: int, argv: list[str]) -> list[str]:
        return ["ip", "netns", "exec", self.hosts[i].netns, *argv]

    def popen(self, i: int, argv: list[str], **kwargs) -> subprocess.Popen:
        """``argv`` started on host ``i`` (in its own session, so a signal to its group reaches only it)."""
        kwargs.setdefault("start_new_session", True)
        return subprocess.Popen(self.command(i, argv), **kwargs)

    def run(self, i: int, argv: list[str], **kwargs) -> subprocess.CompletedProcess:
        return subprocess.run(self.command(i, argv), **kwargs)

    def pids(self, i: int) -> list[int]:
        done = _ip("netns", "pids", self.hosts[i].netns, check=False)
        return [int(p) for p in done.stdout.split()] if done.returncode == 0 else []

    def kill(self, i: int, sig: int = signal.SIGKILL, wait: float = 5.0) -> list[int]:
        """Send ``sig`` to every process in host ``i``'s namespace (what a host dying looks like to the
        others: its sockets close); with SIGKILL, wait up to ``wait`` s for them to be gone."""
        pids = self.pids(i)
        for pid in pids:
            try:
                os.kill(pid, sig)
            except ProcessLookupError:
                pass
        deadline = time.monotonic() + wait
        while sig == signal.SIGKILL and self.pids(i) and time.monotonic() < deadline:
            time.sleep(0.02)
        return pids

    def set_link(self, i: int, up: bool) -> None:
        """Cut (or restore) host ``i``'s cable: a partition, where no peer ever hears of a close."""
        _ip("-n", self.hosts[i].netns, "link", "set", self.hosts[i].veth, "up" if up else "down")


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    sub = parser.add_subparsers(dest="command", required=True)
    up = sub.add_parser("up", help="create two namespaces joined by a veth pair")
    up.add_argument("--token", help="the pair's name (default: random)")
    down = sub.add_parser("down", help="kill what runs in a pair's namespaces and delete them")
    down.add_argument("token")
    ex = sub.add_parser("exec", help="run a command on host 0 or 1 of a pair")
    ex.add_argument("token")
    ex.add_argument("host", type=int, choices=[0, 1])
    ex.add_argument("argv", nargs=argparse.REMAINDER)
    sub.add_parser("list", help="pairs made by this script that still exist")
    args = parser.parse_args(argv)
    if args.command == "list":
        tokens = sorted({name[len(PREFIX) + 1 :].rsplit("-", 1)[0] for name in namespaces()
                         if name.startswith(PREFIX + "-") and not name.startswith(PREFIX + "-probe-")})
        print("\n".join(tokens))
        return 0
    if args.command == "up":
        reason = netns_unavailable()
        if reason:
            print(f"multihost: {reason}", file=sys.stderr)
            return 1
        hosts = TwoHosts(args.token).create()
        hosts._atexit = False
        atexit.unregister(hosts.delete)  # `up` leaves them for `down`
        for i, host in enumerate(hosts.hosts):
            print(f"host {i}: netns {host.netns}  veth {host.veth}  addr {host.addr}")
        print(f"token {hosts.token}  (remove with: {sys.argv[0]} down {hosts.token})")
        return 0
    hosts = TwoHosts(args.token)
    if args.command == "down":
        hosts.delete()
        return 0
    command = args.argv[1:] if args.argv[:1] == ["--"] else args.argv
    if not command:
        parser.error("exec needs a command after --")
    return subprocess.call(hosts.command(args.host, command))


if __name__ == "__main__":
    sys.exit(main())
