"""How `curate run` handles bad input — one behaviour per test, readable as documentation.

The rule (DESIGN.md): nothing is lost silently. A record that cannot be read becomes one row in
``errors/*.parquet`` (``source`` = the file's name as used in document ids, ``location`` = ``line N`` / ``row N`` /
``file``, ``kind``, ``error``, ``raw``), the run goes on, and the manifest's accounting balances:
read = kept + removed + errored. A mistake in the recipe itself stops the run before any work, with exit code 2 and
a message naming the key path.

Each test builds a tiny corpus in ``tmp_path``: input files, a recipe next to them, and ``curate.cli.main`` on it.
"""

from __future__ import annotations

import gzip
import json
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pyarrow as pa
import pyarrow.parquet as pq
import yaml
import zstandard

from curate.cli import main

MiB = 2**20


# --------------------------------------------------------------------------------------------------- helpers


def jsonl(*records: Any) -> bytes:
    """One line per record: a dict is written as JSON, bytes are written as they are (a broken line)."""
    return b"".join((r if isinstance(r, bytes) else json.dumps(r).encode()) + b"\n" for r in records)


def source(path: str, **kw: Any) -> dict[str, Any]:
    return {"path": path, "domain": "web", **kw}


def recipe(*sources: dict[str, Any], steps: list[Any] | None = None) -> dict[str, Any]:
    return {"name": "bad_input", "sources": list(sources), "steps": steps or [],
            "output": {"dir": "out"}, "executor": {"workers": 1}}


@dataclass
class Run:
    code: int
    stderr: str
    out: Path

    @property
    def manifest(self) -> dict[str, Any]:
        return json.loads((self.out / "manifest.json").read_text())

    @property
    def errors(self) -> list[dict[str, Any]]:
        """Every error record, in file order."""
        return [r for f in sorted((self.out / "errors").glob("*.parquet")) for r in pq.read_table(f).to_pylist()]

    @property
    def docs(self) -> list[dict[str, Any]]:
        """Every kept document, across domains and shards."""
        return [r for f in sorted((self.out / "data").glob("**/*.parquet")) for r in pq.read_table(f).to_pylist()]

    @property
    def ids(self) -> list[str]:
        return [d["id"] for d in self.docs]

    def removed(self, step: str) -> list[dict[str, Any]]:
        """The documents ``step`` removed, with their ``reason``."""
        files = sorted((self.out / "removed" / step).glob("*.parquet"))
        return [r for f in files for r in pq.read_table(f).to_pylist()]


def curate(tmp_path: Path, capsys: Any, recipe_data: dict[str, Any], **files: bytes) -> Run:
    """Write ``files`` (name -> content) and the recipe into ``tmp_path``, run `curate run`, and check that
    whatever happened, no traceback reached the user."""
    for name, content in files.items():
        (tmp_path / name).write_bytes(content)
    path = tmp_path / "recipe.yaml"
    path.write_text(yaml.safe_dump(recipe_data, sort_keys=False))
    code = main(["--quiet", "run", str(path)])
    err = capsys.readouterr().err
    assert "Traceback" not in err, err
    return Run(code, err, tmp_path / "out")


def refused(tmp_path: Path, capsys: Any, recipe_data: dict[str, Any], **files: bytes) -> str:
    """Run a recipe that is wrong: exit code 2, no output directory, and the one message is returned."""
    run = curate(tmp_path, capsys, recipe_data, **files)
    assert run.code == 2, run.stderr
    assert not run.out.exists(), "a wrong recipe must fail before any work starts"
    lines = run.stderr.strip().splitlines()
    assert lines[0].startswith("curate: error: "), run.stderr
    return run.stderr


def kinds(run: Run) -> list[tuple[str, str, str]]:
    return [(e["source"], e["location"], e["kind"]) for e in run.errors]


def long_text(words: int = 12) -> str:
    return " ".join(["word"] * words)


# ------------------------------------------------------------------------------------- record-level errors


def test_malformed_json_line_is_one_error_and_the_good_lines_are_kept(tmp_path, capsys):
    data = jsonl({"text": "first"}, b'{"text": "no closing brace"', {"text": "third"})
    run = curate(tmp_path, capsys, recipe(source("in.jsonl")), **{"in.jsonl": data})

    assert run.code == 0
    assert kinds(run) == [("in.jsonl", "line 2", "bad_json")]
    assert run.errors[0]["raw"] == '{"text": "no closing brace"\n'
    assert run.ids == ["in.jsonl:1", "in.jsonl:3"]  # ids are "<source>:<line>", so `source` finds the file
    assert run.manifest["errors"]["by_kind"] == {"bad_json": 1}


def test_invalid_utf8_is_bad_utf8_with_its_line(tmp_path, capsys):
    data = jsonl({"text": "ok"}, b'{"text": "caf\xe9 latin-1"}', {"text": "ok too"})
    run = curate(tmp_path, capsys, recipe(source("in.jsonl")), **{"in.jsonl": data})

    assert run.code == 0
    assert kinds(run) == [("in.jsonl", "line 2", "bad_utf8")]
    assert run.errors[0]["raw"] == '{"text": "caf\\xe9 latin-1"}\n'  # the bad byte is shown escaped
    assert run.ids == ["in.jsonl:1", "in.jsonl:3"]


def test_missing_text_field_is_missing_field(tmp_path, capsys):
    data = jsonl({"body": "text under another key"}, {"text": "kept"})
    run = curate(tmp_path, capsys, recipe(source("in.jsonl")), **{"in.jsonl": data})

    assert run.code == 0
    assert kinds(run) == [("in.jsonl", "line 1", "missing_field")]
    assert "'text'" in run.errors[0]["error"]
    assert run.ids == ["in.jsonl:2"]


def test_non_string_text_is_bad_type(tmp_path, capsys):
    data = jsonl({"text": 42}, {"text": ["a", "list"]}, {"text": "kept"})
    run = curate(tmp_path, capsys, recipe(source("in.jsonl")), **{"in.jsonl": data})

    assert run.code == 0
    assert kinds(run) == [("in.jsonl", "line 1", "bad_type"), ("in.jsonl", "line 2", "bad_type")]
    assert [e["error"] for e in run.errors] == ["text field 'text' is int, not a string",
                                               "text field 'text' is list, not a string"]
    assert run.ids == ["in.jsonl:3"]


def test_empty_or_whitespace_only_text_is_empty_text(tmp_path, capsys):
    data = jsonl({"text": ""}, {"text": " \n\t "}, {"text": "kept"})
    run = curate(tmp_path, capsys, recipe(source("in.jsonl")), **{"in.jsonl": data})

    assert run.code == 0
    assert kinds(run) == [("in.jsonl", "line 1", "empty_text"), ("in.jsonl", "line 2", "empty_text")]
    assert run.ids == ["in.jsonl:3"]


def test_blank_lines_are_skipped_not_counted(tmp_path, capsys):
    run = curate(tmp_path, capsys, recipe(source("in.jsonl")),
                 **{"in.jsonl": b'{"text": "a"}\n\n   \n{"text": "b"}\n'})

    assert run.code == 0 and run.errors == []
    assert run.ids == ["in.jsonl:1", "in.jsonl:4"]  # line numbers still count them
    assert run.manifest["accounting"]["read"] == 2


# ---------------------------------------------------------------------------------------------- size limits


def test_document_over_max_doc_bytes_is_removed_as_too_large_with_its_full_text(tmp_path, capsys):
    big = "x" * (20 * MiB)  # the default max_doc_bytes is 16 MiB
    data = jsonl({"text": "before"}, {"text": big}, {"text": "after"})
    run = curate(tmp_path, capsys, recipe(source("in.jsonl")), **{"in.jsonl": data})

    assert run.code == 0 and run.errors == []
    [gone] = run.removed("read")
    assert (gone["id"], gone["reason"], gone["text"] == big) == ("in.jsonl:2", "too_large", True)
    assert run.manifest["accounting"]["removed"]["read"] == {"too_large": 1}
    assert run.ids == ["in.jsonl:1", "in.jsonl:3"]


def test_raising_max_doc_bytes_keeps_the_large_document(tmp_path, capsys):
    big = "x" * (20 * MiB)
    data = jsonl({"text": "before"}, {"text": big}, {"text": "after"})
    run = curate(tmp_path, capsys, recipe(source("in.jsonl", max_doc_bytes=32 * MiB)), **{"in.jsonl": data})

    assert run.code == 0 and run.errors == []
    assert run.ids == ["in.jsonl:1", "in.jsonl:2", "in.jsonl:3"]
    assert len(run.docs[1]["text"]) == 20 * MiB


def test_max_doc_bytes_counts_utf8_bytes_not_characters(tmp_path, capsys):
    data = jsonl({"text": "é" * 600}, {"text": "e" * 600})  # 600 characters each: 1200 bytes and 600 bytes
    run = curate(tmp_path, capsys, recipe(source("in.jsonl", max_doc_bytes=1000)), **{"in.jsonl": data})

    assert [(r["id"], r["reason"]) for r in run.removed("read")] == [("in.jsonl:1", "too_large")]
    assert run.ids == ["in.jsonl:2"]


# ---------------------------------------------------------------------------------------------------- NUL


def test_escaped_nul_is_read_and_normalize_removes_it(tmp_path, capsys):
    data = jsonl({"text": "before\u0000after"})  # json.dumps writes the NUL as the escape \u0000
    assert b"\\u0000" in data and b"\x00" not in data
    run = curate(tmp_path, capsys, recipe(source("in.jsonl"), steps=["normalize"]), **{"in.jsonl": data})

    assert run.code == 0 and run.errors == []
    [doc] = run.docs
    assert doc["text"] == "beforeafter"
    assert doc["normalized_chars_delta"] == 1


def test_raw_nul_byte_in_a_json_line_is_bad_json(tmp_path, capsys):
    data = jsonl(b'{"text": "before\x00after"}', {"text": "kept"})  # JSON forbids raw control characters
    run = curate(tmp_path, capsys, recipe(source("in.jsonl")), **{"in.jsonl": data})

    assert run.code == 0
    assert kinds(run) == [("in.jsonl", "line 1", "bad_json")]
    assert "control character" in run.errors[0]["error"]
    assert run.ids == ["in.jsonl:2"]


# ----------------------------------------------------------------------------------------- file-level errors


def _numbered(n: int) -> bytes:
    # varied text, so the compressed stream is long and a cut lands after many complete records
    return jsonl(*({"text": f"record {i} " + " ".join(str(i * k) for k in range(40))} for i in range(1, n + 1)))


def test_truncated_gzip_keeps_the_records_before_the_cut(tmp_path, capsys):
    full = gzip.compress(_numbered(2000))
    run = curate(tmp_path, capsys, recipe(source("in.jsonl.gz")), **{"in.jsonl.gz": full[: len(full) // 2]})

    assert run.code == 0
    assert kinds(run) == [("in.jsonl.gz", "file", "corrupt_file")]
    assert "truncated or corrupt" in run.errors[0]["error"]
    ids = run.ids
    assert 500 < len(ids) < 2000  # everything decompressed before the cut; the record cut in two is lost
    assert ids == [f"in.jsonl.gz:{i}" for i in range(1, len(ids) + 1)]
    assert run.manifest["accounting"]["errored"] == 1


def test_truncated_zstd_is_corrupt_file_too(tmp_path, capsys):
    full = zstandard.ZstdCompressor().compress(_numbered(2000))
    run = curate(tmp_path, capsys, recipe(source("in.jsonl.zst")), **{"in.jsonl.zst": full[: len(full) // 2]})

    assert run.code == 0
    assert kinds(run) == [("in.jsonl.zst", "file", "corrupt_file")]
    ids = run.ids
    assert 500 < len(ids) < 2000
    assert ids == [f"in.jsonl.zst:{i}" for i in range(1, len(ids) + 1)]


def test_zstd_with_several_frames_is_read_to_the_end(tmp_path, capsys):
    z = zstandard.ZstdCompressor()
    data = z.compress(jsonl({"text": "frame one"})) + z.compress(jsonl({"text": "frame two"}))
    run = curate(tmp_path, capsys, recipe(source("in.jsonl.zst")), **{"in.jsonl.zst": data})

    assert run.code == 0 and run.errors == []
    assert [d["text"] for d in run.docs] == ["frame one", "frame two"]


def _parquet(table: pa.Table) -> bytes:
    sink = pa.BufferOutputStream()
    pq.write_table(table, sink)
    return sink.getvalue().to_pybytes()


def test_parquet_without_the_text_column_is_one_file_level_error(tmp_path, capsys):
    table = pa.table({"body": ["a", "b"], "url": ["u1", "u2"]})
    run = curate(tmp_path, capsys, recipe(source("*.parquet")),
                 **{"no_text.parquet": _parquet(table), "good.parquet": _parquet(pa.table({"text": ["kept"]}))})

    assert run.code == 0
    assert kinds(run) == [("no_text.parquet", "file", "missing_field")]
    assert run.errors[0]["error"] == "no column 'text' (columns: body, url)"
    assert run.ids == ["good.parquet:0"]


def test_parquet_null_text_is_a_row_level_error(tmp_path, capsys):
    table = pa.table({"text": ["first", None, "third"]})
    run = curate(tmp_path, capsys, recipe(source("in.parquet")), **{"in.parquet": _parquet(table)})

    assert run.code == 0
    assert kinds(run) == [("in.parquet", "row 1", "missing_field")]  # rows count from 0, as in the ids
    assert run.ids == ["in.parquet:0", "in.parquet:2"]


def test_a_glob_reads_the_files_it_matches_not_directories(tmp_path, capsys):
    (tmp_path / "folder.jsonl").mkdir()
    run = curate(tmp_path, capsys, recipe(source("*.jsonl")), **{"good.jsonl": jsonl({"text": "kept"})})

    assert run.code == 0
    assert kinds(run) == []
    assert run.ids == ["good.jsonl:1"]


def test_on_error_fail_stops_the_run_with_one_line_naming_the_file(tmp_path, capsys):
    full = gzip.compress(_numbered(200))
    run = curate(tmp_path, capsys, recipe(source("in.jsonl.gz", on_error="fail")),
                 **{"in.jsonl.gz": full[: len(full) // 2]})

    assert run.code == 1
    [line] = run.stderr.strip().splitlines()  # --quiet: the error is all there is
    assert line.startswith("curate: error: in.jsonl.gz: compressed stream is truncated or corrupt")
    assert not (run.out / "manifest.json").exists()  # no manifest: the corpus is not complete


# ------------------------------------------------------------------------------------------------ accounting


def test_accounting_balances_on_a_mix_of_everything(tmp_path, capsys):
    lines = jsonl(
        {"text": long_text()}, b'{"text": broken', b'{"text": "\xff"}', {"body": "x"}, {"text": 3},
        {"text": "  "}, {"text": "y" * 2000},  # too_large under max_doc_bytes: 1000
        {"text": "nul\u0000inside " + long_text()}, {"text": long_text()},  # a duplicate of line 1
        {"text": "\u200b\u0000"},  # not blank to the reader; empty once normalize removes both
        {"text": "another document " + long_text()},
    )
    gz = gzip.compress(_numbered(300))
    files = {
        "a.jsonl": lines,
        "b.jsonl.gz": gz[: len(gz) // 2],
        "c.parquet": _parquet(pa.table({"text": ["row zero " + long_text(), None]})),
        "d.parquet": _parquet(pa.table({"body": ["no text column"]})),
    }
    r = recipe(source("*.jsonl", max_doc_bytes=1000), source("b.jsonl.gz", domain="gz"),
               source("*.parquet", domain="pq"), steps=["normalize", "exact_dedup"])
    run = curate(tmp_path, capsys, r, **files)

    assert run.code == 0
    acc = run.manifest["accounting"]
    assert acc["balanced"] and acc["read"] == acc["kept"] + acc["removed_total"] + acc["errored"]
    assert acc["removed"] == {"read": {"too_large": 1}, "normalize": {"empty_after_normalize": 1},
                              "exact_dedup": {"exact_duplicate": 1}}
    assert len(run.errors) == acc["errored"]
    assert acc["kept"] == len(run.docs) == sum(d["docs"] for d in run.manifest["domains"].values())
    assert run.manifest["errors"]["by_kind"] == {
        "bad_json": 1, "bad_utf8": 1, "missing_field": 3, "bad_type": 1, "empty_text": 1, "corrupt_file": 1,
    }


# ------------------------------------------------------------------------------------------ recipe mistakes


def test_misspelled_step_param_names_the_key_and_suggests_the_right_one(tmp_path, capsys):
    r = recipe(source("in.jsonl"), steps=["normalize", {"quality": {"min_wrods": 5}}])
    err = refused(tmp_path, capsys, r, **{"in.jsonl": jsonl({"text": "a"})})

    assert "steps[1].quality.min_wrods: unknown key, did you mean 'min_words'?" in err  # the path as in the YAML


def test_unknown_top_level_key_is_refused(tmp_path, capsys):
    r = {**recipe(source("in.jsonl")), "seeed": 3}
    err = refused(tmp_path, capsys, r, **{"in.jsonl": jsonl({"text": "a"})})

    assert "seeed: unknown key, did you mean 'seed'?" in err


def test_wrong_type_names_the_key_and_the_value(tmp_path, capsys):
    r = recipe(source("in.jsonl"))
    r["output"]["shard_docs"] = "lots"
    err = refused(tmp_path, capsys, r, **{"in.jsonl": jsonl({"text": "a"})})

    assert "output.shard_docs: " in err and "valid integer" in err and "(got 'lots')" in err


def test_source_path_that_matches_no_file_is_refused(tmp_path, capsys):
    err = refused(tmp_path, capsys, recipe(source("in.jsonl"), source("missing/*.jsonl")),
                  **{"in.jsonl": jsonl({"text": "a"})})

    assert "sources[1].path: 'missing/*.jsonl' matches no file" in err


def test_source_path_that_does_not_exist_is_refused(tmp_path, capsys):
    err = refused(tmp_path, capsys, recipe(source("nope.jsonl")))

    assert "sources[0].path: 'nope.jsonl' does not exist" in err


def test_unknown_step_name_is_refused_with_a_suggestion(tmp_path, capsys):
    r = recipe(source("in.jsonl"), steps=["normalise"])
    err = refused(tmp_path, capsys, r, **{"in.jsonl": jsonl({"text": "a"})})

    assert "steps[0]: unknown step 'normalise', did you mean 'normalize'?" in err
