"""`url_filter`: a domain blocklist, URL regexes and exact URL dedup after normalization, corpus-wide and the same
whatever the workers and partitions."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from curate.steps.url_filter import normalize_url, read_blocklist
from tests.conftest import kept, removed, run_curate
from tests.test_warc import BODY, SAMPLES, _html, _write_warc


def _run(capsys: Any, tmp_path: Path, sources: list[dict[str, Any]], params: dict[str, Any],
         workers: int = 1, partitions: int = 4, out: str = "out") -> tuple[int, Path, str]:
    recipe = {"name": "t", "sources": [{"domain": "web", **s} for s in sources],
              "steps": [{"url_filter": params}], "output": {"dir": str(tmp_path / out)},
              "executor": {"workers": workers, "partitions": partitions}}
    path = tmp_path / f"{out}.yaml"
    path.write_text(json.dumps(recipe), encoding="utf-8")
    code, err = run_curate(capsys, "run", path)
    return code, tmp_path / out, err


@pytest.mark.parametrize("a, b", [
    ("http://example.com/a", "https://example.com/a"),
    ("https://www.example.com/a", "https://example.com/a"),
    ("https://example.com/a/", "https://example.com/a"),
    ("https://example.com/", "https://example.com"),
    ("https://example.com/a?utm_source=x&utm_medium=y&fbclid=1&gclid=2", "https://example.com/a"),
    ("https://example.com/a?b=2&a=1", "https://example.com/a?a=1&b=2"),
    ("https://example.com/a#section", "https://example.com/a"),
    ("https://EXAMPLE.com:443/a", "https://example.com/a"),
])
def test_urls_of_the_same_page_normalize_alike(a: str, b: str) -> None:
    assert normalize_url(a) == normalize_url(b)


@pytest.mark.parametrize("a, b", [
    ("https://example.com/A", "https://example.com/a"),
    ("https://example.com/a?id=1", "https://example.com/a?id=2"),
    ("https://example.com:8080/a", "https://example.com/a"),
    ("https://blog.example.com/a", "https://example.com/a"),
])
def test_urls_of_different_pages_stay_different(a: str, b: str) -> None:
    assert normalize_url(a) != normalize_url(b)


def test_the_repeated_captures_of_a_real_page_are_removed_and_the_first_kept(capsys: Any, tmp_path: Path) -> None:
    code, out, _ = _run(capsys, tmp_path, [{"path": [str(p) for p in SAMPLES]}], {})
    assert code == 0
    allenai = [d for d in kept(out) if d["url"] == "https://allenai.org/"]
    assert len(allenai) == 1 and allenai[0]["id"] == f"{SAMPLES[1]}:46426" and allenai[0]["url_copies"] == 3
    dups = removed(out, "url_filter")
    assert sorted(d["id"] for d in dups) == [f"{SAMPLES[1]}:170431", f"{SAMPLES[1]}:78027"]
    assert {d["reason"] for d in dups} == {"duplicate_url"}
    assert {d["url_duplicate_of"] for d in dups} == {allenai[0]["id"]}


def test_dedup_across_files_is_the_same_whatever_the_workers_and_partitions(capsys: Any, tmp_path: Path) -> None:
    page = _html()
    urls = [["https://www.site.org/p/?utm_source=feed", "https://site.org/q", "http://other.net/x"],
            ["http://site.org/p", "https://site.org/q/#top", "https://site.org/r"],
            ["https://SITE.org/p?fbclid=abc", "https://other.net/x?gclid=1", "https://site.org/q?page=2"]]
    for i, group in enumerate(urls):
        _write_warc(tmp_path / f"f{i}.warc.gz", [{"url": u, **page} for u in group])
    results = []
    for workers, partitions in ((1, 1), (2, 7)):
        code, out, _ = _run(capsys, tmp_path, [{"path": "f*.warc.gz"}], {}, workers, partitions, f"out{partitions}")
        assert code == 0
        results.append(sorted(d["url"] for d in kept(out)))
    assert results[0] == results[1] == sorted(["https://www.site.org/p/?utm_source=feed", "https://site.org/q",
                                               "http://other.net/x", "https://site.org/r",
                                               "https://site.org/q?page=2"])


def test_keep_latest_keeps_the_most_recent_capture(capsys: Any, tmp_path: Path) -> None:
    dates = ["2024-01-01T00:00:00Z", "2024-03-01T00:00:00Z", "2024-02-01T00:00:00Z"]
    _write_warc(tmp_path / "a.warc.gz", [{"url": "https://site.org/p", **_html(f"{BODY} {d}"),
                                          "warc_headers": {"WARC-Date": d}} for d in dates])
    code, out, _ = _run(capsys, tmp_path, [{"path": "a.warc.gz"}], {"keep": "latest"})
    assert code == 0
    assert [d["date"] for d in kept(out)] == ["2024-03-01T00:00:00Z"]


def test_blocklisted_domains_and_their_subdomains_and_url_patterns_are_removed(capsys: Any, tmp_path: Path) -> None:
    (tmp_path / "block.txt").write_text("# a UT1-style list\nads.example\n0.0.0.0 tracker.net  # hosts-file line\n"
                                        "*.spam.org\n", encoding="utf-8")
    urls = ["https://ads.example/a", "https://www.cdn.ads.example/b", "http://tracker.net/c", "https://x.spam.org/d",
            "https://notads.example/e", "https://good.org/login?next=/", "https://good.org/article"]
    _write_warc(tmp_path / "a.warc.gz", [{"url": u, **_html()} for u in urls])
    code, out, _ = _run(capsys, tmp_path, [{"path": "a.warc.gz"}], {"blocklist": "block.txt",
                                                                 "patterns": [r"/login\b"]})
    assert code == 0
    assert sorted(d["url"] for d in kept(out)) == ["https://good.org/article", "https://notads.example/e"]
    reasons = {d["url"]: d["reason"] for d in removed(out, "url_filter")}
    assert reasons == {**{u: "url_blocklisted" for u in urls[:4]}, "https://good.org/login?next=/": "url_pattern"}


def test_a_blocklisted_capture_does_not_win_dedup_over_a_kept_one(capsys: Any, tmp_path: Path) -> None:
    _write_warc(tmp_path / "a.warc.gz", [{"url": u, **_html()} for u in
                                         ["https://good.org/a?admin=1", "https://good.org/a?admin=1&utm_id=4"]])
    code, out, _ = _run(capsys, tmp_path, [{"path": "a.warc.gz"}], {"patterns": [r"utm_id"]})
    assert code == 0
    assert [d["url"] for d in kept(out)] == ["https://good.org/a?admin=1"]
    assert [d["reason"] for d in removed(out, "url_filter")] == ["url_pattern"]


def test_documents_without_a_url_pass_untouched(capsys: Any, tmp_path: Path) -> None:
    (tmp_path / "a.jsonl").write_text(json.dumps({"text": "no url here"}) + "\n", encoding="utf-8")
    code, out, _ = _run(capsys, tmp_path, [{"path": str(SAMPLES[1])}, {"path": "a.jsonl", "domain": "notes"}], {})
    assert code == 0
    notes = [d for d in kept(out) if d["domain"] == "notes"]
    assert len(notes) == 1 and notes[0]["url_copies"] is None and notes[0]["url_duplicate_of"] is None


def test_a_recipe_without_urls_a_bad_regex_or_a_missing_blocklist_is_refused(capsys: Any, tmp_path: Path) -> None:
    (tmp_path / "a.jsonl").write_text(json.dumps({"text": "x"}) + "\n", encoding="utf-8")
    code, _, err = _run(capsys, tmp_path, [{"path": "a.jsonl"}], {})
    assert code == 2 and "steps[0].url_filter: no column 'url'" in err and "url_field" in err
    code, _, err = _run(capsys, tmp_path, [{"path": str(SAMPLES[1])}], {"patterns": ["(unclosed"]})
    assert code == 2 and "patterns[0] '(unclosed' is not a valid regex" in err
    code, _, err = _run(capsys, tmp_path, [{"path": str(SAMPLES[1])}], {"blocklist": "missing.txt"})
    assert code == 2 and "missing.txt" in err


def test_blocklist_files_accept_plain_hosts_file_and_wildcard_lines(tmp_path: Path) -> None:
    f = tmp_path / "b.txt"
    f.write_text("a.com\n\n# comment\n127.0.0.1 b.com\n*.c.com\n.d.com\nwww.e.com.\n", encoding="utf-8")
    assert read_blocklist(f) == {"a.com", "b.com", "c.com", "d.com", "e.com"}


def test_url_field_gives_jsonl_and_parquet_records_a_url_that_url_filter_filters(capsys: Any, tmp_path: Path) -> None:
    page = "A page of text long enough to be a document."
    c4 = [{"text": page, "url": "https://site.org/a?utm_source=x", "timestamp": "2019-04-25T12:57:54Z"},
          {"text": page, "url": "https://ads.example/b"},
          {"text": page}]
    (tmp_path / "c4.jsonl").write_text("".join(json.dumps(r) + "\n" for r in c4), encoding="utf-8")
    (tmp_path / "bad.jsonl").write_text(json.dumps({"text": page, "url": "https://site.org/c"}) + "\n{broken\n",
                                        encoding="utf-8")  # read line by line, not by Arrow
    pq.write_table(pa.table({"content": [page, page], "url": ["http://www.site.org/a/", "https://site.org/c"]}),
                   tmp_path / "refinedweb.parquet")
    (tmp_path / "block.txt").write_text("ads.example\n", encoding="utf-8")
    sources = [{"path": "c4.jsonl", "url_field": "url"}, {"path": "bad.jsonl", "url_field": "url"},
               {"path": "refinedweb.parquet", "text_field": "content", "url_field": "url"}]
    code, out, _ = _run(capsys, tmp_path, sources, {"blocklist": "block.txt"})
    assert code == 0
    assert sorted(str(d["url"]) for d in kept(out)) == ["None", "https://site.org/a?utm_source=x",
                                                        "https://site.org/c"]
    reasons = {d["url"]: d["reason"] for d in removed(out, "url_filter")}
    assert reasons == {"https://ads.example/b": "url_blocklisted", "http://www.site.org/a/": "duplicate_url",
                       "https://site.org/c": "duplicate_url"}


def test_url_field_is_refused_for_a_warc_source(capsys: Any, tmp_path: Path) -> None:
    code, _, err = _run(capsys, tmp_path, [{"path": str(SAMPLES[1]), "url_field": "url"}], {})
    assert code == 2 and "url_field does not apply to format warc" in err


def test_a_file_none_of_whose_records_has_the_url_field_is_a_warning(capsys: Any, tmp_path: Path) -> None:
    (tmp_path / "a.jsonl").write_text(json.dumps({"text": "a page", "URL": "https://site.org/a"}) + "\n",
                                      encoding="utf-8")
    code, out, err = _run(capsys, tmp_path, [{"path": "a.jsonl", "url_field": "url"}], {})
    assert code == 0 and [d["url"] for d in kept(out)] == [None]
    assert "a.jsonl: no record has a string at url_field 'url': its documents have no url" in err
