"""Common Crawl input: WARC responses (HTML, main text extracted) and WET text extracts, record by record.

A WARC file (ISO 28500; ``.warc`` or ``.warc.gz``, gzip per record as Common Crawl writes it) is read with warcio
(webrecorder), which undoes chunked transfer encoding and gzip/deflate content encoding. What is read:

* ``format: warc``: every ``response`` and ``resource`` record (a captured payload). A 2xx HTML response (HTTP
  ``Content-Type`` text/html or application/xhtml+xml; without one, a payload that starts like HTML) is decoded
  (:func:`decode_html`) and its main text extracted (:func:`extract_main_text`). ``request``, ``warcinfo``,
  ``metadata`` and ``revisit`` records carry no page and are not read (not counted).
* ``format: wet``: every ``conversion`` record (Common Crawl's plain-text extract of a page, UTF-8).

Each record read becomes a :class:`WebDoc` (with the page's ``url``, ``date`` (WARC-Date, ISO 8601),
``warc_record_id`` and ``charset``) or a :class:`WebError` naming the record id, of one kind:

``not_html`` (a payload that is not HTML: PDF, image, plain text, binary data labelled HTML), ``http_status`` (not a
2xx response: a redirect, a 404 page), ``truncated_record`` (the file ends inside the record: fewer bytes than its
Content-Length, a cut gzip member), ``bad_encoding`` (bytes valid neither in UTF-8 nor in the page's charset nor in a
detected one), ``bad_content_encoding`` (a body whose gzip/deflate/chunked coding is broken), ``no_text`` (the extractor
found no main text), ``record_too_large`` (a payload over the read limit: read to its end without being held).

Where a record starts (its byte offset in the file) is its position: a document's id is ``<file>:<offset>``, as
Common Crawl's index locates records by file and offset. A file that is not WARC at all, is gzipped as one
stream, or breaks off between records, raises :class:`WarcFileError` after the records before it. What warcio
writes to stderr is kept off the terminal (:class:`RecordTally`).
"""

from __future__ import annotations

import codecs
import contextlib
import functools
import io
import logging
import re
import zlib
from collections import Counter
from dataclasses import dataclass, field, replace
from typing import IO, TYPE_CHECKING, Callable, Iterator, Literal

import pyarrow as pa

if TYPE_CHECKING:
    from warcio.recordloader import ArcWarcRecord

Extract = Callable[[str], str]
"""a main-text extractor: HTML text -> text ("" when it finds none)"""

WEB_COLUMNS: dict[str, pa.DataType] = {"url": pa.string(), "date": pa.string(), "warc_record_id": pa.string(),
                                       "charset": pa.string()}
"""The columns a ``warc`` or ``wet`` source adds to its documents (null for documents of other sources)."""
WEB_FORMATS = ("warc", "wet")
EXTRACTORS = ("trafilatura", "resiliparse")
DEFAULT_EXTRACTOR = "trafilatura"
"""chosen by ``benchmarks/warc_extract.py``: the better main-text F1 on hand-cleaned pages; resiliparse is ~10x
faster at a lower precision (boilerplate kept)"""
RAW_PREVIEW = 2000
HTML_TYPES = ("text/html", "application/xhtml+xml")
_WINDOWS_1252_LABELS = {"ascii", "us-ascii", "iso-8859-1", "iso8859-1", "latin1", "latin-1", "l1", "cp819",
                        "ibm819", "iso_8859-1", "windows-1252", "cp1252", "x-cp1252"}
"""labels the WHATWG Encoding Standard (what browsers do) reads as windows-1252"""
_META_CHARSET = re.compile(rb"""<meta[^>]{0,512}?charset\s*=\s*["']?\s*([A-Za-z0-9_.:\-]+)""", re.I)
_HTML_START = re.compile(rb"^\s*(<!--.*?-->\s*)*<(!doctype\s+html|html|head|body|meta|title)\b", re.I | re.S)
_READ_CHUNK = 1 << 20
_BINARY_TEST_BYTES = 8000
"""a NUL byte among a payload's first bytes marks it binary (git's ``buffer_is_binary`` looks at 8,000)"""
_WIDE_CODECS = ("utf-16", "utf-32")
_BINARY_BYTES = re.compile(b"[\x00-\x08\x0b\x0e-\x1a\x1c-\x1f]")
"""the binary data bytes of the WHATWG MIME Sniffing Standard"""
_CONTROL_CHARS = re.compile("[\x00-\x08\x0b\x0e-\x1a\x1c-\x1f\x7f-\x9f]")
"""C0 controls other than whitespace and ESC, DEL, C1 controls: not in text read in the right charset"""
_WANTED = {"warc": ("response", "resource"), "wet": ("conversion",)}


@dataclass(frozen=True)
class WebDoc:
    """A page read from a WARC/WET record: its main text and metadata."""

    offset: int
    text: str
    url: str | None
    date: str | None
    record_id: str | None
    charset: str


@dataclass(frozen=True)
class WebError:
    """A record that gives no document: ``kind`` (see the module docstring), a message, the first bytes."""

    offset: int
    record_id: str | None
    kind: str
    message: str
    raw: bytes | None = None

    @property
    def location(self) -> str:
        return f"record {self.record_id or '(no id)'} at byte {self.offset:,}"


class WarcFileError(Exception):
    """The file is not WARC, or breaks off between records: what follows cannot be read."""

    def __init__(self, kind: str, message: str) -> None:
        super().__init__(message)
        self.kind = kind


@dataclass
class RecordTally:
    """What :func:`read_records` met in a file: documents, errors by kind, records not read by WARC type, and what
    warcio wrote to stderr (its warnings, one line each), kept off the terminal."""

    documents: int = 0
    errors: Counter[str] = field(default_factory=Counter)
    skipped: Counter[str] = field(default_factory=Counter)
    warnings: list[str] = field(default_factory=list)

    def why_no_document(self, fmt: Literal["warc", "wet"]) -> str:
        """Why a file gave no document, in one line: records of the other format, only errors, only records that
        carry no page, or no records at all."""
        other = "wet" if fmt == "warc" else "warc"
        misread = Counter({t: n for t, n in self.skipped.items() if t in _WANTED[other]})
        if misread and not self.errors:
            return (f"{_counted(misread, ' record')} skipped: format {fmt} reads {' and '.join(_WANTED[fmt])} "
                    f"records; use format: {other}")
        if self.errors:
            n = self.errors.total()
            what = "its one record read is an error" if n == 1 else f"all {n:,} records read are errors"
            return f"{what} ({_counted(self.errors)}; see errors/)"
        if self.skipped:
            return f"no {' or '.join(_WANTED[fmt])} record, only {_counted(self.skipped, ' record')}"
        return "no records (an empty file)"


def _counted(counts: Counter[str], noun: str = "") -> str:
    """``3 response records, 1 warcinfo record``: most common first."""
    return ", ".join(f"{n:,} {what}{noun}{'s' if noun and n != 1 else ''}" for what, n in counts.most_common())


@contextlib.contextmanager
def _stderr_into(notes: list[str]) -> Iterator[None]:
    """What is written to ``sys.stderr`` inside the block (warcio's warnings, e.g. "Record not followed by
    newline") goes to ``notes`` as one line instead of the terminal. ``sys.stderr`` is process-wide: the block
    holds warcio calls only, never a ``yield``."""
    buf = io.StringIO()
    try:
        with contextlib.redirect_stderr(buf):
            yield
    finally:
        if text := " ".join(buf.getvalue().split()):
            notes.append(text)


def _load_failure(e: Exception) -> str:
    """warcio's ArchiveLoadFailed message in one line."""
    message = " ".join(str(e).split())
    if "non-chunked gzip" in message:
        return ("gzipped as one stream, not per record as WARC files must be: recompress it with `warcio recompress "
                "FILE NEW_FILE`")
    return f"not a WARC file, or broken between records: {message}"


def read_records(stream: IO[bytes], fmt: Literal["warc", "wet"], extractor: str = DEFAULT_EXTRACTOR,
                 limit: int = 2**25, tally: RecordTally | None = None) -> Iterator[WebDoc | WebError]:
    """The documents and errors of a WARC (``fmt`` ``warc``) or WET (``wet``) file, in file order. ``limit``: the
    most bytes of one payload held in memory (a larger one is a ``record_too_large`` error). ``tally``, when
    given, is filled as the file is read (:class:`RecordTally`); warcio's stderr output goes there.

    Raises :class:`WarcFileError` when the stream is not WARC or breaks off where a record should start.
    """
    from warcio.archiveiterator import ArchiveIterator
    from warcio.exceptions import ArchiveLoadFailed

    tally = RecordTally() if tally is None else tally
    wanted = _WANTED[fmt]
    extract = _extractor(extractor) if fmt == "warc" else None
    it = ArchiveIterator(stream)
    while True:
        noted = len(tally.warnings)
        with _stderr_into(tally.warnings):
            try:
                record = next(it)
                if not record.format.startswith("warc"):
                    raise WarcFileError("corrupt_file", "not a WARC file: no WARC/1.x header where a record starts "
                                        f"(byte {it.get_record_offset():,})")
                if record.rec_type not in wanted:
                    tally.skipped[record.rec_type] += 1
                    continue
                result = _read_record(record, fmt, extract, limit)
                result = replace(result, offset=it.get_record_offset())  # known once the record is read
            except StopIteration:
                return
            except ArchiveLoadFailed as e:
                raise WarcFileError("corrupt_file", _load_failure(e)) from None
        if isinstance(result, WebError):
            said = tally.warnings[noted:]
            if result.kind == "truncated_record" and said and "decompressing" in said[0]:
                result = replace(result, message=f"a gzip member is corrupt ({said[0].split(' Error ')[0]}): the "
                                 "record and the rest of the file cannot be read")
            tally.errors[result.kind] += 1
        else:
            tally.documents += 1
        yield result


def _read_record(record: ArcWarcRecord, fmt: str, extract: Extract | None, limit: int) -> WebDoc | WebError:
    """One record as a document or an error (``offset`` -1: the caller sets it)."""
    offset = -1
    headers = record.rec_headers
    record_id = headers.get_header("WARC-Record-ID")
    url = _strip_brackets(headers.get_header("WARC-Target-URI"))
    date = headers.get_header("WARC-Date")
    http = record.http_headers
    try:
        payload, over = _read_bounded(record.content_stream(), limit)
    except (zlib.error, OSError, ValueError, EOFError) as e:
        _drain(record.raw_stream)
        if record.raw_stream.limit > 0:
            return WebError(offset, record_id, "truncated_record", _truncated_message(record))
        return WebError(offset, record_id, "bad_content_encoding", f"the body cannot be decoded: {e}")
    _drain(record.raw_stream)
    if record.raw_stream.limit > 0:
        return WebError(offset, record_id, "truncated_record", _truncated_message(record), payload[:RAW_PREVIEW])
    if over:
        return WebError(offset, record_id, "record_too_large", f"the payload is {over:,} bytes, over the read limit "
                        f"of {limit:,} (2 x max_doc_bytes + 1 MiB); read to its end without being held, and skipped",
                        payload[:RAW_PREVIEW])
    if fmt == "wet":
        try:
            text = payload.decode("utf-8")
        except UnicodeDecodeError as u:
            return WebError(offset, record_id, "bad_encoding", f"a WET record is UTF-8; invalid byte at {u.start}",
                            payload[:RAW_PREVIEW])
        if not text.strip():
            return WebError(offset, record_id, "no_text", "the text extract is empty")
        return WebDoc(offset, text, url, date, record_id, "utf-8")
    content_type = (http.get_header("Content-Type") if http else headers.get_header("Content-Type")) or ""
    if http is not None and record.rec_type == "response":
        status = http.get_statuscode() or ""
        if not status.startswith("2"):
            return WebError(offset, record_id, "http_status", f"HTTP status {status or '(none)'}: not a page")
    mime = content_type.split(";", 1)[0].strip().lower()
    if not (mime in HTML_TYPES or (mime in ("", "application/octet-stream", "unknown/unknown")
                                   and _HTML_START.match(payload[:4096]))):
        return WebError(offset, record_id, "not_html", f"content type {content_type or '(none)'}: not HTML",
                        payload[:RAW_PREVIEW])
    try:
        html, charset = decode_html(payload, _header_charset(content_type))
    except NotText as e:
        return WebError(offset, record_id, "not_html", f"content type {content_type or '(none)'}: {e}",
                        payload[:RAW_PREVIEW])
    except UnicodeError as e:
        return WebError(offset, record_id, "bad_encoding", str(e), payload[:RAW_PREVIEW])
    assert extract is not None
    text = extract(html)
    if not text or not text.strip():
        return WebError(offset, record_id, "no_text", "the extractor found no main text", payload[:RAW_PREVIEW])
    return WebDoc(offset, text, url, date, record_id, charset)


def _read_bounded(stream: IO[bytes], limit: int) -> tuple[bytes, int]:
    """At most ``limit`` bytes of ``stream`` and 0, or its first bytes and its size when it is longer (then read
    to its end without being held)."""
    data = stream.read(limit + 1)
    if len(data) <= limit:
        return data, 0
    size = len(data)
    while chunk := stream.read(_READ_CHUNK):
        size += len(chunk)
    return data[:RAW_PREVIEW], size


def _drain(raw: IO[bytes]) -> None:
    while raw.read(_READ_CHUNK):
        pass


def _truncated_message(record: ArcWarcRecord) -> str:
    raw = record.raw_stream
    return (f"the file ends inside the record: {raw.limit:,} of its {record.length:,} bytes (Content-Length) are "
            "missing")


def _strip_brackets(uri: str | None) -> str | None:
    """WARC-Target-URI as written by WARC 1.0 drafts (``<http://...>``) or plainly."""
    if uri and uri.startswith("<") and uri.endswith(">"):
        return uri[1:-1]
    return uri


def _header_charset(content_type: str) -> str | None:
    m = re.search(r"charset\s*=\s*[\"']?([^\s;\"']+)", content_type, re.I)
    return m.group(1) if m else None


def _python_codec(label: str) -> str | None:
    """The Python codec for a charset label (WHATWG's reading of Latin-1 and ASCII labels as windows-1252), or
    None for a label Python does not know or that is not a text encoding."""
    label = label.strip().lower()
    if label in _WINDOWS_1252_LABELS:
        return "cp1252"
    try:
        name = codecs.lookup(label).name
    except LookupError:
        return None
    return name if name not in ("base64", "hex", "quopri", "rot-13", "uu", "zlib", "bz2") else None


@functools.lru_cache(maxsize=None)
def _reads_ascii_as_ascii(codec: str) -> bool:
    """Whether ``codec`` decodes printable ASCII bytes to the same characters (not UTF-7, UTF-16, EBCDIC...)."""
    ascii_bytes = bytes(range(0x20, 0x7F))
    return ascii_bytes.decode(codec, "replace") == ascii_bytes.decode("ascii")


class NotText(ValueError):
    """A payload labelled HTML that is binary data, not text."""


def decode_html(payload: bytes, header_charset: str | None) -> tuple[str, str]:
    """An HTML payload as text, and the charset it was read with (a Python codec name).

    In order: a byte order mark decides. A payload with a NUL byte in its first 8,000 bytes (git's test for
    binary data) is binary, unless a UTF-16 or UTF-32 label (the HTTP header's ``charset``, else a ``<meta
    charset>`` or ``<meta http-equiv content="...; charset=...">`` in the first 4 KiB) reads it. Bytes that are
    valid UTF-8 read as UTF-8 whatever the label says, when they hold a non-ASCII character (a page in any other
    charset is almost never valid UTF-8, while UTF-8 pages labelled Latin-1 or another legacy charset are a
    common mislabel: the UTF-8 sniffing of browsers and of trafilatura's ``decode_file``); all-ASCII bytes keep
    the label when it reads ASCII as ASCII. Else the label's charset (Latin-1 and ASCII labels read as
    windows-1252, whose undefined bytes read as ISO-8859-1 C1 controls, as browsers do), then resiliparse's
    ``detect_encoding`` when the label is missing, unknown or does not fit (a detected charset whose reading
    holds control characters is not taken).

    Raises :class:`NotText` for binary data (a NUL byte as above, or bytes no charset reads that hold a binary
    data byte of the WHATWG MIME Sniffing Standard), ``UnicodeError`` (a message naming the charset and where it
    came from) when no charset tried decodes the bytes.
    """
    for bom, codec in ((codecs.BOM_UTF8, "utf-8-sig"), (codecs.BOM_UTF16_LE, "utf-16"),
                       (codecs.BOM_UTF16_BE, "utf-16")):
        if payload.startswith(bom):
            return payload.decode(codec, "replace"), codec.removesuffix("-sig")
    declared, origin = header_charset, "HTTP header"
    if declared is None:
        m = _META_CHARSET.search(payload[:4096])
        declared, origin = (m.group(1).decode("ascii"), "meta tag") if m else (None, "")
    codec = _python_codec(declared) if declared is not None else None
    where = f"{declared!r} (declared in the {origin})"
    nul = payload.find(b"\x00", 0, _BINARY_TEST_BYTES)
    if codec is not None and codec.startswith(_WIDE_CODECS):
        if nul >= 0:
            try:
                return payload.decode(codec), codec
            except UnicodeDecodeError as u:
                raise UnicodeError(f"not valid {where} at byte {u.start:,}") from None
        codec = None  # bytes without NUL are not UTF-16 HTML: the HTML standard reads a meta utf-16 as UTF-8
    elif nul >= 0:
        raise NotText(f"binary data, not text: a NUL byte at byte {nul:,}")
    try:
        text = payload.decode("utf-8")
    except UnicodeDecodeError as u:
        first_bad = u.start
    else:
        if codec is not None and payload.isascii() and _reads_ascii_as_ascii(codec):
            return text, codec
        return text, "utf-8"
    if codec is not None and codec != "utf-8":
        try:
            return payload.decode(codec), codec
        except UnicodeDecodeError as u:
            if codec == "cp1252":
                return payload.decode("iso8859-1"), "cp1252"
            failure = f"not valid {where} at byte {u.start:,}, nor UTF-8 (byte {first_bad:,})"
    elif codec == "utf-8":
        failure = f"not valid UTF-8 (declared in the {origin}) at byte {first_bad:,}"
    elif declared is not None:
        failure = f"charset {where} is unknown or does not fit, and the bytes are not UTF-8 (byte {first_bad:,})"
    else:
        failure = f"no charset declared, and the bytes are not UTF-8 (byte {first_bad:,})"
    from resiliparse.parse.encoding import detect_encoding

    detected = _python_codec(detect_encoding(payload) or "")
    if detected is not None and detected not in ("utf-8", codec):
        try:
            text = payload.decode(detected)
        except UnicodeDecodeError:
            pass
        else:
            if not _CONTROL_CHARS.search(text):
                return text, detected
    if m := _BINARY_BYTES.search(payload, 0, _BINARY_TEST_BYTES):
        raise NotText(f"binary data, not text: no charset reads it, and it holds control byte "
                      f"{payload[m.start()]:#04x} at byte {m.start():,}")
    raise UnicodeError(f"{failure}; nor in a detected charset ({detected or 'none'})")


def _extractor(name: str) -> Extract:
    """The main-text function of extractor ``name``."""
    if name == "trafilatura":
        import trafilatura

        logging.getLogger("trafilatura").setLevel(logging.ERROR)  # it logs each page it finds no text in

        def run(html: str) -> str:
            return trafilatura.extract(html, fast=True, include_comments=False, include_tables=True,
                                       output_format="txt") or ""
        return run
    if name == "resiliparse":
        from resiliparse.extract.html2text import extract_plain_text
        from resiliparse.parse.html import HTMLTree

        def run(html: str) -> str:
            return extract_plain_text(HTMLTree.parse(html), main_content=True, alt_texts=False, links=False,
                                      noscript=False, form_fields=False)
        return run
    raise ValueError(f"unknown extractor {name!r} (one of {', '.join(EXTRACTORS)})")


def extract_main_text(html: str, extractor: str = DEFAULT_EXTRACTOR) -> str:
    """The main text of an HTML page (boilerplate, navigation and comments left out) by ``extractor``:
    ``trafilatura`` (Barbaresi 2021, ACL demo; as FineWeb uses it, here with ``fast=True``: no fallback
    extractors) or ``resiliparse`` (Bevendorff et al. 2018; ``extract_plain_text(main_content=True)`` as DCLM uses
    it). "" when none is found."""
    return _extractor(extractor)(html)
