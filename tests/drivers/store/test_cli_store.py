"""`gate run` and the store: a run driven by another process is refused with who drives it (exit 2,
nothing touched), a broken store gets its own exit code (5) and message, `--abort` of a finished run
says it has finished. Real demo services, Prometheus and gate's nginx (the topology of test_run_cmd)."""

from __future__ import annotations

import random
import time
from pathlib import Path

import pytest
from typer.testing import CliRunner

from gate.cli.main import app
from gate.drivers.nginx import NginxServer
from gate.drivers.routers.nginx import parse_state
from gate.drivers.store import EXIT_STORE, RunStore
from tests.engine.test_run_cmd import CONTRACT, _have, topology  # noqa: F401  (fixture)
from tests.support.ports import free_port

pytestmark = pytest.mark.skipif(
    not (_have("nginx") and _have("prometheus")), reason="needs nginx and prometheus (Debian packages)"
)


def test_a_run_driven_elsewhere_is_refused_and_a_finished_one_says_so(
    tmp_path: Path,
    topology: dict[str, str],  # noqa: F811  (the fixture)
) -> None:
    contract = tmp_path / "contract.yaml"
    text = CONTRACT.format(port=free_port(), steps="[10%, analyze 1s, 100%]", **topology)
    contract.write_text(text.replace("onInconclusive: rollback", "onInconclusive: hold"))
    store_path, prefix = tmp_path / "runs.sqlite", tmp_path / "nginx"
    base = [
        "run",
        str(contract),
        "--store",
        str(store_path),
        "--nginx-prefix",
        str(prefix),
        "--no-live",
        "--no-preflight",
    ]
    runner = CliRunner()
    other = "build-7.example.org/4242/cafe0001"  # a `gate run` on another machine
    try:
        held = runner.invoke(app, [*base, "--exit-when-held"], catch_exceptions=False)
        assert held.exit_code == 3, held.output
        with RunStore(store_path) as store:
            run_id = store.list_runs()[0].id
            assert store.lease(run_id) is None  # released when `gate run` ended
            store.acquire_lease(run_id, other, ttl=3600, now=time.time())
        refused = runner.invoke(app, [*base, "--resume", run_id], catch_exceptions=False)
        assert refused.exit_code == 2, refused.output
        assert f"run {run_id} is driven by {other} since" in refused.output
        assert "--approve/--abort" in refused.output and "Traceback" not in refused.output
        state = parse_state((prefix / "conf" / "nginx.conf").read_text())
        assert state is not None and state.canary_weight == 10  # nothing touched
        asked = runner.invoke(app, [*base, "--abort", run_id], catch_exceptions=False)
        assert asked.exit_code == 0, asked.output  # a person may still ask; the driver acts on it
        with RunStore(store_path) as store:
            assert store.count("transitions", run_id) == len(store.transitions(run_id))
            store.release_lease(run_id, other)  # that process stopped
        resumed = runner.invoke(app, [*base, "--resume", run_id], catch_exceptions=False)
        assert resumed.exit_code == 1, resumed.output
        again = runner.invoke(app, [*base, "--abort", run_id], catch_exceptions=False)
        assert again.exit_code == 2, again.output
        assert f"run {run_id} has already finished: rolled_back" in again.output
    finally:
        NginxServer(prefix).stop()
    with RunStore(store_path) as store:
        assert store.lease(run_id) is None
        assert {t.input_kind for t in store.transitions(run_id)} >= {"abort"}


@pytest.mark.parametrize("verb", ["run", "abort"])
def test_a_broken_store_exits_5_with_what_is_wrong(tmp_path: Path, verb: str) -> None:
    contract = tmp_path / "contract.yaml"
    urls = {
        "stable": "http://127.0.0.1:9/",
        "canary": "http://127.0.0.1:9/",
        "prometheus": "http://127.0.0.1:9/",
    }
    contract.write_text(CONTRACT.format(port=free_port(), steps="[10%, 100%]", **urls))
    store_path, prefix = tmp_path / "runs.sqlite", tmp_path / "nginx"
    store_path.write_bytes(random.Random(3).randbytes(8192))
    extra = ["--abort", "some-run"] if verb == "abort" else []
    result = CliRunner().invoke(
        app,
        [
            "run",
            str(contract),
            "--store",
            str(store_path),
            "--nginx-prefix",
            str(prefix),
            "--no-live",
            "--no-preflight",
            *extra,
        ],
        catch_exceptions=False,
    )
    assert result.exit_code == EXIT_STORE, result.output
    assert "not an SQLite database" in result.output and "Traceback" not in result.output
    assert not (prefix / "conf" / "nginx.conf").exists()  # the router was never touched
