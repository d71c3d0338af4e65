"""`minhash_dedup`: near-duplicate removal with MinHash-LSH, exact verification and connected components.

Plan (a global step with a combine pass):
1. keys (per unit, vectorized): word n-gram shingle hashes -> ``num_perm`` MinHash signature -> one key per band.
   Side data per document (memory-mapped Arrow IPC): id, position, length, quality, and the sorted 32-bit shingle
   hashes used to verify candidates.
2. reduce (per partition of band keys): documents sharing a band key are candidates: every pair in a bucket of up
   to ``max_bucket_pairs`` members, the first member against the rest in larger buckets.
3. combine (whole corpus, once): candidate pairs made unique (a near-duplicate pair meets in most bands, so this
   saves most of the verification), their exact Jaccard computed from the shingle sets, vectorized over batches of
   pairs, and kept as edges when it reaches ``threshold`` (``verify: false`` keeps every candidate pair);
   connected components of the edges (NumPy min-label propagation); per component one document is kept by
   ``keep`` (``first`` in input order, ``longest``, or ``best_quality``; ties by id).
4. apply: kept members get ``dup_cluster`` (the kept document's id) and ``dup_count`` (component size); the others
   are removed as ``near_duplicate`` with ``dup_cluster`` naming the document they duplicate.

The result depends only on the documents and the params, never on workers, shards or partitions: keys are content
hashes and every choice is made in global input order.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any, Literal

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc
from pydantic import Field, model_validator

from curate import integrity, lsh
from curate.arrow_io import AtomicIPCWriter, read_ipc
from curate.layout import write_json_atomic
from curate.steps.base import Decisions, GlobalStep, SideStore, StepContext, StepParams
from mixlab.errors import MixlabError, RunError
from mixlab.logs import log
from mixlab.paths import resolve_path

INDEX_DIR = Path("index") / "minhash"
INDEX_FILES = ("params.json", "bands.arrow", "docs.arrow")
"""what ``INDEX_DIR`` holds, each recorded with its sha256 in the corpus's manifest"""
INDEX_FORMAT = 1
VERIFY_BATCH = 4_000_000
"""shingles gathered per side per verification batch (32 MB of uint64 keys)"""
INDEX_BANDS_SCHEMA = pa.schema([("band_key", pa.uint64()), ("band", pa.uint16()), ("row", pa.int64())])


def corpus_dir(base: Path, corpus: str) -> Path:
    """The output directory ``corpus`` of ``against``, relative to the recipe's directory ``base``."""
    return resolve_path(base, corpus)


def index_dir(base: Path, corpus: str) -> Path:
    return corpus_dir(base, corpus) / INDEX_DIR


def check_reference_index(root: Path, want: dict[str, Any], side_schema: pa.Schema) -> None:
    """Check the MinHash index of the corpus at ``root`` before ``against:`` reads it: the corpus is complete, its
    index files match the sha256 its manifest records, were built with the params ``want`` and hold what they
    should. Raises ValueError, one line naming the file and what is wrong."""
    d, manifest = root / INDEX_DIR, root / "manifest.json"
    rebuild = f"rebuild that corpus with `curate run RECIPE --fresh` (output {root})"
    if not (d / "params.json").exists():
        raise ValueError(f"{root} has no MinHash index ({d} is missing; build that corpus with minhash_dedup first)")
    if not manifest.exists():
        raise ValueError(f"{root} is not a complete corpus ({manifest} is missing), so its MinHash index may be "
                         "unfinished; run `curate run` on its recipe to finish it")
    try:
        m = integrity.read_manifest(manifest)
    except MixlabError as e:
        raise ValueError(str(e)) from None
    if "files" in m:
        problems = integrity.verify_files(root, m, [(INDEX_DIR / n).as_posix() for n in INDEX_FILES])
        if problems:
            raise ValueError(f"the MinHash index of {root} is damaged: {root}/{problems[0]}"
                             + (f" (and {len(problems) - 1} more)" if len(problems) > 1 else "") + f"; {rebuild}")
    else:
        log.warning(f"{manifest} records no checksums of its MinHash index (written by an earlier mixlab); only "
                    f"its structure is checked. {rebuild[0].upper()}{rebuild[1:]} to record them")
    have = _read_params(d / "params.json", rebuild)
    diff = [k for k in want if have.get(k) != want[k]]
    if diff:
        raise ValueError(f"the index of {root} was built with other params ("
                         + ", ".join(f"{k} {have.get(k)} vs {want[k]}" for k in diff) + ")")
    docs = _index_rows(d / "docs.arrow", side_schema, rebuild)
    _index_rows(d / "bands.arrow", INDEX_BANDS_SCHEMA, rebuild)
    if docs != have.get("documents"):
        raise ValueError(f"{d / 'docs.arrow'}: damaged index file: it holds {docs:,} documents where params.json "
                         f"says {have.get('documents')}; {rebuild}")


def _read_params(path: Path, rebuild: str) -> dict[str, Any]:
    try:
        have = json.loads(path.read_text(encoding="utf-8"))
        if not isinstance(have, dict):
            raise ValueError("not a JSON object")
    except (OSError, ValueError) as e:
        raise ValueError(f"{path}: damaged ({str(e).splitlines()[0][:100] if str(e) else type(e).__name__}); "
                         f"{rebuild}") from None
    return have


def _index_rows(path: Path, schema: pa.Schema, rebuild: str) -> int:
    """Rows of the index file ``path``, after checking that it is an Arrow IPC file of ``schema``."""
    try:
        with pa.memory_map(str(path), "r") as source:
            reader = pa.ipc.open_file(source)
            if not reader.schema.equals(schema):
                raise ValueError(f"columns {reader.schema.names}, not {schema.names}")
            return reader.count_rows()
    except (OSError, ValueError, pa.ArrowException) as e:
        raise ValueError(f"{path}: damaged index file ({str(e).splitlines()[0][:100] if str(e) else type(e).__name__}"
                         f"); {rebuild}") from None


class MinhashParams(StepParams):
    ngram: int = Field(default=5, ge=1, le=32, description="words per shingle")
    num_perm: int = Field(default=128, ge=2, le=1024, description="signature length")
    signature: Literal["oph", "permutations"] = Field(
        default="oph", description="one-permutation hashing with densification, or classic k permutations")
    threshold: float = Field(default=0.8, gt=0, lt=1, description="Jaccard similarity that makes a duplicate")
    bands: int | None = Field(default=None, ge=1)
    rows: int | None = Field(default=None, ge=1)
    seed: int | None = Field(default=None, ge=0, description="hash seed; default: the recipe's seed")
    verify: bool = Field(default=True, description="drop candidate pairs whose exact Jaccard is below threshold")
    lsh_recall: float = Field(default=0.99, gt=0, lt=1, description="with verify and no bands/rows given: chance "
                              "that a pair at exactly the threshold becomes a candidate")
    keep: Literal["first", "longest", "best_quality"] = "first"
    quality_column: str = Field(default="quality_score", description="what `keep: best_quality` maximizes")
    max_bucket_pairs: int = Field(default=64, ge=2, description="buckets up to this size compare all pairs")
    against: list[str] = Field(default_factory=list, description="earlier corpora (output dirs) to dedup against")

    @model_validator(mode="after")
    def _bands_rows(self) -> "MinhashParams":
        if (self.bands is None) != (self.rows is None):
            raise ValueError("give both bands and rows, or neither (then they are chosen from threshold)")
        if self.bands is not None and self.rows is not None and self.bands * self.rows > self.num_perm:
            raise ValueError(f"bands x rows = {self.bands * self.rows} is more than num_perm = {self.num_perm}")
        return self


class MinhashDedup(GlobalStep):
    name = "minhash_dedup"
    Params = MinhashParams
    columns = {"dup_cluster": pa.string(), "dup_count": pa.int32()}
    key_schema = pa.schema([("_part_key", pa.uint64()), ("band", pa.uint16()), ("_unit", pa.int32()),
                            ("_ord", pa.int64())])
    side_schema = pa.schema([("_pos", pa.int64()), ("id", pa.string()), ("length", pa.int64()),
                             ("quality", pa.float64()), ("shingles", pa.large_list(pa.uint32())),
                             ("bands", pa.list_(pa.uint64()))])
    has_combine = True

    def __init__(self, params: MinhashParams, ctx: StepContext) -> None:
        super().__init__(params, ctx)
        p = params
        self.seed = ctx.seed if p.seed is None else p.seed
        if p.bands is not None and p.rows is not None:
            self.bands, self.rows = p.bands, p.rows
        else:
            # verified candidates: bands chosen for recall; unverified: datasketch's balanced choice
            self.bands, self.rows = lsh.recall_bands(p.threshold, p.num_perm, p.lsh_recall) if p.verify else \
                lsh.optimal_bands(p.threshold, p.num_perm)
        self.a, self.b = lsh.permutations(p.num_perm, self.seed)
        self._refs: list[tuple[pa.Table, pa.Table]] | None = None

    def index_params(self) -> dict[str, Any]:
        """What must match for two corpora's band indexes to be comparable."""
        p = self.params
        return {"format": INDEX_FORMAT, "ngram": p.ngram, "num_perm": p.num_perm, "signature": p.signature,
                "seed": self.seed, "bands": self.bands, "rows": self.rows}

    def _references(self) -> list[tuple[pa.Table, pa.Table]]:
        """(docs, bands) of every corpus in ``against``, memory-mapped."""
        if self._refs is None:
            self._refs = [(_read_index(d / "docs.arrow"), _read_index(d / "bands.arrow"))
                          for d in (index_dir(self.ctx.base, a) for a in self.params.against)]
        return self._refs

    def reference_side(self) -> list[pa.Table]:
        return [docs for docs, _ in self._references()]

    @classmethod
    def check_input(cls, params: StepParams, schema: pa.Schema, ctx: StepContext) -> None:
        p = params
        assert isinstance(p, MinhashParams)
        if p.against:
            want = cls(p, ctx).index_params()
            for i, a in enumerate(p.against):
                try:
                    check_reference_index(corpus_dir(ctx.base, a), want, cls.side_schema)
                except ValueError as e:
                    raise ValueError(f"against[{i}]: {e}") from None
        if p.keep == "best_quality":
            if p.quality_column not in schema.names:
                raise ValueError(f"keep: best_quality needs the column {p.quality_column!r} from an earlier step "
                                 f"(columns: {', '.join(n for n in schema.names if not n.startswith('_'))})")
            t = schema.field(p.quality_column).type
            if not (pa.types.is_integer(t) or pa.types.is_floating(t)):
                raise ValueError(f"quality_column {p.quality_column!r} is {t}, not a number")

    def prepare(self, input_bytes: int) -> None:
        if input_bytes > lsh.KERNEL_MIN_BYTES:
            lsh.kernels.preload()

    def keys(self, batch: pa.Table) -> tuple[pa.Table, pa.Table]:
        p: MinhashParams = self.params
        hashes, offsets = lsh.shingle_hashes(batch["text"], p.ngram, self.seed)
        if p.signature == "oph":
            sig = lsh.oph_signatures(hashes, offsets, p.num_perm, self.seed)
        else:
            sig = lsh.signatures(hashes, offsets, self.a, self.b)
        band = lsh.band_keys(sig, self.bands, self.rows, self.seed)
        has = np.flatnonzero(np.diff(offsets) > 0)
        n_b = self.bands
        keys = pa.table([pa.array(band[has].ravel()),
                         pa.array(np.tile(np.arange(n_b, dtype=np.uint16), len(has))),
                         pa.array(np.repeat(batch["_unit"].to_numpy()[has], n_b).astype(np.int32)),
                         pa.array(np.repeat(batch["_ord"].to_numpy()[has], n_b))], schema=self.key_schema)
        band_lists = pa.ListArray.from_arrays(pa.array(np.arange(0, (batch.num_rows + 1) * n_b, n_b, dtype=np.int32)),
                                              pa.array(band.ravel()))
        side = pa.table([batch["_pos"], batch["id"], pc.cast(pc.utf8_length(batch["text"]), pa.int64()),
                         self._quality(batch), _shingle_sets(hashes, offsets), band_lists], schema=self.side_schema)
        return keys, side

    def _quality(self, batch: pa.Table) -> pa.Array:
        if self.params.keep != "best_quality":
            return pa.nulls(batch.num_rows, pa.float64())
        return pc.cast(batch[self.params.quality_column], pa.float64())

    def reduce(self, partition: pa.Table, side: SideStore | None) -> tuple[pa.Table, dict[str, Any]]:
        assert side is not None
        p: MinhashParams = self.params
        gidx = side.global_index(partition["_unit"].to_numpy(), partition["_ord"].to_numpy())
        band = partition["band"].to_numpy().astype(np.uint64)
        key = partition["_part_key"].to_numpy()
        refs = self._references()
        if refs:
            own_units = len(side.tables) - len(refs)
            P = self.ctx.partitions
            part = int(np.uint64(key[0]) % np.uint64(P)) if len(key) else None
            extra_g, extra_b, extra_k = [gidx], [band], [key]
            for k, (_, ref_bands) in enumerate(refs):
                rk = ref_bands["band_key"].to_numpy()
                mine = np.flatnonzero(rk % np.uint64(P) == np.uint64(part)) if part is not None else np.zeros(0, int)
                extra_k.append(rk[mine])
                extra_b.append(ref_bands["band"].to_numpy()[mine].astype(np.uint64))
                extra_g.append(side.offsets[own_units + k] + ref_bands["row"].to_numpy()[mine])
            gidx, band, key = np.concatenate(extra_g), np.concatenate(extra_b), np.concatenate(extra_k)
        order = np.lexsort((gidx, key, band))
        key, band, gidx = key[order], band[order], gidx[order]
        new = np.ones(len(key), dtype=bool)
        new[1:] = (key[1:] != key[:-1]) | (band[1:] != band[:-1])
        pairs = _bucket_pairs(gidx, np.flatnonzero(new), p.max_bucket_pairs)
        if refs:  # pairs of two reference documents were settled when their corpora were built
            pairs = pairs[pairs[:, 0] < side.offsets[len(side.tables) - len(refs)]]
        edges = pa.table({"u": pa.array(pairs[:, 0].astype(np.int64)), "v": pa.array(pairs[:, 1].astype(np.int64))})
        return edges, {"band_keys": int(len(key)), "bucket_pairs": int(len(pairs))}

    def _verify(self, pairs: np.ndarray, side: SideStore) -> np.ndarray:
        """Exact Jaccard >= threshold per pair, in batches of about ``VERIFY_BATCH`` shingles a side."""
        sets = _ShingleSets(side)
        keep = np.zeros(len(pairs), dtype=bool)
        lengths = sets.lengths(pairs[:, 0]) + sets.lengths(pairs[:, 1])
        bounds = np.searchsorted(np.cumsum(lengths), np.arange(VERIFY_BATCH, int(lengths.sum()), VERIFY_BATCH))
        for lo, hi in zip(np.concatenate([[0], bounds]), np.concatenate([bounds, [len(pairs)]])):
            if hi > lo:
                a, a_len = sets.gather(pairs[lo:hi, 0])
                b, b_len = sets.gather(pairs[lo:hi, 1])
                keep[lo:hi] = lsh.jaccard_pairs(a, a_len, b, b_len) >= self.params.threshold
        return keep

    def combine(self, reduced: Decisions, side: SideStore | None, out: Path) -> tuple[pa.Table, dict[str, Any]]:
        assert side is not None
        tables = [t for _, t in reduced.partitions() if t.num_rows]
        pairs = _unique_pairs(*(np.concatenate([t[c].to_numpy() for t in tables]) for c in ("u", "v"))) \
            if tables else np.zeros((0, 2), np.int64)
        candidates = len(pairs)  # a pair found in several bands is verified once
        if self.params.verify and candidates:
            pairs = pairs[self._verify(pairs, side)]
        u, v = pairs[:, 0], pairs[:, 1]
        n = len(side)
        n_own = int(side.offsets[len(side.tables) - len(self._references())])
        labels = lsh.connected_components(n, u, v)
        sizes = np.bincount(labels, minlength=n)
        members = np.flatnonzero(sizes[labels] > 1)
        ids = side.column("id")
        member_ids = pc.take(ids, pa.array(members))
        lab = labels[members]
        if self.params.keep == "first" or n_own < n:
            # the label is the smallest global index: the first document in input order, or a reference document
            # (they come after this corpus's documents, so a component holding one is relabelled to it)
            kept_of_label = {int(x): int(x) for x in np.unique(lab)}
            ref_members = members[members >= n_own]
            for g, l in zip(ref_members.tolist(), labels[ref_members].tolist()):
                if kept_of_label[l] < n_own:
                    kept_of_label[l] = g
        if self.params.keep != "first":
            score = side.column("length" if self.params.keep == "longest" else "quality")[members].astype(np.float64)
            score = np.nan_to_num(score, nan=-np.inf)
            t = pa.table({"label": lab, "neg": -score, "id": member_ids, "g": members})
            t = t.sort_by([("label", "ascending"), ("neg", "ascending"), ("id", "ascending")])
            first = np.ones(t.num_rows, dtype=bool)
            first[1:] = t["label"].to_numpy()[1:] != t["label"].to_numpy()[:-1]
            best = dict(zip(t["label"].to_numpy()[first].tolist(), t["g"].to_numpy()[first].tolist()))
            kept_of_label = {l: (g if g >= n_own else best[l]) for l, g in kept_of_label.items()} \
                if n_own < n else best
        kept_g = np.fromiter((kept_of_label[int(x)] for x in lab), dtype=np.int64, count=len(lab))
        removed = kept_g != members
        against_ref = kept_g >= n_own
        self._write_index(side, n_own, members[removed & (members < n_own)], out)
        own = members < n_own
        members, lab, kept_g, removed, against_ref = (x[own] for x in (members, lab, kept_g, removed, against_ref))
        unit, _ = side.locate(members)
        pos = side.column("_pos")[members]
        reason = np.where(removed, np.where(against_ref, "near_duplicate_of_reference", "near_duplicate"), None)
        decisions = pa.table({"_unit": pa.array(unit.astype(np.int32)), "_pos": pa.array(pos),
                              "dup_cluster": pc.take(ids, pa.array(kept_g)),
                              "dup_count": pa.array(sizes[lab].astype(np.int32)),
                              "reason": pa.array(reason.tolist(), pa.string())})
        banding = "given" if self.params.bands else ("recall" if self.params.verify else "datasketch")
        stats = {"documents": n_own, "reference_documents": n - n_own, "bands": self.bands, "rows": self.rows,
                 "banding": banding,
                 "threshold": self.params.threshold, "num_perm": self.params.num_perm, "ngram": self.params.ngram,
                 "candidate_pairs": candidates, "verified_pairs": int(len(u)),
                 "rejected_pairs": candidates - int(len(u)) if self.params.verify else 0,
                 "edges": int(len(u)), "clusters": int(len(np.unique(lab))),
                 "documents_in_clusters": int(len(members)), "removed": int(removed.sum()),
                 "removed_as_reference_duplicates": int((removed & against_ref).sum())}
        return decisions, stats

    def _write_index(self, side: SideStore, n_own: int, removed: np.ndarray, out: Path) -> None:
        """Persist the band index of the documents this step keeps, for later corpora's ``against``."""
        d = out / INDEX_DIR
        keep = np.ones(n_own, dtype=bool)
        keep[removed] = False
        docs_w = AtomicIPCWriter(d / "docs.arrow", self.side_schema)
        bands_w = AtomicIPCWriter(d / "bands.arrow", INDEX_BANDS_SCHEMA)
        row = 0
        for u, t in enumerate(side.tables[:len(side.tables) - len(self._references())]):
            sel = keep[side.offsets[u]:side.offsets[u + 1]]
            kept_t = t.filter(pa.array(sel))
            docs_w.write(kept_t)
            if kept_t.num_rows:
                bl = kept_t["bands"].combine_chunks()
                per = np.diff(bl.offsets.to_numpy())
                band = np.arange(int(per.sum())) - np.repeat(np.cumsum(per) - per, per)
                bands_w.write(pa.table({"band_key": bl.values, "band": pa.array(band.astype(np.uint16)),
                                        "row": pa.array(np.repeat(np.arange(row, row + kept_t.num_rows), per))}))
            row += kept_t.num_rows
        docs_w.close()
        bands_w.close()
        write_json_atomic(d / "params.json", {**self.index_params(), "documents": row})

    def apply(self, batch: pa.Table, decisions: Decisions) -> tuple[pa.Table, pa.Array]:
        cols = decisions.lookup(batch, {**self.columns, "reason": pa.string()})
        batch = batch.append_column("dup_cluster", cols["dup_cluster"])
        batch = batch.append_column("dup_count", pc.fill_null(cols["dup_count"], 1))
        return batch, cols["reason"]


def _read_index(path: Path) -> pa.Table:
    """An index file of an ``against`` corpus (checked by :func:`check_reference_index` when the run started);
    RunError naming it if it became unreadable since."""
    try:
        return read_ipc(path)
    except (OSError, pa.ArrowException) as e:
        raise RunError(f"{path}: damaged MinHash index ({str(e).splitlines()[0][:100]}); rebuild that corpus with "
                       "`curate run RECIPE --fresh`") from None


class _ShingleSets:
    """The sorted shingle sets of the side store's documents, gathered from the memory-mapped list columns chunk by
    chunk: only the requested sets are copied."""

    def __init__(self, side: SideStore) -> None:
        self.chunks = [(c.offsets.to_numpy().astype(np.int64), c.values.to_numpy())
                       for t in side.tables for c in t["shingles"].chunks]
        self.starts = np.cumsum([0] + [len(off) - 1 for off, _ in self.chunks])

    def _where(self, gidx: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """Chunk, first value and length of each document's set."""
        chunk = np.searchsorted(self.starts, gidx, side="right") - 1
        begin = np.empty(len(gidx), dtype=np.int64)
        length = np.empty(len(gidx), dtype=np.int64)
        for c, sel in _groups(chunk):
            off = self.chunks[c][0]
            j = gidx[sel] - self.starts[c]
            begin[sel], length[sel] = off[j], off[j + 1] - off[j]
        return chunk, begin, length

    def lengths(self, gidx: np.ndarray) -> np.ndarray:
        return self._where(gidx)[2]

    def gather(self, gidx: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """The sets of ``gidx``, concatenated in that order, and their lengths."""
        chunk, begin, length = self._where(gidx)
        out = np.empty(int(length.sum()), dtype=np.uint32)
        dest = np.cumsum(length) - length
        for c, sel in _groups(chunk):
            lsh.copy_runs(self.chunks[c][1], begin[sel], length[sel], dest[sel], out)
        return out, length


def _groups(labels: np.ndarray) -> list[tuple[int, np.ndarray]]:
    """(label, indices) for each distinct label."""
    order = np.argsort(labels, kind="stable")
    values, starts = np.unique(labels[order], return_index=True)
    return [(int(v), idx) for v, idx in zip(values, np.split(order, starts[1:]))]


def _bucket_pairs(members: np.ndarray, starts: np.ndarray, max_all: int) -> np.ndarray:
    """Unique candidate pairs (u < v) from buckets of sorted ``members`` beginning at ``starts``: every pair in a
    bucket of up to ``max_all`` members, the first member against the others in larger ones. Vectorized."""
    sizes = np.diff(np.append(starts, len(members)))
    us, vs = [], []
    small = (sizes > 1) & (sizes <= max_all)
    if small.any():
        # member at offset o of a bucket of size k pairs with the k-1-o members after it
        bucket_of = np.repeat(np.arange(len(starts)), sizes)
        offset = np.arange(len(members)) - starts[bucket_of]
        after = np.where(small[bucket_of], sizes[bucket_of] - 1 - offset, 0)
        pos = np.repeat(np.arange(len(members)), after)
        step = np.arange(len(pos)) - np.repeat(np.cumsum(after) - after, after)
        us.append(members[pos])
        vs.append(members[pos + 1 + step])
    large = sizes > max_all
    if large.any():
        first = np.repeat(starts[large], sizes[large] - 1)
        rest = np.concatenate([np.arange(s + 1, s + k) for s, k in zip(starts[large], sizes[large])])
        us.append(members[first])
        vs.append(members[rest])
    if not us:
        return np.zeros((0, 2), dtype=np.int64)
    u, v = np.concatenate(us), np.concatenate(vs)
    return _unique_pairs(np.minimum(u, v), np.maximum(u, v))


def _unique_pairs(u: np.ndarray, v: np.ndarray) -> np.ndarray:
    """Distinct ``(u, v)`` rows, sorted: one 64-bit key per pair (global indexes are below 2**32), one 1-D sort."""
    if len(u) and max(int(u.max()), int(v.max())) >= 2**32:
        raise ValueError("minhash_dedup indexes documents with 32 bits: more than 4,294,967,295 documents")
    key = np.unique((u.astype(np.uint64) << np.uint64(32)) | v.astype(np.uint64))
    return np.stack([(key >> np.uint64(32)).astype(np.int64), (key & np.uint64(0xFFFFFFFF)).astype(np.int64)], axis=1)


def _shingle_sets(hashes: np.ndarray, offsets: np.ndarray) -> pa.Array:
    """Per document: its sorted, unique 32-bit shingle hashes (the set exact verification compares)."""
    values, new_off = lsh.shingle_sets(hashes, offsets)
    return pa.LargeListArray.from_arrays(pa.array(new_off), pa.array(values, pa.uint32()))
