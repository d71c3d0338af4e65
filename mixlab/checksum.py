"""The one file checksum mixlab records for what it writes (work files, markers, checkpoints) and checks before it
reuses them: xxh3-128 (xxhash), several GB/s, so checking costs about one extra read of a file."""

from __future__ import annotations

from pathlib import Path

import xxhash

CHUNK = 8 << 20


def file_checksum(path: Path) -> str:
    """xxh3-128 of the whole file at ``path``, as 32 hex digits. Raises OSError if it cannot be read."""
    h = xxhash.xxh3_128()
    with open(path, "rb") as f:
        while chunk := f.read(CHUNK):
            h.update(chunk)
    return h.hexdigest()
