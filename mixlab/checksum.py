"""The one file checksum mixlab records for what it writes (work files, markers, checkpoints) and checks before it
reuses them: xxh3-128 (xxhash), several GB/s, so checking costs about one extra read of a file."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import xxhash

CHUNK = 8 << 20


def file_checksum(path: Path) -> str:
    """xxh3-128 of the whole file at ``path``, as 32 hex digits. Raises OSError if it cannot be read."""
    h = xxhash.xxh3_128()
    with open(path, "rb") as f:
        while chunk := f.read(CHUNK):
            h.update(chunk)
    return h.hexdigest()


def file_record(path: Path) -> dict[str, Any]:
    """What is recorded of a file written: ``{"bytes": size, "xxh3_128": checksum}``. Raises OSError."""
    return {"bytes": path.stat().st_size, "xxh3_128": file_checksum(path)}


def file_problem(path: Path, record: dict[str, Any]) -> str | None:
    """What is wrong with the file at ``path`` against its :func:`file_record` (``missing``, ``truncated: 10 bytes
    where 20 were written``, ``damaged: its checksum differs ...``, ``unreadable (...)``), or None when its size and
    checksum match."""
    try:
        size = path.stat().st_size
    except FileNotFoundError:
        return "missing"
    except OSError as e:
        return f"unreadable ({e.strerror})"
    if size != record["bytes"]:
        what = "truncated" if size < record["bytes"] else "grown"
        return f"{what}: {size:,} bytes where {record['bytes']:,} were written"
    try:
        if file_checksum(path) != record["xxh3_128"]:
            return "damaged: its checksum differs from the one recorded when it was written"
    except OSError as e:
        return f"unreadable ({e.strerror})"
    return None
