"""Writing Arrow data: atomic Parquet files, rolling Parquet shard writers cut by documents or bytes, and atomic
Arrow IPC files (a run's temporary files under ``.work``: memory-mapped where read at random, streamed by record
batch where read once)."""

from __future__ import annotations

import hashlib
import os
from pathlib import Path
from typing import Any, Iterator

import pyarrow as pa
import pyarrow.parquet as pq

ROW_GROUP_DOCS = 1000


class AtomicWriter:
    """Streams tables into ``path`` through a temporary file; ``close()`` renames it into place.

    The file is always created, empty if nothing was written, so readers find the schema."""

    def __init__(self, path: Path, schema: pa.Schema, compression: str = "zstd") -> None:
        path.parent.mkdir(parents=True, exist_ok=True)
        self.path, self.schema = path, schema
        self.tmp = path.with_name(f".{path.name}.tmp{os.getpid()}")
        self.rows = 0
        self._w = pq.ParquetWriter(self.tmp, schema, compression=None if compression == "none" else compression)

    def write(self, table: pa.Table) -> None:
        if table.num_rows:
            self._w.write_table(table.select(self.schema.names).cast(self.schema), row_group_size=ROW_GROUP_DOCS)
            self.rows += table.num_rows

    def close(self) -> None:
        self._w.close()
        os.replace(self.tmp, self.path)

    def abort(self) -> None:
        self._w.close()
        self.tmp.unlink(missing_ok=True)


class AtomicIPCWriter:
    """Like :class:`AtomicWriter`, for an Arrow IPC file: uncompressed (readers memory-map it without a copy) or,
    to save disk, with IPC buffer compression (``lz4`` or ``zstd``)."""

    def __init__(self, path: Path, schema: pa.Schema, compression: str = "none") -> None:
        path.parent.mkdir(parents=True, exist_ok=True)
        self.path, self.schema = path, schema
        self.tmp = path.with_name(f".{path.name}.tmp{os.getpid()}")
        self._sink = pa.OSFile(str(self.tmp), "wb")
        options = pa.ipc.IpcWriteOptions(compression=None if compression == "none" else compression)
        self._w = pa.ipc.new_file(self._sink, schema, options=options)

    def write(self, table: pa.Table) -> None:
        if table.num_rows:
            self._w.write_table(table.select(self.schema.names).cast(self.schema))

    def close(self) -> None:
        self._w.close()
        self._sink.close()
        os.replace(self.tmp, self.path)


def read_ipc(path: Path) -> pa.Table:
    """An Arrow IPC file written by :class:`AtomicIPCWriter`, memory-mapped (no copy unless compressed)."""
    return pa.ipc.open_file(pa.memory_map(str(path), "r")).read_all()


def iter_ipc(path: Path, batch_size: int) -> Iterator[pa.Table]:
    """An Arrow IPC file in tables of at most ``batch_size`` rows, one record batch in memory at a time (read, not
    memory-mapped: a mapping would keep every page read so far resident until the file is closed)."""
    with pa.OSFile(str(path), "r") as f:
        reader = pa.ipc.open_file(f)
        for i in range(reader.num_record_batches):
            rb = reader.get_batch(i)
            for start in range(0, rb.num_rows, batch_size):
                yield pa.Table.from_batches([rb.slice(start, batch_size)])


def sha256_file(path: Path) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as f:
        for chunk in iter(lambda: f.read(1 << 20), b""):
            h.update(chunk)
    return h.hexdigest()


class ShardWriter:
    """Writes ``dir/part-00000.parquet``, ``part-00001`` ... starting a new shard at ``max_docs`` or ``max_bytes``
    of text. Returns a description (path relative to ``root``, docs, text bytes, file bytes, sha256, and with
    ``estimate_tokens`` the estimated tokens of its text, :func:`curate.tokens.estimate_tokens`) per shard."""

    def __init__(self, directory: Path, root: Path, schema: pa.Schema, compression: str,
                 max_docs: int, max_bytes: int, estimate_tokens: bool = False) -> None:
        self.dir, self.root, self.schema, self.compression = directory, root, schema, compression
        self.max_docs, self.max_bytes = max_docs, max_bytes
        self.estimate_tokens = estimate_tokens
        self._tokens = 0.0
        self.shards: list[dict[str, Any]] = []
        self._w: AtomicWriter | None = None
        self._docs = self._bytes = 0

    def _open(self) -> AtomicWriter:
        if self._w is None:
            self._w = AtomicWriter(self.dir / f"part-{len(self.shards):05d}.parquet", self.schema, self.compression)
            self._docs = self._bytes = 0
            self._tokens = 0.0
        return self._w

    def _close(self) -> None:
        if self._w is None:
            return
        self._w.close()
        p = self._w.path
        self.shards.append({"path": p.relative_to(self.root).as_posix(), "docs": self._docs,
                            "bytes": self._bytes, "file_bytes": p.stat().st_size, "sha256": sha256_file(p),
                            **({"est_tokens": round(self._tokens)} if self.estimate_tokens else {})})
        self._w = None

    def write(self, table: pa.Table, text_bytes: list[int] | None = None) -> None:
        """Write ``table``; ``text_bytes`` (per row) decides where shards are cut."""
        import pyarrow.compute as pc

        sizes = text_bytes if text_bytes is not None else \
            pc.binary_length(table["text"]).to_pylist() if "text" in table.column_names else [0] * table.num_rows
        start = 0
        while start < table.num_rows:
            w = self._open()
            end = start
            docs, nbytes = self._docs, self._bytes
            while end < table.num_rows and docs < self.max_docs and (nbytes < self.max_bytes or docs == 0):
                nbytes += sizes[end]
                docs += 1
                end += 1
            w.write(table.slice(start, end - start))
            if self.estimate_tokens:
                from curate.tokens import estimate_tokens

                self._tokens += estimate_tokens(table["text"].slice(start, end - start))
            self._docs, self._bytes = docs, nbytes
            start = end
            if docs >= self.max_docs or nbytes >= self.max_bytes:
                self._close()

    def close(self) -> list[dict[str, Any]]:
        self._close()
        return self.shards
