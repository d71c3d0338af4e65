"""How a path written in a recipe or a config is found: the one rule every loader applies."""

from __future__ import annotations

import os
from pathlib import Path


def resolve_path(base: Path, path: str | Path, canonical: bool = False) -> Path:
    """``path`` with a leading ``~`` expanded; a relative path is taken relative to ``base`` (the directory of the
    file that names it) and, with ``canonical``, made absolute with ``..`` and symbolic links resolved. An absolute
    path is returned as written."""
    p = Path(os.path.expanduser(path))
    if p.is_absolute():
        return p
    return (base / p).resolve() if canonical else base / p


__all__ = ["resolve_path"]
