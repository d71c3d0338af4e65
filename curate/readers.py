"""Source readers: files -> Arrow batches of documents, and an error record for everything that cannot be read.

Every reader yields ``(docs, errors)`` pairs. ``docs`` has the document columns plus the hidden ordering columns
``_unit`` and ``_pos`` (the record's position in its unit, fixed by the input alone); ``errors`` lists records that
could not be read, with their source location. A file-level failure (truncated gzip, unreadable path, a Parquet file
without the text column) becomes one error record for that file and the records read before it are kept.
"""

from __future__ import annotations

import gzip
import io
import zlib
from dataclasses import dataclass
from pathlib import Path
from typing import IO, Any, Iterator

import numpy as np
import orjson
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.json as pj
import pyarrow.parquet as pq
import zstandard

from curate.recipe import Source
from mixlab.errors import RunError

DOC_SCHEMA = pa.schema([
    ("id", pa.string()), ("text", pa.string()), ("domain", pa.string()), ("source", pa.string()),
    ("_unit", pa.int32()), ("_pos", pa.int64()),
])
ERROR_SCHEMA = pa.schema([
    ("source", pa.string()), ("location", pa.string()), ("kind", pa.string()), ("error", pa.string()),
    ("raw", pa.string()), ("_unit", pa.int32()), ("_pos", pa.int64()),
])
RAW_PREVIEW = 2000
BATCH_TEXT_BYTES = 64 * 2**20
FILE_LEVEL_POS = -1
JSONL_BLOCK_BYTES = 8 * 2**20
_ARROW_ONLY_VALUES = ((b"NaN", b":,["), (b"Infinity", b":,[-"))
"""values Arrow's JSON reader accepts and JSON does not, with the bytes that may precede them"""
_BOM = b"\xef\xbb\xbf"
_SPACE_CHARS = pa.array([""] + [chr(c) for c in range(0x110000) if chr(c).isspace()])
_BLANK_TEXT = "^[" + "".join(f"\\x{{{ord(c):x}}}" for c in _SPACE_CHARS.to_pylist()[1:]) + "]*$"
"""a text that str.strip() leaves empty"""


@dataclass
class Unit:
    """The unit of parallel work: files of one source, read in order."""

    index: int
    source_index: int
    source: Source
    files: list[Path]
    names: list[str]


class _Batcher:
    """Documents and error records of a unit, collected in order until a batch is full. Documents come one by one
    (:meth:`doc`) or as Arrow tables already in the document schema (:meth:`add_docs`)."""

    def __init__(self, unit: Unit, batch_size: int) -> None:
        self.unit, self.batch_size = unit, batch_size
        self.docs: dict[str, list] = {k: [] for k in DOC_SCHEMA.names}
        self.errors: dict[str, list] = {k: [] for k in ERROR_SCHEMA.names}
        self.tables: list[pa.Table] = []
        self.rows = 0
        self.text_bytes = 0

    def doc(self, doc_id: str, text: str, source: str, pos: int) -> None:
        d = self.docs
        d["id"].append(doc_id), d["text"].append(text), d["domain"].append(self.unit.source.domain)
        d["source"].append(source), d["_unit"].append(self.unit.index), d["_pos"].append(pos)
        self.rows += 1
        self.text_bytes += len(text)

    def add_docs(self, docs: pa.Table, text_bytes: int) -> None:
        self._tabulate()
        self.tables.append(docs)
        self.rows += docs.num_rows
        self.text_bytes += text_bytes

    def room(self) -> int:
        return max(self.batch_size - self.rows, 0)

    def error(self, source: str, location: str, kind: str, error: str, raw: Any, pos: int) -> None:
        if isinstance(raw, (bytes, bytearray)):
            raw = bytes(raw[:RAW_PREVIEW]).decode("utf-8", "backslashreplace")
        elif raw is not None:
            raw = str(raw)[:RAW_PREVIEW]
        e = self.errors
        e["source"].append(source), e["location"].append(location), e["kind"].append(kind)
        e["error"].append(error), e["raw"].append(raw), e["_unit"].append(self.unit.index), e["_pos"].append(pos)

    def full(self) -> bool:
        return self.rows >= self.batch_size or self.text_bytes >= BATCH_TEXT_BYTES

    def pending(self) -> bool:
        return bool(self.rows or self.errors["source"])

    def _tabulate(self) -> None:
        if self.docs["id"]:
            self.tables.append(pa.Table.from_pydict(self.docs, schema=DOC_SCHEMA))
            for col in self.docs.values():
                col.clear()

    def flush(self) -> tuple[pa.Table, pa.Table]:
        self._tabulate()
        docs = pa.concat_tables(self.tables).combine_chunks() if self.tables else DOC_SCHEMA.empty_table()
        errors = pa.Table.from_pydict(self.errors, schema=ERROR_SCHEMA)
        for col in self.errors.values():
            col.clear()
        self.tables, self.rows, self.text_bytes = [], 0, 0
        return docs, errors


def _check_text(b: _Batcher, text: Any, field: str, name: str, loc: str, raw: Any, pos: int, limit: int) -> bool:
    if text is None:
        b.error(name, loc, "missing_field", f"no text field {field!r}", raw, pos)
    elif not isinstance(text, str):
        b.error(name, loc, "bad_type", f"text field {field!r} is {type(text).__name__}, not a string", raw, pos)
    elif not text.strip():
        b.error(name, loc, "empty_text", "text is empty or only whitespace", raw, pos)
    elif len(text) > limit // 4 and len(text.encode("utf-8")) > limit:  # a character is 1 to 4 bytes
        b.error(name, loc, "too_large", f"document is {len(text.encode()) / 2**20:.1f} MiB, over "
                f"max_doc_bytes ({limit / 2**20:.1f} MiB)", text[:RAW_PREVIEW], pos)
    else:
        return True
    return False


class _ZstdFrames(io.RawIOBase):
    """Concatenated zstd frames as a raw stream; a stream that ends inside a frame raises ``ZstdError``.

    (zstandard's ``stream_reader`` ends a truncated stream with a silent EOF: the cut would go unrecorded.)
    """

    def __init__(self, raw: IO[bytes]) -> None:
        self._raw, self._dctx = raw, zstandard.ZstdDecompressor()
        self._frame: Any = None
        self._out = memoryview(b"")

    def readable(self) -> bool:
        return True

    def readinto(self, buf: Any) -> int:
        while not self._out:
            data = b""
            if self._frame is not None and self._frame.eof:
                data, self._frame = self._frame.unused_data, None
            data = data or self._raw.read(1 << 16)
            if not data:
                if self._frame is not None:
                    raise zstandard.ZstdError("stream ends inside a frame")
                return 0
            if self._frame is None:
                self._frame = self._dctx.decompressobj()
            self._out = memoryview(self._frame.decompress(data))
        n = min(len(buf), len(self._out))
        buf[:n], self._out = self._out[:n], self._out[n:]
        return n

    def close(self) -> None:
        self._raw.close()
        super().close()


def _open_stream(path: Path, fmt: str) -> IO[bytes]:
    if fmt == "jsonl.gz":
        # not wrapped in a bigger buffer: a buffered read of GzipFile loops until its size is filled, so a
        # truncated stream would take every line still in that buffer down with it
        return gzip.open(path, "rb")  # type: ignore[return-value]
    raw = open(path, "rb")
    if fmt == "jsonl.zst":
        return io.BufferedReader(_ZstdFrames(raw), 1 << 20)
    return io.BufferedReader(raw, buffer_size=1 << 20)


def _doc_id(rec: dict, id_field: str | None, name: str, lineno: int) -> str | None:
    if id_field is None:
        return f"{name}:{lineno}"
    value = rec.get(id_field)
    return str(value) if isinstance(value, (str, int)) and not isinstance(value, bool) else None


def _read_jsonl(b: _Batcher, path: Path, name: str, file_index: int) -> Iterator[tuple[pa.Table, pa.Table]]:
    """Lines gathered into blocks of about ``JSONL_BLOCK_BYTES``; a block is parsed by Arrow's JSON reader when every
    record in it is a clean document, else line by line (the same result: the fast path only handles what it can)."""
    lineno = 0
    with _open_stream(path, b.unit.source.format or "jsonl") as stream:
        for block in _line_blocks(stream):
            yield from _jsonl_block(b, block, lineno, name, file_index)
            lineno += len(block)


def _line_blocks(stream: IO[bytes]) -> Iterator[list[bytes]]:
    """The stream's lines in lists of about ``JSONL_BLOCK_BYTES``; a stream that breaks off still delivers the lines
    read before the break, then raises."""
    block: list[bytes] = []
    size = 0
    try:
        for line in stream:
            block.append(line)
            size += len(line)
            if size >= JSONL_BLOCK_BYTES:
                full, block, size = block, [], 0
                yield full
    except Exception:
        if block:
            yield block
        raise
    if block:
        yield block


def _jsonl_block(b: _Batcher, lines: list[bytes], lineno: int, name: str, file_index: int
                 ) -> Iterator[tuple[pa.Table, pa.Table]]:
    """Lines ``lineno + 1 ...`` of a file."""
    if not lines:
        return
    docs = _clean_jsonl_docs(b, lines, lineno, name, file_index)
    if docs is not None:
        text_bytes = pc.sum(pc.binary_length(docs["text"])).as_py() or 0
        start = 0
        while start < docs.num_rows:
            take = min(b.room() or b.batch_size, docs.num_rows - start)
            b.add_docs(docs.slice(start, take), text_bytes * take // docs.num_rows)
            start += take
            if b.full():
                yield b.flush()
        return
    src = b.unit.source
    base = file_index << 40
    for line in lines:
        lineno += 1
        if not line.strip():
            continue
        loc, pos = f"line {lineno}", base + lineno
        try:
            rec = orjson.loads(line)
        except orjson.JSONDecodeError as e:
            try:
                line.decode("utf-8")
                b.error(name, loc, "bad_json", f"malformed JSON: {e}", line, pos)
            except UnicodeDecodeError as u:
                b.error(name, loc, "bad_utf8", f"invalid UTF-8 at byte {u.start}", line, pos)
        else:
            if not isinstance(rec, dict):
                b.error(name, loc, "bad_json", f"expected a JSON object, got {type(rec).__name__}", line, pos)
            elif _check_text(b, rec.get(src.text_field), src.text_field, name, loc, line, pos, src.max_doc_bytes):
                doc_id = _doc_id(rec, src.id_field, name, lineno)
                if doc_id is None:
                    b.error(name, loc, "missing_field", f"no usable id field {src.id_field!r}", line, pos)
                else:
                    b.doc(doc_id, rec[src.text_field], name, pos)
        if b.full():
            yield b.flush()


def _clean_jsonl_docs(b: _Batcher, lines: list[bytes], lineno: int, name: str, file_index: int) -> pa.Table | None:
    """The documents of a block parsed by Arrow, or None when any record needs the line-by-line path: malformed
    JSON or UTF-8, a text that is missing, not a string, blank or too large, an id that is missing or not a
    string or integer, a repeated key (Arrow refuses it; orjson keeps the last), and what Arrow accepts but JSON
    (and orjson) does not: NaN or Infinity values, a byte order mark before a record."""
    src = b.unit.source
    data = b"".join(lines)
    if _arrow_only_json(lines, data):
        return None
    nonblank = np.fromiter((bool(x.strip()) for x in lines), dtype=bool, count=len(lines))
    fields = [(src.text_field, pa.string())] + ([(src.id_field, pa.string())] if src.id_field else [])
    if not _valid_utf8(data):  # Arrow's JSON reader does not check
        return None
    try:
        t = _arrow_json(data, pa.schema(fields))
    except (pa.ArrowInvalid, UnicodeDecodeError) as e:
        if not (src.id_field and f"Column(/{src.id_field}) changed from string to number" in str(e)):
            return None
        try:  # integer ids
            t = _arrow_json(data, pa.schema([fields[0], (src.id_field, pa.int64())]))
        except (pa.ArrowInvalid, UnicodeDecodeError):
            return None
    if t.num_rows != int(nonblank.sum()):
        return None
    text = t[src.text_field].combine_chunks()
    if text.null_count or pc.any(pc.greater(pc.binary_length(text), src.max_doc_bytes)).as_py() or _any_blank(text):
        return None
    line_numbers = pa.array(np.flatnonzero(nonblank) + lineno + 1)
    if src.id_field:
        ids = pc.cast(t[src.id_field].combine_chunks(), pa.string())
        if ids.null_count:
            return None
    else:
        ids = pc.binary_join_element_wise(f"{name}:", pc.cast(line_numbers, pa.string()), "")
    n = t.num_rows
    return pa.table([ids, text, pa.repeat(pa.scalar(src.domain, pa.string()), n),
                     pa.repeat(pa.scalar(name, pa.string()), n), pa.repeat(pa.scalar(b.unit.index, pa.int32()), n),
                     pc.add(line_numbers, pa.scalar(file_index << 40, pa.int64()))], schema=DOC_SCHEMA)


def _arrow_only_json(lines: list[bytes], data: bytes) -> bool:
    """Whether a block may hold what Arrow's JSON reader accepts and JSON does not: a byte order mark before a
    record, or NaN or Infinity as a value (judged by the bytes around each occurrence, spaces skipped: inside a
    string a false alarm only costs the line path)."""
    if any(x.startswith(_BOM) or (x[:1] in (b" ", b"\t") and x.lstrip(b" \t").startswith(_BOM)) for x in lines):
        return True
    for token, before in _ARROW_ONLY_VALUES:
        i = data.find(token)
        while i >= 0:
            j, k = i - 1, i + len(token)
            while j >= 0 and data[j] in b" \t":
                j -= 1
            while k < len(data) and data[k] in b" \t":
                k += 1
            if (j < 0 or data[j] in before) and (k == len(data) or data[k] in b",]}\r\n"):
                return True
            i = data.find(token, i + 1)
    return False


def _any_blank(text: pa.Array) -> bool:
    """Whether any string is empty or only whitespace (as ``str.strip`` sees it): only strings that begin with
    whitespace are matched in full."""
    maybe = pc.is_in(pc.utf8_slice_codeunits(text, 0, 1), value_set=_SPACE_CHARS)
    return bool(pc.any(maybe).as_py()) and bool(pc.any(pc.match_substring_regex(pc.filter(text, maybe),
                                                                                 _BLANK_TEXT)).as_py())


def _valid_utf8(data: bytes) -> bool:
    offsets = pa.py_buffer(np.array([0, len(data)], dtype=np.int64))
    try:
        pa.Array.from_buffers(pa.large_binary(), 1, [None, offsets, pa.py_buffer(data)]).cast(pa.large_string())
    except pa.ArrowInvalid:
        return False
    return True


def _arrow_json(data: bytes, schema: pa.Schema) -> pa.Table:
    return pj.read_json(io.BytesIO(data), read_options=pj.ReadOptions(block_size=1 << 20),
                        parse_options=pj.ParseOptions(explicit_schema=schema, unexpected_field_behavior="ignore"))


def _read_parquet(b: _Batcher, path: Path, name: str, file_index: int) -> Iterator[tuple[pa.Table, pa.Table]]:
    src = b.unit.source
    pf = pq.ParquetFile(path)
    cols = pf.schema_arrow.names
    for field in [src.text_field] + ([src.id_field] if src.id_field else []):
        if field not in cols:
            raise _FileError("missing_field", f"no column {field!r} (columns: {', '.join(cols)})")
    if not pa.types.is_string(pf.schema_arrow.field(src.text_field).type) and \
            not pa.types.is_large_string(pf.schema_arrow.field(src.text_field).type):
        raise _FileError("bad_type", f"column {src.text_field!r} is {pf.schema_arrow.field(src.text_field).type}, "
                                     "not a string")
    row = 0
    wanted = [src.text_field] + ([src.id_field] if src.id_field and src.id_field != src.text_field else [])
    for batch in pf.iter_batches(batch_size=b.batch_size, columns=wanted):
        texts = batch.column(src.text_field).to_pylist()
        ids = batch.column(src.id_field).to_pylist() if src.id_field else None
        for k, text in enumerate(texts):
            loc, pos = f"row {row}", (file_index << 40) + row
            if _check_text(b, text, src.text_field, name, loc, None, pos, src.max_doc_bytes):
                doc_id = f"{name}:{row}" if ids is None else (None if ids[k] is None else str(ids[k]))
                if doc_id is None:
                    b.error(name, loc, "missing_field", f"id column {src.id_field!r} is null", None, pos)
                else:
                    b.doc(doc_id, text, name, pos)
            row += 1
            if b.full():
                yield b.flush()


def _read_lines(b: _Batcher, path: Path, name: str, file_index: int) -> Iterator[tuple[pa.Table, pa.Table]]:
    src = b.unit.source
    with open(path, "rb") as f:
        for lineno, line in enumerate(f, 1):
            if not line.strip():
                continue
            loc, pos = f"line {lineno}", (file_index << 40) + lineno
            try:
                text = line.decode("utf-8").rstrip("\r\n")
            except UnicodeDecodeError as u:
                b.error(name, loc, "bad_utf8", f"invalid UTF-8 at byte {u.start}", line, pos)
            else:
                if _check_text(b, text, "line", name, loc, None, pos, src.max_doc_bytes):
                    b.doc(f"{name}:{lineno}", text, name, pos)
            if b.full():
                yield b.flush()


def _read_txt(b: _Batcher, path: Path, name: str, file_index: int) -> Iterator[tuple[pa.Table, pa.Table]]:
    src = b.unit.source
    data = path.read_bytes()
    pos = file_index << 40
    try:
        text = data.decode("utf-8")
    except UnicodeDecodeError as u:
        b.error(name, "file", "bad_utf8", f"invalid UTF-8 at byte {u.start}", data[max(0, u.start - 200):], pos)
    else:
        if text.startswith("\ufeff"):
            text = text[1:]
        if _check_text(b, text, "file", name, "file", None, pos, src.max_doc_bytes):
            b.doc(name, text, name, pos)
    if b.full():
        yield b.flush()


class _FileError(Exception):
    def __init__(self, kind: str, message: str) -> None:
        super().__init__(message)
        self.kind = kind


_READERS = {"jsonl": _read_jsonl, "jsonl.gz": _read_jsonl, "jsonl.zst": _read_jsonl,
            "parquet": _read_parquet, "lines": _read_lines, "txt": _read_txt}


def read_unit(unit: Unit, batch_size: int) -> Iterator[tuple[pa.Table, pa.Table]]:
    """Yield ``(docs, errors)`` batches for every file of ``unit``, in order.

    Raises :class:`FileFailure` for a file-level problem when the source says ``on_error: fail``.
    """
    b = _Batcher(unit, batch_size)
    reader = _READERS[unit.source.format or "jsonl"]
    for file_index, (path, name) in enumerate(zip(unit.files, unit.names)):
        try:
            yield from reader(b, path, name, file_index)
        except _FileError as e:
            _file_error(b, unit, name, e.kind, str(e), file_index)
        except (EOFError, zlib.error, gzip.BadGzipFile, zstandard.ZstdError) as e:
            _file_error(b, unit, name, "corrupt_file", f"compressed stream is truncated or corrupt: {e}", file_index)
        except (pa.ArrowInvalid, OSError) as e:
            kind = "unreadable" if isinstance(e, OSError) and not isinstance(e, pa.ArrowException) else "corrupt_file"
            _file_error(b, unit, name, kind, f"{type(e).__name__}: {e}", file_index)
    if b.pending():
        yield b.flush()


class FileFailure(RunError):
    """A file-level problem under ``on_error: fail``: the run fails (exit 1) with one line naming the file."""


def _file_error(b: _Batcher, unit: Unit, name: str, kind: str, message: str, file_index: int) -> None:
    if unit.source.on_error == "fail":
        raise FileFailure(f"{name}: {message}")
    b.error(name, "file", kind, message, None, (file_index << 40) + (2**40 - 1))


def plan_units(files_per_source: list[list[Path]], sources: list[Source], names: list[list[str]],
               txt_unit_bytes: int = 32 * 2**20, txt_unit_files: int = 2000) -> list[Unit]:
    """Cut the inputs into units of work: one per file, except `txt` sources whose files are grouped."""
    units: list[Unit] = []
    for si, (source, files, fnames) in enumerate(zip(sources, files_per_source, names)):
        if source.format == "txt":
            group: list[int] = []
            size = 0
            for k, f in enumerate(files):
                try:
                    fsize = f.stat().st_size
                except OSError:
                    fsize = 0
                if group and (size + fsize > txt_unit_bytes or len(group) >= txt_unit_files):
                    units.append(Unit(len(units), si, source, [files[i] for i in group], [fnames[i] for i in group]))
                    group, size = [], 0
                group.append(k)
                size += fsize
            if group:
                units.append(Unit(len(units), si, source, [files[i] for i in group], [fnames[i] for i in group]))
        else:
            for f, n in zip(files, fnames):
                units.append(Unit(len(units), si, source, [f], [n]))
    return units
