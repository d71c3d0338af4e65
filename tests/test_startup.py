"""Start-up: what a `curate` process imports, and the NumPy twins of the compiled MinHash loops.

A small run must not pay for libraries it does not use: numba (~0.9 s to import and initialize its compiler),
pandas (0.3 s, which pyarrow would import at its first conversion), torch, datasketch. No test here is timed;
``benchmarks/startup.py`` measures the seconds.
"""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import numpy as np
import pyarrow as pa
import pytest

from curate import lsh
from tests.test_shingles import TRICKY, UDHR, udhr_texts

ROOT = Path(__file__).resolve().parents[1]
HEAVY = ("numba", "pandas", "torch", "transformers", "datasketch", "scipy", "tqdm")
DOCUMENT = ("The library opens at nine in the morning and closes at six in the evening on every weekday. Visitors "
            "can borrow up to ten books at a time, and they may keep them for three weeks before they have to bring "
            "them back. There is a quiet reading room on the second floor, where people study for their exams, and "
            "a small cafe near the entrance that sells coffee, tea and sandwiches.")
"""an English document every step keeps (Gopher's rules included), so each step sees it"""


def test_importing_the_curate_command_imports_no_heavy_library() -> None:
    code = f"import sys, curate.cli; print([m for m in {HEAVY!r} if m in sys.modules])"

    r = subprocess.run([sys.executable, "-c", code], cwd=ROOT, capture_output=True, text=True, check=True)

    assert r.stdout.strip() == "[]"


def test_a_one_document_run_with_minhash_never_imports_numba_pandas_or_torch(tmp_path: Path) -> None:
    (tmp_path / "doc.jsonl").write_text(json.dumps({"text": DOCUMENT}) + "\n")
    (tmp_path / "recipe.yaml").write_text(
        "name: one\nsources: [{path: doc.jsonl, domain: web}]\n"
        "steps: [normalize, exact_dedup, line_dedup, quality, minhash_dedup]\noutput: {dir: out}\n")
    code = ("import sys; from curate.cli import main; sys.argv = ['curate', 'run', 'recipe.yaml', '-q']; rc = main(); "
            f"print(rc, [m for m in {HEAVY!r} if m in sys.modules])")

    r = subprocess.run([sys.executable, "-c", code], cwd=tmp_path, capture_output=True, text=True)

    assert r.stdout.strip() == "0 []", r.stdout + r.stderr[-2000:]
    manifest = json.loads((tmp_path / "out" / "manifest.json").read_text())
    assert manifest["accounting"]["kept"] == 1


def test_pyarrow_converts_pandas_objects_once_something_needs_pandas() -> None:
    code = """if True:
        import sys
        from curate.cli import _arrow_without_pandas
        _arrow_without_pandas()
        import numpy as np, pyarrow as pa
        pa.array([1, 2]); pa.array(np.arange(3.0), from_pandas=True)
        before = "pandas" in sys.modules
        frame = pa.table({"a": [1, 2]}).to_pandas()
        import pandas as pd
        print(before, type(frame).__name__, pa.array(pd.Series(["x", "y"], dtype="category")).type)
    """

    r = subprocess.run([sys.executable, "-c", code], cwd=ROOT, capture_output=True, text=True, check=True)

    pandas_before, frame, categorical = r.stdout.split(maxsplit=2)
    assert (pandas_before, frame) == ("False", "DataFrame") and categorical.startswith("dictionary<")


def test_without_the_ahead_of_time_extension_numba_loads_only_once_a_process_has_done_enough_work() -> None:
    gate = lsh._Kernels(aot=False)

    assert gate.get(lsh.KERNEL_MIN_BYTES // 2) is None
    assert gate.get(lsh.KERNEL_MIN_BYTES // 2) is None
    assert gate.get(1, compiled=False) is None
    assert gate.get(1) is not None
    assert gate.get(1) is not None and gate.get(1, compiled=False) is None


def test_with_the_ahead_of_time_extension_the_compiled_loops_run_from_the_first_byte(aot_loops: object) -> None:
    gate = lsh._Kernels(aot=False)
    gate.module, gate.source = aot_loops, "aot"

    assert gate.get(1) is aot_loops and gate.get(1, compiled=False) is None


def test_a_forced_choice_overrides_the_work_count() -> None:
    gate = lsh._Kernels(aot=False)

    assert gate.get(10 * lsh.KERNEL_MIN_BYTES, compiled=False) is None
    assert gate.get(1, compiled=True) is not None


def twin_texts() -> list[str]:
    """The texts on which ``test_shingles`` holds shingling to its definition: UDHR in 388 languages (when
    ``../shared/data`` is there), paragraphs of every 7th, and the tricky cases."""
    texts = udhr_texts() if UDHR.exists() else []
    return texts + [p for t in texts[::7] for p in t.split("\n\n")] + TRICKY * 3


@pytest.mark.parametrize("ngram", [1, 5])
def test_numpy_shingle_hashes_are_the_compiled_bits(ngram: int, compiled_loops: str) -> None:
    text = pa.array(["sliced off"] + twin_texts()).slice(1)

    twin = lsh.shingle_hashes(text, ngram, seed=11, compiled=False)
    compiled = lsh.shingle_hashes(text, ngram, seed=11, compiled=True)

    assert np.array_equal(twin[1], compiled[1]) and np.array_equal(twin[0], compiled[0])


def test_large_string_text_shingles_as_string_text(compiled_loops: str) -> None:
    docs = TRICKY * 3

    want = lsh.shingle_hashes(pa.array(docs, pa.string()), 3, seed=2, compiled=False)
    for compiled in (False, True):
        got = lsh.shingle_hashes(pa.array(docs, pa.large_string()), 3, seed=2, compiled=compiled)
        assert np.array_equal(got[0], want[0]) and np.array_equal(got[1], want[1])


@pytest.mark.parametrize("num_perm", [2, 64, 128])
def test_numpy_signatures_are_the_compiled_bits(num_perm: int, compiled_loops: str) -> None:
    hashes, offsets = lsh.shingle_hashes(pa.array(TRICKY * 20 + ["", "a b"]), 5, seed=3, compiled=True)
    a, b = lsh.permutations(num_perm, 5)

    oph = [lsh.oph_signatures(hashes, offsets, num_perm, 9, compiled=c) for c in (False, True)]
    kperm = [lsh.signatures(hashes, offsets, a, b, compiled=c) for c in (False, True)]

    assert np.array_equal(*oph) and np.array_equal(*kperm)
    assert (oph[0][-2] == lsh.EMPTY).all()  # the empty document


def test_numpy_shingle_sets_are_the_compiled_ones(compiled_loops: str) -> None:
    hashes, offsets = lsh.shingle_hashes(pa.array(TRICKY * 20 + ["", "a b", "x x x x x x x x x x"]), 5, seed=3,
                                         compiled=False)

    twin = lsh.shingle_sets(hashes, offsets, compiled=False)
    compiled = lsh.shingle_sets(hashes, offsets, compiled=True)

    assert np.array_equal(twin[0], compiled[0]) and np.array_equal(twin[1], compiled[1])
    assert np.diff(twin[1])[-1] == 1 and np.diff(twin[1])[-3] == 0  # one distinct shingle; an empty document
    assert all((np.diff(twin[0][a:b].astype(np.int64)) > 0).all() for a, b in zip(twin[1][:-1], twin[1][1:]))


def test_numpy_verification_merges_and_gathers_are_the_compiled_ones(compiled_loops: str) -> None:
    rng = np.random.default_rng(0)
    sets_a = [np.unique(rng.integers(0, 90, k)).astype(np.uint32) for k in rng.integers(0, 70, 400)]
    sets_b = [np.unique(rng.integers(0, 90, k)).astype(np.uint32) for k in rng.integers(0, 70, 400)]
    a, a_len = np.concatenate(sets_a), np.array([len(s) for s in sets_a])
    b, b_len = np.concatenate(sets_b), np.array([len(s) for s in sets_b])
    src = rng.integers(0, 2**32, 5000, dtype=np.uint64).astype(np.uint32)
    begin, length = rng.integers(0, 4000, 60), rng.integers(0, 40, 60)
    dest = np.cumsum(length) - length
    out = [np.zeros(int(length.sum()), np.uint32) for _ in range(2)]

    jac = [lsh.jaccard_pairs(a, a_len, b, b_len, compiled=c) for c in (False, True)]
    for o, c in zip(out, (False, True)):
        lsh.copy_runs(src, begin, length, dest, o, compiled=c)

    want = [len(np.intersect1d(x, y)) / len(np.union1d(x, y)) if len(x) + len(y) else 0.0
            for x, y in zip(sets_a, sets_b)]
    assert np.array_equal(jac[0], jac[1]) and np.allclose(jac[0], want)
    assert np.array_equal(out[0], out[1])
    assert np.array_equal(out[0], np.concatenate([src[s:s + n] for s, n in zip(begin, length)]))


def test_the_readers_blank_text_characters_are_every_whitespace_character() -> None:
    from curate import readers

    everywhere = [chr(c) for c in range(0x110000) if chr(c).isspace()]

    assert readers._SPACE_CHARS.to_pylist() == [""] + everywhere


def test_loading_the_compiled_loops_skips_scipy_linear_algebra() -> None:
    code = ("import sys, pyarrow as pa; from curate import lsh; lsh.kernels = lsh._Kernels(aot=False); "
            "lsh.shingle_hashes(pa.array(['a b c']), 2, compiled=True); "
            "print('numba' in sys.modules, 'scipy.linalg' in sys.modules)")

    r = subprocess.run([sys.executable, "-c", code], cwd=ROOT, capture_output=True, text=True, check=True)

    assert r.stdout.strip() == "True False"


def test_preloaded_compiled_loops_serve_the_next_call_whatever_its_size() -> None:
    gate = lsh._Kernels(aot=False)

    gate.preload()

    assert gate.get(1) is not None and gate.get(1, compiled=False) is None


def test_a_minhash_map_task_preloads_the_compiled_loops_only_for_more_than_kernel_min_bytes(
        monkeypatch: pytest.MonkeyPatch) -> None:
    from curate.steps.base import StepContext
    from curate.steps.minhash import MinhashDedup, MinhashParams

    step = MinhashDedup(MinhashParams(), StepContext(seed=0, partitions=1))
    monkeypatch.setattr(lsh, "kernels", lsh._Kernels(aot=False))
    step.prepare(lsh.KERNEL_MIN_BYTES)
    assert lsh.kernels._loader is None
    step.prepare(lsh.KERNEL_MIN_BYTES + 1)
    assert lsh.kernels._loader is not None
    lsh.kernels.settle()


def test_the_loader_thread_blocks_scipy_linear_algebra_only_for_itself() -> None:
    code = ("import sys, threading; from curate import lsh; f = lsh._NoSciPyLinalg(); sys.meta_path.insert(0, f); "
            "t = threading.Thread(target=lambda: print(f.find_spec('scipy.linalg'))); t.start(); t.join()")

    r = subprocess.run([sys.executable, "-c", code], cwd=ROOT, capture_output=True, text=True, check=True)

    assert r.stdout.strip() == "None"
