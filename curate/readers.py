"""Source readers: files -> Arrow batches of documents, and an error record for everything that cannot be read.

Every reader yields ``(docs, errors, removed)`` triples. ``docs`` has the document columns plus the hidden ordering
columns ``_unit`` and ``_pos`` (the record's position in its unit, fixed by the input alone); ``errors`` lists records
that could not be read, with their source location; ``removed`` holds the documents readers remove, with a reason.
A file-level failure (truncated gzip, unreadable path, a Parquet file without the text column) becomes one error
record for that file and the records read before it are kept.

A valid document whose text is over the source's ``max_doc_bytes`` (UTF-8 bytes) is not an error: it is removed at
step ``read`` with reason ``too_large`` and its full text. Memory stays bounded whatever the input: a reader holds at
most ``record_limit(max_doc_bytes)`` = 2 x ``max_doc_bytes`` + 1 MiB of one record (a JSONL line, a line of a
``lines`` file, a ``txt`` file); a longer record is not buffered but read to its end and dropped, and recorded as an
error of kind ``record_too_large`` with its location, its size and its first 2,000 bytes.

Records are split at the line feed byte only, never at a carriage return, U+2028, U+2029, U+0085 or U+001C..U+001E
(all legal inside a JSON string or a line of text).

Text is decoded with the source's ``encoding`` (UTF-8 by default; ``detect`` picks one per file with
:func:`detect_encoding`). A record that is not valid in it is an error of kind ``bad_utf8`` (UTF-8) or
``bad_encoding`` (another encoding) with its location. A ``json`` file (one JSON array of records) is parsed as a
stream, one item at a time: it holds at most about :func:`record_limit` + 2 MiB characters of the file (the item
being parsed, what was read ahead, what precedes the item in the last read); a malformed file is one error naming
the file and the line, column and character where it breaks (the items before it are kept).
"""

from __future__ import annotations

import codecs
import gzip
import io
import json
import os
import zlib
from dataclasses import dataclass
from pathlib import Path
from typing import IO, Any, Iterable, Iterator

import numpy as np
import orjson
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.json as pj
import pyarrow.parquet as pq
import zstandard

from curate.recipe import Source, infer_format
from curate.warc import WEB_COLUMNS, WEB_FORMATS, RecordTally, WarcFileError, WebError, read_records
from mixlab.errors import ConfigError, RunError
from mixlab.logs import log

DOC_SCHEMA = pa.schema([
    ("id", pa.string()), ("text", pa.string()), ("domain", pa.string()), ("source", pa.string()),
    ("_unit", pa.int32()), ("_pos", pa.int64()),
])
REMOVED_SCHEMA = DOC_SCHEMA.append(pa.field("reason", pa.string()))
READ_STEP = "read"
"""the step name under which readers remove documents (``removed/read/``, the accounting's ``removed.read``)"""
ERROR_SCHEMA = pa.schema([
    ("source", pa.string()), ("location", pa.string()), ("kind", pa.string()), ("error", pa.string()),
    ("raw", pa.string()), ("_unit", pa.int32()), ("_pos", pa.int64()),
])
RAW_PREVIEW = 2000
BATCH_TEXT_BYTES = 64 * 2**20
FILE_LEVEL_POS = -1
JSONL_BLOCK_BYTES = 8 * 2**20
READ_BYTES = 2**20
"""bytes asked of a stream per read (a larger read is no faster: its lines are copied out of a cold buffer)"""
_ARROW_ONLY_VALUES = ((b"NaN", b":,["), (b"Infinity", b":,[-"))
"""values Arrow's JSON reader accepts and JSON does not, with the bytes that may precede them"""
_BOM = b"\xef\xbb\xbf"
_SPACE_CHARS = pa.array([""] + [c for c in map(chr, range(0x3001)) if c.isspace()])
""""" and every character str.isspace() is true of (none lies above U+3000, IDEOGRAPHIC SPACE)"""
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
    schema: pa.Schema = DOC_SCHEMA
    """the columns of the documents read (:func:`doc_schema` of every source of the recipe)"""


def doc_schema(sources: list[Source]) -> pa.Schema:
    """The columns of the documents the readers deliver for a recipe with ``sources``: :data:`DOC_SCHEMA`, with
    the web columns of :data:`curate.warc.WEB_COLUMNS` after ``source`` when a source is ``warc`` or ``wet``, or
    only ``url`` when a source has a ``url_field`` (null for the documents of other sources)."""
    if any(s.format in WEB_FORMATS for s in sources):
        web = list(WEB_COLUMNS.items())
    elif any(s.url_field is not None for s in sources):
        web = [("url", WEB_COLUMNS["url"])]
    else:
        return DOC_SCHEMA
    at = DOC_SCHEMA.get_field_index("_unit")
    return pa.schema([*DOC_SCHEMA][:at] + [pa.field(k, t) for k, t in web] + [*DOC_SCHEMA][at:])


def record_limit(max_doc_bytes: int) -> int:
    """The most bytes of one record (a line, or a ``txt`` file) a reader holds in memory: 2 x ``max_doc_bytes``
    + 1 MiB, room for a document just over the limit with its JSON escapes and other fields."""
    return 2 * max_doc_bytes + 2**20


class _Batcher:
    """Documents, removed documents and error records of a unit, collected in order until a batch is full.
    Documents come one by one (:meth:`doc`, which removes a text over ``max_doc_bytes``) or as Arrow tables already
    in the document schema and within the limit (:meth:`add_docs`)."""

    def __init__(self, unit: Unit, batch_size: int) -> None:
        self.unit, self.batch_size = unit, batch_size
        self.codec = "utf-8"
        """the encoding of the file being read (the source's, or the one detected for this file)"""
        self.max_doc_bytes = unit.source.max_doc_bytes
        self.schema = doc_schema([unit.source])
        self.docs: dict[str, list] = {k: [] for k in self.schema.names}
        self.removed: dict[str, list] = {k: [] for k in self.schema.names + ["reason"]}
        self.errors: dict[str, list] = {k: [] for k in ERROR_SCHEMA.names}
        self.tables: list[pa.Table] = []
        self.rows = 0
        self.text_bytes = 0
        self.url_docs = self.urls = 0
        """documents given the url column, and those whose url is not null (of the file being read)"""

    def doc(self, doc_id: str, text: str, source: str, pos: int, web: tuple | None = None) -> None:
        """Add a document; ``web``: the values of the web columns (a ``warc`` or ``wet`` source; a source with a
        ``url_field``: its url alone)."""
        limit = self.max_doc_bytes
        big = len(text) > limit // 4 and len(text.encode("utf-8")) > limit  # a character is 1 to 4 bytes
        d = self.removed if big else self.docs
        d["id"].append(doc_id), d["text"].append(text), d["domain"].append(self.unit.source.domain)
        d["source"].append(source), d["_unit"].append(self.unit.index), d["_pos"].append(pos)
        for k, v in zip(WEB_COLUMNS, web or ()):
            d[k].append(v)
        if big:
            d["reason"].append("too_large")
        if web is not None:
            self.url_docs += 1
            self.urls += web[0] is not None
        self.rows += 1
        self.text_bytes += len(text)

    def add_docs(self, docs: pa.Table, text_bytes: int) -> None:
        self._tabulate()
        self.tables.append(docs)
        if "url" in docs.column_names:
            self.url_docs += docs.num_rows
            self.urls += docs.num_rows - docs["url"].null_count
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
            self.tables.append(pa.Table.from_pydict(self.docs, schema=self.schema))
            for col in self.docs.values():
                col.clear()

    def flush(self) -> tuple[pa.Table, pa.Table, pa.Table]:
        self._tabulate()
        docs = pa.concat_tables(self.tables).combine_chunks() if self.tables else self.schema.empty_table()
        errors = pa.Table.from_pydict(self.errors, schema=ERROR_SCHEMA)
        reason = pa.field("reason", pa.string())
        removed = pa.Table.from_pydict(self.removed, schema=self.schema.append(reason))
        for col in [*self.errors.values(), *self.removed.values()]:
            col.clear()
        self.tables, self.rows, self.text_bytes = [], 0, 0
        return _conform(docs, self.unit.schema), errors, _conform(removed, self.unit.schema.append(reason))


def _conform(t: pa.Table, schema: pa.Schema) -> pa.Table:
    """``t`` with the columns of ``schema``, in its order: the ones ``t`` lacks are null, the ones it has and
    ``schema`` does not are dropped."""
    if t.schema.equals(schema):
        return t
    return pa.table([t[f.name] if f.name in t.schema.names else pa.nulls(t.num_rows, f.type) for f in schema],
                    schema=schema)


def _check_text(b: _Batcher, text: Any, field: str, name: str, loc: str, raw: Any, pos: int) -> bool:
    """Whether ``text`` is a string that is not blank; else an error record says what it is."""
    if text is None:
        b.error(name, loc, "missing_field", f"no text field {field!r}", raw, pos)
    elif not isinstance(text, str):
        b.error(name, loc, "bad_type", f"text field {field!r} is {type(text).__name__}, not a string", raw, pos)
    elif not text.strip():
        b.error(name, loc, "empty_text", "text is empty or only whitespace", raw, pos)
    else:
        return True
    return False


class _Overlong:
    """A record longer than the record limit, skipped to its end: its size in bytes and its first bytes."""

    __slots__ = ("size", "preview")

    def __init__(self, size: int, preview: bytes) -> None:
        self.size, self.preview = size, preview


def _overlong_error(b: _Batcher, rec: _Overlong, what: str, name: str, loc: str, pos: int) -> None:
    limit = record_limit(b.max_doc_bytes)
    b.error(name, loc, "record_too_large", f"{what} is {_size(rec.size)}, over the read limit of {_size(limit)} "
            f"(2 x max_doc_bytes + 1 MiB); read to its end without being held, and skipped", rec.preview, pos)


def _size(n: int) -> str:
    return f"{n:,} bytes" if n < 2**20 else f"{n / 2**20:.1f} MiB"


class _ZstdFrames(io.RawIOBase):
    """Concatenated zstd frames as a raw stream whose reads return at most what was asked (a frame of one repeated
    byte can expand 30,000-fold); a stream that ends inside a frame raises ``ZstdError``.

    (zstandard's ``stream_reader`` bounds its output but ends a truncated stream with a silent EOF, and its
    ``decompressobj`` detects the cut but returns all it can decompress at once: the reader decompresses, and
    :class:`_ZstdFraming` follows the frame structure of the same bytes to tell a cut from an end.)
    """

    def __init__(self, raw: IO[bytes]) -> None:
        self._raw, self._framing = raw, _ZstdFraming(raw)
        self._reader = zstandard.ZstdDecompressor().stream_reader(self._framing, read_across_frames=True,
                                                                  closefd=False)

    def readable(self) -> bool:
        return True

    def readinto(self, buf: Any) -> int:
        n = self._reader.readinto(buf)
        if n == 0 and not self._framing.complete:
            raise zstandard.ZstdError("stream ends inside a frame")
        return n

    def close(self) -> None:
        self._raw.close()
        super().close()


class _ZstdFraming:
    """A compressed stream that follows where the bytes read from it stand in the zstd frame structure (RFC 8878):
    frame and block headers are parsed, block contents and skippable frames skipped."""

    _MAGIC, _SKIPPABLE = 0xFD2FB528, 0x184D2A50

    def __init__(self, raw: IO[bytes]) -> None:
        self._raw = raw
        self._field = bytearray()
        self._need = 4  # bytes of the field being read: a magic number to begin with
        self._state = "magic"
        self._skip = 0
        self._checksum = False

    @property
    def complete(self) -> bool:
        """Whether the bytes so far end where a frame ends (or there are none)."""
        return self._state == "magic" and not self._field and not self._skip

    def read(self, size: int = -1) -> bytes:
        """The next compressed bytes. Raises ``ZstdError`` on bytes that are not zstd frames."""
        data = self._raw.read(size)
        self._follow(data)
        return data

    def _follow(self, data: bytes) -> None:
        i, n = 0, len(data)
        while i < n:
            if self._skip:
                k = min(self._skip, n - i)
                self._skip -= k
                i += k
                continue
            k = min(self._need - len(self._field), n - i)
            self._field += data[i:i + k]
            i += k
            if len(self._field) == self._need:
                field = int.from_bytes(self._field, "little")
                self._field.clear()
                self._advance(field)

    def _advance(self, field: int) -> None:
        state = self._state
        if state == "magic":
            if field == self._MAGIC:
                self._state, self._need = "descriptor", 1
            elif field & 0xFFFFFFF0 == self._SKIPPABLE:
                self._state, self._need = "skippable", 4
            else:
                raise zstandard.ZstdError(f"not a zstd frame (magic number {field:#010x})")
        elif state == "skippable":
            self._state, self._need, self._skip = "magic", 4, field
        elif state == "descriptor":
            single, self._checksum = bool(field & 0x20), bool(field & 0x04)
            size = (0 if single else 1) + (0, 1, 2, 4)[field & 3] + ((1 if single else 0), 2, 4, 8)[field >> 6]
            self._state, self._need, self._skip = "block", 3, size  # the rest of the header is skipped
        elif state == "block":
            last, kind, size = field & 1, (field >> 1) & 3, field >> 3
            if kind == 3:
                raise zstandard.ZstdError("corrupt zstd block (reserved block type)")
            self._skip = 1 if kind == 1 else size
            if last:
                self._state, self._need = ("checksum", 4) if self._checksum else ("magic", 4)
        else:  # the content checksum, checked by the decompressor
            self._state, self._need = "magic", 4


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


Batches = Iterator[tuple[pa.Table, pa.Table, pa.Table]]


def _read_jsonl(b: _Batcher, path: Path, name: str, file_index: int) -> Batches:
    """Lines gathered into blocks of about ``JSONL_BLOCK_BYTES``; a block is parsed by Arrow's JSON reader when every
    record in it is a clean document, else line by line (the same result: the fast path only handles what it can)."""
    lineno = 0
    fmt = b.unit.source.format or "jsonl"
    b.codec = _file_codec(b.unit.source, path, fmt, name)
    with _open_stream(path, fmt) as stream:
        for block, overlong in _line_blocks(stream, record_limit(b.max_doc_bytes)):
            if b.codec != "utf-8":
                block, bad = _transcode(block, b.codec)
                overlong = overlong or bad
            yield from _jsonl_block(b, block, lineno, name, file_index, overlong)
            lineno += len(block)


class _Undecodable:
    """A line that is not valid in the file's encoding: its bytes and where decoding failed."""

    __slots__ = ("raw", "start")

    def __init__(self, raw: bytes, start: int) -> None:
        self.raw, self.start = raw, start


def _transcode(block: list[Any], codec: str) -> tuple[list[Any], bool]:
    """The lines of ``block`` decoded from ``codec`` and encoded as UTF-8 (:class:`_Overlong` kept as is), and
    whether any is an :class:`_Undecodable`."""
    out: list[Any] = []
    bad = False
    for line in block:
        if type(line) is _Overlong:
            out.append(line)
            continue
        try:
            out.append(line.decode(codec).encode("utf-8"))
        except UnicodeDecodeError as u:
            out.append(_Undecodable(line, u.start))
            bad = True
    return out, bad


def _decode_error(b: _Batcher, name: str, loc: str, raw: bytes, start: int, pos: int) -> None:
    if b.codec == "utf-8":
        b.error(name, loc, "bad_utf8", f"invalid UTF-8 at byte {start}", raw, pos)
    else:
        b.error(name, loc, "bad_encoding", f"not valid {b.codec} at byte {start}", raw, pos)


DETECT_BYTES = 2**20
"""bytes of a file (decompressed) that ``encoding: detect`` looks at"""


def detect_encoding(data: bytes) -> str:
    """The encoding of ``data`` (the start of a file): ``utf-8`` when it is valid UTF-8 (a character cut off at the
    end allowed), else ``cp1252`` (Windows Latin-1) when every byte is defined there, else ``iso8859-1``, which
    decodes any byte. A byte order mark decides: ``utf-8``, ``utf-16`` or ``utf-32``. (A heuristic of the standard
    library; no detection library, such as charset-normalizer, is installed with mixlab.)"""
    for bom, codec in ((codecs.BOM_UTF32_LE, "utf-32"), (codecs.BOM_UTF32_BE, "utf-32"), (codecs.BOM_UTF8, "utf-8"),
                       (codecs.BOM_UTF16_LE, "utf-16"), (codecs.BOM_UTF16_BE, "utf-16")):
        if data.startswith(bom):
            return codec
    try:
        codecs.getincrementaldecoder("utf-8")().decode(data, final=False)
        return "utf-8"
    except UnicodeDecodeError:
        pass
    try:
        data.decode("cp1252")
        return "cp1252"
    except UnicodeDecodeError:
        return "iso8859-1"


def _file_codec(source: Source, path: Path, fmt: str, name: str) -> str:
    """The encoding to read ``path`` with: the source's, or with ``encoding: detect`` the one
    :func:`detect_encoding` finds in its first :data:`DETECT_BYTES` (logged when it is not UTF-8). An encoding that
    does not keep ASCII as is (UTF-16, UTF-32) is refused in a line-based format (a file-level error)."""
    if source.codec != "detect":
        return source.codec
    with _open_stream(path, fmt) as f:
        head = f.read(DETECT_BYTES)
    codec = detect_encoding(head)
    if codec != "utf-8":
        if fmt not in ("json", "txt") and codec in ("utf-16", "utf-32"):
            raise _FileError("bad_encoding", f"the file is {codec} (byte order mark), which cannot be read line by "
                                             f"line; convert it to UTF-8 (iconv -f {codec} -t utf-8)")
        log.info(f"{name}: not UTF-8; read as {codec} (encoding: detect)")
    return codec


def _line_blocks(stream: IO[bytes], limit: int) -> Iterator[tuple[list[Any], bool]]:
    """The stream's lines, split at the line feed byte only and each with its line feed, in lists of about
    ``JSONL_BLOCK_BYTES``, each list with whether it holds an :class:`_Overlong`: a line of more than ``limit``
    bytes (its line feed not counted), which is read to its end without being held. A stream that breaks off still
    delivers the lines read before the break, then raises."""
    block: list[Any] = []
    size = 0
    overlong = False
    head: list[bytes] = []  # the start of a line whose end is not read yet
    head_size = 0
    skipping: _Overlong | None = None
    try:
        while data := stream.read1(READ_BYTES):
            start = 0
            if skipping is not None:
                end = data.find(b"\n")
                if end < 0:
                    skipping.size += len(data)
                    continue
                skipping.size += end
                block.append(skipping)
                overlong, skipping, start = True, None, end + 1
            chunk = io.BytesIO(data)  # shares the bytes: its lines are the only copy
            chunk.seek(start)
            lines = chunk.readlines()
            tail = lines.pop() if lines and lines[-1][-1] != 10 else b""
            if head and lines:
                lines[0] = b"".join([*head, lines[0]])
                head, head_size = [], 0
            if lines:
                if max(map(len, lines)) > limit + 1:
                    lines = [x if len(x) <= limit + 1 else _Overlong(len(x) - 1, x[:RAW_PREVIEW]) for x in lines]
                    overlong = True
                block += lines
                size += len(data) - start
            if tail:
                head.append(tail)
                head_size += len(tail)
                if head_size > limit:
                    skipping = _Overlong(head_size, _preview(head))
                    head, head_size = [], 0
            if size >= JSONL_BLOCK_BYTES:
                yield block, overlong
                block, size, overlong = [], 0, False
        if skipping is not None:
            block.append(skipping)
            overlong = True
        elif head:
            line = b"".join(head)
            block.append(line if len(line) <= limit else _Overlong(len(line), line[:RAW_PREVIEW]))
            overlong = overlong or len(line) > limit
    except Exception:
        if block:
            yield block, overlong
        raise
    if block:
        yield block, overlong


def _preview(pieces: list[bytes]) -> bytes:
    """The first ``RAW_PREVIEW`` bytes of the concatenation of ``pieces``, without joining them all."""
    out = bytearray()
    for piece in pieces:
        out += piece[:RAW_PREVIEW - len(out)]
        if len(out) >= RAW_PREVIEW:
            break
    return bytes(out)


def _jsonl_block(b: _Batcher, lines: list[Any], lineno: int, name: str, file_index: int,
                 overlong: bool = False) -> Batches:
    """Lines ``lineno + 1 ...`` of a file; ``overlong``: some are :class:`_Overlong`."""
    if not lines:
        return
    docs = None if overlong else _clean_jsonl_docs(b, lines, lineno, name, file_index)
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
        loc, pos = f"line {lineno}", base + lineno
        if type(line) is _Overlong:
            _overlong_error(b, line, "line", name, loc, pos)
            continue
        if type(line) is _Undecodable:
            _decode_error(b, name, loc, line.raw, line.start, pos)
            if b.full():
                yield b.flush()
            continue
        if not line.strip():
            continue
        try:
            rec = orjson.loads(line)
        except orjson.JSONDecodeError as e:
            try:
                line.decode("utf-8")
                b.error(name, loc, "bad_json", f"malformed JSON: {e}", line, pos)
            except UnicodeDecodeError as u:
                b.error(name, loc, "bad_utf8", f"invalid UTF-8 at byte {u.start}", line, pos)
        else:
            _record(b, src, rec, name, loc, line, pos, lineno)
        if b.full():
            yield b.flush()


def _record(b: _Batcher, src: Source, rec: Any, name: str, loc: str, raw: bytes, pos: int, number: int) -> None:
    """Add one parsed JSON record to ``b``: a document, or an error (not an object, no usable text or id) quoting
    ``raw`` at ``loc``; ``number`` (its line or item) makes the default id."""
    if not isinstance(rec, dict):
        b.error(name, loc, "bad_json", f"expected a JSON object, got {type(rec).__name__}", raw, pos)
    elif _check_text(b, rec.get(src.text_field), src.text_field, name, loc, raw, pos):
        doc_id = _doc_id(rec, src.id_field, name, number)
        if doc_id is None:
            b.error(name, loc, "missing_field", f"no usable id field {src.id_field!r}", raw, pos)
        elif src.url_field is None:
            b.doc(doc_id, rec[src.text_field], name, pos)
        else:
            url = rec.get(src.url_field)
            b.doc(doc_id, rec[src.text_field], name, pos, (url if isinstance(url, str) else None,))


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
    if src.url_field is not None and src.url_field != src.id_field:
        fields.append((src.url_field, pa.string()))
    if not _valid_utf8(data):  # Arrow's JSON reader does not check
        return None
    try:
        t = _arrow_json(data, pa.schema(fields))
    except (pa.ArrowInvalid, UnicodeDecodeError) as e:
        if not (src.id_field and f"Column(/{src.id_field}) changed from string to number" in str(e)):
            return None
        try:  # integer ids
            t = _arrow_json(data, pa.schema([fields[0], (src.id_field, pa.int64()), *fields[2:]]))
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
    cols = {"id": ids, "text": text, "domain": pa.repeat(pa.scalar(src.domain, pa.string()), n),
            "source": pa.repeat(pa.scalar(name, pa.string()), n),
            "_unit": pa.repeat(pa.scalar(b.unit.index, pa.int32()), n),
            "_pos": pc.add(line_numbers, pa.scalar(file_index << 40, pa.int64()))}
    if src.url_field is not None:
        if t.schema.field(src.url_field).type != pa.string():  # integer ids that are also the url field
            return None
        cols["url"] = t[src.url_field].combine_chunks()
    return pa.table([cols[f.name] for f in b.schema], schema=b.schema)


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


def _is_text_type(t: pa.DataType) -> bool:
    """Whether a column of type ``t`` holds strings: string, large_string, string_view, or a dictionary of them
    (what pandas categoricals become)."""
    if pa.types.is_dictionary(t):
        return _is_text_type(t.value_type)
    return pa.types.is_string(t) or pa.types.is_large_string(t) or pa.types.is_string_view(t)


def _read_parquet(b: _Batcher, path: Path, name: str, file_index: int) -> Batches:
    src = b.unit.source
    pf = pq.ParquetFile(path)
    cols = pf.schema_arrow.names
    for field in [src.text_field] + [f for f in (src.id_field, src.url_field) if f is not None]:
        if field not in cols:
            raise _FileError("missing_field", f"no column {field!r} (columns: {', '.join(cols)})")
    for field in [src.text_field] + ([src.url_field] if src.url_field is not None else []):
        field_type = pf.schema_arrow.field(field).type
        if not _is_text_type(field_type):
            raise _FileError("bad_type", f"column {field!r} is {field_type}, not a string")
    row = 0
    wanted = list(dict.fromkeys(f for f in (src.text_field, src.id_field, src.url_field) if f is not None))
    for batch in pf.iter_batches(batch_size=b.batch_size, columns=wanted):
        texts = batch.column(src.text_field).to_pylist()
        ids = batch.column(src.id_field).to_pylist() if src.id_field else None
        urls = batch.column(src.url_field).to_pylist() if src.url_field is not None else None
        for k, text in enumerate(texts):
            loc, pos = f"row {row}", (file_index << 40) + row
            if _check_text(b, text, src.text_field, name, loc, None, pos):
                doc_id = f"{name}:{row}" if ids is None else (None if ids[k] is None else str(ids[k]))
                if doc_id is None:
                    b.error(name, loc, "missing_field", f"id column {src.id_field!r} is null", None, pos)
                else:
                    b.doc(doc_id, text, name, pos, None if urls is None else (urls[k],))
            row += 1
            if b.full():
                yield b.flush()


def _read_lines(b: _Batcher, path: Path, name: str, file_index: int) -> Batches:
    lineno = 0
    b.codec = _file_codec(b.unit.source, path, "lines", name)
    with _open_stream(path, "lines") as f:
        for block, _ in _line_blocks(f, record_limit(b.max_doc_bytes)):
            for line in block:
                lineno += 1
                loc, pos = f"line {lineno}", (file_index << 40) + lineno
                if type(line) is _Overlong:
                    _overlong_error(b, line, "line", name, loc, pos)
                    continue
                if not line.strip():
                    continue
                try:
                    text = line.decode(b.codec).rstrip("\r\n")
                except UnicodeDecodeError as u:
                    _decode_error(b, name, loc, line, u.start, pos)
                else:
                    if _check_text(b, text, "line", name, loc, None, pos):
                        b.doc(f"{name}:{lineno}", text, name, pos)
                if b.full():
                    yield b.flush()


def _read_txt(b: _Batcher, path: Path, name: str, file_index: int) -> Batches:
    limit = record_limit(b.max_doc_bytes)
    pos = file_index << 40
    with open(path, "rb") as f:
        data = f.read(limit + len(_BOM) + 1)
        size = os.fstat(f.fileno()).st_size
    b.codec = detect_encoding(data) if b.unit.source.codec == "detect" else b.unit.source.codec
    if b.codec not in ("utf-8", b.unit.source.codec):
        log.info(f"{name}: not UTF-8; read as {b.codec} (encoding: detect)")
    bom = len(_BOM) if data.startswith(_BOM) and b.codec == "utf-8" else 0
    if len(data) - bom > limit:
        _overlong_error(b, _Overlong(max(size, len(data)) - bom, data[bom:bom + RAW_PREVIEW]), "file", name, "file",
                        pos)
        return
    try:
        text = data.decode(b.codec)
    except UnicodeDecodeError as u:
        _decode_error(b, name, "file", data[max(0, u.start - 200):], u.start, pos)
    else:
        text = text[1:] if bom else text
        if _check_text(b, text, "file", name, "file", None, pos):
            b.doc(name, text, name, pos)
    if b.full():
        yield b.flush()


class _JsonText:
    """The decoded text of a stream, read 1 MiB at a time, with a cursor ``pos``; text before the cursor is dropped
    as it goes, so memory holds what is not parsed yet. Knows the line, column and character of any position."""

    def __init__(self, stream: IO[bytes], codec: str) -> None:
        self._stream = stream
        self._decoder = codecs.getincrementaldecoder("utf-8-sig" if codec == "utf-8" else codec)()
        self._codec = codec
        self.buf, self.pos, self.eof = "", 0, False
        self._bytes = 0  # bytes read so far
        self._dropped = self._line = self._column = 0  # characters, line feeds and column before buf

    def fill(self) -> bool:
        """Read and decode more of the stream; False at its end. A byte not valid in the encoding is a
        :class:`_FileError` naming its offset in the file."""
        if self.eof:
            return False
        data = self._stream.read(READ_BYTES)
        try:
            text = self._decoder.decode(data, final=not data)
        except UnicodeDecodeError as u:
            kind = "bad_utf8" if self._codec == "utf-8" else "bad_encoding"
            raise _FileError(kind, f"not valid {self._codec} at byte {self._bytes + u.start:,} of the file") from None
        self._bytes += len(data)
        self.buf += text
        self.eof = not data
        return bool(data)

    def peek(self) -> str:
        """The next character that is not JSON whitespace (the cursor moves to it), or "" at the end. The text
        before the cursor is dropped here (only here: positions taken after a peek hold until the next one)."""
        if self.pos > READ_BYTES:
            dropped = self.buf[:self.pos]
            lf = dropped.rfind("\n")
            self._line += dropped.count("\n")
            self._column = len(dropped) - lf - 1 if lf >= 0 else self._column + len(dropped)
            self._dropped += len(dropped)
            self.buf, self.pos = self.buf[self.pos:], 0
        while True:
            while self.pos < len(self.buf) and self.buf[self.pos] in " \t\r\n":
                self.pos += 1
            if self.pos < len(self.buf) or not self.fill():
                return self.buf[self.pos:self.pos + 1]

    def where(self, pos: int | None = None) -> str:
        pos = self.pos if pos is None else pos
        lf = self.buf.rfind("\n", 0, pos)
        line = self._line + self.buf.count("\n", 0, pos) + 1
        column = pos - lf if lf >= 0 else self._column + pos + 1
        return f"line {line:,}, column {column:,} (character {self._dropped + pos:,})"

    def value(self, decoder: json.JSONDecoder, limit: int, index: int) -> tuple[Any, int]:
        """The JSON value at the cursor and where it ends, reading on while it is cut off by the end of what was
        read. A malformed value, or one of over ``limit`` characters, is a :class:`_FileError`."""
        while True:
            try:
                return decoder.raw_decode(self.buf, self.pos)
            except json.JSONDecodeError as e:
                cut_off = e.pos >= len(self.buf) - 8 or e.msg.startswith("Unterminated string")
                if cut_off and not self.eof:
                    if len(self.buf) - self.pos > limit:
                        raise _FileError("record_too_large", f"item {index} at {self.where()} is over the read "
                                         f"limit of {limit:,} characters (2 x max_doc_bytes + 1 MiB); the "
                                         "items after it are not read") from None
                    self.fill()
                    continue
                raise _FileError("bad_json", f"malformed JSON at {self.where(e.pos)}: {e.msg}") from None


def _read_json(b: _Batcher, path: Path, name: str, file_index: int) -> Batches:
    """A file holding one JSON array of records, parsed one item at a time (:class:`_JsonText`); item ``i`` has
    the location ``item i`` and the default id ``<file>:<i>``. A file that is not one JSON array, or breaks off
    inside it, is a file-level error naming where; the items before are kept."""
    src = b.unit.source
    b.codec = _file_codec(src, path, "json", name)
    limit = record_limit(b.max_doc_bytes)
    decoder = json.JSONDecoder()
    with _open_stream(path, "json") as stream:
        t = _JsonText(stream, b.codec)
        first = t.peek()
        if first != "[":
            what = "the file is empty" if not first else f"it starts with {first!r} at {t.where()}"
            raise _FileError("bad_json", f"not a JSON array: {what} (format json is one array of records: [{{...}}, "
                                         "...]; a record per line is format jsonl)")
        t.pos += 1
        index = 0
        end_of_array = t.peek() == "]"
        while not end_of_array:
            t.peek()
            start = t.pos
            rec, end = t.value(decoder, limit, index)
            t.pos = end
            loc, pos = f"item {index}", (file_index << 40) + index
            raw = t.buf[start:min(end, start + RAW_PREVIEW)]
            _record(b, src, rec, name, loc, raw, pos, index)
            if b.full():
                yield b.flush()
            index += 1
            after = t.peek()
            if after not in (",", "]"):
                what = "the file ends" if not after else f"{after!r}"
                raise _FileError("bad_json", f"malformed JSON at {t.where()}: expected ',' or ']' after item "
                                             f"{index - 1}, found {what}")
            t.pos += 1
            end_of_array = after == "]"
        if t.peek():
            raise _FileError("bad_json", f"malformed JSON at {t.where()}: text after the end of the array")


def _read_web(b: _Batcher, path: Path, name: str, file_index: int) -> Batches:
    """A WARC or WET file, record by record (:func:`curate.warc.read_records`): a document's id is
    ``<file>:<offset>`` (the record's byte offset) and its position the offset; a record that gives no document is an
    error naming the record id. A truncated record under ``on_error: fail`` fails the run, as a truncated file
    does. A file that gives no document is one warning saying why (:meth:`RecordTally.why_no_document`); what
    warcio writes to stderr goes to the run log."""
    src = b.unit.source
    base = file_index << 40
    tally = RecordTally()
    try:
        with open(path, "rb") as f:
            for rec in read_records(f, src.format, src.extractor, record_limit(b.max_doc_bytes), tally):
                if isinstance(rec, WebError):
                    if rec.kind == "truncated_record" and src.on_error == "fail":
                        raise FileFailure(f"{name}: {rec.location}: {rec.message}")
                    b.error(name, rec.location, rec.kind, rec.message, rec.raw, base + rec.offset)
                else:
                    b.doc(f"{name}:{rec.offset}", rec.text, name, base + rec.offset,
                          (rec.url, rec.date, rec.record_id, rec.charset))
                if b.full():
                    yield b.flush()
    except WarcFileError as e:
        raise _FileError(e.kind, str(e)) from None
    finally:
        for note in tally.warnings:
            log.debug(f"{name}: warcio: {note}")
    if not tally.documents:
        log.warning(f"{name}: no document: {tally.why_no_document(src.format)}")


class _FileError(Exception):
    def __init__(self, kind: str, message: str) -> None:
        super().__init__(message)
        self.kind = kind


_READERS = {"jsonl": _read_jsonl, "jsonl.gz": _read_jsonl, "jsonl.zst": _read_jsonl, "json": _read_json,
            "parquet": _read_parquet, "lines": _read_lines, "txt": _read_txt, "warc": _read_web, "wet": _read_web}


def read_unit(unit: Unit, batch_size: int) -> Iterator[tuple[pa.Table, pa.Table, pa.Table]]:
    """Yield ``(docs, errors, removed)`` batches for every file of ``unit``, in order: ``docs`` in the unit's
    ``schema`` (:data:`DOC_SCHEMA`, with the web columns when the recipe has a ``warc`` or ``wet`` source), ``errors``
    in :data:`ERROR_SCHEMA`, ``removed`` (documents over ``max_doc_bytes``, reason ``too_large``, removed at step
    :data:`READ_STEP`) in that schema with ``reason`` (:data:`REMOVED_SCHEMA` for DOC_SCHEMA). At most one batch
    and one record of at most :func:`record_limit` bytes are held in memory.

    Raises :class:`FileFailure` for a file-level problem when the source says ``on_error: fail``.
    """
    b = _Batcher(unit, batch_size)
    reader = _READERS[unit.source.format or "jsonl"]
    for file_index, (path, name) in enumerate(zip(unit.files, unit.names)):
        b.url_docs = b.urls = 0
        try:
            yield from reader(b, path, name, file_index)
            if unit.source.url_field is not None and b.url_docs and not b.urls:
                log.warning(f"{name}: no record has a string at url_field {unit.source.url_field!r}: its documents "
                            "have no url")
        except _FileError as e:
            _file_error(b, unit, name, e.kind, str(e), file_index)
        except (EOFError, zlib.error, gzip.BadGzipFile, zstandard.ZstdError) as e:
            _file_error(b, unit, name, "corrupt_file", f"compressed stream is truncated or corrupt: {e}", file_index)
        except (pa.ArrowInvalid, OSError) as e:
            kind = "unreadable" if isinstance(e, OSError) and not isinstance(e, pa.ArrowException) else "corrupt_file"
            _file_error(b, unit, name, kind, f"{type(e).__name__}: {e}", file_index)
    if b.pending():
        yield b.flush()


def input_texts(inputs: Iterable[Path], domain: str | None = None) -> Iterator[pa.Array]:
    """Text batches from files (jsonl[.gz|.zst], parquet: field ``text``; anything else: one document per line,
    lines split at line feeds only) or from built corpora (a directory with manifest.json; only ``domain`` when
    given). Records that cannot be read or are over the default ``max_doc_bytes`` are skipped with a warning that
    counts them."""
    for path in inputs:
        if path.is_dir():
            if not (path / "manifest.json").exists():
                raise ConfigError(f"{path}: a directory input must be a corpus built by `curate run`")
            root = path / "data" / domain if domain else path / "data"
            for f in sorted(root.rglob("*.parquet")):
                for rb in pq.ParquetFile(f).iter_batches(columns=["text"]):
                    yield rb.column(0)
            continue
        if not path.is_file():
            raise ConfigError(f"{path}: no such file or corpus directory")
        fmt = infer_format(path) or "lines"
        source = Source(path=str(path), format=fmt, domain="input")
        skipped = 0
        for docs, errors, removed in read_unit(Unit(0, 0, source, [path], [path.name]), 10_000):
            skipped += errors.num_rows + removed.num_rows
            if docs.num_rows:
                yield docs["text"].combine_chunks()
        if skipped:
            log.warning(f"{path}: {skipped:,} records skipped (unreadable, or over {source.max_doc_bytes:,} bytes)")


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
    schema = doc_schema(sources)
    for unit in units:
        unit.schema = schema
    return units
