"""Hostile files and servers, made on the spot: FIFOs, device symlinks, sparse giants."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
CONTRACT = ROOT / "contracts" / "checkout.yaml"


@pytest.fixture
def fifo(tmp_path: Path) -> Path:
    path = tmp_path / "contract.yaml"
    os.mkfifo(path)
    return path


@pytest.fixture
def zero_link(tmp_path: Path) -> Path:
    path = tmp_path / "contract.yaml"
    path.symlink_to("/dev/zero")
    return path


@pytest.fixture
def sparse(tmp_path: Path) -> Path:
    """A 3 GiB file that takes no disk space (a hole); reading it would cost 3 GiB of memory."""
    path = tmp_path / "contract.yaml"
    with path.open("wb") as fh:
        fh.truncate(3 * 1024**3)
    return path
