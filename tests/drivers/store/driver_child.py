"""A process driving a run through the store, as `gate run --resume` does: lease it, then checkpoint
each transition and complete its effect as the lease holder. Run by test_leases.py as a real process.

usage: python -m tests.drivers.store.driver_child URL RUN HOLDER NOW TTL LAST SYNC_DIR [PAUSE_AFTER]

The clock is given (NOW): expiry is decided by the numbers, not by how fast the machine is. SYNC_DIR
holds the files the processes wait for (HOLDER with ``/`` as ``_``): ``ready-*`` (a start barrier for ``go``), ``paused-HOLDER``
(this process stopped after PAUSE_AFTER) and ``resume-HOLDER`` (it may go on).
Exit 0: driven (from where the run stood) to LAST; 3: refused (the lease is held); 4: stopped because the lease was lost.
"""

from __future__ import annotations

import sys
import time
from pathlib import Path

from gate.drivers.store import LeaseHeld, LeaseLost, RunStore


def wait_for(path: Path, timeout: float = 60.0) -> None:
    deadline = time.monotonic() + timeout
    while not path.exists():
        if time.monotonic() > deadline:
            raise SystemExit(f"timed out waiting for {path}")
        time.sleep(0.01)


def main(argv: list[str]) -> int:
    url, run, holder = argv[0], argv[1], argv[2]
    now, ttl, last = float(argv[3]), float(argv[4]), int(argv[5])
    sync = Path(argv[6])
    pause_after = int(argv[7]) if len(argv) > 7 else 0
    store = RunStore(url)
    name = holder.replace("/", "_")
    (sync / f"ready-{name}").touch()
    wait_for(sync / "go")
    try:
        store.acquire_lease(run, holder, ttl=ttl, now=now)
    except LeaseHeld as exc:
        print(f"refused: {exc}")
        return 3
    print("acquired", flush=True)
    fenced = store.fenced(holder)
    first = store.last_seq(run) + 1  # read once the lease is ours: nobody else writes it now
    state = {"phase": "stepping", "status": "running", "step": 1, "weight": 10}
    try:
        for seq in range(first, last + 1):
            fenced.checkpoint(
                run,
                seq=seq,
                at=now + seq,
                input={"kind": "tick", "by": holder},
                state=state,
                effects=[{"kind": "x"}],
            )
            fenced.effect_done(run, seq, 0, at=now + seq, result=None)
            if seq == pause_after:
                (sync / f"paused-{name}").touch()
                wait_for(sync / f"resume-{name}")
    except LeaseLost as exc:
        print(f"lost: {exc}")
        return 4
    store.release_lease(run, holder)
    print("done")
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
