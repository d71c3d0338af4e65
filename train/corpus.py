"""Reading a corpus built by `curate run`: its manifest, mixture and shards (the contract in DESIGN.md)."""

from __future__ import annotations

import hashlib
import json
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Iterator

import pyarrow as pa
import pyarrow.parquet as pq

from mixlab.errors import ConfigError, RunError
from train.config import weights_problem

_verified: set[tuple[str, str, int, int]] = set()
"""(path, sha256, size, mtime in ns) of the shards this process has checked against their manifest's sha256"""


@dataclass(frozen=True)
class Shard:
    domain: str
    path: Path
    docs: int
    sha256: str


class Corpus:
    def __init__(self, root: Path) -> None:
        self.root = Path(root)
        manifest = self.root / "manifest.json"
        if not manifest.is_file():
            hint = " (an unfinished `curate run`: run it again to finish)" if (self.root / ".state").exists() else ""
            raise ConfigError(f"{self.root}: not a complete corpus, no manifest.json{hint}")
        self.manifest: dict[str, Any] = _read_json(manifest, "domains")
        mixture = self.root / "mixture.json"
        self.mixture: dict[str, float] = _read_json(mixture, "weights")["weights"] if mixture.exists() else {}
        if problem := weights_problem(self.mixture):
            raise ConfigError(f"{mixture}: damaged ({problem}); rebuild the corpus with `curate run`")

    @property
    def name(self) -> str:
        return str(self.manifest["name"])

    @property
    def domains(self) -> list[str]:
        return sorted(d for d, v in self.manifest["domains"].items() if v["docs"] > 0)

    def shards(self, domain: str) -> list[Shard]:
        info = self.manifest["domains"].get(domain)
        if info is None:
            raise ConfigError(f"{self.root}: no domain {domain!r} (domains: {', '.join(self.domains)})")
        return [Shard(domain, self.root / s["path"], s["docs"], s["sha256"]) for s in info["shards"]]

    def text_bytes(self, domain: str) -> int:
        return int(self.manifest["domains"][domain]["bytes"])

    def batches(self, shard: Shard, columns: tuple[str, ...] = ("id", "text"),
                batch_size: int = 2048) -> Iterator[pa.RecordBatch]:
        """The record batches of ``shard``, after :meth:`verify`; RunError naming the file if it cannot be read."""
        self.verify(shard)
        try:
            yield from pq.ParquetFile(shard.path).iter_batches(batch_size=batch_size, columns=list(columns))
        except (OSError, pa.ArrowException) as e:
            raise RunError(f"{shard.path}: unreadable shard ({e}){self._damage_hint}") from None

    def verify(self, shard: Shard) -> None:
        """Check ``shard``'s file against the manifest's sha256, once per process while its size and mtime stay the
        same (one read of the file). Raises RunError naming the file when it is missing or differs."""
        try:
            st = shard.path.stat()
        except OSError as e:
            raise RunError(f"{shard.path}: shard listed in the manifest is missing or unreadable "
                           f"({e.strerror or e}){self._damage_hint}") from None
        key = (str(shard.path), shard.sha256, st.st_size, st.st_mtime_ns)
        if key in _verified:
            return
        try:
            digest = _sha256(shard.path)
        except OSError as e:
            raise RunError(f"{shard.path}: unreadable shard ({e.strerror or e}){self._damage_hint}") from None
        if digest != shard.sha256:
            raise RunError(f"{shard.path}: damaged shard (its sha256 differs from the manifest's){self._damage_hint}")
        _verified.add(key)

    @property
    def _damage_hint(self) -> str:
        return (f"; `curate inspect {self.root} --verify` lists every damaged file; rebuild the corpus with "
                "`curate run RECIPE --fresh`")


def _sha256(path: Path) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as f:
        while chunk := f.read(8 << 20):
            h.update(chunk)
    return h.hexdigest()


def _read_json(path: Path, key: str) -> dict[str, Any]:
    """A JSON object file of a corpus that must hold ``key``; ConfigError naming the file when it is damaged."""
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as e:
        raise ConfigError(f"{path}: damaged or unreadable ({e}); rebuild the corpus with `curate run`") from None
    if not isinstance(data, dict) or not isinstance(data.get(key), dict):
        raise ConfigError(f"{path}: damaged (no {key!r} object); rebuild the corpus with `curate run`")
    return data
