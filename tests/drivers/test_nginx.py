"""The nginx process manager runs a real nginx on loopback, refuses bad configs, reloads, stops."""

from __future__ import annotations

import urllib.request
from pathlib import Path

import pytest

from gate.drivers.nginx import NginxError, NginxServer, main_config
from tests.support.ports import free_port, wait_port


def _conf(port: int, body: str) -> str:
    return main_config(
        f"server {{ listen 127.0.0.1:{port}; location / {{ return 200 '{body}'; }} }}", lua=True
    )


def test_start_reload_stop(tmp_path: Path) -> None:
    port = free_port()
    server = NginxServer(tmp_path / "nginx")
    server.apply(_conf(port, "one"))
    try:
        wait_port(port)
        assert urllib.request.urlopen(f"http://127.0.0.1:{port}/").read() == b"one"
        server.apply(_conf(port, "two"))
        assert urllib.request.urlopen(f"http://127.0.0.1:{port}/").read() == b"two"
    finally:
        server.stop()
    assert not server.running()


def test_bad_config_changes_nothing(tmp_path: Path) -> None:
    port = free_port()
    server = NginxServer(tmp_path / "nginx")
    server.apply(_conf(port, "good"))
    try:
        wait_port(port)
        with pytest.raises(NginxError, match="nginx -t rejected"):
            server.apply(_conf(port, "bad").replace("return 200", "retrun 200"))
        assert urllib.request.urlopen(f"http://127.0.0.1:{port}/").read() == b"good"
        assert "retrun" not in server.conf_path.read_text()
    finally:
        server.stop()
