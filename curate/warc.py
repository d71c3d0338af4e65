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

``not_html`` (a payload that is not HTML: PDF, image, plain text...), ``http_status`` (not a 2xx response: a redirect,
a 404 page), ``truncated_record`` (the file ends inside the record: fewer bytes than its Content-Length, a cut gzip
member), ``bad_encoding`` (bytes not valid in the page's charset nor in UTF-8, or an unknown charset on bytes that are
not UTF-8), ``bad_content_encoding`` (a body whose gzip/deflate/chunked coding is broken), ``no_text`` (the extractor
found no main text), ``record_too_large`` (a payload over the read limit: read to its end without being held).

Where a record starts (its byte offset in the file) is its position: a document's id is ``<file>:<offset>``, as
Common Crawl's index locates records by file and offset. A file that is not WARC at all, or breaks off between
records, raises :class:`WarcFileError` after the records before it.
"""

from __future__ import annotations

import codecs
import logging
import re
import zlib
from dataclasses import dataclass, replace
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


def read_records(stream: IO[bytes], fmt: Literal["warc", "wet"], extractor: str = DEFAULT_EXTRACTOR,
                 limit: int = 2**25) -> Iterator[WebDoc | WebError]:
    """The documents and errors of a WARC (``fmt`` ``warc``) or WET (``wet``) file, in file order. ``limit``: the
    most bytes of one payload held in memory (a larger one is a ``record_too_large`` error).

    Raises :class:`WarcFileError` when the stream is not WARC or breaks off where a record should start.
    """
    from warcio.archiveiterator import ArchiveIterator
    from warcio.exceptions import ArchiveLoadFailed

    wanted = ("response", "resource") if fmt == "warc" else ("conversion",)
    extract = _extractor(extractor) if fmt == "warc" else None
    it = ArchiveIterator(stream)
    try:
        for record in it:
            if not record.format.startswith("warc"):
                raise WarcFileError("corrupt_file", "not a WARC file: no WARC/1.x header where a record starts "
                                    f"(byte {it.get_record_offset():,})")
            if record.rec_type not in wanted:
                continue
            result = _read_record(record, fmt, extract, limit)
            yield replace(result, offset=it.get_record_offset())  # known once the record is read
    except ArchiveLoadFailed as e:
        raise WarcFileError("corrupt_file", f"not a WARC file, or broken between records: {e}") from None


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


def decode_html(payload: bytes, header_charset: str | None) -> tuple[str, str]:
    """An HTML payload as text, and the charset it was read with (a Python codec name).

    The charset is the first found of: a byte order mark, the HTTP header's ``charset``, a ``<meta charset>`` or
    ``<meta http-equiv content="...; charset=...">`` in the first 4 KiB (the order of the HTML standard's encoding
    sniffing), then UTF-8 when the bytes are valid UTF-8, then resiliparse's ``detect_encoding``. windows-1252 bytes
    it leaves undefined read as ISO-8859-1 (C1 controls), as browsers do. A declared charset the bytes are not valid
    in, where they are valid UTF-8, reads as UTF-8 (a common mislabel).

    Raises ``UnicodeError`` (a message naming the charset and where it came from) when no charset tried decodes
    the bytes.
    """
    for bom, codec in ((codecs.BOM_UTF8, "utf-8-sig"), (codecs.BOM_UTF16_LE, "utf-16"),
                       (codecs.BOM_UTF16_BE, "utf-16")):
        if payload.startswith(bom):
            return payload.decode(codec, "replace"), codec.removesuffix("-sig")
    declared, origin = header_charset, "HTTP header"
    if declared is None:
        m = _META_CHARSET.search(payload[:4096])
        declared, origin = (m.group(1).decode("ascii"), "meta tag") if m else (None, "")
    if declared is not None:
        codec = _python_codec(declared)
        if codec is not None:
            try:
                return payload.decode(codec), codec
            except UnicodeDecodeError as u:
                if codec == "cp1252":
                    return payload.decode("iso8859-1"), "cp1252"
                try:
                    return payload.decode("utf-8"), "utf-8"
                except UnicodeDecodeError:
                    raise UnicodeError(f"not valid {declared} (declared in the {origin}) at byte {u.start:,}, nor "
                                       "valid UTF-8") from None
    try:
        return payload.decode("utf-8"), "utf-8"
    except UnicodeDecodeError as u:
        first_bad = u.start
    from resiliparse.parse.encoding import detect_encoding

    detected = _python_codec(detect_encoding(payload) or "")
    if detected is not None and detected != "utf-8":
        try:
            return payload.decode(detected), detected
        except UnicodeDecodeError:
            pass
    said = f"charset {declared!r} (in the {origin}) is unknown, and the" if declared is not None else "no charset " \
        "declared, and the"
    raise UnicodeError(f"{said} bytes are not valid UTF-8 (byte {first_bad:,}) nor in a detected charset "
                       f"({detected or 'none'})")


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
