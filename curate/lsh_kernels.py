"""Compiled (numba) loops behind ``curate.lsh``: text to word shingle hashes in one pass over the UTF-8 bytes (NFKC
and lowercase folded code point by code point on the way), one-permutation and k-permutation signatures, and the
merges and gathers of exact verification.

They compute exactly what the Arrow/NumPy definitions in ``lsh`` define (``normalize_for_shingles`` -> whitespace
split -> ``word_hashes`` -> weighted n-gram sums), without materializing the normalized text, the word list or
the dictionary of distinct words: per byte, one table lookup and one multiply-add. Compiled once per machine
(``cache=True`` keeps the machine code beside this file, or in ``NUMBA_CACHE_DIR``), or ahead of time into a C
extension (``lsh_aot``, from these same functions). ``lsh`` imports this module only without that extension and
when a process has enough work for it: importing numba and initializing its compiler takes about 0.9 s.
"""

from __future__ import annotations

import numpy as np
from numba import njit

from curate.lsh import EXACT, IDENTITY, OWN, WORD

_M1, _M2 = np.uint64(0xFF51AFD7ED558CCD), np.uint64(0xC4CEB9FE1A85EC53)
_BASE = np.uint64(0x100000001B3)
_S33, _S32 = np.uint64(33), np.uint64(32)
_LOW32 = np.uint64(0xFFFFFFFF)


@njit(cache=True, nogil=True, inline="always")
def _fmix64(h: np.uint64) -> np.uint64:
    h ^= h >> _S33
    h *= _M1
    h ^= h >> _S33
    h *= _M2
    h ^= h >> _S33
    return h


@njit(cache=True, nogil=True, inline="always")
def _code_point(data: np.ndarray, i: int, nb: int) -> np.int64:
    b = np.int64(data[i])
    if nb == 2:
        return ((b & 0x1F) << 6) | np.int64(data[i + 1] & 0x3F)
    if nb == 3:
        return ((b & 0x0F) << 12) | (np.int64(data[i + 1] & 0x3F) << 6) | np.int64(data[i + 2] & 0x3F)
    return ((b & 0x07) << 18) | (np.int64(data[i + 1] & 0x3F) << 12) | (np.int64(data[i + 2] & 0x3F) << 6) \
        | np.int64(data[i + 3] & 0x3F)


@njit(cache=True, nogil=True, inline="always")
def _feed(buf: np.ndarray, i: int, nb: int, cls: np.uint8, h: np.uint64, p: np.uint64, w_len: int,
          words: np.ndarray, n_words: int) -> tuple[np.uint64, np.uint64, int, int]:
    """One code point (``buf[i:i+nb]``, of class ``cls``) into the word hash being built (``h``, next byte weight
    ``p``, ``w_len`` bytes so far) or the word list; returns the new ``(h, p, w_len, n_words)``. ASCII letters are
    lowercased and ASCII digits 1-9 folded to 0 here."""
    one = np.uint64(1)
    if cls == WORD:
        for j in range(i, i + nb):
            b = buf[j]
            x = np.uint64(b + 32 if 65 <= b <= 90 else (48 if 49 <= b <= 57 else b))
            h += (x + one) * p
            p *= _BASE
        return h, p, w_len + nb, n_words
    if w_len:
        words[n_words] = _fmix64(h ^ np.uint64(w_len))
        n_words += 1
        h, p, w_len = np.uint64(0), one, 0
    if cls == OWN:  # the character itself, as a one-character word
        for j in range(i, i + nb):
            h += (np.uint64(buf[j]) + one) * p
            p *= _BASE
        words[n_words] = _fmix64(h ^ np.uint64(nb))
        n_words += 1
        h, p = np.uint64(0), one
    return h, p, w_len, n_words


@njit(cache=True, nogil=True)
def shingle_hashes(data: np.ndarray, offsets: np.ndarray, classes: np.ndarray, mult: np.ndarray, rule: np.ndarray,
                   exp_off: np.ndarray, exp_data: np.ndarray, fold: bool) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Hashes of the word ``len(mult)``-shingles of documents ``data[offsets[i]:offsets[i+1]]`` (UTF-8), flattened,
    per-document offsets into them, and which documents need the exact path.

    With ``fold``, each non-ASCII code point is first replaced by its lowercased NFKC expansion (``rule[cp]``
    indexes ``exp_off``/``exp_data``; ``IDENTITY`` keeps it): a document holding a code point whose rule is
    ``EXACT`` gets no shingles here and is flagged, for its caller to normalize exactly and pass again without
    ``fold``. A word is a run of ``WORD`` code points between separators; an ``OWN`` code point is a word of its
    own."""
    ngram = len(mult)
    n_docs = len(offsets) - 1
    sh_off = np.zeros(n_docs + 1, dtype=np.int64)
    exact = np.zeros(n_docs, dtype=np.bool_)
    bound = 0
    for d in range(n_docs):
        bound += (offsets[d + 1] - offsets[d] + 1) // 2 + 1
    out = np.empty(bound, dtype=np.uint64)
    words = np.empty(256, dtype=np.uint64)
    one = np.uint64(1)
    n_out = 0
    for d in range(n_docs):
        i, end = offsets[d], offsets[d + 1]
        budget = (end - i + 1) // 2 + 1  # the most words (and shingles) this many bytes can hold unexpanded
        if len(words) < budget:
            words = np.empty(2 * budget, dtype=np.uint64)
        n_words = 0
        h, p, w_len = np.uint64(0), one, 0
        while i < end:
            b = data[i]
            if b < 0x80:  # ASCII (most bytes): _feed written out
                if classes[b] == WORD:
                    x = np.uint64(b + 32 if 65 <= b <= 90 else (48 if 49 <= b <= 57 else b))
                    h += (x + one) * p
                    p *= _BASE
                    w_len += 1
                elif w_len:
                    words[n_words] = _fmix64(h ^ np.uint64(w_len))
                    n_words += 1
                    h, p, w_len = np.uint64(0), one, 0
                i += 1
                continue
            nb = 2 if b < 0xE0 else (3 if b < 0xF0 else 4)
            if i + nb > end:  # a truncated sequence (not valid UTF-8): part of a word, never read past the end
                h, p, w_len, n_words = _feed(data, i, end - i, WORD, h, p, w_len, words, n_words)
                break
            cp = _code_point(data, i, nb)
            r = rule[cp] if fold and cp < len(rule) else IDENTITY
            if r == EXACT:
                exact[d] = True
                break
            if r == IDENTITY:
                h, p, w_len, n_words = _feed(data, i, nb, classes[cp % len(classes)], h, p, w_len, words, n_words)
            else:
                j, j_end = exp_off[r], exp_off[r + 1]
                if n_words + (j_end - j) + (end - i + 1) // 2 + 2 > budget:
                    exact[d] = True  # may hold more words than its bytes: rare, left to the exact path
                    break
                while j < j_end:
                    e = exp_data[j]
                    enb = 1 if e < 0x80 else (2 if e < 0xE0 else (3 if e < 0xF0 else 4))
                    ecls = classes[e] if enb == 1 else classes[_code_point(exp_data, j, enb) % len(classes)]
                    h, p, w_len, n_words = _feed(exp_data, j, enb, ecls, h, p, w_len, words, n_words)
                    j += enb
            i += nb
        if exact[d]:
            sh_off[d + 1] = n_out
            continue
        if w_len:
            words[n_words] = _fmix64(h ^ np.uint64(w_len))
            n_words += 1
        width = min(n_words, ngram)
        n_sh = n_words - ngram + 1 if n_words >= ngram else (1 if n_words else 0)
        for s in range(n_sh):
            acc = np.uint64(0)
            for k in range(width):
                acc += words[s + k] * mult[k]
            out[n_out] = _fmix64(acc ^ np.uint64(width))
            n_out += 1
        sh_off[d + 1] = n_out
    return out[:n_out].copy(), sh_off, exact


@njit(cache=True, nogil=True)
def shingle_sets(hashes: np.ndarray, offsets: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Per document, the sorted distinct high 32 bits of its shingle hashes, concatenated, and per-document
    offsets into them: a least-significant-digit radix sort per document (four passes of 8 bits), then one pass
    that drops repeats."""
    n_docs = len(offsets) - 1
    out = np.empty(len(hashes), dtype=np.uint32)
    new_off = np.zeros(n_docs + 1, dtype=np.int64)
    most = 1
    for d in range(n_docs):
        most = max(most, offsets[d + 1] - offsets[d])
    a = np.empty(most, dtype=np.uint32)
    b = np.empty(most, dtype=np.uint32)
    count = np.empty(256, dtype=np.int64)
    n = 0
    for d in range(n_docs):
        lo, m = offsets[d], offsets[d + 1] - offsets[d]
        if m:
            for s in range(m):
                a[s] = np.uint32(hashes[lo + s] >> _S32)
            for shift in range(0, 32, 8):
                count[:] = 0
                for s in range(m):
                    count[(a[s] >> shift) & 0xFF] += 1
                total = 0
                for k in range(256):
                    total, count[k] = total + count[k], total
                for s in range(m):
                    k = (a[s] >> shift) & 0xFF
                    b[count[k]] = a[s]
                    count[k] += 1
                a, b = b, a
            out[n] = a[0]
            n += 1
            for s in range(1, m):
                if a[s] != a[s - 1]:
                    out[n] = a[s]
                    n += 1
        new_off[d + 1] = n
    return out[:n].copy(), new_off


@njit(cache=True, nogil=True)
def oph_signatures(hashes: np.ndarray, offsets: np.ndarray, num_perm: int, seed: np.uint64, probes: np.ndarray,
                   empty: np.uint32) -> np.ndarray:
    """One-permutation hashing with optimal densification; ``probes[a, c]`` is the bin an empty bin ``c`` borrows
    from at attempt ``a`` (then ``(c + a + 1) % num_perm`` once the table is exhausted)."""
    n_docs = len(offsets) - 1
    k = np.uint64(num_perm)
    sig = np.full((n_docs, num_perm), empty, dtype=np.uint32)
    filled = np.zeros(num_perm, dtype=np.bool_)
    source = np.empty(num_perm, dtype=np.uint32)
    for d in range(n_docs):
        lo, hi = offsets[d], offsets[d + 1]
        if hi == lo:
            continue
        filled[:] = False
        row = sig[d]
        for s in range(lo, hi):
            m = _fmix64(hashes[s] ^ seed)
            b = np.int64(((m >> _S32) * k) >> _S32)
            v = np.uint32(m & _LOW32)
            filled[b] = True
            if v < row[b]:
                row[b] = v
        source[:] = row
        for c in range(num_perm):
            if filled[c]:
                continue
            a = 0
            while True:
                t = probes[a, c] if a < probes.shape[0] else (c + a + 1) % num_perm
                if filled[t]:
                    row[c] = source[t]
                    break
                a += 1
    return sig


@njit(cache=True, nogil=True)
def kperm_signatures(hashes: np.ndarray, offsets: np.ndarray, a: np.ndarray, b: np.ndarray, empty: np.uint32
                     ) -> np.ndarray:
    """k-permutation MinHash: per document and permutation ``k``, ``min((a[k] * h + b[k]) mod 2**64) >> 32`` over
    its shingle hashes ``h`` (the minimum before the shift: the shift is monotonic)."""
    n_docs = len(offsets) - 1
    num_perm = len(a)
    sig = np.full((n_docs, num_perm), empty, dtype=np.uint32)
    low = np.empty(num_perm, dtype=np.uint64)
    for d in range(n_docs):
        lo, hi = offsets[d], offsets[d + 1]
        if hi == lo:
            continue
        low[:] = np.uint64(0xFFFFFFFFFFFFFFFF)
        for s in range(lo, hi):
            h = hashes[s]
            for k in range(num_perm):
                v = h * a[k] + b[k]
                if v < low[k]:
                    low[k] = v
        for k in range(num_perm):
            sig[d, k] = np.uint32(low[k] >> _S32)
    return sig


@njit(cache=True, nogil=True)
def intersections(a: np.ndarray, a_len: np.ndarray, b: np.ndarray, b_len: np.ndarray) -> np.ndarray:
    """Size of the intersection of each pair of sorted, unique runs: pair ``i`` is the ``a_len[i]`` values of ``a``
    and the ``b_len[i]`` values of ``b`` after the previous pairs' (a linear merge per pair)."""
    n = len(a_len)
    out = np.zeros(n, dtype=np.int64)
    ia, ib = 0, 0
    for k in range(n):
        i, i_end = ia, ia + a_len[k]
        j, j_end = ib, ib + b_len[k]
        c = 0
        while i < i_end and j < j_end:
            x, y = a[i], b[j]
            if x == y:
                c += 1
                i += 1
                j += 1
            elif x < y:
                i += 1
            else:
                j += 1
        out[k] = c
        ia, ib = i_end, j_end
    return out


@njit(cache=True, nogil=True)
def copy_runs(src: np.ndarray, begin: np.ndarray, length: np.ndarray, dest: np.ndarray, out: np.ndarray) -> None:
    """``out[dest[i]:dest[i] + length[i]] = src[begin[i]:begin[i] + length[i]]`` for each ``i``."""
    for i in range(len(begin)):
        out[dest[i]:dest[i] + length[i]] = src[begin[i]:begin[i] + length[i]]
