"""Special, oversized and sparse files are refused before a byte is read: exit 2, a clear sentence.

On main before this change `gate validate /dev/zero` and `gate judge /dev/zero` grew without bound, a
FIFO hung both, a 3 GiB sparse file was read whole (18 s, 3.3 GB) and a folder holding a symlink to
/dev/zero hung `gate validate DIR`. The timeouts below turn such a hang into a failure.
"""

from __future__ import annotations

import json
import os
import socket
import tracemalloc
from pathlib import Path

import pytest
from typer.testing import CliRunner

from gate import boundedio
from gate.cli.main import app
from gate.contract import ContractError, load_contract
from gate.judge.evidence import MAX_JSON_BYTES

from .conftest import CONTRACT

runner = CliRunner()
HOSTILE = ["fifo", "zero_link", "sparse"]


@pytest.mark.timeout(60)
@pytest.mark.parametrize("kind", HOSTILE)
@pytest.mark.parametrize("command", ["validate", "explain", "judge"])
def test_cli_refuses_special_and_huge_files(kind: str, command: str, request: pytest.FixtureRequest) -> None:
    path: Path = request.getfixturevalue(kind)
    result = runner.invoke(app, [command, str(path)])
    assert result.exit_code == 2, result.output
    words = {"fifo": "FIFO", "zero_link": "character device", "sparse": "is 3.0 GiB"}[kind]
    assert words in result.output
    assert str(path) in result.output
    assert "Traceback" not in result.output


@pytest.mark.timeout(60)
def test_validate_folder_with_symlink_to_dev_zero_and_a_fifo(tmp_path: Path) -> None:
    (tmp_path / "good.yaml").write_text(CONTRACT.read_text())
    (tmp_path / "zero.yaml").symlink_to("/dev/zero")
    os.mkfifo(tmp_path / "pipe.yml")
    result = runner.invoke(app, ["validate", str(tmp_path)])
    assert result.exit_code == 2, result.output
    assert "good.yaml: ok" in result.output
    assert "zero.yaml: is a character device, not a regular file" in result.output
    assert "pipe.yml: is a FIFO (named pipe), not a regular file" in result.output
    assert "1 valid, 2 invalid" in result.output


def test_sparse_giant_is_refused_without_reading_it(sparse: Path) -> None:
    tracemalloc.start()
    try:
        with pytest.raises(ContractError) as caught:
            load_contract(sparse)
        _current, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    assert peak < 5 * 1024 * 1024, f"{peak} bytes allocated to refuse a file by its size"
    (problem,) = caught.value.problems
    assert problem.file == str(sparse)
    assert "contract files are limited to 1.0 MiB" in problem.message


def test_evidence_over_the_limit_is_refused_by_size_before_parsing(tmp_path: Path) -> None:
    # 60 MB of raw samples: refused by stat, so nothing is parsed (on main: 808 MB RSS, then refused).
    path = tmp_path / "evidence.json"
    with path.open("wb") as fh:
        fh.write(b'{"objectives": [], "slis": {"x": {"synthetic": {"stable": {"values": [')
        fh.truncate(60_000_000)
    tracemalloc.start()
    try:
        result = runner.invoke(app, ["judge", str(path)])
        _current, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    assert result.exit_code == 2, result.output
    assert "is 57.2 MiB; evidence files are limited to 16.0 MiB" in result.output
    assert "send histograms" in result.output
    assert peak < 20 * 1024 * 1024


def test_evidence_at_the_limit_still_reads(tmp_path: Path) -> None:
    values = [0.1] * 1000
    doc = {
        "objectives": [{"sli": "http-latency", "quantile": "p95", "max": "1s", "sources": ["synthetic"]}],
        "slis": {
            "http-latency": {
                "synthetic": {
                    "stable": {"kind": "samples", "values": values},
                    "canary": {"kind": "samples", "values": values},
                }
            }
        },
    }
    text = json.dumps(doc)
    path = tmp_path / "evidence.json"
    path.write_text(text + " " * (MAX_JSON_BYTES - len(text)))
    assert path.stat().st_size == MAX_JSON_BYTES
    result = runner.invoke(app, ["judge", str(path)])
    assert result.exit_code in (0, 3), result.output


def test_socket_and_directory_are_refused(tmp_path: Path) -> None:
    where = tmp_path / "s.yaml"
    with socket.socket(socket.AF_UNIX) as sock:
        sock.bind(str(where))
        with pytest.raises(boundedio.FileRefused, match="is a socket"):
            boundedio.read_limited(where, 1024)
    with pytest.raises(boundedio.FileRefused, match="is a directory"):
        boundedio.read_limited(tmp_path, 1024)


def test_missing_file_says_so(tmp_path: Path) -> None:
    result = runner.invoke(app, ["validate", str(tmp_path / "nope.yaml")])
    assert result.exit_code == 2
    assert "nope.yaml: cannot read: No such file or directory" in result.output


def test_a_file_that_reports_size_zero_but_never_ends_is_cut_at_the_limit() -> None:
    # /proc files are regular and report size 0; the read stops at limit + 1 bytes all the same.
    with pytest.raises(boundedio.FileRefused, match="grew past the limit"):
        boundedio.read_limited("/proc/self/maps", 16)


def test_read_prefix_reads_only_a_prefix(tmp_path: Path) -> None:
    path = tmp_path / "big.yaml"
    path.write_bytes(b"kind: PerformanceContract\n" + b"#" * 200_000)
    assert boundedio.read_prefix(path, 64) == (b"kind: PerformanceContract\n" + b"#" * 200_000)[:64]
    with pytest.raises(boundedio.FileRefused):
        boundedio.read_prefix("/dev/zero", 64)


@pytest.mark.timeout(60)
def test_referenced_locustfile_and_experiment_must_be_regular_files(tmp_path: Path) -> None:
    (tmp_path / "load.py").symlink_to("/dev/zero")
    os.mkfifo(tmp_path / "exp.json")
    with (tmp_path / "big.yaml").open("wb") as fh:
        fh.truncate(2 * 1024**2)
    text = (
        "apiVersion: perfgate.dev/v1alpha1\nkind: PerformanceContract\nmetadata: {name: c}\nspec:\n"
        "  target: {stable: {url: 'http://s:1'}, canary: {url: 'http://c:1'}}\n"
        "  load: {users: 1, duration: 10s, locustfile: load.py}\n"
        "  chaos: {a: {experiment: exp.json}, b: {experiment: big.yaml}}\n"
        "  objectives: [{sli: http-latency, quantile: 0.95, max: 220ms}]\n"
    )
    (tmp_path / "c.yaml").write_text(text)
    result = runner.invoke(app, ["validate", str(tmp_path / "c.yaml")])
    assert result.exit_code == 2
    assert "locustfile 'load.py' is a character device, not a regular file" in result.output
    assert "experiment file 'exp.json' is a FIFO (named pipe)" in result.output
    assert (
        "experiment file 'big.yaml' is 2.0 MiB; chaos experiment files are limited to 1.0 MiB"
        in result.output
    )
