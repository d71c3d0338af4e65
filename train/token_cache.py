"""The tokenized cache: each corpus shard tokenized once per tokenizer, memory-mapped by every run and ablation.

``CORPUS/tokens/<tokenizer hash>/<domain>/part-00000.{tokens,docs.npy,ids.npy,json}``: the shard's token ids
(uint16 when the vocabulary fits, else uint32), each document followed by EOS; document start offsets; a 64-bit hash
of each document id (for the held-out split); and metadata with the shard's sha256, so a rebuilt shard is
re-tokenized, and the size and xxh3-128 of each of the three files. A shard is written to temporary names and
renamed, its metadata last, so a killed build resumes. Before a cached shard is used its files are checked against
its metadata (once per process); a damaged, truncated or missing file, or a metadata file that is damaged or older
than these checksums, makes that shard be tokenized again.
"""

from __future__ import annotations

import json
import multiprocessing as mp
import os
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import xxhash

from mixlab.checksum import file_problem, file_record
from mixlab.errors import RunError
from mixlab.logs import log, progress
from train.corpus import Corpus, Shard
from train.tokenizer import load_tokenizer, tokenizer_hash

FILES = (".tokens", ".docs.npy", ".ids.npy")
"""the data files of a cached shard, beside its metadata ``.json``"""
NOT_CACHED, CHANGED = "not cached", "the corpus shard changed"
_checked: set[tuple[str, str, tuple[tuple[int, int], ...]]] = set()
"""(metadata path, metadata text, size and mtime in ns of each data file) of the cached shards whose files this
process has checked"""

PROBES = ("Plain text.", " a leading space", "   a leading run", "\tindented\r\nCRLF ", "你好 🙂")
"""texts on which SentencePiece must give the transformers tokenizer's ids before it is used in its place"""


@dataclass
class ShardTokens:
    domain: str
    tokens: np.ndarray  # memory-mapped
    doc_starts: np.ndarray  # len = docs + 1
    id_hashes: np.ndarray

    @property
    def docs(self) -> int:
        return len(self.doc_starts) - 1


class _Encoder:
    """Token ids of a tokenizer directory, always those `transformers.AutoTokenizer` gives (what SFT, generation and
    serving use): SentencePiece directly (batched in C++) when the directory has its model and it gives the same ids
    on :data:`PROBES`, else the transformers tokenizer."""

    def __init__(self, directory: Path) -> None:
        self.hf = load_tokenizer(directory)
        self.eos = self.hf.eos_token_id
        self.sp = None
        if (directory / "tokenizer.model").exists():
            import sentencepiece as spm

            sp = spm.SentencePieceProcessor(model_file=str(directory / "tokenizer.model"))
            if sp.encode(list(PROBES)) == self.hf(list(PROBES), add_special_tokens=False)["input_ids"]:
                self.sp = sp

    @property
    def vocab_size(self) -> int:
        return len(self.hf)

    def encode(self, texts: list[str]) -> list[list[int]]:
        if self.sp is not None:
            return self.sp.encode(texts)
        return self.hf(texts, add_special_tokens=False)["input_ids"]


_enc: _Encoder | None = None


def _init(tokenizer_dir: Path) -> None:
    global _enc
    _enc = _Encoder(tokenizer_dir)


def _tokenize_shard(args: tuple[Corpus, Shard, Path]) -> str:
    corpus, shard, target = args
    assert _enc is not None
    dtype = np.uint16 if _enc.vocab_size <= 65535 else np.uint32
    target.parent.mkdir(parents=True, exist_ok=True)
    tmp = target.with_name(f".{target.name}.tmp{os.getpid()}")
    starts, ids, n = [0], [], 0
    with open(tmp.with_suffix(".tokens"), "wb") as f:
        for batch in corpus.batches(shard):
            for doc_id, toks in zip(batch.column(0).to_pylist(), _enc.encode(batch.column(1).to_pylist())):
                arr = np.asarray(toks + [_enc.eos], dtype=dtype)
                f.write(arr.tobytes())
                n += len(arr)
                starts.append(n)
                ids.append(xxhash.xxh3_64_intdigest(doc_id.encode()))
    np.save(tmp.with_suffix(".docs.npy"), np.asarray(starts, dtype=np.int64))
    np.save(tmp.with_suffix(".ids.npy"), np.asarray(ids, dtype=np.uint64))
    files = {s: file_record(tmp.with_suffix(s)) for s in FILES}
    for suffix in FILES:
        os.replace(tmp.with_suffix(suffix), target.with_suffix(suffix))
    meta = {"sha256": shard.sha256, "tokens": n, "docs": len(ids), "dtype": np.dtype(dtype).name, "files": files}
    tmp_meta = tmp.with_suffix(".json")
    tmp_meta.write_text(json.dumps(meta) + "\n")
    os.replace(tmp_meta, target.with_suffix(".json"))  # last: the shard is complete
    return shard.domain


def cache_dir(corpus: Corpus, tokenizer_dir: Path) -> Path:
    return corpus.root / "tokens" / tokenizer_hash(tokenizer_dir)


def _target(root: Path, shard: Shard) -> Path:
    return root / shard.domain / shard.path.stem


def _problem(target: Path, shard: Shard) -> str | None:
    """Why the cached shard at ``target`` cannot be used for ``shard`` (the metadata file is damaged, from before
    checksums, or for another version of the shard; a data file is missing, of another size or checksum), or None.
    A shard is hashed once per process while its metadata and its files' sizes and mtimes stay the same."""
    meta_path = target.with_suffix(".json")
    try:
        text = meta_path.read_text(encoding="utf-8")
        meta = json.loads(text)
    except FileNotFoundError:
        return NOT_CACHED
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as e:
        return f"{meta_path.name}: damaged ({type(e).__name__})"
    if isinstance(meta, dict) and "files" not in meta:
        return f"{meta_path.name}: written before checksums were recorded"
    if not _well_formed(meta):
        return f"{meta_path.name}: damaged"
    if meta["sha256"] != shard.sha256:
        return CHANGED
    try:
        stats = tuple((st.st_size, st.st_mtime_ns) for st in (target.with_suffix(s).stat() for s in FILES))
    except OSError as e:
        return f"{Path(e.filename or target).name}: {e.strerror or e}"
    key = (meta_path.as_posix(), text, stats)
    if key in _checked:
        return None
    for suffix in FILES:
        path = target.with_suffix(suffix)
        problem = file_problem(path, meta["files"][suffix])
        if problem is not None:
            return f"{path.name}: {problem}"
    _checked.add(key)
    return None


def _well_formed(meta: Any) -> bool:
    if not isinstance(meta, dict):
        return False
    files = meta.get("files")
    return (isinstance(meta.get("sha256"), str) and meta.get("dtype") in ("uint16", "uint32")
            and all(isinstance(meta.get(k), int) and meta[k] >= 0 for k in ("tokens", "docs"))
            and isinstance(files, dict)
            and all(isinstance(files.get(s), dict) and isinstance(files[s].get("bytes"), int)
                    and isinstance(files[s].get("xxh3_128"), str) for s in FILES))


def build(corpus: Corpus, tokenizer_dir: Path, domains: list[str], workers: int = 1) -> Path:
    """Tokenize every shard of ``domains`` that is not cached yet or whose cache fails its checks (logged, naming
    the shard); returns the cache directory. Raises RunError naming a corpus shard that is missing or damaged."""
    root = cache_dir(corpus, tokenizer_dir)
    todo = []
    for shard in (s for d in domains for s in corpus.shards(d)):
        target = _target(root, shard)
        problem = _problem(target, shard)
        if problem is None:
            continue
        if problem == CHANGED:
            log.info(f"token cache {target.parent}/{target.name}: {problem}; tokenizing {shard.path.name} again")
        elif problem != NOT_CACHED:
            log.warning(f"token cache {target.parent}/{target.name}: {problem}; tokenizing {shard.path.name} again")
        todo.append((corpus, shard, target))
    if not todo:
        return root
    for _, shard, _ in todo:
        corpus.verify(shard)
    log.info(f"tokenizing {len(todo)} shards into {root}")
    if workers > 1 and len(todo) > 1:
        with mp.get_context("fork").Pool(min(workers, len(todo)), initializer=_init, initargs=(tokenizer_dir,)) as pool:
            for _ in progress(pool.imap_unordered(_tokenize_shard, todo), total=len(todo), desc="tokenize",
                              unit="shard"):
                pass
    else:
        _init(tokenizer_dir)
        for t in progress(todo, desc="tokenize", unit="shard"):
            _tokenize_shard(t)
    report = []
    for d in domains:
        n, est = counted_tokens(corpus, tokenizer_dir, d), int(corpus.manifest["domains"][d].get("est_tokens", 0))
        report.append(f"{d} {n:,} ({est:,}" + (f", {est / n - 1:+.1%})" if n else ")"))
    log.info("tokens per domain, counted (the manifest's estimate without a tokenizer): " + ", ".join(report))
    return root


def counted_tokens(corpus: Corpus, tokenizer_dir: Path, domain: str) -> int:
    """The tokens of ``domain`` in the cache, an EOS after each document included (:func:`build` has made it
    current), from its shards' metadata."""
    root = cache_dir(corpus, tokenizer_dir)
    return sum(int(json.loads(_target(root, s).with_suffix(".json").read_text(encoding="utf-8"))["tokens"])
               for s in corpus.shards(domain))


def load(corpus: Corpus, tokenizer_dir: Path, domain: str) -> list[ShardTokens]:
    """Memory-map the cached shards of one domain, in shard order, after checking them against their metadata
    (:func:`build` has made them current). Raises RunError naming a cached file that is missing or damaged."""
    root = cache_dir(corpus, tokenizer_dir)
    out = []
    for shard in corpus.shards(domain):
        target = _target(root, shard)
        if (problem := _problem(target, shard)) is not None:
            raise RunError(f"token cache {target.parent}/{target.name}: {problem}; run again to tokenize it again")
        meta: dict[str, Any] = json.loads(target.with_suffix(".json").read_text(encoding="utf-8"))
        tokens = np.memmap(target.with_suffix(".tokens"), dtype=meta["dtype"], mode="r") if meta["tokens"] else \
            np.zeros(0, dtype=meta["dtype"])
        out.append(ShardTokens(domain, tokens, np.load(target.with_suffix(".docs.npy"), allow_pickle=False),
                               np.load(target.with_suffix(".ids.npy"), allow_pickle=False)))
    return out
