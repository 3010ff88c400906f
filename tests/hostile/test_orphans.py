"""A SIGKILLed `gate demo` leaves no process behind once the documented grace period has passed.

On main, after `kill -9` of the demo its Prometheus and both nginx masters (router and fault proxy)
kept running and the router kept sending traffic to the canary. Now every child is tied to gate with
PR_SET_PDEATHSIG (the kernel sends it SIGTERM when gate dies), so the whole topology stops by itself.
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import threading
import time
from pathlib import Path

import pytest

from gate.drivers import process
from gate.drivers.nginx import NginxError, NginxServer, nginx_binary
from tests.support.ports import free_port, wait_port

ROOT = Path(__file__).resolve().parents[2]
GRACE = 15.0
"""docs/demo.md: a killed demo's processes are gone within 15 s (Prometheus's shutdown is the slowest)."""


def _have_nginx() -> bool:
    try:
        nginx_binary()
    except NginxError:
        return False
    return Path("/usr/bin/prometheus").exists()


def _descendants(root: int) -> dict[int, str]:
    """Every live process below `root` (by parent pid, across sessions), with its command name."""
    parents: dict[int, int] = {}
    names: dict[int, str] = {}
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            stat = (entry / "stat").read_text()
        except OSError:
            continue
        name, rest = stat[stat.index("(") + 1 : stat.rindex(")")], stat[stat.rindex(")") + 2 :].split()
        if rest[0] == "Z":
            continue
        parents[int(entry.name)] = int(rest[1])
        names[int(entry.name)] = name
    found: dict[int, str] = {}
    frontier = [root]
    while frontier:
        pid = frontier.pop()
        for child, parent in parents.items():
            if parent == pid and child not in found:
                found[child] = names[child]
                frontier.append(child)
    return found


def _alive(pid: int) -> bool:
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return False
    return stat[stat.rindex(")") + 2 :].split()[0] != "Z"


@pytest.mark.skipif(not _have_nginx(), reason="needs nginx and prometheus (Debian packages)")
@pytest.mark.timeout(240)
def test_a_killed_demo_leaves_no_process(tmp_path: Path) -> None:
    env = {**os.environ, "PYTHONUNBUFFERED": "1", "COLUMNS": "200"}
    demo = subprocess.Popen(
        [sys.executable, "-m", "gate", "demo", "--quick", "--users", "20", "--store", str(tmp_path / "r.db")],
        cwd=ROOT,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        env=env,
        start_new_session=True,
    )
    seen: list[str] = []
    tree: dict[int, str] = {}
    try:
        assert demo.stdout is not None
        for raw in demo.stdout:
            seen.append(raw.decode(errors="replace"))
            if "Rollout" in seen[-1]:
                break
        assert any("Rollout" in line for line in seen), "".join(seen)
        tree = _descendants(demo.pid)
        names = set(tree.values())
        assert "prometheus" in names and "nginx" in names, tree
        assert sum(1 for n in tree.values() if n == "nginx") >= 4  # two masters, their workers
        os.kill(demo.pid, signal.SIGKILL)
        demo.wait(timeout=10)
        deadline = time.monotonic() + GRACE
        while time.monotonic() < deadline and any(_alive(p) for p in tree):
            time.sleep(0.2)
        left = {pid: name for pid, name in tree.items() if _alive(pid)}
        assert not left, f"still running {GRACE:g}s after the demo was killed: {left}"
    finally:
        for pid in [demo.pid, *tree]:  # only what this test started
            if _alive(pid):
                os.kill(pid, signal.SIGKILL)
        if demo.poll() is None:
            demo.wait(timeout=10)


@pytest.mark.skipif(not _have_nginx(), reason="needs nginx")
@pytest.mark.timeout(60)
def test_a_local_router_outside_the_demo_outlives_its_gate(tmp_path: Path) -> None:
    """`gate run`'s own nginx must keep routing while gate restarts (the resume adopts it by pid file):
    it is tied to gate only inside `tied_tree()`."""
    port = free_port()
    script = (
        "import sys, time\n"
        "from gate.drivers.nginx import NginxServer, main_config\n"
        f"s = NginxServer({str(tmp_path / 'ngx')!r})\n"
        "s.apply(main_config('server { listen 127.0.0.1:%d; location / { return 200 ok; } }' % int(sys.argv[1])))\n"
        "print(s.pid(), flush=True)\n"
        "time.sleep(60)\n"
    )
    owner = subprocess.Popen([sys.executable, "-c", script, str(port)], cwd=ROOT, stdout=subprocess.PIPE)
    assert owner.stdout is not None
    master = int(owner.stdout.readline())
    server = NginxServer(tmp_path / "ngx")
    try:
        wait_port(port)
        owner.kill()
        owner.wait(timeout=10)
        time.sleep(1.0)
        assert server.pid() == master and _alive(master)  # adoptable through its pid file
    finally:
        server.stop()
        if owner.poll() is None:
            owner.kill()
    assert not _alive(master)


def test_tying_needs_the_main_thread() -> None:
    assert process.can_tie() == sys.platform.startswith("linux")
    got: list[bool] = []
    worker = threading.Thread(target=lambda: got.append(process.can_tie()))
    worker.start()
    worker.join()
    assert got == [False]
    assert "preexec_fn" not in process.child_options(tie=False)


@pytest.mark.timeout(60)
def test_a_tied_child_gets_sigterm_when_its_parent_is_killed(tmp_path: Path) -> None:
    script = (
        "import subprocess, sys, time\n"
        "from gate.drivers.process import child_options\n"
        "p = subprocess.Popen(['sleep', '120'], **child_options())\n"
        "print(p.pid, flush=True)\n"
        "time.sleep(120)\n"
    )
    parent = subprocess.Popen([sys.executable, "-c", script], cwd=ROOT, stdout=subprocess.PIPE)
    assert parent.stdout is not None
    child = int(parent.stdout.readline())
    assert _alive(child)
    parent.kill()
    parent.wait(timeout=10)
    deadline = time.monotonic() + 10
    while time.monotonic() < deadline and _alive(child):
        time.sleep(0.05)
    try:
        assert not _alive(child)
    finally:
        if _alive(child):
            os.kill(child, signal.SIGKILL)
