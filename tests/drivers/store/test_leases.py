"""One driver per run: leases (holder, acquired, heartbeat, expiry) decided by the database, and fencing
— a process whose lease was taken over cannot write another transition. With two real processes on
both back ends."""

from __future__ import annotations

import os
import subprocess
import sys
import time
from pathlib import Path

import pytest

from gate.drivers.store import (
    LeaseHeld,
    LeaseKeeper,
    LeaseLost,
    RunStore,
    StoreError,
    holder_is_gone,
    new_holder,
)

ROOT = Path(__file__).resolve().parents[3]
STATE = {"phase": "stepping", "status": "running", "step": 1, "weight": 10}


def new_run(store: RunStore) -> str:
    return store.create_run(contract_name="checkout", plan={"steps": []}, state={"phase": "pending"}, at=1.0)


def test_a_lease_is_held_renewed_released_and_taken_over_only_after_expiry(store_url: str) -> None:
    with RunStore(store_url) as store:
        run = new_run(store)
        assert store.lease(run) is None
        lease = store.acquire_lease(run, "a", ttl=30, now=1000.0)
        assert (lease.holder, lease.acquired_at, lease.heartbeat_at, lease.expires_at) == (
            "a",
            1000.0,
            1000.0,
            1030.0,
        )
        again = store.acquire_lease(run, "a", ttl=30, now=1010.0)  # the holder itself: a renewal
        assert (again.acquired_at, again.expires_at) == (1000.0, 1040.0)
        with pytest.raises(LeaseHeld) as held:
            store.acquire_lease(run, "b", ttl=30, now=1039.9)
        assert (held.value.holder, held.value.since, held.value.expires) == ("a", 1000.0, 1040.0)
        assert f"run {run} is driven by a since 1970-01-01T00:16:40Z" in str(held.value)
        assert "--approve/--abort" in str(held.value)
        renewed = store.renew_lease(run, "a", ttl=30, now=1020.0)
        assert (renewed.heartbeat_at, renewed.expires_at) == (1020.0, 1050.0)
        with pytest.raises(LeaseLost):
            store.renew_lease(run, "b", ttl=30, now=1020.0)
        taken = store.acquire_lease(run, "b", ttl=30, now=1050.0)  # expired at 1050: taken over
        assert (taken.holder, taken.acquired_at) == ("b", 1050.0)
        with pytest.raises(LeaseLost, match="it is now held by b"):
            store.renew_lease(run, "a", ttl=30, now=1051.0)
        (entry,) = store.audit(run)
        assert (entry.actor, entry.action, entry.details) == ("b", "takeover", {"previous": "a"})
        assert not store.release_lease(run, "a")
        assert store.release_lease(run, "b")
        assert store.lease(run) is None
        assert store.acquire_lease(run, "c", ttl=5, now=1052.0).holder == "c"  # free again at once
        with pytest.raises(StoreError, match="no run"):
            store.acquire_lease("missing", "a", ttl=5, now=1.0)
        with pytest.raises(StoreError, match="positive"):
            store.acquire_lease(run, "c", ttl=0, now=1.0)


def test_writes_of_a_holder_that_lost_its_lease_are_refused(store_url: str) -> None:
    with RunStore(store_url) as store:
        run = new_run(store)
        store.acquire_lease(run, "a", ttl=10, now=100.0)
        a = store.fenced("a")
        assert "holder='a'" in repr(a)
        a.checkpoint(
            run, seq=1, at=1.0, input={"kind": "start"}, state=STATE, effects=[{"kind": "x"}, {"kind": "y"}]
        )
        a.effect_done(run, 1, 0, at=1.0)
        store.acquire_lease(run, "b", ttl=10, now=111.0)  # a's lease expired: b takes over
        with pytest.raises(LeaseLost, match=f"run {run}: a no longer holds"):
            a.effect_done(run, 1, 1, at=2.0)
        with pytest.raises(LeaseLost):
            a.checkpoint(run, seq=2, at=2.0, input={"kind": "tick"}, state=STATE, effects=[])
        with pytest.raises(LeaseLost):
            store.checkpoint(run, seq=2, at=2.0, input={"kind": "tick"}, state=STATE, effects=[], holder="a")
        assert [p.idx for p in store.pending_effects(run)] == [1]  # nothing a wrote after losing it
        assert store.last_seq(run) == 1
        store.effect_done(run, 1, 1, at=3.0, holder="b")
        store.checkpoint(run, seq=2, at=3.0, input={"kind": "tick"}, state=STATE, effects=[], holder="b")
        store.release_lease(run, "b")
        with pytest.raises(LeaseLost, match="nobody holds it now"):
            store.checkpoint(run, seq=3, at=4.0, input={"kind": "tick"}, state=STATE, effects=[], holder="b")
        store.checkpoint(
            run, seq=3, at=4.0, input={"kind": "tick"}, state=STATE, effects=[]
        )  # unfenced: as before


def test_the_keeper_renews_the_lease_and_releases_it(store_url: str) -> None:
    with RunStore(store_url) as store:
        run = new_run(store)
        clock = [1000.0]
        with LeaseKeeper(store, run, "me", ttl=0.3, clock=lambda: clock[0]) as keeper:
            clock[0] = 1000.2
            deadline = time.monotonic() + 10
            while time.monotonic() < deadline:  # the next beat (every ttl/3 = 0.1 s) renews at 1000.2
                current = store.lease(run)
                if current is not None and current.heartbeat_at == 1000.2:
                    break
                time.sleep(0.02)
            lease = store.lease(run)
            assert (
                lease is not None
                and lease.heartbeat_at == 1000.2
                and lease.expires_at == pytest.approx(1000.5)
            )
            assert not keeper.lost.is_set()
        assert store.lease(run) is None
        store.acquire_lease(run, "other", ttl=60, now=2000.0)
        keeper = LeaseKeeper(store, run, "me", ttl=0.3, clock=lambda: 2001.0)
        with pytest.raises(LeaseHeld):
            keeper.start()


def run_children(url: str, run: str, tmp_path: Path, specs: list[list[str]]) -> list[subprocess.Popen[str]]:
    sync = tmp_path / "sync"
    sync.mkdir(exist_ok=True)
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    procs = [
        subprocess.Popen(
            [
                sys.executable,
                "-m",
                "tests.drivers.store.driver_child",
                url,
                run,
                *spec[:4],
                str(sync),
                *spec[4:],
            ],
            env=env,
            cwd=ROOT,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
        )
        for spec in specs
    ]
    return procs


def wait_file(path: Path, procs: list[subprocess.Popen[str]], timeout: float = 60.0) -> None:
    deadline = time.monotonic() + timeout
    while not path.exists():
        for p in procs:
            if p.poll() is not None and p.returncode != 0:
                raise AssertionError(
                    f"a child ended early: {p.returncode} {p.stderr.read() if p.stderr else ''}"
                )
        assert time.monotonic() < deadline, f"no {path.name}"
        time.sleep(0.01)


def test_two_processes_resuming_one_run_leave_exactly_one_driver(store_url: str, tmp_path: Path) -> None:
    with RunStore(store_url) as store:
        run = new_run(store)
    holders = [new_holder(), new_holder()]
    names = [h.replace("/", "_") for h in holders]
    sync = tmp_path / "sync"
    # Each would stop after its first transition until told to go on: the winner still holds the lease
    # when the other tries, however the two processes happen to be scheduled.
    procs = run_children(store_url, run, tmp_path, [[h, "1000", "60", "25", "1"] for h in holders])
    for name in names:
        wait_file(sync / f"ready-{name}", procs)
    (sync / "go").touch()  # both try to lease the run at the same moment
    deadline = time.monotonic() + 60
    while all(p.poll() is None for p in procs):
        assert time.monotonic() < deadline, "neither process was refused"
        time.sleep(0.01)
    for name in names:
        (sync / f"resume-{name}").touch()
    outs = [p.communicate(timeout=120) for p in procs]
    codes = sorted(p.returncode for p in procs)
    assert codes == [0, 3], outs
    for out, err in outs:
        assert "Traceback" not in err and "IntegrityError" not in err, err
    winner = holders[[p.returncode for p in procs].index(0)]
    refused = next(out for out, _ in outs if out.startswith("refused"))
    assert f"run {run} is driven by {winner} since" in refused
    with RunStore(store_url) as store:
        detail = store.run_detail(run)
        assert detail is not None
        assert [t.seq for t in detail.timeline] == list(range(1, 26))
        assert {t.input["by"] for t in detail.timeline} == {winner}
        assert all(e.done for t in detail.timeline for e in t.effects)
        assert store.lease(run) is None  # released at the end


def test_a_paused_driver_whose_lease_expired_is_fenced_off_by_the_one_that_took_over(
    store_url: str, tmp_path: Path
) -> None:
    with RunStore(store_url) as store:
        run = new_run(store)
    sync = tmp_path / "sync"
    # a leases the run at t=1000 for 10 s, writes 1..3 and stalls (a GC pause, a stopped VM).
    (a,) = run_children(store_url, run, tmp_path, [["a", "1000", "10", "6", "3"]])
    wait_file(sync / "ready-a", [a])
    (sync / "go").touch()
    wait_file(sync / "paused-a", [a])
    # b arrives at t=1005: refused; at t=1010 the lease has expired: b takes over and goes on from 4.
    early = run_children(store_url, run, tmp_path, [["b", "1005", "10", "9"]])[0]
    out_early, _ = early.communicate(timeout=60)
    assert early.returncode == 3 and out_early.startswith(f"refused: run {run} is driven by a since"), (
        out_early
    )
    late = run_children(store_url, run, tmp_path, [["b", "1010", "10", "9"]])[0]
    out_b, err_b = late.communicate(timeout=120)
    assert late.returncode == 0 and out_b.splitlines() == ["acquired", "done"], err_b
    (sync / "resume-a").touch()  # a wakes up and tries to write transition 4
    out_a, err_a = a.communicate(timeout=60)
    assert a.returncode == 4, err_a
    assert f"lost: run {run}: a no longer holds the run's lease" in out_a
    assert "Traceback" not in err_a + err_b
    with RunStore(store_url) as store:
        detail = store.run_detail(run)
        assert detail is not None
        assert [(t.seq, t.input["by"]) for t in detail.timeline] == [(s, "a") for s in (1, 2, 3)] + [
            (s, "b") for s in range(4, 10)
        ]
        assert [a.action for a in store.audit(run)] == ["takeover"]


def test_a_run_created_through_a_fenced_view_is_leased_from_its_first_commit(store_url: str) -> None:
    with RunStore(store_url) as store:
        mine = store.fenced("me", ttl=60)
        before = time.time()
        run = new_run(mine)
        lease = store.lease(run)
        assert lease is not None and lease.holder == "me" and before <= lease.acquired_at <= time.time()
        with pytest.raises(LeaseHeld):
            store.acquire_lease(run, "other", ttl=60, now=time.time())
        mine.checkpoint(run, seq=1, at=1.0, input={"kind": "start"}, state=STATE, effects=[])
        assert store.lease(new_run(store.fenced("me"))) is None  # no ttl: no lease taken


def test_a_lease_of_a_process_that_is_gone_is_taken_over_at_once(store_url: str) -> None:
    gone = subprocess.run(
        [sys.executable, "-c", "import os; print(os.getpid())"], capture_output=True, text=True, check=True
    )
    dead = f"{new_holder().split('/')[0]}/{gone.stdout.strip()}/deadbeef"
    assert holder_is_gone(dead)
    assert not holder_is_gone(new_holder())  # this process
    assert not holder_is_gone("elsewhere.example/1234/abcd")  # another machine: wait for expiry
    assert not holder_is_gone("not a holder id")
    with RunStore(store_url) as store:
        run = new_run(store)
        store.acquire_lease(run, dead, ttl=3600, now=time.time())
        with pytest.raises(LeaseHeld):
            store.acquire_lease(run, "b", ttl=60, now=time.time(), replace="someone-else")
        with LeaseKeeper(store, run, "b", ttl=60) as keeper:
            assert keeper.lease is not None and keeper.lease.holder == "b"
        (entry,) = store.audit(run)
        assert (entry.action, entry.details, entry.reason) == (
            "takeover",
            {"previous": dead},
            f"the process {dead} is gone",
        )
