"""The compiled MinHash loops of ``lsh_kernels``, built ahead of time into a C extension beside them, and its loader.

Importing numba and loading its cached machine code takes ~0.9 s of every process that shingles more than a few
documents; a C extension built from the same functions by numba's ahead-of-time compiler (``numba.pycc``) loads in
a few milliseconds and does not import numba at all. ``make`` builds it (``python -m curate.lsh_aot``, ~15 s, needs a
C compiler); without it, or when it no longer matches ``lsh_kernels.py``, ``curate.lsh`` uses numba's just-in-time
compiled loops as before: the same functions, the same bits, 0.9 s later.

The build writes ``_lsh_aot.<python tag>.so`` and ``_lsh_aot.json`` (the sha256 of ``lsh_kernels.py`` with this
file, and of the extension, the NumPy and Python it was built for, and for information the numba that built it)
into ``curate/``; :func:`load` uses the extension only when every one of those but numba's version still holds
(another numba would compile the same source to the same results). ``numba.pycc`` is pending deprecation in numba (a replacement
is being developed); numba is pinned, and the loader falls back to the JIT if the build ever stops working.
"""

from __future__ import annotations

import argparse
import hashlib
import importlib.util
import json
import os
import sys
import sysconfig
import tempfile
import time
import warnings
from pathlib import Path
from types import ModuleType

HERE = Path(__file__).resolve().parent
NAME = "_lsh_aot"
KERNELS_SOURCE = HERE / "lsh_kernels.py"

SIGNATURES = {
    "shingle_hashes": "Tuple((u8[::1], i8[::1], b1[::1]))(u1[::1], i8[::1], u1[::1], u8[::1], i4[::1], i8[::1], "
                      "u1[::1], b1)",
    "shingle_sets": "Tuple((u4[::1], i8[::1]))(u8[::1], i8[::1])",
    "oph_signatures": "u4[:, ::1](u8[::1], i8[::1], i8, u8, i8[:, ::1], u4)",
    "kperm_signatures": "u4[:, ::1](u8[::1], i8[::1], u8[::1], u8[::1], u4)",
    "intersections": "i8[::1](u4[::1], i8[::1], u4[::1], i8[::1])",
    "copy_runs": "void(u4[::1], i8[::1], i8[::1], i8[::1], u4[::1])",
}
"""numba type signature of each exported loop: C-contiguous arrays (``[::1]``) of exactly these dtypes; ``lsh``
passes nothing else (``load`` callers must not either: the extension refuses other types with a TypeError)."""


def extension_path(directory: Path = HERE) -> Path:
    return directory / (NAME + (sysconfig.get_config_var("EXT_SUFFIX") or ".so"))


def _sha256(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


def _expected(directory: Path) -> dict[str, str]:
    """What ``_lsh_aot.json`` must say for the extension in ``directory`` to be used (all but its own sha256)."""
    import numpy

    from curate import lsh

    constants = f"{lsh.WORD},{lsh.SEP},{lsh.OWN},{lsh.IDENTITY},{lsh.EXACT}"
    source = hashlib.sha256(KERNELS_SOURCE.read_bytes() + Path(__file__).read_bytes() + constants.encode()).hexdigest()
    return {"kernels_sha256": source, "numpy": numpy.__version__, "python": sys.implementation.cache_tag,
            "extension": extension_path(directory).name}


def build(directory: Path = HERE) -> Path:
    """Compile the loops of ``lsh_kernels`` (``SIGNATURES``) into ``directory``'s extension and write its
    ``_lsh_aot.json``, each replaced atomically (the json's checksum ties the pair together). Returns the
    extension's path.

    Raises RuntimeError (with the compiler's message) when numba's ahead-of-time compiler or the C compiler fails,
    OSError when ``directory`` cannot be written."""
    from curate import lsh_kernels

    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # NumbaPendingDeprecationWarning: see the module docstring
        from numba.pycc import CC, compiler

    class ReleaseGIL(compiler.Flags):  # type: ignore[misc, name-defined]
        """The flags pycc compiles every export with, plus the GIL released around each call, as ``nogil=True``
        does for the JIT (the loops touch no Python object): a reader thread runs meanwhile."""

        def __init__(self, *args: object, **kwargs: object) -> None:
            super().__init__(*args, **kwargs)
            self.release_gil = True

    directory.mkdir(parents=True, exist_ok=True)
    target = extension_path(directory)
    with tempfile.TemporaryDirectory(dir=directory, prefix=".lsh_aot-") as tmp:
        cc = CC(NAME)
        cc.output_dir = tmp
        cc.verbose = False
        for name, signature in SIGNATURES.items():
            cc.export(name, signature)(getattr(lsh_kernels, name).py_func)
        plain_flags = compiler.Flags
        compiler.Flags = ReleaseGIL
        try:
            cc.compile()
        except Exception as e:  # distutils/setuptools: CompileError, LinkError, no compiler found...
            raise RuntimeError(f"building {target.name} failed: {type(e).__name__}: {e}") from e
        finally:
            compiler.Flags = plain_flags
        built = Path(tmp) / target.name
        import numba

        meta = {**_expected(directory), "extension_sha256": _sha256(built), "built_by_numba": numba.__version__}
        meta_tmp = Path(tmp) / f"{NAME}.json"
        meta_tmp.write_text(json.dumps(meta, indent=1) + "\n")
        os.replace(built, target)
        os.replace(meta_tmp, directory / f"{NAME}.json")
    return target


def why_not(directory: Path = HERE) -> str | None:
    """None when the extension in ``directory`` may be loaded; else why not, in one line (absent, built from other
    ``lsh_kernels`` source or for another NumPy/Python, damaged, unreadable)."""
    meta_path, ext = directory / f"{NAME}.json", extension_path(directory)
    if not meta_path.exists() or not ext.exists():
        return "not built (python -m curate.lsh_aot builds it)"
    try:
        meta = json.loads(meta_path.read_text())
        if not isinstance(meta, dict):
            raise ValueError(f"a JSON {type(meta).__name__}, not an object")
        for key, want in _expected(directory).items():
            if meta.get(key) != want:
                return (f"stale: built for {key} {meta.get(key)!r}, now {want!r} (python -m curate.lsh_aot rebuilds "
                        "it)")
        if meta.get("extension_sha256") != _sha256(ext):
            return f"{ext.name} does not match its checksum in {meta_path.name} (damaged or replaced)"
    except (OSError, ValueError) as e:
        return f"unreadable ({type(e).__name__}: {e}); python -m curate.lsh_aot rebuilds it"
    return None


_failed: dict[Path, str] = {}
"""directories whose extension passed :func:`why_not` but would not load in this process, and why"""


def load(directory: Path = HERE) -> ModuleType | None:
    """The ahead-of-time compiled loops of ``directory`` (same names and results as ``lsh_kernels``'), or None
    when :func:`why_not` gives a reason not to use them or the extension does not load here (e.g. a file system
    mounted noexec, or a node whose C library is older than the one it was built against: :func:`status` then
    names the loader's error)."""
    return None if why_not(directory) is not None else _import(directory)


def _import(directory: Path) -> ModuleType | None:
    """Import the extension of ``directory`` (checked already); None, with the reason in ``_failed``, when the
    loader refuses it."""
    if directory in _failed:
        return None
    # the last part of the name must be NAME (the extension's init function is named after it)
    name = f"curate.{NAME}" if directory == HERE else \
        f"curate_lsh_aot_{hashlib.sha256(str(directory).encode()).hexdigest()[:8]}.{NAME}"
    if name in sys.modules:
        return sys.modules[name]
    try:
        spec = importlib.util.spec_from_file_location(name, extension_path(directory))
        assert spec is not None and spec.loader is not None
        module = importlib.util.module_from_spec(spec)
        spec.loader.exec_module(module)
    except (ImportError, OSError) as e:
        _failed[directory] = f"does not load here ({type(e).__name__}: {str(e).splitlines()[0][:200]})"
        return None
    sys.modules[name] = module
    return module


def status(directory: Path = HERE) -> str | None:
    """None when the extension in ``directory`` loads; else why not (:func:`why_not`, or the loader's error)."""
    reason = why_not(directory)
    if reason is None and _import(directory) is None:
        reason = _failed[directory]
    return reason


def _c_compiler() -> str | None:
    import shutil

    return next((c for c in (os.environ.get("CC", ""), "cc", "gcc", "clang") if c and shutil.which(c)), None)


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(prog="python -m curate.lsh_aot",
                                 description="Build curate's compiled MinHash loops ahead of time (needs a C compiler).")
    ap.add_argument("--dir", type=Path, default=HERE, help="where to write the extension (default: curate/)")
    ap.add_argument("--check", action="store_true", help="only say whether the extension there loads")
    args = ap.parse_args(argv)
    where = extension_path(args.dir)
    if args.check:
        reason = status(args.dir)
        print(f"{where}: {reason or 'usable'}")
        return 0 if reason is None else 1
    if status(args.dir) is None:
        print(f"{where}: up to date")
        return 0
    fallback = "curate uses numba's JIT instead (~0.9 s more per process)"
    if _c_compiler() is None:
        print(f"python -m curate.lsh_aot: error: no C compiler (cc, gcc or clang) to build {where.name}; {fallback}",
              file=sys.stderr)
        return 1
    started = time.perf_counter()
    try:
        path = build(args.dir)
    except (RuntimeError, OSError) as e:
        print(f"python -m curate.lsh_aot: error: {str(e).splitlines()[0]}; {fallback}", file=sys.stderr)
        return 1
    print(f"{path}: built in {time.perf_counter() - started:.0f} s")
    return 0


__all__ = ["SIGNATURES", "build", "load", "why_not", "status", "extension_path"]

if __name__ == "__main__":
    sys.exit(main())
