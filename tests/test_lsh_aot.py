"""The ahead-of-time compiled MinHash loops (``curate.lsh_aot``): used only when they match ``lsh_kernels.py`` (and
``lsh_aot.py``), the NumPy and Python they were built for and their own checksum, and load; otherwise numba's JIT
runs the same loops.
(That they give the same bits as the JIT and the NumPy twins is held by the ``compiled_loops`` tests of
``test_startup`` and ``test_shingles``.)"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import threading
from pathlib import Path
from types import ModuleType

import pyarrow as pa
import pytest

from curate import lsh, lsh_aot
from tests.conftest import ROOT


@pytest.fixture
def built_copy(aot_loops: ModuleType, tmp_path: Path) -> Path:
    """A directory holding a copy of a usable extension and its ``_lsh_aot.json``."""
    src = Path(aot_loops.__file__).parent
    for f in (lsh_aot.extension_path(src), src / "_lsh_aot.json"):
        shutil.copy2(f, tmp_path / f.name)
    assert lsh_aot.why_not(tmp_path) is None
    return tmp_path


def test_an_extension_built_from_other_kernel_source_is_not_used(built_copy: Path) -> None:
    meta = json.loads((built_copy / "_lsh_aot.json").read_text())
    (built_copy / "_lsh_aot.json").write_text(json.dumps({**meta, "kernels_sha256": "0" * 64}))

    assert "stale: built for kernels_sha256" in (lsh_aot.why_not(built_copy) or "")
    assert lsh_aot.load(built_copy) is None


def test_an_extension_built_for_another_numpy_is_not_used(built_copy: Path) -> None:
    meta = json.loads((built_copy / "_lsh_aot.json").read_text())
    (built_copy / "_lsh_aot.json").write_text(json.dumps({**meta, "numpy": "1.26.0"}))

    assert "stale: built for numpy '1.26.0'" in (lsh_aot.why_not(built_copy) or "")


def test_a_damaged_extension_is_caught_by_its_checksum_and_not_loaded(built_copy: Path) -> None:
    ext = lsh_aot.extension_path(built_copy)
    data = bytearray(ext.read_bytes())
    data[len(data) // 2] ^= 0xFF
    ext.write_bytes(bytes(data))

    assert "does not match its checksum" in (lsh_aot.why_not(built_copy) or "")
    assert lsh_aot.load(built_copy) is None


@pytest.mark.parametrize("meta", ["[]", "null", "{truncated", b"\xff\xfe"])
def test_an_unreadable_or_odd_json_is_a_reason_not_a_crash(built_copy: Path, meta: str | bytes) -> None:
    path = built_copy / "_lsh_aot.json"
    path.write_bytes(meta if isinstance(meta, bytes) else meta.encode())

    assert (lsh_aot.why_not(built_copy) or "").startswith("unreadable")
    assert lsh_aot.load(built_copy) is None


def test_a_directory_in_place_of_the_extension_is_a_reason_not_a_crash(built_copy: Path) -> None:
    ext = lsh_aot.extension_path(built_copy)
    ext.unlink()
    ext.mkdir()

    assert (lsh_aot.why_not(built_copy) or "").startswith("unreadable")


def test_an_extension_that_passes_its_checks_but_does_not_load_falls_back(tmp_path: Path) -> None:
    ext = lsh_aot.extension_path(tmp_path)
    ext.write_bytes(b"\x7fELF not really a shared object")  # as a noexec mount or an older C library would refuse it
    meta = {**lsh_aot._expected(tmp_path), "extension_sha256": lsh_aot._sha256(ext)}
    (tmp_path / "_lsh_aot.json").write_text(json.dumps(meta))

    assert lsh_aot.why_not(tmp_path) is None
    assert lsh_aot.load(tmp_path) is None
    assert (lsh_aot.status(tmp_path) or "").startswith("does not load here (ImportError")


def test_building_where_nothing_can_be_written_is_one_line(tmp_path: Path) -> None:
    (tmp_path / "file").write_text("")

    r = subprocess.run([sys.executable, "-m", "curate.lsh_aot", "--dir", str(tmp_path / "file" / "sub")], cwd=ROOT,
                       capture_output=True, text=True)

    assert r.returncode == 1 and len(r.stderr.strip().splitlines()) == 1
    assert r.stderr.startswith("python -m curate.lsh_aot: error: ") and "Not a directory" in r.stderr


def test_building_without_a_c_compiler_is_one_line(tmp_path: Path) -> None:
    env = {k: v for k, v in os.environ.items() if k != "CC"}
    r = subprocess.run([sys.executable, "-m", "curate.lsh_aot", "--dir", str(tmp_path)], cwd=ROOT,
                       capture_output=True, text=True, env={**env, "PATH": str(tmp_path)})

    assert r.returncode == 1
    assert r.stderr.strip().splitlines() == [
        f"python -m curate.lsh_aot: error: no C compiler (cc, gcc or clang) to build "
        f"{lsh_aot.extension_path(tmp_path).name}; curate uses numba's JIT instead (~0.9 s more per process)"]


def test_a_directory_without_the_extension_says_how_to_build_it(tmp_path: Path) -> None:
    assert lsh_aot.why_not(tmp_path) == "not built (python -m curate.lsh_aot builds it)"


def test_check_exits_1_naming_the_reason_and_0_when_usable(built_copy: Path, tmp_path_factory: pytest.TempPathFactory
                                                           ) -> None:
    empty = tmp_path_factory.mktemp("empty")
    cmd = [sys.executable, "-m", "curate.lsh_aot", "--check", "--dir"]

    usable = subprocess.run([*cmd, str(built_copy)], cwd=ROOT, capture_output=True, text=True)
    absent = subprocess.run([*cmd, str(empty)], cwd=ROOT, capture_output=True, text=True)

    assert usable.returncode == 0 and usable.stdout.strip().endswith(": usable")
    assert absent.returncode == 1 and "not built" in absent.stdout


def test_with_the_extension_a_large_minhash_run_never_starts_numba(aot_loops: ModuleType, tmp_path: Path,
                                                                   monkeypatch: pytest.MonkeyPatch) -> None:
    from curate.steps.base import StepContext
    from curate.steps.minhash import MinhashDedup, MinhashParams

    gate = lsh._Kernels(aot=False)
    gate.module, gate.source = aot_loops, "aot"
    monkeypatch.setattr(lsh, "kernels", gate)
    step = MinhashDedup(MinhashParams(), StepContext(seed=0, partitions=1))

    step.prepare(10 * lsh.KERNEL_MIN_BYTES)
    hashes, _ = lsh.shingle_hashes(pa.array(["one two three four five six"] * 3), 5)

    assert gate._loader is None and gate.source == "aot" and len(hashes) == 6


def test_the_extension_releases_the_gil_while_a_loop_runs(aot_loops: ModuleType) -> None:
    text = pa.array(["one two three four five six seven " * 40] * 2000)
    data, offsets = lsh._utf8_buffers(text)
    t = lsh.shingle_tables()
    args = (data, offsets, t["classes"], lsh._position_multipliers(5, 0), t["rule"], t["exp_off"], t["exp_data"], True)
    steps, seen, done = [0], [], threading.Event()

    def call() -> None:
        seen.append(steps[0])
        aot_loops.shingle_hashes(*args)
        seen.append(steps[0])  # what this thread's steps reached while the loop ran
        done.set()

    interval = sys.getswitchinterval()
    sys.setswitchinterval(0.5)  # a thread holding the GIL keeps it for the whole call
    try:
        worker = threading.Thread(target=call)
        worker.start()
        while not done.is_set():
            steps[0] += 1
        worker.join()
    finally:
        sys.setswitchinterval(interval)

    assert seen[1] - seen[0] > 1000
