"""MinHash-LSH math, vectorized: shingle hashes, signatures, band parameters and keys, connected components.

Nothing here loops over shingles in Python. The definitions are Arrow/NumPy: ``normalize_for_shingles`` (NFKC,
lowercase, punctuation and symbols to spaces, CJK characters as words of their own), a whitespace split, and
``word_hashes``: a polynomial over each word's UTF-8 bytes (ASCII digits folded to 0) and a 64-bit finalizer; a
word n-gram is a finalized weighted sum of its word hashes. ``shingle_hashes`` computes exactly that in one
compiled pass over the bytes (``lsh_kernels``) that also applies NFKC and lowercasing code point by code point
where that is exact (documents where it is not take Arrow's normalization first), with tables derived from Arrow's
own normalization, regex and whitespace classes
(``derive_shingle_tables``, shipped as ``data/shingle_tables.npz``); tests hold the two equal on every code point
and on real multilingual text. Two signature schemes share the estimator (fraction of equal signature values)
and the banding:

- ``oph`` (default): one-permutation hashing with optimal densification (Shrivastava, ICML 2017): each shingle hash
  picks one of ``num_perm`` bins and competes for that bin's minimum; empty bins borrow the value of a bin chosen by
  a fixed probe sequence. O(shingles + num_perm) per document, with the accuracy of k-permutation MinHash.
- ``permutations``: classic MinHash, ``num_perm`` multiply-shift permutations ``(a*x + b) >> 32``, the minimum per
  document and permutation taken in one compiled loop over the shingles. O(shingles x num_perm).

The compiled loops load in one of two ways: built ahead of time into a C extension (``lsh_aot``: ``make`` builds
it; it loads in milliseconds and is used from the first document) or, where that is absent or stale, compiled
just in time by numba. Every compiled loop also has a NumPy twin that gives the same bits. Without the extension a
process uses the twins until it has handed them ``KERNEL_MIN_BYTES`` of work, then numba's loops: importing numba
and initializing its compiler takes about 0.9 s (see ``_load_kernels``), more than the twins spend on a small
shard, so a run over a few documents never loads numba and a large run pays for it once (a map task over a larger
input starts that load in a thread while it reads, ``kernels.preload``).
"""

from __future__ import annotations

import functools
import os
import sys
import threading
import unicodedata
from pathlib import Path
from types import ModuleType
from typing import TYPE_CHECKING

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

if TYPE_CHECKING:
    from importlib.machinery import ModuleSpec

U64 = np.uint64
_M1, _M2 = U64(0xFF51AFD7ED558CCD), U64(0xC4CEB9FE1A85EC53)
_BYTE_BASE = U64(0x100000001B3)
EMPTY = np.uint32(0xFFFFFFFF)

_CJK = r"([\p{Han}\p{Hiragana}\p{Katakana}\x{3000}-\x{303f}\x{ff00}-\x{ffef}])"
_PUNCT = r"[\p{P}\p{S}]"
TABLES_FILE = Path(__file__).parent / "data" / "shingle_tables.npz"
WORD, SEP, OWN = 0, 1, 2
"""code point classes of the compiled shingle pass: part of a word, separator, a word of its own (CJK)"""
IDENTITY, EXACT = -1, -2
"""fold rules of the compiled NFKC pass besides an expansion's index: left as it is; needs the exact path"""
KERNEL_MIN_BYTES = 2 * 2**20
"""work (text bytes, or 8 bytes a shingle hash) a process gives the NumPy twins before it loads the compiled
loops. The twins shingle English web text at ~13 MB/s, the compiled loops at ~100 MB/s after ~0.9 s of numba
start-up: 2 MB keeps a small shard's run under a second and costs a large run at most one batch on the twins."""


class _Kernels:
    """Which implementation runs: the compiled loops (the ahead-of-time extension of ``lsh_aot`` when it is built
    and current; else numba's ``lsh_kernels``, imported on first use or loaded ahead in a thread by
    :meth:`preload`) or the NumPy twins, by the work this process has done so far. ``aot``: False to ignore the
    extension (tests of the JIT path)."""

    def __init__(self, aot: bool = True) -> None:
        self.numpy_bytes = 0
        self.module: ModuleType | None = None
        self.source = ""
        """where ``module`` came from: ``"aot"`` or ``"jit"`` ("" while the twins run)"""
        self._aot_checked = not aot
        self._loader: threading.Thread | None = None
        self._loaded: list[ModuleType] = []
        self._error: list[BaseException] = []

    def _try_aot(self) -> None:
        if self._aot_checked:
            return
        self._aot_checked = True
        from curate import lsh_aot
        from mixlab.logs import log

        module = lsh_aot.load()
        if module is not None and self.module is None:
            self.module, self.source = module, "aot"
        elif module is None:
            reason = lsh_aot.status()
            (log.debug if reason and reason.startswith("not built") else log.warning)(
                f"curate's ahead-of-time MinHash loops {lsh_aot.extension_path().name}: {reason}; numba's JIT "
                "runs them instead (~0.9 s more per process that shingles over 2 MB)")

    def preload(self) -> None:
        """Start loading the compiled loops in a background thread (once per process), so that numba's start
        overlaps work that releases the GIL, such as Arrow reading JSON; the first :meth:`get` that needs them
        waits for it. Call it when this process is about to do more than ``KERNEL_MIN_BYTES`` of work. With the
        ahead-of-time extension there is nothing to wait for: it is loaded here."""
        self._try_aot()
        if self.module is not None or self._loader is not None:
            return

        def load() -> None:
            try:
                self._loaded.append(_load_kernels())
            except BaseException as e:  # raised again in the thread that needs the loops
                self._error.append(e)

        self._loader = threading.Thread(target=load, name="curate-lsh-kernels", daemon=True)
        self._loader.start()

    def _wait(self) -> ModuleType:
        if self._loader is None:
            return _load_kernels()
        self._loader.join()
        if self._error:
            raise self._error[0]
        return self._loaded[0]

    def get(self, work_bytes: int, compiled: bool | None = None) -> ModuleType | None:
        """``lsh_kernels`` when ``compiled`` is True, or when it is None and they are loaded already (or loading)
        or now worth loading for ``work_bytes`` more work; None (the NumPy twins) otherwise."""
        if compiled is False:
            return None
        self._try_aot()
        if self.module is None and (compiled or self._loader is not None
                                    or self.numpy_bytes + work_bytes > KERNEL_MIN_BYTES):
            self.module, self.source = self._wait(), "jit"
        if self.module is None:
            self.numpy_bytes += work_bytes
        return self.module

    def settle(self) -> None:
        """Wait for a :meth:`preload` still under way (before this process forks: a child must not inherit an
        import half done)."""
        if self._loader is not None:
            self._loader.join()


kernels = _Kernels()
os.register_at_fork(before=kernels.settle)


class _NoSciPyLinalg:
    """A meta path finder that answers ``import scipy.linalg`` with ModuleNotFoundError in the thread that
    installed it (see :func:`_load_kernels`); other threads import SciPy as usual."""

    def __init__(self) -> None:
        self.thread = threading.get_ident()

    def find_spec(self, name: str, path: object = None, target: object = None) -> ModuleSpec | None:
        if threading.get_ident() == self.thread and (name == "scipy.linalg" or name.startswith("scipy.linalg.")):
            raise ModuleNotFoundError("not needed by curate's compiled loops", name=name)
        return None


def _load_kernels() -> ModuleType:
    """``lsh_kernels``, imported and with numba's compiler initialized (its first call), in about 0.9 s instead of
    1.3 s: that initialization imports SciPy's linear algebra only to learn whether jitted code may call BLAS
    (``numba.np.linalg.ensure_blas``), which these loops never do, so here it finds no SciPy and numba's
    linear-algebra support stays off in this process (where SciPy's linear algebra was imported already, it stays
    on)."""
    finder = _NoSciPyLinalg()
    sys.meta_path.insert(0, finder)
    try:
        from curate import lsh_kernels

        one = np.ones(1, dtype=np.int64)
        lsh_kernels.copy_runs(np.zeros(1, np.uint32), one - 1, one, one - 1, np.zeros(1, np.uint32))
    finally:
        sys.meta_path.remove(finder)
    return lsh_kernels


def fmix64(h: np.ndarray) -> np.ndarray:
    """MurmurHash3's 64-bit finalizer (bijective, avalanching), element-wise with wrap-around."""
    h = h.astype(U64, copy=True)
    with np.errstate(over="ignore"):
        h ^= h >> U64(33)
        h *= _M1
        h ^= h >> U64(33)
        h *= _M2
        h ^= h >> U64(33)
    return h


def normalize_for_shingles(text: pa.ChunkedArray | pa.Array) -> pa.Array:
    """NFKC, lowercase, punctuation/symbols -> space, CJK characters split into their own words, ends trimmed.
    (Whitespace runs are folded by the word split, ASCII digits by the word hash.) The definition that
    ``shingle_hashes`` computes in one compiled pass; used by tests and benchmarks' ground truth."""
    if isinstance(text, pa.ChunkedArray):
        text = text.combine_chunks()
    text = _nfkc_lower_non_ascii(text)
    if pc.any(pc.match_substring_regex(text, _CJK)).as_py():
        text = pc.replace_substring_regex(text, _CJK, " \\1 ")
    t = pc.utf8_lower(text)
    t = pc.replace_substring_regex(t, _PUNCT, " ")
    return pc.utf8_trim_whitespace(t)


def derive_shingle_classes() -> np.ndarray:
    """Per code point, how ``normalize_for_shingles`` + the whitespace split treat it in lowercased NFKC text:
    ``SEP`` (punctuation, symbol or Arrow whitespace), ``OWN`` (a CJK character: a word of its own) or ``WORD``.
    Asked of Arrow itself, one probe string per code point, so the compiled path cannot drift from it."""
    cps = np.concatenate([np.arange(0, 0xD800), np.arange(0xE000, 0x110000)])
    chars = pa.array([chr(c) for c in cps.tolist()])
    probe = pc.replace_substring_regex(pc.binary_join_element_wise("a", chars, "b", ""), _PUNCT, " ")
    sep = pc.list_value_length(pc.utf8_split_whitespace(probe)).to_numpy() != 1
    own = pc.match_substring_regex(chars, _CJK).to_numpy(zero_copy_only=False)
    classes = np.full(0x110000, WORD, dtype=np.uint8)
    classes[cps[own]] = OWN
    classes[cps[sep]] = SEP
    return classes


def derive_fold_rules() -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Per code point, what ``_nfkc_lower_non_ascii`` makes of it wherever it stands: ``IDENTITY``, the index of its
    expansion (lowercased NFKC, asked of Arrow), or ``EXACT`` when its normalization may depend on its neighbours.

    A code point is context-free when there is a normalization boundary before it: its compatibility decomposition
    starts with a starter (combining class 0) that never composes with a preceding character (not the second of a
    canonical composition pair, Hangul vowel and trailing jamo included). A text made only of such code points
    normalizes code point by code point. Code points unassigned in Python's Unicode database are ``EXACT``."""
    seconds = {chr(c) for c in (*range(0x1161, 0x1176), *range(0x11A8, 0x11C3))}
    for c in range(0x110000):
        dec = unicodedata.decomposition(chr(c))
        parts = dec.split()
        if len(parts) == 2 and not dec.startswith("<"):
            pair = chr(int(parts[0], 16)) + chr(int(parts[1], 16))
            if unicodedata.normalize("NFC", pair) == chr(c):
                seconds.add(pair[1])
    cps = [c for c in range(0x80, 0x110000) if not 0xD800 <= c < 0xE000]
    folded = pc.utf8_lower(pc.utf8_normalize(pa.array([chr(c) for c in cps]), form="NFKC")).to_pylist()
    rule = np.full(0x110000, IDENTITY, dtype=np.int32)
    expansions: list[bytes] = []
    for c, f in zip(cps, folded):
        ch = chr(c)
        d = unicodedata.normalize("NFKD", ch)
        if unicodedata.category(ch) == "Cn" or not d or unicodedata.combining(d[0]) or d[0] in seconds:
            rule[c] = EXACT
        elif f != ch:
            rule[c] = len(expansions)
            expansions.append(f.encode("utf-8"))
    exp_off = np.concatenate([[0], np.cumsum([len(e) for e in expansions])]).astype(np.int64)
    return rule, exp_off, np.frombuffer(b"".join(expansions), dtype=np.uint8)


def derive_shingle_tables() -> dict[str, np.ndarray]:
    """What ``TABLES_FILE`` holds (``python -c "from curate import lsh; lsh.write_shingle_tables()"``)."""
    rule, exp_off, exp_data = derive_fold_rules()
    return {"classes": derive_shingle_classes(), "rule": rule, "exp_off": exp_off, "exp_data": exp_data}


_RUN_LENGTH = ("classes", "rule")
"""tables of one entry per code point, stored as runs (``NAME.starts``, ``NAME.values``): 733 and 8,284 runs
instead of 1.1 million entries, so a process expands them in ~2 ms instead of inflating 5.5 MB"""


def write_shingle_tables(path: Path = TABLES_FILE) -> None:
    tables = derive_shingle_tables()
    for name in _RUN_LENGTH:
        table = tables.pop(name)
        starts = np.flatnonzero(np.concatenate([[True], table[1:] != table[:-1]]))
        tables[f"{name}.starts"], tables[f"{name}.values"] = starts.astype(np.int32), table[starts]
    np.savez_compressed(path, **tables)


@functools.cache
def shingle_tables() -> dict[str, np.ndarray]:
    """The tables of ``derive_shingle_tables``, as shipped in ``TABLES_FILE``."""
    with np.load(TABLES_FILE, allow_pickle=False) as f:
        stored = {k: f[k] for k in f.files}
    for name in _RUN_LENGTH:
        starts, values = stored.pop(f"{name}.starts"), stored.pop(f"{name}.values")
        stored[name] = np.repeat(values, np.diff(np.append(starts, 0x110000)))
    return stored


def _utf8_buffers(text: pa.Array) -> tuple[np.ndarray, np.ndarray]:
    """UTF-8 bytes and int64 offsets of a string array without nulls."""
    large = pa.types.is_large_string(text.type)
    offsets = np.frombuffer(text.buffers()[1], dtype=np.int64 if large else np.int32,
                            count=len(text) + 1, offset=text.offset * (8 if large else 4)).astype(np.int64)
    data = np.frombuffer(text.buffers()[2], dtype=np.uint8) if text.buffers()[2] is not None \
        else np.zeros(0, np.uint8)
    return data, offsets


def _nfkc_lower_non_ascii(text: pa.Array) -> pa.Array:
    """NFKC (where the text is not NFKC already) and lowercase, applied to the non-ASCII documents only: on ASCII
    both are left to the compiled pass (NFKC is the identity there, lowercasing one table lookup)."""
    non_ascii = pc.invert(pc.string_is_ascii(text))
    if not pc.any(non_ascii).as_py():
        return text
    sub = pc.filter(text, non_ascii)
    todo = pa.array([not unicodedata.is_normalized("NFKC", x) for x in sub.to_pylist()])  # C quick check
    if pc.any(todo).as_py():
        sub = pc.replace_with_mask(sub, todo, pc.utf8_normalize(pc.filter(sub, todo), form="NFKC"))
    return pc.replace_with_mask(text, non_ascii, pc.utf8_lower(sub))


_BYTE_MAP = np.arange(256, dtype=np.uint64)
_BYTE_MAP[ord("1"): ord("9") + 1] = ord("0")


def word_hashes(words: pa.Array) -> np.ndarray:
    """A 64-bit hash per string of ``words`` (a flat string array), from its UTF-8 bytes with ASCII digits folded
    to 0; every distinct word is hashed once."""
    if len(words) == 0:
        return np.zeros(0, U64)
    enc = pc.dictionary_encode(words)
    return _hash_strings(enc.dictionary)[enc.indices.to_numpy(zero_copy_only=False)]


def _hash_strings(words: pa.Array) -> np.ndarray:
    words = pa.concat_arrays([words]) if words.offset else words
    n = len(words)
    if n == 0:
        return np.zeros(0, U64)
    large = pa.types.is_large_string(words.type) or pa.types.is_large_binary(words.type)
    offsets = np.frombuffer(words.buffers()[1], dtype=np.int64 if large else np.int32, count=n + 1).astype(np.int64)
    data = _BYTE_MAP[np.frombuffer(words.buffers()[2], dtype=np.uint8)[offsets[0]: offsets[-1]]]
    offsets -= offsets[0]
    lengths = np.diff(offsets)
    local = np.arange(len(data), dtype=np.int64) - np.repeat(offsets[:-1], lengths)
    powers = np.ones(int(lengths.max()), dtype=U64)
    with np.errstate(over="ignore"):
        if len(powers) > 1:
            powers[1:] = _BYTE_BASE
            powers = np.cumprod(powers, dtype=U64)
        terms = (data + U64(1)) * powers[local]
        sums = np.add.reduceat(terms, offsets[:-1][lengths > 0]) if len(data) else np.zeros(0, U64)
    out = np.zeros(n, dtype=U64)
    out[lengths > 0] = sums
    return fmix64(out ^ lengths.astype(U64))


@functools.cache
def _position_multipliers(n: int, seed: int) -> np.ndarray:
    rng = np.random.default_rng(seed ^ 0x5EED)
    mult = rng.integers(1, 2**63, size=n, dtype=np.int64).astype(U64) * U64(2) + U64(1)
    mult.flags.writeable = False
    return mult


def shingle_hashes(text: pa.ChunkedArray | pa.Array, ngram: int, seed: int = 0, compiled: bool | None = None
                   ) -> tuple[np.ndarray, np.ndarray]:
    """Hashes of the word ``ngram``-shingles of each document, flattened, and per-document offsets into them.

    A document with fewer than ``ngram`` words (but at least one) has one shingle made of all its words; a document
    with no words has none. Shingles are not deduplicated here (the minimum does not care). ``compiled``: True for
    the compiled pass, False for the NumPy definition, None to let :data:`kernels` choose (the same bits)."""
    if isinstance(text, pa.ChunkedArray):
        text = text.combine_chunks()
    if len(text) == 0:
        return np.zeros(0, U64), np.zeros(1, np.int64)
    if text.null_count:
        text = pc.fill_null(text, "")
    k = kernels.get(text.nbytes, compiled)
    if k is None:
        return _shingle_hashes_numpy(text, ngram, seed)
    t, mult = shingle_tables(), _position_multipliers(ngram, seed)
    tables = (t["classes"], mult, t["rule"], t["exp_off"], t["exp_data"])
    hashes, offsets, exact = k.shingle_hashes(*_utf8_buffers(text), *tables, True)
    if not exact.any():
        return hashes, offsets
    # documents whose normalization depends on context (or whose expansions outgrow their bytes): NFKC and
    # lowercase by Arrow, then shingled unfolded
    which = np.flatnonzero(exact)
    again, again_off, _ = k.shingle_hashes(*_utf8_buffers(_nfkc_lower_non_ascii(text.take(pa.array(which)))),
                                           *tables, False)
    return _splice(hashes, offsets, which, again, again_off)


def _splice(values: np.ndarray, offsets: np.ndarray, which: np.ndarray, new: np.ndarray, new_offsets: np.ndarray
            ) -> tuple[np.ndarray, np.ndarray]:
    """Per-document runs ``values``/``offsets`` with the runs of documents ``which`` (sorted indexes; they have
    none in ``values``) filled in from ``new``/``new_offsets`` (one run per document of ``which``, in that order):
    one slice copy per document of ``which`` and per stretch between them."""
    counts = np.diff(offsets)
    counts[which] = np.diff(new_offsets)
    out_off = np.concatenate([[0], np.cumsum(counts)]).astype(np.int64)
    out = np.empty(int(out_off[-1]), dtype=values.dtype)
    done = 0  # documents before this one are in place
    for j, d in enumerate(which.tolist()):
        out[out_off[done]:out_off[d]] = values[offsets[done]:offsets[d]]
        out[out_off[d]:out_off[d + 1]] = new[new_offsets[j]:new_offsets[j + 1]]
        done = d + 1
    out[out_off[done]:] = values[offsets[done]:]
    return out, out_off


def _shingle_hashes_numpy(text: pa.Array, ngram: int, seed: int) -> tuple[np.ndarray, np.ndarray]:
    """``shingle_hashes`` by its definition: ``normalize_for_shingles``, a whitespace split, ``word_hashes``, and
    each n-gram's words weighted by position, summed and finalized; vectorized over all documents."""
    normalized = normalize_for_shingles(text)
    words = pc.utf8_split_whitespace(pc.if_else(pc.equal(normalized, ""), None, normalized))  # "" has no words
    counts = pc.fill_null(pc.list_value_length(words), 0).to_numpy().astype(np.int64)
    hashes = word_hashes(pc.list_flatten(words))
    mult = _position_multipliers(ngram, seed)
    per_doc = np.where(counts >= ngram, counts - ngram + 1, np.minimum(counts, 1))
    offsets = np.concatenate([[0], np.cumsum(per_doc)]).astype(np.int64)
    doc = np.repeat(np.arange(len(counts)), per_doc)
    first = np.repeat(np.cumsum(counts) - counts, per_doc) + (np.arange(offsets[-1]) - offsets[:-1][doc])
    width = np.minimum(counts, ngram)[doc].astype(U64)
    acc = np.zeros(int(offsets[-1]), dtype=U64)
    with np.errstate(over="ignore"):
        for k in range(ngram):
            use = np.uint64(k) < width
            acc[use] += hashes[first[use] + k] * mult[k]
    return fmix64(acc ^ width), offsets


def shingle_sets(hashes: np.ndarray, offsets: np.ndarray, compiled: bool | None = None
                 ) -> tuple[np.ndarray, np.ndarray]:
    """Per document, the sorted distinct high 32 bits of its shingle hashes (uint32; the set exact verification
    compares), concatenated, and int64 per-document offsets into them. ``compiled`` as for
    :func:`shingle_hashes` (the compiled loop radix-sorts each document, 2-3x faster than the twin's one sort of
    (document, value) keys)."""
    offsets = offsets.astype(np.int64)
    k = kernels.get(hashes.nbytes, compiled)
    if k is not None:
        return k.shingle_sets(hashes, offsets)
    n_docs = len(offsets) - 1
    doc = np.repeat(np.arange(n_docs, dtype=U64), np.diff(offsets))
    key = (doc << U64(32)) | (hashes >> U64(32))
    key.sort()
    first = np.ones(len(key), dtype=bool)
    first[1:] = key[1:] != key[:-1]
    key = key[first]
    counts = np.bincount((key >> U64(32)).astype(np.int64), minlength=n_docs)
    return key.astype(np.uint32), np.concatenate([[0], np.cumsum(counts)]).astype(np.int64)


def permutations(num_perm: int, seed: int) -> tuple[np.ndarray, np.ndarray]:
    rng = np.random.default_rng(seed)
    a = rng.integers(0, 2**63, size=num_perm, dtype=np.int64).astype(U64) * U64(2) + U64(1)
    b = rng.integers(0, 2**63, size=num_perm, dtype=np.int64).astype(U64)
    return a, b


def oph_signatures(hashes: np.ndarray, offsets: np.ndarray, num_perm: int, seed: int,
                   compiled: bool | None = None) -> np.ndarray:
    """One-permutation hashing with optimal densification: uint32 signature rows; rows of documents without
    shingles are all ``EMPTY``. An empty bin borrows the value of the first filled bin on its fixed random probe
    sequence (the same for every document, from ``seed``). ``compiled`` as for :func:`shingle_hashes`."""
    offsets, probes, seed64 = offsets.astype(np.int64), _densify_probes(num_perm, seed), U64(seed & 0xFFFFFFFFFFFFFFFF)
    k = kernels.get(hashes.nbytes, compiled)
    if k is not None:
        return k.oph_signatures(hashes, offsets, num_perm, seed64, probes, EMPTY)
    n_docs = len(offsets) - 1
    doc = np.repeat(np.arange(n_docs), np.diff(offsets))
    m = fmix64(hashes ^ seed64)
    cell = doc * num_perm + (((m >> U64(32)) * U64(num_perm)) >> U64(32)).astype(np.int64)
    sig = np.full(n_docs * num_perm, EMPTY, dtype=np.uint32)
    np.minimum.at(sig, cell, (m & U64(0xFFFFFFFF)).astype(np.uint32))
    filled = np.zeros(n_docs * num_perm, dtype=bool)
    filled[cell] = True
    sig, filled = sig.reshape(n_docs, num_perm), filled.reshape(n_docs, num_perm)
    source = sig.copy()
    d, c = np.nonzero(~filled & (np.diff(offsets) > 0)[:, None])
    attempt = 0
    while len(d):  # every row with a shingle has a filled bin, and the fallback probes visit them all
        t = probes[attempt, c] if attempt < len(probes) else (c + attempt + 1) % num_perm
        hit = filled[d, t]
        sig[d[hit], c[hit]] = source[d[hit], t[hit]]
        d, c, attempt = d[~hit], c[~hit], attempt + 1
    return sig


@functools.cache
def _densify_probes(num_perm: int, seed: int) -> np.ndarray:
    rng = np.random.default_rng(seed ^ 0xD3A5E)
    probes = np.stack([rng.integers(0, num_perm, size=num_perm) for _ in range(4 * num_perm)])
    probes.flags.writeable = False
    return probes


def signatures(hashes: np.ndarray, offsets: np.ndarray, a: np.ndarray, b: np.ndarray,
               compiled: bool | None = None) -> np.ndarray:
    """k-permutation MinHash signature (uint32, one row per document) from flattened shingle hashes; rows of
    documents without shingles are all ``EMPTY``. ``compiled`` as for :func:`shingle_hashes`."""
    offsets = offsets.astype(np.int64)
    k = kernels.get(hashes.nbytes * len(a) // 8, compiled)
    if k is not None:
        return k.kperm_signatures(hashes, offsets, a, b, EMPTY)
    sig = np.full((len(offsets) - 1, len(a)), EMPTY, dtype=np.uint32)
    has = np.flatnonzero(np.diff(offsets) > 0)
    if len(has):
        with np.errstate(over="ignore"):
            for j in range(len(a)):
                low = np.minimum.reduceat(hashes * a[j] + b[j], offsets[has])
                sig[has, j] = (low >> U64(32)).astype(np.uint32)
    return sig


def _fp_fn(threshold: float, b: int, r: int) -> tuple[float, float]:
    xs = np.linspace(0.0, 1.0, 2001)
    p = 1.0 - (1.0 - xs ** r) ** b
    below, above = xs <= threshold, xs >= threshold
    fp = np.trapezoid(p[below], xs[below]) if below.sum() > 1 else 0.0
    fn = np.trapezoid(1.0 - p[above], xs[above]) if above.sum() > 1 else 0.0
    return float(fp), float(fn)


@functools.cache
def optimal_bands(threshold: float, num_perm: int, fp_weight: float = 0.5, fn_weight: float = 0.5) -> tuple[int, int]:
    """(bands, rows) minimizing the weighted false positive and negative areas, as datasketch's MinHashLSH does."""
    best, opt = float("inf"), (1, num_perm)
    for b in range(1, num_perm + 1):
        for r in range(1, num_perm // b + 1):
            fp, fn = _fp_fn(threshold, b, r)
            err = fp * fp_weight + fn * fn_weight
            if err < best:
                best, opt = err, (b, r)
    return opt


@functools.cache
def recall_bands(threshold: float, num_perm: int, recall: float = 0.99) -> tuple[int, int]:
    """(bands, rows) for an LSH whose candidates are verified exactly: false positives only cost a check, so pick
    the banding that finds a pair of Jaccard ``threshold`` with probability >= ``recall`` while producing the
    fewest candidates below the threshold (the smallest false-positive area)."""
    xs = np.linspace(0.0, 1.0, 2001)
    below = xs[xs <= threshold]  # only the false-positive area is needed: computed as _fp_fn does, on half the grid
    best, opt = float("inf"), None
    for b in range(1, num_perm + 1):  # for a given b, the area shrinks as r grows: the largest r that keeps recall
        feasible = [r for r in range(1, num_perm // b + 1) if 1.0 - (1.0 - threshold ** r) ** b >= recall]
        if not feasible:
            continue
        if len(below) < 2:  # no area to compare: the first feasible banding
            return b, feasible[0]
        r = feasible[-1]
        fp = float(np.trapezoid(1.0 - (1.0 - below ** r) ** b, below))
        if fp < best:
            best, opt = fp, (b, r)
    return opt or (num_perm, 1)


def band_keys(sig: np.ndarray, bands: int, rows: int, seed: int) -> np.ndarray:
    """uint64 key per (document, band): documents sharing a key in a band are LSH candidates."""
    n = sig.shape[0]
    keys = np.empty((n, bands), dtype=U64)
    mult = _position_multipliers(rows, seed ^ 0xBA4D)
    with np.errstate(over="ignore"):
        for j in range(bands):
            block = sig[:, j * rows:(j + 1) * rows].astype(U64)
            keys[:, j] = fmix64((block * mult[None, :]).sum(axis=1, dtype=U64) ^ U64(j + 1))
    return keys


def jaccard_pairs(a: np.ndarray, a_len: np.ndarray, b: np.ndarray, b_len: np.ndarray,
                  compiled: bool | None = None) -> np.ndarray:
    """Exact Jaccard of many pairs of sets at once. Pair ``i`` compares the ``a_len[i]`` values of ``a`` (and of
    ``b``) that follow the previous pairs'; each set is sorted, unique, uint32. One compiled linear merge per pair
    (``compiled`` as for :func:`shingle_hashes`; the NumPy twin sorts the pairs' values together)."""
    n = len(a_len)
    if n == 0:
        return np.zeros(0, dtype=np.float64)
    a_len, b_len = a_len.astype(np.int64), b_len.astype(np.int64)
    k = kernels.get(a.nbytes + b.nbytes, compiled)
    if k is not None:
        inter = k.intersections(a, a_len, b, b_len)
    else:  # a value in both sets of a pair meets itself once in the pair's sorted union
        keys = np.concatenate([(np.repeat(np.arange(n, dtype=U64), a_len) << U64(32)) | a.astype(U64),
                               (np.repeat(np.arange(n, dtype=U64), b_len) << U64(32)) | b.astype(U64)])
        keys.sort()
        both = keys[1:][keys[1:] == keys[:-1]]
        inter = np.bincount((both >> U64(32)).astype(np.int64), minlength=n)
    union = a_len + b_len - inter
    return np.divide(inter, union, out=np.zeros(n, dtype=np.float64), where=union > 0)


def copy_runs(src: np.ndarray, begin: np.ndarray, length: np.ndarray, dest: np.ndarray, out: np.ndarray,
              compiled: bool | None = None) -> None:
    """``out[dest[i]:dest[i] + length[i]] = src[begin[i]:begin[i] + length[i]]`` for each ``i`` (int64 index
    arrays); ``compiled`` as for :func:`shingle_hashes`."""
    total = int(length.sum())
    k = kernels.get(total * src.itemsize, compiled)
    if k is not None:
        k.copy_runs(src, begin, length, dest, out)
        return
    within = np.arange(total) - np.repeat(np.cumsum(length) - length, length)
    out[np.repeat(dest, length) + within] = src[np.repeat(begin, length) + within]


def connected_components(n: int, u: np.ndarray, v: np.ndarray) -> np.ndarray:
    """Component label (the smallest member index) per node 0..n-1 for undirected edges (u, v)."""
    labels = np.arange(n, dtype=np.int64)
    if not len(u):
        return labels
    u, v = u.astype(np.int64), v.astype(np.int64)
    while True:
        lu, lv = labels[u], labels[v]
        m = np.minimum(lu, lv)
        before = labels.copy()
        np.minimum.at(labels, lu, m)
        np.minimum.at(labels, lv, m)
        while True:  # pointer jumping to the root
            nxt = labels[labels]
            if np.array_equal(nxt, labels):
                break
            labels = nxt
        if np.array_equal(labels, before):
            return labels
