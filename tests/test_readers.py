"""JSONL reading: blocks of lines parsed by Arrow when every record in them is clean, line by line otherwise.

The two paths must give the same documents, ids, positions and error records; these tests compare them on real
web text and on the records that make a block fall back.
"""

from __future__ import annotations

import gzip
import json
from pathlib import Path
from typing import Any

import pyarrow as pa
import pytest

from curate import readers
from curate.readers import Unit, read_unit
from curate.recipe import Source

C4 = Path(__file__).resolve().parents[2] / "shared" / "data" / "corpus" / "web" / "c4_demo.jsonl"


def read_all(path: Path, **source: Any) -> tuple[pa.Table, pa.Table, list[int]]:
    """Documents, errors and batch sizes of one file."""
    src = Source(path=str(path), domain="web", **source)
    unit = Unit(index=3, source_index=0, source=src, files=[path], names=[path.name])
    docs, errors, sizes = [], [], []
    for d, e, _removed in read_unit(unit, batch_size=100):
        docs.append(d)
        errors.append(e)
        sizes.append(d.num_rows)
    return pa.concat_tables(docs), pa.concat_tables(errors), sizes


def line_by_line(monkeypatch: pytest.MonkeyPatch, path: Path, **source: Any) -> tuple[pa.Table, pa.Table]:
    with monkeypatch.context() as m:
        m.setattr(readers, "_clean_jsonl_docs", lambda *a: None)
        docs, errors, _ = read_all(path, **source)
    return docs, errors


@pytest.fixture(autouse=True)
def small_blocks(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(readers, "JSONL_BLOCK_BYTES", 64 * 1024)  # several blocks per file, cut across batches


def write_jsonl(path: Path, records: list[Any]) -> Path:
    path.write_bytes(b"".join((r if isinstance(r, bytes) else json.dumps(r).encode()) + b"\n" for r in records))
    return path


@pytest.mark.skipif(not C4.exists(), reason="needs ../shared/data")
def test_blocks_and_lines_read_real_web_text_alike(monkeypatch: pytest.MonkeyPatch) -> None:
    fast, fast_errors, sizes = read_all(C4)
    slow, slow_errors = line_by_line(monkeypatch, C4)

    assert fast.num_rows >= 300 and fast_errors.num_rows == 0
    assert fast.equals(slow) and slow_errors.num_rows == 0
    assert set(sizes[:-1]) == {100}


def test_a_clean_block_is_parsed_by_arrow(tmp_path: Path) -> None:
    path = write_jsonl(tmp_path / "a.jsonl", [{"text": f"doc {i}", "id": i} for i in range(4)]
                       + [b'{"text": "NaN or \xef\xbb\xbfAvengers: Infinity War", "id": 4}'])  # JSON in a string
    src = Source(path=str(path), domain="web", id_field="id")
    unit = Unit(index=0, source_index=0, source=src, files=[path], names=["a.jsonl"])
    lines = path.read_bytes().splitlines(keepends=True)

    docs = readers._clean_jsonl_docs(readers._Batcher(unit, 100), lines, 0, "a.jsonl", 0)

    assert docs is not None and docs["id"].to_pylist() == ["0", "1", "2", "3", "4"]


@pytest.mark.parametrize("bad", [
    b'{"text": "caf\xe9"}',                       # latin-1, not UTF-8 (Arrow's JSON reader would accept it)
    b'{"text": "ok", "meta": "\xff"}',            # invalid UTF-8 in a field we do not read
    b'{"text": "x"',                              # malformed
    b'["text"]',                                  # not an object
    b'{"text": 5}',                               # not a string
    b'{"title": "no text"}',                      # missing
    '{"text": "\u3000\u2028 \\u001c"}'.encode(),  # blank by str.strip()
    b'{"text": "a", "text": "b"}',                # repeated key: orjson keeps the last
    b'{"text": "a", "score": NaN}',               # not JSON, though Arrow's reader takes it
    b'{"text": "a", "score": -Infinity}',         # idem
    b'\xef\xbb\xbf{"text": "after a BOM"}',        # idem
    b'{"text": "two"}{"text": "on one line"}',    # idem
])
def test_a_block_with_an_unclean_record_is_read_line_by_line(tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
                                                              bad: bytes) -> None:
    records: list[Any] = [{"text": f"good {i} " * 20} for i in range(50)]
    path = write_jsonl(tmp_path / "in.jsonl", records[:25] + [b"", bad, b"   "] + records[25:])

    docs, errors, _ = read_all(path)
    slow, slow_errors = line_by_line(monkeypatch, path)

    assert docs.equals(slow) and errors.equals(slow_errors)
    assert docs.num_rows + errors.num_rows == 51


def test_integer_ids_become_strings_as_line_by_line(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    path = write_jsonl(tmp_path / "in.jsonl", [{"text": f"t{i}", "id": -i * 10**12} for i in range(300)])

    docs, _, _ = read_all(path, id_field="id")
    slow, _ = line_by_line(monkeypatch, path, id_field="id")

    assert docs.equals(slow) and docs["id"][2].as_py() == "-2000000000000"


def test_blank_lines_and_crlf_keep_line_numbers(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    path = tmp_path / "in.jsonl"
    path.write_bytes(b'{"text": "one"}\r\n\r\n  \n{"text": "two"}\r\n\x0c\n{"text": "three"}')

    docs, errors, _ = read_all(path)

    assert docs["id"].to_pylist() == ["in.jsonl:1", "in.jsonl:4", "in.jsonl:6"]
    assert docs["text"].to_pylist() == ["one", "two", "three"] and errors.num_rows == 0
    assert docs.equals(line_by_line(monkeypatch, path)[0])


def test_a_truncated_gzip_keeps_the_lines_before_the_cut(tmp_path: Path) -> None:
    whole = gzip.compress(b"".join(json.dumps({"text": f"line {i} " * 30}).encode() + b"\n" for i in range(2000)))
    path = tmp_path / "in.jsonl.gz"
    path.write_bytes(whole[: len(whole) * 2 // 3])

    docs, errors, _ = read_all(path, format="jsonl.gz")

    assert 1000 < docs.num_rows < 2000
    assert errors["kind"].to_pylist() == ["corrupt_file"]
    assert docs["text"].to_pylist() == [f"line {i} " * 30 for i in range(docs.num_rows)]
