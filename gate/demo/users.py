""" "Production users" for the demo: a steady, bounded stream of requests sent through the router.

Not Locust: production traffic is not gate's load. It carries no ``X-Traffic-Source`` header, so the
services label it ``production``; nginx splits it between stable and canary by weight and mirrors it
to the canary as ``shadow``. Arrivals are open-loop (Poisson at ``--rate`` per second) with a cap on
requests in flight, and the program stops by itself after ``--duration`` seconds or on SIGTERM.

    python -m gate.demo.users --url http://127.0.0.1:8080 --rate 30 --duration 600
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import os
import random
import signal
import sys
import time
from dataclasses import dataclass, field

from gate.demo.http1 import Http1Client, Http1Error

MAX_RATE = 500.0
MAX_DURATION = 3600.0
MAX_IN_FLIGHT = 200
REQUEST_TIMEOUT = 10.0

# The production mix: what real users of the checkout do (the synthetic load should resemble it).
MIX: tuple[tuple[str, int], ...] = (("browse", 5), ("place-order", 3), ("list-orders", 2))


@dataclass
class Tally:
    """What the users saw, printed as one JSON line at exit."""

    sent: int = 0
    ok: int = 0
    failed: int = 0
    dropped: int = 0  # not sent because too many were in flight (the router is saturated)
    by_status: dict[str, int] = field(default_factory=dict)


async def _one(client: Http1Client, kind: str, rng: random.Random, tally: Tally) -> None:
    try:
        if kind == "browse":
            answer = await client.get(f"/catalog/{rng.randint(1, 500)}", {}, REQUEST_TIMEOUT)
        elif kind == "place-order":
            order = {"sku": f"A-{rng.randint(1, 20)}", "qty": rng.randint(1, 3)}
            answer = await client.post_json("/orders", order, {}, REQUEST_TIMEOUT)
        else:
            offset = rng.choice((0, 0, 0, 20, 40, 1000))
            answer = await client.get(f"/orders?offset={offset}", {}, REQUEST_TIMEOUT)
    except (Http1Error, TimeoutError) as exc:
        tally.failed += 1
        key = type(exc).__name__
        tally.by_status[key] = tally.by_status.get(key, 0) + 1
        return
    key = str(answer.status)
    tally.by_status[key] = tally.by_status.get(key, 0) + 1
    if answer.status < 500:
        tally.ok += 1
    else:
        tally.failed += 1


async def run_users(
    url: str, rate: float, duration: float, seed: int | None = None, parent_pid: int | None = None
) -> Tally:
    """Send Poisson arrivals at ``rate`` per second to ``url`` for ``duration`` seconds.

    With ``parent_pid``, stop as soon as that process is gone (the topology was killed)."""
    rate = max(0.1, min(rate, MAX_RATE))
    duration = max(0.0, min(duration, MAX_DURATION))
    rng = random.Random(seed)
    kinds = [k for k, _ in MIX]
    weights = [w for _, w in MIX]
    tally = Tally()
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGTERM, signal.SIGINT):
        with contextlib.suppress(NotImplementedError, RuntimeError):
            loop.add_signal_handler(sig, stop.set)
    in_flight: set[asyncio.Task[None]] = set()
    client = Http1Client(url)
    try:
        deadline = time.monotonic() + duration
        next_at = time.monotonic()
        while not stop.is_set() and time.monotonic() < deadline:
            if parent_pid is not None and os.getppid() != parent_pid:
                break
            next_at += rng.expovariate(rate)
            delay = next_at - time.monotonic()
            if delay > 0.2:
                with contextlib.suppress(TimeoutError):
                    await asyncio.wait_for(stop.wait(), timeout=delay)
            elif delay > 0:
                await asyncio.sleep(delay)  # short gaps: a plain sleep costs far less than wait_for
            if stop.is_set():
                break
            if len(in_flight) >= MAX_IN_FLIGHT:
                tally.dropped += 1
                continue
            task = asyncio.create_task(_one(client, rng.choices(kinds, weights)[0], rng, tally))
            tally.sent += 1
            in_flight.add(task)
            task.add_done_callback(in_flight.discard)
        if in_flight:
            # Let requests in flight finish briefly; the rest are cancelled with the client.
            await asyncio.wait(in_flight, timeout=2.0)
            for task in in_flight:
                task.cancel()
    finally:
        await client.aclose()
    return tally


def main(argv: list[str] | None = None) -> None:
    """Command line entry: run the users, then print the tally as one JSON line."""
    parser = argparse.ArgumentParser(prog="python -m gate.demo.users", description="demo production users")
    parser.add_argument("--url", required=True, help="the router's base URL")
    parser.add_argument("--rate", type=float, default=30.0, help=f"requests per second (max {MAX_RATE:g})")
    parser.add_argument("--duration", type=float, default=600.0, help=f"seconds (max {MAX_DURATION:g})")
    parser.add_argument("--seed", type=int, default=None)
    parser.add_argument("--parent", type=int, default=None, help="stop when this process id is gone")
    args = parser.parse_args(argv)
    tally = asyncio.run(run_users(args.url, args.rate, args.duration, args.seed, args.parent))
    sys.stdout.write(json.dumps(tally.__dict__) + "\n")


if __name__ == "__main__":
    main()
