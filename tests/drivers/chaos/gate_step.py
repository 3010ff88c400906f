"""A stand-in for a gate in the middle of a chaos step, for the SIGKILL tests.

    python -m tests.drivers.chaos.gate_step --ledger L --workdir W --admin URL

Starts the chaos driver with a builtin fault held for a long step and waits; the test kills it.
"""

from __future__ import annotations

import argparse
import time
from pathlib import Path

from gate.drivers.chaos import BuiltinFault, ChaosDriver, FaultLedger, HttpFault


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--ledger", required=True)
    parser.add_argument("--workdir", required=True)
    parser.add_argument("--admin", required=True)
    parser.add_argument("--target", default="risk-api")
    args = parser.parse_args()
    driver = ChaosDriver(FaultLedger(Path(args.ledger)), Path(args.workdir))
    fault = HttpFault(args.target, delay=0.05, delay_percent=1.0, abort=1.0, abort_status=503)
    run = driver.start("killed-mid-step", BuiltinFault(fault), {"fault_proxy": args.admin}, duration=120)
    print(f"worker {run.pid}", flush=True)
    deadline = time.monotonic() + 150
    while time.monotonic() < deadline:  # a gate busy measuring while the fault is in place
        time.sleep(0.2)


if __name__ == "__main__":
    main()
