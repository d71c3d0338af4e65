"""Checksums that catch damage: of every file a task writes (recorded in its completion marker, checked before the
file is reused), fingerprints of the input files (recorded when a run starts, checked when it resumes), and the
manifest's sha256 of every shard (checked by ``curate inspect --verify`` and by ``curate run`` on a complete corpus).

Work files and inputs are hashed with xxh3-128 (about 15 GB/s in memory, so the checksums cost a few percent of a
run at most); shards keep the sha256 the manifest has always recorded, so that anyone can check them with
``sha256sum``.
"""

from __future__ import annotations

import json
import os
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any, Iterable

import xxhash

from curate.arrow_io import sha256_file
from mixlab.checksum import file_problem, file_record
from mixlab.errors import ConfigError, RunError

CHUNK = 1 << 20
HEAD_TAIL_BYTES = 1 << 20
"""An input file is fingerprinted by its size, mtime and the xxh3-128 of its first and last ``HEAD_TAIL_BYTES``
(the whole file when it is no larger than both together)."""
FINGERPRINT_THREADS = 8
INPUTS_FORMAT = 1
_FINGERPRINT_TYPES = {"bytes": int, "mtime_ns": int, "xxh3_128": str, "hashed": str}


# ------------------------------------------------------------------------------------------------ file checksums

def file_records(root: Path, paths: Iterable[Path]) -> tuple[dict[str, dict[str, Any]], float]:
    """Size and checksum of each file, keyed by its path relative to ``root`` (posix), and the seconds spent
    hashing. Every path must lie under ``root``."""
    t0 = time.perf_counter()
    records = {}
    for p in sorted(set(paths)):
        records[p.relative_to(root).as_posix()] = file_record(p)
    return records, time.perf_counter() - t0


def check_file(root: Path, rel: str, record: dict[str, Any]) -> str | None:
    """What is wrong with ``root/rel`` against its record, or None when its size and checksum match."""
    return file_problem(root / rel, record)


# -------------------------------------------------------------------------------------------- completion markers

def seal(record: dict[str, Any]) -> str:
    """``record`` as the JSON text of a completion marker, with a checksum of itself."""
    body = json.dumps(record, sort_keys=True, ensure_ascii=False)
    return json.dumps({**record, "marker_xxh3_128": xxhash.xxh3_128_hexdigest(body.encode())},
                      sort_keys=True, ensure_ascii=False) + "\n"


def unseal(text: str) -> dict[str, Any] | None:
    """The record of a marker written by :func:`seal`, or None when the text is damaged, is not such a record, or
    was written by an earlier mixlab (an empty marker, with no checksums)."""
    try:
        data = json.loads(text)
    except ValueError:
        return None
    if not isinstance(data, dict) or not isinstance(data.get("files"), dict):
        return None
    claimed = data.pop("marker_xxh3_128", None)
    body = json.dumps(data, sort_keys=True, ensure_ascii=False)
    if claimed != xxhash.xxh3_128_hexdigest(body.encode()):
        return None
    for rec in data["files"].values():
        if not (isinstance(rec, dict) and isinstance(rec.get("bytes"), int) and isinstance(rec.get("xxh3_128"), str)):
            return None
    return data


# ------------------------------------------------------------------------------------------- input fingerprints

def fingerprint(path: Path) -> dict[str, Any]:
    """Size (bytes), mtime (ns) and xxh3-128 of the head and tail of ``path`` (of all of it when small).
    Raises OSError if it cannot be read."""
    st = path.stat()
    h = xxhash.xxh3_128()
    with open(path, "rb") as f:
        if st.st_size <= 2 * HEAD_TAIL_BYTES:
            while chunk := f.read(CHUNK):
                h.update(chunk)
            hashed = "all"
        else:
            h.update(f.read(HEAD_TAIL_BYTES))
            f.seek(-HEAD_TAIL_BYTES, os.SEEK_END)
            h.update(f.read(HEAD_TAIL_BYTES))
            hashed = "head+tail"
    return {"bytes": st.st_size, "mtime_ns": st.st_mtime_ns, "xxh3_128": h.hexdigest(), "hashed": hashed}


def fingerprint_inputs(named: dict[str, Path]) -> tuple[dict[str, dict[str, Any]], float]:
    """Fingerprints of the input files (name -> path; a directory gets those of the files below it, named
    ``name/relative``) and the seconds spent. Raises RunError naming a file that cannot be read."""
    t0 = time.perf_counter()
    files: dict[str, Path] = {}
    for name, path in named.items():
        if path.is_dir():
            files.update({f"{name}/{f.relative_to(path).as_posix()}": f for f in sorted(path.rglob("*"))
                          if f.is_file()})
        else:
            files[name] = path

    def one(item: tuple[str, Path]) -> tuple[str, dict[str, Any]]:
        try:
            return item[0], fingerprint(item[1])
        except OSError as e:
            raise RunError(f"{item[1]}: cannot read input file ({e.strerror or e})") from None

    with ThreadPoolExecutor(FINGERPRINT_THREADS) as pool:
        prints = dict(pool.map(one, sorted(files.items())))
    return prints, time.perf_counter() - t0


def input_changes(recorded: dict[str, dict[str, Any]], current: dict[str, dict[str, Any]]) -> list[str]:
    """How the inputs differ from the recorded fingerprints, one ``name: what`` per changed file (empty when they
    are the same). A file whose mtime changed counts as changed unless it was hashed whole and its hash matches."""
    changes = []
    for name in sorted(recorded.keys() | current.keys()):
        old, new = recorded.get(name), current.get(name)
        if new is None:
            changes.append(f"{name}: removed")
        elif old is None:
            changes.append(f"{name}: added")
        elif new["bytes"] != old["bytes"]:
            changes.append(f"{name}: size {old['bytes']:,} -> {new['bytes']:,} bytes")
        elif new["xxh3_128"] != old["xxh3_128"]:
            changes.append(f"{name}: content changed")
        elif new["mtime_ns"] != old["mtime_ns"] and old["hashed"] != "all":
            changes.append(f"{name}: modified (mtime {_iso(old['mtime_ns'])} -> {_iso(new['mtime_ns'])})")
    return changes


def _iso(ns: int) -> str:
    return time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(ns / 1e9))


def inputs_record(named: dict[str, Path]) -> dict[str, Any]:
    """What ``.state/inputs.json`` holds: the fingerprint of every input file and the seconds they took."""
    prints, seconds = fingerprint_inputs(named)
    return {"format": INPUTS_FORMAT, "hash": "xxh3_128", "head_tail_bytes": HEAD_TAIL_BYTES,
            "seconds": round(seconds, 4), "files": prints}


def check_inputs(path: Path, named: dict[str, Path], out: Path) -> None:
    """Refuse to resume the run in ``out`` when an input file differs from the fingerprints recorded in ``path``
    when the run started. Raises ConfigError naming the first changed files and pointing to ``--fresh``, or naming
    ``path`` when it is damaged (nothing is done either way)."""
    try:
        recorded = json.loads(path.read_text(encoding="utf-8"))["files"]
        if not isinstance(recorded, dict) or not all(
                isinstance(v, dict) and all(isinstance(v.get(k), t) for k, t in _FINGERPRINT_TYPES.items())
                for v in recorded.values()):
            raise ValueError("'files' is not a mapping of name -> fingerprint")
    except (OSError, ValueError, KeyError, TypeError) as e:
        raise ConfigError(f"{path}: damaged ({e}); the unfinished run in {out} cannot be checked against its "
                          "inputs; pass --fresh to start again") from None
    changes = input_changes(recorded, fingerprint_inputs(named)[0])
    if changes:
        more = f" (and {len(changes) - 3} more)" if len(changes) > 3 else ""
        raise ConfigError(f"{out}: the input files changed since this unfinished run started: "
                          f"{'; '.join(changes[:3])}{more}. Resuming would mix old and new input; pass --fresh to "
                          "rebuild from the current files, or restore them")


# ------------------------------------------------------------------------------------------------------ manifest

_MANIFEST_KEYS = ("name", "recipe_hash", "created_at", "corpus_sha256", "domains", "removed", "errors",
                  "accounting", "mixture")
_SHARD_KEYS = ("path", "docs", "bytes", "file_bytes", "sha256")
_FILE_TYPES = {"path": str, "bytes": int, "sha256": str}
_COUNTS = ("read", "kept", "removed_total", "errored")
HASH_THREADS = 8
"""threads re-hashing files (hashlib releases the GIL, so they read and hash in parallel)"""


def read_manifest(path: Path) -> dict[str, Any]:
    """A corpus's ``manifest.json``, checked to have the keys readers use. Raises RunError (one line naming the file
    and what is wrong) when it cannot be read, is not JSON or lacks a key."""
    try:
        m = json.loads(path.read_text(encoding="utf-8"))
    except FileNotFoundError:
        raise RunError(f"{path}: no manifest.json, not a complete corpus") from None
    except (OSError, UnicodeDecodeError) as e:
        raise RunError(f"{path}: cannot be read ({e}); rebuild the corpus with `curate run RECIPE --fresh`") from None
    except ValueError as e:
        raise RunError(f"{path}: damaged, not JSON ({e}); rebuild the corpus with `curate run RECIPE --fresh`") \
            from None
    problem = _manifest_problem(m)
    if problem:
        raise RunError(f"{path}: damaged ({problem}); rebuild the corpus with `curate run RECIPE --fresh`")
    return m


def _manifest_problem(m: Any) -> str | None:
    if not isinstance(m, dict):
        return "not a JSON object"
    missing = [k for k in _MANIFEST_KEYS if k not in m]
    if missing:
        return f"missing key {missing[0]!r}"
    if not all(isinstance(m[k], str) for k in ("name", "recipe_hash", "created_at", "corpus_sha256")):
        return "name, recipe_hash, created_at or corpus_sha256 is not a string"
    if not isinstance(m["domains"], dict) or not all(
            isinstance(v, dict) and isinstance(v.get("shards"), list)
            and all(isinstance(v.get(k), int) for k in ("docs", "bytes", "est_tokens")) for v in m["domains"].values()):
        return "'domains' is not a mapping of domain -> {docs, bytes, est_tokens, shards}"
    if not isinstance(m["removed"], dict) or not all(isinstance(v, list) for v in m["removed"].values()):
        return "'removed' is not a mapping of step -> [shards]"
    if not isinstance(m["errors"], dict) or not isinstance(m["errors"].get("shards"), list) \
            or not isinstance(m["errors"].get("by_kind", {}), dict):
        return "'errors' has no list of shards"
    acc = m["accounting"]
    if not isinstance(acc, dict) or not all(isinstance(acc.get(k), int) for k in _COUNTS) \
            or not isinstance(acc.get("balanced"), bool) or not isinstance(acc.get("removed"), dict) \
            or not all(isinstance(r, dict) and all(isinstance(n, int) for n in r.values())
                       for r in acc["removed"].values()):
        return f"'accounting' lacks one of {', '.join(_COUNTS)}, removed, balanced"
    if not isinstance(m["mixture"], dict) or not all(isinstance(w, (int, float)) for w in m["mixture"].values()):
        return "'mixture' is not a mapping of domain -> weight"
    for where, shard in listed_shards(m):
        if not isinstance(shard, dict) or any(k not in shard for k in _SHARD_KEYS) \
                or not isinstance(shard["path"], str) or not isinstance(shard["file_bytes"], int):
            return f"a shard of {where} lacks one of {', '.join(_SHARD_KEYS)}"
        if _outside(shard["path"]):
            return f"shard path {shard['path']!r} of {where} lies outside the corpus"
    files = m.get("files", [])
    if not isinstance(files, list) or not all(
            isinstance(f, dict) and all(isinstance(f.get(k), t) for k, t in _FILE_TYPES.items()) for f in files):
        return "'files' is not a list of {path, bytes, sha256}"
    for f in files:
        if _outside(f["path"]):
            return f"file path {f['path']!r} lies outside the corpus"
    return None


def _outside(rel: str) -> bool:
    return Path(rel).is_absolute() or ".." in Path(rel).parts


def listed_shards(m: dict[str, Any]) -> list[tuple[str, Any]]:
    """(where, shard) for every file a manifest lists: data shards per domain, removed documents per step, errors."""
    out: list[tuple[str, Any]] = [(f"domains.{d}", s) for d, v in m["domains"].items() for s in v["shards"]]
    out += [(f"removed.{step}", s) for step, shards in m["removed"].items() for s in shards]
    out += [("errors", s) for s in m["errors"]["shards"]]
    return out


def listed_files(m: dict[str, Any]) -> list[dict[str, Any]]:
    """The manifest's ``files``: ``{path, bytes, sha256}`` of the other files a run writes that are read later
    (``mixture.json``, which training reads, and the MinHash index that ``against:`` reads). Empty for a manifest
    written by an earlier mixlab, which did not record them."""
    return m.get("files", [])


def file_entries(root: Path, paths: Iterable[Path]) -> list[dict[str, Any]]:
    """``{path, bytes, sha256}`` of each file, as the manifest's ``files`` lists them: path relative to ``root``
    (posix), sorted. Every path must lie under ``root``; raises OSError if one cannot be read."""
    def one(p: Path) -> dict[str, Any]:
        return {"path": p.relative_to(root).as_posix(), "bytes": p.stat().st_size, "sha256": sha256_file(p)}

    with ThreadPoolExecutor(HASH_THREADS) as pool:
        return list(pool.map(one, sorted(set(paths))))


def _check_listed(root: Path, rel: str, size: int, sha256: str) -> tuple[str | None, int]:
    """What is wrong with ``root/rel`` against its manifest entry (None when it matches), and its size."""
    path = root / rel
    try:
        actual = path.stat().st_size
        if actual != size:
            return f"{rel}: {actual:,} bytes where the manifest says {size:,}", actual
        if sha256_file(path) != sha256:
            return f"{rel}: sha256 differs from the manifest's", actual
    except FileNotFoundError:
        return f"{rel}: missing", 0
    except OSError as e:
        return f"{rel}: unreadable ({e.strerror or e})", 0
    return None, actual


def _check_all(root: Path, entries: list[tuple[str, int, str]]) -> tuple[list[str], int]:
    with ThreadPoolExecutor(HASH_THREADS) as pool:
        results = list(pool.map(lambda e: _check_listed(root, *e), entries))
    return [p for p, _ in results if p is not None], sum(n for _, n in results)


def verify_manifest(root: Path, m: dict[str, Any]) -> tuple[list[str], int, int]:
    """Re-hash every file the manifest ``m`` of the corpus at ``root`` lists (shards and ``files``). Returns the
    problems (one ``path: what`` each, empty when all match), the number of files and their total bytes."""
    entries = [(s["path"], s["file_bytes"], s["sha256"]) for _, s in listed_shards(m)]
    entries += [(f["path"], f["bytes"], f["sha256"]) for f in listed_files(m)]
    problems, total = _check_all(root, entries)
    return problems, len(entries), total


def verify_files(root: Path, m: dict[str, Any], rels: list[str]) -> list[str]:
    """Re-hash the files ``rels`` (paths relative to ``root``) against the manifest ``m``'s ``files``. Returns the
    problems, one ``path: what`` each (``not recorded in the manifest`` for a path it does not list)."""
    listed = {f["path"]: f for f in listed_files(m)}
    problems = [f"{rel}: not recorded in the manifest" for rel in rels if rel not in listed]
    found, _ = _check_all(root, [(rel, listed[rel]["bytes"], listed[rel]["sha256"]) for rel in rels if rel in listed])
    return problems + found


def damaged_corpus_error(root: Path, problems: list[str]) -> RunError:
    """The one-line error for a corpus whose files do not match its manifest."""
    more = f" (and {len(problems) - 5} more)" if len(problems) > 5 else ""
    return RunError(f"{root}: {len(problems)} file(s) do not match manifest.json: {'; '.join(problems[:5])}{more}; "
                    "rebuild the corpus with `curate run RECIPE --fresh`")


__all__ = ["file_records", "check_file", "seal", "unseal", "fingerprint", "fingerprint_inputs",
           "input_changes", "inputs_record", "check_inputs", "read_manifest", "listed_shards", "listed_files",
           "file_entries", "verify_manifest", "verify_files", "damaged_corpus_error"]
