"""The Dockerfile, read (no Docker engine can run here, so the image is NOT built by these tests):
its sources exist and pass .dockerignore, it installs from the lock with hashes, runs as the chart's
non-root user, writes only to the chart's volumes, and its entry point is the one the chart's args use."""

from __future__ import annotations

import fnmatch
import json
import re
import tomllib
from pathlib import Path

import pytest

from tests.helm import tools
from tests.helm.conftest import Render, one

ROOT = tools.ROOT
DOCKERFILE = ROOT / "Dockerfile"


def _instructions() -> list[tuple[str, str]]:
    text = re.sub(r"\\\n\s*", " ", DOCKERFILE.read_text())
    out = []
    for raw in text.splitlines():
        line = raw.strip()
        if line and not line.startswith("#"):
            word, _, rest = line.partition(" ")
            out.append((word.upper(), rest.strip()))
    return out


def _ignored(path: str) -> bool:
    """Docker's .dockerignore rules, last match wins (`!` re-includes)."""
    ignored = False
    for raw in (ROOT / ".dockerignore").read_text().splitlines():
        rule = raw.strip()
        if not rule or rule.startswith("#"):
            continue
        negate = rule.startswith("!")
        pattern = rule.lstrip("!").rstrip("/").removeprefix("**/")
        parts = path.split("/")
        hit = any(fnmatch.fnmatch("/".join(parts[: i + 1]), pattern) for i in range(len(parts)))
        hit = hit or any(fnmatch.fnmatch(p, pattern) for p in parts)
        if hit:
            ignored = not negate
    return ignored


def test_every_copy_source_exists_and_is_sent_to_the_build() -> None:
    copies = [rest for word, rest in _instructions() if word == "COPY" and "--from=" not in rest]
    assert copies
    for rest in copies:
        *sources, _dest = rest.split()
        for source in sources:
            assert (ROOT / source).exists(), f"COPY {source}: not in the repository"
            assert not _ignored(source), f"COPY {source}: excluded by .dockerignore"
            if (ROOT / source).is_dir():
                files = [p for p in (ROOT / source).rglob("*.py")]
                assert all(not _ignored(str(p.relative_to(ROOT))) for p in files[:50])


def test_installs_from_the_lock_with_hashes_only() -> None:
    runs = " ".join(rest for word, rest in _instructions() if word == "RUN")
    assert "--require-hashes" in runs and "-r requirements.lock" in runs
    assert "--no-deps" in runs  # nothing resolved at build time beyond the lock
    installs = re.findall(r"pip install ([^&]*)", runs)
    assert all("--require-hashes" in i or "--no-index" in i for i in installs), installs


def test_python_matches_the_project() -> None:
    args = dict(rest.split("=", 1) for word, rest in _instructions() if word == "ARG" and "=" in rest)
    requires = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]["requires-python"]
    minor = re.search(r"python:(3\.\d+)", args["PYTHON_IMAGE"]).group(1)  # type: ignore[union-attr]
    assert f">={minor}" in requires
    assert f"/python{minor}/site-packages" in DOCKERFILE.read_text()


def test_entry_point_is_gate_and_the_default_command_is_the_chart_operator(render: Render) -> None:
    steps = dict(_instructions())
    assert json.loads(steps["ENTRYPOINT"]) == ["gate"]
    scripts = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]["scripts"]
    assert scripts["gate"] == "gate.cli.main:app"
    operator = one(render(), "Deployment", "-operator")["spec"]["template"]["spec"]["containers"][0]
    assert "command" not in operator
    assert json.loads(steps["CMD"])[0] == operator["args"][0] == "operator"


def test_runs_as_the_chart_non_root_user_and_writes_only_to_volumes(render: Render) -> None:
    steps = dict(_instructions())
    uid, gid = steps["USER"].split(":")
    pod = one(render(), "Deployment", "-operator")["spec"]["template"]["spec"]
    assert int(uid) == pod["securityContext"]["runAsUser"] != 0
    assert int(gid) == pod["securityContext"]["runAsGroup"]
    volumes = set(json.loads(steps["VOLUME"]))
    mounts = {m["mountPath"] for m in pod["containers"][0]["volumeMounts"]}
    assert mounts <= volumes
    env = dict(re.findall(r"(\w+)=(\S+)", steps["ENV"]))
    for name in ("HOME", "GATE_WORKDIR", "GATE_OPERATOR_WORKDIR"):
        assert any(env[name] == v or env[name].startswith(v + "/") for v in volumes), name
    assert env["PYTHONDONTWRITEBYTECODE"] == "1"


def test_the_sli_library_goes_where_the_package_looks_first() -> None:
    from gate.contract.sli import SliLibrary

    dest = next(
        rest.split()[1] for word, rest in _instructions() if word == "COPY" and rest.startswith("analyses")
    )
    assert dest.endswith("/gate/contract/analyses")
    assert Path(SliLibrary.default_path()).name == "analyses"


@pytest.mark.skipif(not (ROOT / ".venv" / "bin" / "gate").exists(), reason="no .venv/bin/gate: run make deps")
def test_the_entry_point_runs_the_commands_the_chart_passes() -> None:
    import subprocess

    gate = ROOT / ".venv" / "bin" / "gate"
    listed = subprocess.run([str(gate), "--help"], capture_output=True, text=True, timeout=60, check=False)
    assert listed.returncode == 0
    for command in ("operator", "dashboard"):
        if f" {command} " not in listed.stdout:
            pytest.skip(f"`gate {command}` is not on this branch yet")
        done = subprocess.run(
            [str(gate), command, "--help"], capture_output=True, text=True, timeout=60, check=False
        )
        assert done.returncode == 0, done.stderr
