"""The fault ledger: written before injection, survives torn writes, undoes only what it may."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest

from gate.drivers.chaos import FaultEntry, FaultLedger, LedgerError, Undo
from gate.drivers.chaos import actions as chaos_actions

UNDO = Undo(
    "gate.drivers.chaos.actions", "clear_http_fault", {"admin_url": "http://127.0.0.1:1", "target": "a"}
)


def test_record_then_clear(tmp_path: Path) -> None:
    ledger = FaultLedger(tmp_path / "faults.jsonl")
    first = ledger.record("http-proxy", "k1", UNDO, {"delay_ms": 5}, run="r1", experiment="e")
    ledger.mark_injected(first)
    ledger.record("http-proxy", "k2", UNDO, run="r2")
    assert [e.key for e in ledger.open_entries()] == ["k1", "k2"]
    entry = ledger.open_entries()[0]
    assert entry.injected_at is not None and entry.run == "r1" and entry.detail == {"delay_ms": 5}
    ledger.mark_cleared("k1")
    assert [e.key for e in ledger.open_entries()] == ["k2"]
    # Every line is a complete JSON document (the file is the record a human reads after a crash).
    assert all(json.loads(line)["op"] for line in ledger.path.read_text().splitlines())


def test_refuses_undo_outside_the_allow_list(tmp_path: Path) -> None:
    ledger = FaultLedger(tmp_path / "faults.jsonl")
    with pytest.raises(LedgerError, match="not one gate knows"):
        ledger.record("x", "k", Undo("os", "system", {"command": "true"}))
    # A tampered file cannot make recovery call something else either.
    ledger.path.write_text(
        json.dumps(
            {"op": "intent", "id": "1", "key": "k", "kind": "x", "undo": {"module": "os", "func": "system"}}
        )
        + "\n"
    )
    result = ledger.recover()
    assert result.undone == [] and len(result.failed) == 1
    assert "not one gate knows" in (result.failed[0].last_error or "")


def test_torn_last_line_is_skipped(tmp_path: Path) -> None:
    ledger = FaultLedger(tmp_path / "faults.jsonl")
    ledger.record("http-proxy", "k1", UNDO)
    with ledger.path.open("a") as fh:
        fh.write('{"op": "cleared", "key": "k1"')  # a crash in the middle of a write
    assert [e.key for e in ledger.open_entries()] == ["k1"]


def test_recover_undoes_newest_first_and_keeps_failures_open(tmp_path: Path) -> None:
    ledger = FaultLedger(tmp_path / "faults.jsonl")
    for key in ("a", "b", "a"):
        ledger.record("http-proxy", key, UNDO)
    ledger.record("http-proxy", "c", UNDO, run="other")
    calls: list[str] = []

    def undo(entry: FaultEntry) -> Any:
        calls.append(entry.key)
        if entry.key == "b":
            raise ConnectionError("proxy busy")

    result = ledger.recover(undo=undo, run="")
    assert calls == ["a", "b"]  # "a" twice in the ledger, undone once; run "other" left alone
    assert [e.key for e in result.undone] == ["a", "a"]
    assert [e.key for e in result.failed] == ["b"] and "proxy busy" in (result.failed[0].last_error or "")
    assert sorted(e.key for e in ledger.open_entries()) == ["b", "c"]
    assert any(line.startswith("NOT undone") for line in result.lines())


def test_in_process_only_leaves_kubernetes_kinds(tmp_path: Path) -> None:
    ledger = FaultLedger(tmp_path / "faults.jsonl")
    istio = Undo("gate.drivers.chaos.istio", "clear_istio_fault", {"virtual_service_name": "v", "routes": []})
    ledger.record("istio-fault", "vs", istio)
    result = ledger.recover(in_process_only=True, undo=lambda e: None)
    assert [e.key for e in result.skipped] == ["vs"] and result.undone == []
    assert [e.key for e in ledger.open_entries()] == ["vs"]


def test_compaction_keeps_open_entries(tmp_path: Path) -> None:
    ledger = FaultLedger(tmp_path / "faults.jsonl")
    for i in range(30):
        ledger.record("http-proxy", f"k{i}", UNDO)
        if i != 7:
            ledger.mark_cleared(f"k{i}")
    ledger.record("http-proxy", "k3", UNDO)  # a newer open entry sharing a closed one's key
    ledger.compact(keep_closed=5)
    entries = ledger.entries()
    assert len(entries) == 7
    assert sorted(e.key for e in entries if e.open) == ["k3", "k7"]


def test_actions_refuse_to_inject_without_a_ledger(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("GATE_FAULT_LEDGER", raising=False)
    with pytest.raises(LedgerError, match="GATE_FAULT_LEDGER"):
        chaos_actions.inject_http_fault("http://127.0.0.1:1", "a", delay_ms=10)
    with pytest.raises(ValueError, match="delay_percent"):
        chaos_actions.inject_http_fault("http://127.0.0.1:1", "a", delay_ms=10, delay_percent=150)
    with pytest.raises(ValueError, match="http"):
        chaos_actions.inject_http_fault("file:///etc/passwd", "a", delay_ms=10)


def _record_many(path: str, tag: str, count: int) -> None:
    ledger = FaultLedger(Path(path))
    for i in range(count):
        entry = ledger.record("http-proxy", f"{tag}-{i}", UNDO, {"padding": "x" * 2000})
        ledger.mark_injected(entry)


def test_concurrent_writers_never_interleave(tmp_path: Path) -> None:
    """The worker records while gate recovers: whole lines only, nothing lost."""
    import multiprocessing

    path = tmp_path / "faults.jsonl"
    ctx = multiprocessing.get_context("fork")
    procs = [ctx.Process(target=_record_many, args=(str(path), f"w{n}", 40)) for n in range(4)]
    for proc in procs:
        proc.start()
    for proc in procs:
        proc.join(60)
        assert proc.exitcode == 0
    lines = path.read_text().splitlines()
    assert len(lines) == 4 * 40 * 2 and all(json.loads(line) for line in lines)
    entries = FaultLedger(path).entries()
    assert len(entries) == 160 and all(e.injected_at is not None for e in entries)
