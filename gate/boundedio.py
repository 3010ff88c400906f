"""Reading untrusted files without being stalled or flooded by them.

Every file a user names (contracts, OpenAPI documents, SLI libraries, evidence, chaos experiments) is
read through here: it must be a regular file (a FIFO would block forever, `/dev/zero` never ends, a
socket cannot be read), no larger than a limit — checked with `stat` before a byte is read, so a 3 GiB
sparse file is refused in microseconds — and it is opened non-blocking and read at most `limit + 1`
bytes, so a file that grows (or lies about its size, like those under /proc) cannot exceed it either.
Symlinks are followed and judged by what they point at.

A leaf module: it imports nothing of gate but `gate.errors`.
"""

from __future__ import annotations

import os
import stat
from pathlib import Path

from gate.errors import PermanentError

_KINDS = (
    (stat.S_ISDIR, "a directory"),
    (stat.S_ISFIFO, "a FIFO (named pipe)"),
    (stat.S_ISCHR, "a character device"),
    (stat.S_ISBLK, "a block device"),
    (stat.S_ISSOCK, "a socket"),
)


class FileRefused(PermanentError):
    """A file gate will not read: missing, unreadable, not a regular file, or too large.

    `reason` is the sentence without the file name (callers that position problems add it)."""

    def __init__(self, path: str | os.PathLike[str], reason: str) -> None:
        self.path = str(path)
        self.reason = reason
        super().__init__(f"{self.path}: {reason}")


def describe_size(size: int) -> str:
    """A size as a person reads it: `812 bytes`, `3.0 KiB`, `1.0 MiB`, `3.0 GiB`."""
    value = float(size)
    for unit in ("bytes", "KiB", "MiB", "GiB"):
        if value < 1024 or unit == "GiB":
            return f"{size} bytes" if unit == "bytes" else f"{value:.1f} {unit}"
        value /= 1024
    return f"{size} bytes"  # pragma: no cover - the loop always returns


def _kind(mode: int) -> str | None:
    for test, words in _KINDS:
        if test(mode):
            return words
    return None if stat.S_ISREG(mode) else "not a regular file"


def _check(path: str | os.PathLike[str], st: os.stat_result, limit: int, what: str) -> None:
    kind = _kind(st.st_mode)
    if kind is not None:
        raise FileRefused(path, f"is {kind}, not a regular file; give the path of a regular {what} file")
    if st.st_size > limit:
        raise FileRefused(
            path,
            f"is {describe_size(st.st_size)}; {what} files are limited to {describe_size(limit)}",
        )


def check_file(path: str | os.PathLike[str], limit: int, *, what: str = "input") -> os.stat_result:
    """`stat` the file (following symlinks) and refuse it unless it is a regular file within `limit`."""
    try:
        st = os.stat(path)
    except OSError as exc:
        raise FileRefused(path, f"cannot read: {exc.strerror or exc}") from None
    _check(path, st, limit, what)
    return st


def read_limited(path: str | os.PathLike[str], limit: int, *, what: str = "input") -> bytes:
    """The bytes of a regular file of at most `limit` bytes; `FileRefused` otherwise, before reading."""
    check_file(path, limit, what=what)
    return _read(path, limit, what, exact=True)


def read_prefix(path: str | os.PathLike[str], size: int) -> bytes:
    """At most the first `size` bytes of a regular file (of any size), for sniffing what it is."""
    check_file(path, 1 << 62, what="input")
    return _read(path, size, "input", exact=False)


def _read(path: str | os.PathLike[str], limit: int, what: str, *, exact: bool) -> bytes:
    flags = os.O_RDONLY | os.O_NONBLOCK | getattr(os, "O_NOCTTY", 0) | getattr(os, "O_CLOEXEC", 0)
    try:
        fd = os.open(path, flags)
    except OSError as exc:
        raise FileRefused(path, f"cannot read: {exc.strerror or exc}") from None
    try:
        # The path may have been swapped for something else since the stat: judge what was opened.
        st = os.fstat(fd)
        if exact or _kind(st.st_mode) is not None:
            _check(path, st, limit, what)
        chunks: list[bytes] = []
        got = 0
        want = limit + 1 if exact else limit
        while got < want:
            try:
                chunk = os.read(fd, min(want - got, 1 << 20))
            except BlockingIOError:
                raise FileRefused(path, "would block; give the path of a regular file") from None
            if not chunk:
                break
            chunks.append(chunk)
            got += len(chunk)
    except OSError as exc:
        raise FileRefused(path, f"cannot read: {exc.strerror or exc}") from None
    finally:
        os.close(fd)
    data = b"".join(chunks)
    if exact and len(data) > limit:
        raise FileRefused(path, f"grew past the limit of {describe_size(limit)} while being read")
    return data


def read_text_limited(path: str | os.PathLike[str] | Path, limit: int, *, what: str = "input") -> str:
    """A bounded regular file decoded as UTF-8; undecodable bytes refused with their line and column."""
    raw = read_limited(path, limit, what=what)
    try:
        return raw.decode("utf-8")
    except UnicodeDecodeError as exc:
        line = raw[: exc.start].count(b"\n") + 1
        column = exc.start - (raw.rfind(b"\n", 0, exc.start) + 1) + 1
        raise FileRefused(f"{path}:{line}:{column}", "is not UTF-8 text; save it as UTF-8") from None
