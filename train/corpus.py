"""Reading a corpus built by `curate run`: its manifest, mixture and shards (the contract in DESIGN.md)."""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Iterator

import pyarrow as pa
import pyarrow.parquet as pq

from mixlab.errors import ConfigError


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
        yield from pq.ParquetFile(shard.path).iter_batches(batch_size=batch_size, columns=list(columns))


def _read_json(path: Path, key: str) -> dict[str, Any]:
    """A JSON object file of a corpus that must hold ``key``; ConfigError naming the file when it is damaged."""
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as e:
        raise ConfigError(f"{path}: damaged or unreadable ({e}); rebuild the corpus with `curate run`") from None
    if not isinstance(data, dict) or not isinstance(data.get(key), dict):
        raise ConfigError(f"{path}: damaged (no {key!r} object); rebuild the corpus with `curate run`")
    return data
