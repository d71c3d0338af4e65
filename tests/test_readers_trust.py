"""Readers lose nothing and stay bounded (issue 12).

- A file reached twice (a symbolic link loop under ``**``, overlapping globs, two sources naming it) is read once,
  by its real path; a later source naming a file an earlier one reads is warned, and the first source keeps it.
- Parquet text and id columns of every string type are read: string, large_string, string_view, dictionary.
- A valid document over ``max_doc_bytes`` is removed at step ``read`` with reason ``too_large`` and its full text.
- A record over the read limit (2 x ``max_doc_bytes`` + 1 MiB) is never held whole: it is read to its end, dropped
  and recorded as a ``record_too_large`` error with its location, size and first 2,000 bytes.
- Records are split at line feeds only: U+2028, U+2029, U+0085, U+001C..U+001E and carriage returns stay inside.
"""

from __future__ import annotations

import gzip
import json
import logging
import os
import signal
import tracemalloc
from pathlib import Path
from typing import Any

import pyarrow as pa
import pyarrow.parquet as pq
import pytest
import yaml
import zstandard

from curate import readers
from curate.cli import main
from curate.readers import READ_STEP, Unit, read_unit, record_limit
from curate.recipe import Source, load_recipe
from mixlab.errors import ConfigError
from mixlab.logs import log

MiB = 2**20
INSIDE_A_LINE = "\u2028\u2029\u0085\x1c\x1d\x1e\r"
"""characters str.splitlines() splits at, all legal inside a JSON string or a line of text"""


def write_recipe(tmp_path: Path, sources: list[dict[str, Any]], **output: Any) -> Path:
    path = tmp_path / "recipe.yaml"
    path.write_text(yaml.safe_dump({"name": "t", "sources": sources, "steps": [],
                                    "output": {"dir": "out", **output}, "executor": {"workers": 1}}))
    return path


def run(tmp_path: Path, sources: list[dict[str, Any]], **output: Any) -> Path:
    assert main(["--quiet", "run", str(write_recipe(tmp_path, sources, **output))]) == 0
    return tmp_path / "out"


def rows(out: Path, sub: str) -> list[dict[str, Any]]:
    return [r for f in sorted((out / sub).rglob("*.parquet")) for r in pq.read_table(f).to_pylist()]


def read(path: Path, fmt: str, **source: Any) -> tuple[list[dict], list[dict], list[dict]]:
    """Documents, error records and removed documents of one file."""
    unit = Unit(0, 0, Source(path=str(path), format=fmt, domain="web", **source), [path], [path.name])
    docs, errors, removed = [], [], []
    for d, e, r in read_unit(unit, batch_size=100):
        docs += d.to_pylist()
        errors += e.to_pylist()
        removed += r.to_pylist()
    return docs, errors, removed


def jsonl(*texts: str) -> bytes:
    return b"".join(json.dumps({"text": t}).encode() + b"\n" for t in texts)


class Warnings(logging.Handler):
    def __init__(self) -> None:
        super().__init__(logging.WARNING)
        self.messages: list[str] = []

    def emit(self, record: logging.LogRecord) -> None:
        self.messages.append(record.getMessage())


@pytest.fixture
def warnings() -> Any:
    handler = Warnings()
    log.addHandler(handler)
    yield handler
    log.removeHandler(handler)


# ------------------------------------------------------------------------------------- a file is read once


def test_symlink_loops_under_a_double_star_glob_read_each_file_once(tmp_path: Path) -> None:
    (tmp_path / "in" / "sub").mkdir(parents=True)
    (tmp_path / "in" / "a.jsonl").write_bytes(jsonl("hello there"))
    (tmp_path / "in" / "sub" / "b.jsonl").write_bytes(jsonl("general kenobi"))
    os.symlink(".", tmp_path / "in" / "self")
    os.symlink(".", tmp_path / "in" / "again")  # two loops: glob.glob would walk 2**40 paths
    os.symlink("..", tmp_path / "in" / "sub" / "up")

    signal.signal(signal.SIGALRM, lambda *_: pytest.fail("the glob walked the loops"))
    signal.alarm(30)
    try:
        recipe = load_recipe(write_recipe(tmp_path, [{"path": "in/**/*.jsonl", "domain": "web"}]))
    finally:
        signal.alarm(0)

    assert [recipe.source_name(f) for f in recipe.files[0]] == ["in/a.jsonl", "in/sub/b.jsonl"]


def test_a_loop_run_keeps_one_copy_of_each_document(tmp_path: Path) -> None:
    (tmp_path / "in").mkdir()
    (tmp_path / "in" / "a.jsonl").write_bytes(jsonl("hello there"))
    os.symlink(".", tmp_path / "in" / "self")

    out = run(tmp_path, [{"path": "in/**/*.jsonl", "domain": "web"}])

    assert [r["id"] for r in rows(out, "data")] == ["in/a.jsonl:1"]


def test_overlapping_globs_and_links_in_one_source_read_a_file_once(tmp_path: Path) -> None:
    (tmp_path / "in").mkdir()
    (tmp_path / "in" / "a.jsonl").write_bytes(jsonl("one"))
    os.symlink("a.jsonl", tmp_path / "in" / "alias.jsonl")

    recipe = load_recipe(write_recipe(tmp_path, [{"path": ["in/*.jsonl", "in/a.*", "in/a.jsonl"], "domain": "web"}]))

    assert recipe.files[0] == [tmp_path / "in" / "a.jsonl"]


def test_a_file_named_by_two_sources_is_read_by_the_first_and_the_second_is_warned(tmp_path: Path,
                                                                                    warnings: Warnings) -> None:
    (tmp_path / "a.jsonl").write_bytes(jsonl("shared"))
    (tmp_path / "b.jsonl").write_bytes(jsonl("own"))
    sources = [{"path": "a.jsonl", "domain": "first"}, {"path": "*.jsonl", "domain": "second"}]

    recipe = load_recipe(write_recipe(tmp_path, sources))

    assert recipe.files == [[tmp_path / "a.jsonl"], [tmp_path / "b.jsonl"]]
    [message] = warnings.messages
    assert message.startswith("sources[1].path: 1 file(s) also named by sources[0]") and "a.jsonl" in message


def test_a_source_whose_every_file_an_earlier_source_reads_is_refused(tmp_path: Path) -> None:
    (tmp_path / "a.jsonl").write_bytes(jsonl("shared"))
    sources = [{"path": "*.jsonl", "domain": "first"}, {"path": "a.jsonl", "domain": "second"}]

    with pytest.raises(ConfigError, match=r"sources\[1\].path: every file it names is already read by sources\[0\]"):
        load_recipe(write_recipe(tmp_path, sources))


# ---------------------------------------------------------------------------------- Parquet string types


STRING_TYPES = {
    "string": lambda v: pa.array(v, pa.string()),
    "large_string": lambda v: pa.array(v, pa.large_string()),
    "string_view": lambda v: pa.array(v, pa.string_view()),
    "dictionary": lambda v: pa.array(v, pa.string()).dictionary_encode(),
    "dictionary_large": lambda v: pa.array(v, pa.large_string()).dictionary_encode(),
}


@pytest.mark.parametrize("kind", sorted(STRING_TYPES))
def test_parquet_text_and_id_columns_of_any_string_type_are_read(tmp_path: Path, kind: str) -> None:
    make = STRING_TYPES[kind]
    path = tmp_path / "a.parquet"
    pq.write_table(pa.table({"text": make(["first doc", "second doc", "first doc"]), "id": make(["x", "y", "z"])}),
                   path)

    docs, errors, _ = read(path, "parquet", id_field="id")

    assert errors == [] and [(d["id"], d["text"]) for d in docs] == [("x", "first doc"), ("y", "second doc"),
                                                                     ("z", "first doc")]


def test_parquet_from_a_pandas_categorical_column_is_read(tmp_path: Path) -> None:
    pd = pytest.importorskip("pandas")
    path = tmp_path / "a.parquet"
    pd.DataFrame({"text": pd.Categorical(["spam", "eggs", "spam"])}).to_parquet(path)

    docs, errors, _ = read(path, "parquet")

    assert errors == [] and [d["text"] for d in docs] == ["spam", "eggs", "spam"]


def test_parquet_text_column_of_binary_is_still_bad_type(tmp_path: Path) -> None:
    path = tmp_path / "a.parquet"
    pq.write_table(pa.table({"text": pa.array([b"bytes"], pa.binary())}), path)

    docs, errors, _ = read(path, "parquet")

    assert docs == [] and [(e["kind"], e["error"]) for e in errors] == [("bad_type", "column 'text' is binary, "
                                                                          "not a string")]


# ------------------------------------------------------------------------------- too large is a removal


def _write(path: Path, fmt: str, texts: list[str]) -> Path:
    if fmt == "jsonl":
        path.write_bytes(jsonl(*texts))
    elif fmt == "lines":
        path.write_text("".join(t + "\n" for t in texts), encoding="utf-8")
    elif fmt == "parquet":
        pq.write_table(pa.table({"text": texts}), path)
    return path


@pytest.mark.parametrize("fmt", ["jsonl", "lines", "parquet"])
def test_a_document_over_max_doc_bytes_is_removed_with_its_full_text(tmp_path: Path, fmt: str) -> None:
    big = "é" * 3000  # 6,000 UTF-8 bytes: over 5,000, yet under the read limit
    path = _write(tmp_path / f"a.{fmt}", fmt, ["small", big, "after"])

    docs, errors, removed = read(path, fmt, max_doc_bytes=5000)

    assert errors == [] and [d["text"] for d in docs] == ["small", "after"]
    assert [(r["text"] == big, r["reason"]) for r in removed] == [(True, "too_large")]


def test_a_txt_file_over_max_doc_bytes_is_removed_with_its_full_text(tmp_path: Path) -> None:
    (tmp_path / "a.txt").write_text("x" * 6000)

    docs, errors, removed = read(tmp_path / "a.txt", "txt", max_doc_bytes=5000)

    assert docs == [] and errors == [] and [(r["id"], len(r["text"])) for r in removed] == [("a.txt", 6000)]


def test_a_run_accounts_for_read_removals_in_manifest_stats_and_card(tmp_path: Path) -> None:
    (tmp_path / "a.jsonl").write_bytes(jsonl("kept", "y" * 2000, "also kept"))

    out = run(tmp_path, [{"path": "a.jsonl", "domain": "web", "max_doc_bytes": 1000}])

    m = json.loads((out / "manifest.json").read_text())
    acc = m["accounting"]
    assert (acc["read"], acc["kept"], acc["removed"][READ_STEP], acc["errored"]) == (3, 2, {"too_large": 1}, 0)
    assert [(r["id"], r["reason"], len(r["text"])) for r in rows(out, f"removed/{READ_STEP}")] == [
        ("a.jsonl:2", "too_large", 2000)]
    assert [s["path"] for s in m["removed"][READ_STEP]] == ["removed/read/part-00000.parquet"]
    stats = json.loads((out / "stats" / "read.json").read_text())
    assert (stats["documents_in"], stats["removed_by_reason"], stats["kept"]) == (3, {"too_large": 1}, 2)
    assert "| read | too_large | 1 |" in (out / "card.md").read_text()


def test_a_sampled_keep_removed_policy_applies_to_read_removals(tmp_path: Path) -> None:
    (tmp_path / "a.jsonl").write_bytes(jsonl(*("y" * 2000 + str(i) for i in range(5))))

    out = run(tmp_path, [{"path": "a.jsonl", "domain": "web", "max_doc_bytes": 1000}], keep_removed="sample 2")

    assert len(rows(out, f"removed/{READ_STEP}")) == 2
    assert json.loads((out / "manifest.json").read_text())["accounting"]["removed"][READ_STEP] == {"too_large": 5}


# ------------------------------------------------------------------------------------- bounded memory


def _bomb(path: Path, fmt: str, line_bytes: int) -> Path:
    """A file whose second record is one line of ``line_bytes`` bytes, between two small records."""
    first, last = (b'{"text": "before"}\n', b'{"text": "after"}\n') if fmt != "lines" else (b"before\n", b"after\n")
    opener = {"jsonl.gz": lambda p: gzip.open(p, "wb", compresslevel=1),
              "jsonl.zst": lambda p: zstandard.ZstdCompressor(level=1).stream_writer(open(p, "wb"))}
    with opener.get(fmt, lambda p: open(p, "wb"))(path) as f:
        f.write(first + (b'{"text": "' if fmt != "lines" else b""))
        for _ in range(line_bytes // MiB):
            f.write(b"a" * MiB)
        f.write((b'"}' if fmt != "lines" else b"") + b"\n" + last)
    return path


@pytest.mark.parametrize("fmt", ["jsonl", "jsonl.gz", "jsonl.zst", "lines"])
def test_a_line_over_the_read_limit_is_skipped_in_bounded_memory_and_recorded(tmp_path: Path, fmt: str) -> None:
    max_doc = MiB
    path = _bomb(tmp_path / f"a.{fmt}", fmt, 48 * MiB)

    tracemalloc.start()
    try:
        docs, errors, removed = read(path, fmt, max_doc_bytes=max_doc)
        peak = tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()

    assert peak < 2 * max_doc + 6 * MiB  # the line is 48 MiB; a few 1 MiB reads and buffers are in flight
    assert [d["text"] for d in docs] == ["before", "after"] and removed == []
    [e] = errors
    assert (e["location"], e["kind"]) == ("line 2", "record_too_large")
    assert e["error"].startswith("line is 48.0 MiB, over the read limit of 3.0 MiB (2 x max_doc_bytes + 1 MiB)")
    assert len(e["raw"]) == 2000 and e["raw"].endswith("a" * 100)


def test_a_txt_file_over_the_read_limit_is_not_read_whole(tmp_path: Path) -> None:
    path = tmp_path / "a.txt"
    with open(path, "wb") as f:
        for _ in range(48):
            f.write(b"word " * (MiB // 5) + b"\n")

    tracemalloc.start()
    try:
        docs, errors, removed = read(path, "txt", max_doc_bytes=MiB)
        peak = tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()

    assert peak < 2 * MiB + 6 * MiB and docs == [] and removed == []  # the file is 48 MiB
    assert [(e["location"], e["kind"]) for e in errors] == [("file", "record_too_large")]


def test_a_document_just_within_the_read_limit_is_still_a_removal_with_its_full_text(tmp_path: Path) -> None:
    max_doc = 1000
    text = "b" * (record_limit(max_doc) - len(b'{"text": ""}'))  # the whole line is exactly at the limit
    (tmp_path / "a.jsonl").write_bytes(jsonl(text))

    docs, errors, removed = read(tmp_path / "a.jsonl", "jsonl", max_doc_bytes=max_doc)

    assert docs == [] and errors == [] and [r["text"] == text for r in removed] == [True]


def test_the_arrow_block_path_still_reads_ordinary_files(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    calls = []
    clean = readers._clean_jsonl_docs
    monkeypatch.setattr(readers, "_clean_jsonl_docs", lambda *a: calls.append(1) or clean(*a))
    (tmp_path / "a.jsonl").write_bytes(jsonl(*(f"document {i}" for i in range(500))))

    docs, errors, _ = read(tmp_path / "a.jsonl", "jsonl")

    assert len(docs) == 500 and errors == [] and calls == [1]


# ---------------------------------------------------------------------------------------- line splitting


def test_jsonl_records_split_at_line_feeds_only(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    texts = [f"one{c}record" for c in INSIDE_A_LINE]
    raw = b"".join(json.dumps({"text": t}, ensure_ascii=False).encode() + b"\n" for t in texts)
    (tmp_path / "a.jsonl").write_bytes(raw)

    fast, fast_errors, _ = read(tmp_path / "a.jsonl", "jsonl")
    monkeypatch.setattr(readers, "_clean_jsonl_docs", lambda *a: None)
    slow, slow_errors, _ = read(tmp_path / "a.jsonl", "jsonl")

    assert [d["text"] for d in fast] == [d["text"] for d in slow] == texts
    assert fast_errors == slow_errors == []


def test_lines_records_split_at_line_feeds_only(tmp_path: Path) -> None:
    texts = [f"one{c}line" for c in INSIDE_A_LINE if c != "\r"] + ["ends with a carriage return"]
    (tmp_path / "a.txt").write_bytes("\n".join(texts).encode() + b"\r\n")

    docs, errors, _ = read(tmp_path / "a.txt", "lines")

    assert errors == [] and [d["text"] for d in docs] == texts


def test_lm_input_texts_keep_separators_inside_a_line(tmp_path: Path) -> None:
    from curate.lm import input_texts

    (tmp_path / "ref.txt").write_text("a\u2028b\u0085c\nd\x1ce\n", encoding="utf-8")

    texts = [t for batch in input_texts([tmp_path / "ref.txt"]) for t in batch.to_pylist()]

    assert texts == ["a\u2028b\u0085c", "d\x1ce"]
