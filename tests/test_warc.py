"""`format: warc` and `format: wet`: Common Crawl's archives read record by record, on dolma's real WARC samples and
on crafted damaged files; every record read is a document or an error naming its record id."""

from __future__ import annotations

import gzip
import io
import json
import random
from pathlib import Path
from typing import Any

import pyarrow.parquet as pq
import pytest
from warcio.statusandheaders import StatusAndHeaders
from warcio.warcwriter import WARCWriter

from curate.warc import RecordTally, decode_html, read_records
from tests.conftest import ROOT, SHARED_DATA, kept, run_curate

WEB = SHARED_DATA / "corpus" / "web"
SAMPLES = sorted(p.resolve() for p in (list(WEB.glob("sample-000*.warc.gz"))
                                         or (ROOT / "recipes/data/common_crawl").glob("*.warc.gz")))
"""resolved, as ids and messages name them (../shared may be a symbolic link)"""
"""dolma's two WARC samples (the recipe's copies are the same bytes: recipes/data/common_crawl/README.md)"""
PAGE = ("<html><head><title>t</title></head><body><nav><a href='/'>Home</a> <a href='/about'>About</a></nav>"
        "<article><h1>A real article</h1><p>{}</p><p>The second paragraph says more about the same subject, in "
        "plain words that any reader can follow from start to end.</p></article><footer>Copyright 2024</footer>"
        "</body></html>")
BODY = ("This is the main text of the page, a paragraph long enough for an extractor to keep it as the content of "
        "the page rather than as navigation or boilerplate around it.")


def _write_warc(path: Path, records: list[dict[str, Any]]) -> Path:
    """A .warc.gz (gzip per record) of ``records``: {url, type (response), status, headers, body, warc_headers}."""
    with open(path, "wb") as f:
        w = WARCWriter(f, gzip=True)
        for r in records:
            kind = r.get("type", "response")
            http = None
            if kind in ("response", "request"):
                http = StatusAndHeaders(r.get("status", "200 OK"), r.get("headers", []), protocol="HTTP/1.1",
                                        is_http_request=kind == "request")
            w.write_record(w.create_warc_record(r["url"], kind, payload=io.BytesIO(r.get("body", b"")),
                                                http_headers=http, warc_headers_dict=r.get("warc_headers")))
    return path


def _html(text: str = BODY, charset: str = "utf-8") -> dict[str, Any]:
    return {"headers": [("Content-Type", f"text/html; charset={charset}")], "body": PAGE.format(text).encode(charset)}


def _run(capsys: Any, tmp_path: Path, source: dict[str, Any], *args: str) -> tuple[int, Path, str]:
    """``curate run`` of one source: the exit code, the output directory and stderr."""
    out = tmp_path / "out"
    recipe = {"name": "t", "sources": [{"domain": "web", **source}], "steps": ["normalize"],
              "output": {"dir": str(out)}, "executor": {"workers": 1}}
    path = tmp_path / "r.yaml"
    path.write_text(json.dumps(recipe), encoding="utf-8")
    code, err = run_curate(capsys, "run", path, *args)
    return code, out, err


def _errors(out: Path) -> list[dict[str, Any]]:
    rows: list[dict[str, Any]] = []
    for f in sorted((out / "errors").glob("*.parquet")):
        rows += pq.read_table(f).to_pylist()
    return rows


def _accounting(out: Path) -> dict[str, Any]:
    return json.loads((out / "manifest.json").read_text())["accounting"]


def test_real_warc_pages_become_documents_with_url_date_record_id_and_charset(capsys: Any, tmp_path: Path) -> None:
    code, out, _ = _run(capsys, tmp_path, {"path": [str(p) for p in SAMPLES]})  # format inferred from .warc.gz
    assert code == 0
    acc = _accounting(out)
    assert acc["balanced"] and acc["read"] == acc["kept"] + acc["removed_total"] + acc["errored"]
    docs = kept(out)
    assert len(docs) == 37  # the 37 HTML responses of the two files; requests and warcinfo are not records read
    assert all(d["url"].startswith("https://") and d["date"].startswith("2024-04-25T") for d in docs)
    assert all(d["warc_record_id"].startswith("<urn:uuid:") and d["charset"] == "utf-8" for d in docs)
    page = next(d for d in docs if d["url"] == "https://soldaini.net/")
    assert "Luca Soldaini" in page["text"] and "<" not in page["text"]
    assert page["id"] == f"{SAMPLES[0]}:24881"  # <file>:<byte offset of the record>
    errors = _errors(out)
    assert [e["kind"] for e in errors] == ["not_html"] * 4  # wget's log files, stored as text/plain resources
    assert all(e["location"].startswith("record <urn:uuid:") for e in errors)


def test_a_truncated_record_is_an_error_with_its_record_id_and_the_records_before_it_are_kept(
        capsys: Any, tmp_path: Path) -> None:
    cut = tmp_path / "cut.warc.gz"
    cut.write_bytes(SAMPLES[0].read_bytes()[:150_000])  # inside the response record at byte 148,743
    code, out, _ = _run(capsys, tmp_path, {"path": str(cut)})
    assert code == 0
    acc = _accounting(out)
    assert acc["balanced"] and (acc["read"], acc["kept"], acc["errored"]) == (21, 20, 1)
    (err,) = _errors(out)
    assert err["kind"] == "truncated_record"
    assert "<urn:uuid:993CB2D7-BC21-4635-A922-6962E287AD25>" in err["location"] and "148,743" in err["location"]


def test_a_truncated_record_stops_the_run_under_on_error_fail(capsys: Any, tmp_path: Path) -> None:
    cut = tmp_path / "cut.warc.gz"
    cut.write_bytes(SAMPLES[0].read_bytes()[:150_000])
    code, _, _ = _run(capsys, tmp_path, {"path": str(cut), "on_error": "fail"})
    assert code == 1


def test_non_html_redirect_and_undecodable_pages_go_to_errors_and_the_accounting_adds_up(
        capsys: Any, tmp_path: Path) -> None:
    bad_utf8 = PAGE.format(BODY).encode().replace(b"main text", b"main \xff\xfe\x81 text")
    warc = _write_warc(tmp_path / "crafted.warc.gz", [
        {"url": "http://example.com/", "type": "request", "headers": [("Host", "example.com")]},
        {"url": "http://example.com/", **_html()},
        {"url": "http://example.com/paper.pdf", "headers": [("Content-Type", "application/pdf")],
         "body": b"%PDF-1.4 binary"},
        {"url": "http://example.com/old", "status": "301 Moved Permanently",
         "headers": [("Location", "http://example.com/"), ("Content-Type", "text/html")], "body": b"moved"},
        {"url": "http://example.com/bad", "headers": [("Content-Type", "text/html; charset=utf-8")],
         "body": bad_utf8},
        {"url": "http://example.com/empty", **_html(""), "body": b"<html><body><p> </p></body></html>"},
    ])
    code, out, _ = _run(capsys, tmp_path, {"path": str(warc), "format": "warc"})
    assert code == 0
    acc = _accounting(out)
    assert acc["balanced"] and (acc["read"], acc["kept"], acc["errored"]) == (5, 1, 4)
    assert [d["url"] for d in kept(out)] == ["http://example.com/"]
    kinds = {e["kind"]: e for e in _errors(out)}
    assert set(kinds) == {"not_html", "http_status", "bad_encoding", "no_text"}
    assert "application/pdf" in kinds["not_html"]["error"] and "301" in kinds["http_status"]["error"]
    assert "utf-8" in kinds["bad_encoding"]["error"]
    assert all(e["location"].startswith("record <urn:uuid:") for e in kinds.values())


def test_the_charset_of_a_meta_tag_decodes_a_page_whose_header_names_none(tmp_path: Path) -> None:
    text = "Это основной текст страницы, достаточно длинный абзац, чтобы экстрактор сохранил его как содержание."
    body = PAGE.format(text).replace("<head>", "<head><meta charset=\"windows-1251\">").encode("cp1251")
    warc = _write_warc(tmp_path / "ru.warc.gz", [{"url": "http://example.ru/", "body": body,
                                                   "headers": [("Content-Type", "text/html")]}])
    with open(warc, "rb") as f:
        (doc,) = read_records(f, "warc")
    assert doc.charset == "cp1251" and text in doc.text


RU = "Ёжик в тумане. Это очень хороший мультфильм, который смотрели все дети в нашей стране много лет назад."
"""Russian whose UTF-8 holds byte 0x81 (Ё is D0 81), undefined in windows-1252"""


@pytest.mark.parametrize("text, label", [
    ("Café résumé naïve.", "iso-8859-1"),
    (RU, "iso-8859-1"),
    (RU, "windows-1252"),
    ("naïve “quotes”", "us-ascii"),
    ("これは日本語の文章です。図書館の予算について委員会が話し合いました。", "shift_jis"),
    ("naïve “quotes”", "utf-16-le-not-a-charset"),
])
def test_a_utf8_page_reads_as_utf8_whatever_its_label(text: str, label: str) -> None:
    assert decode_html(PAGE.format(text).encode(), label) == (PAGE.format(text), "utf-8")


def test_latin1_labels_read_as_windows_1252_and_ascii_bytes_keep_their_label() -> None:
    assert decode_html("caf\xe9 \u20ac".encode("cp1252"), "iso-8859-1") == ("café €", "cp1252")
    assert decode_html(b"caf\xe9 \x81", "iso-8859-1") == ("caf\xe9 \x81", "cp1252")  # undefined: C1, as browsers
    assert decode_html(PAGE.format(BODY).encode(), "iso-8859-1") == (PAGE.format(BODY), "cp1252")


@pytest.mark.parametrize("extra", ["", "x"])  # an even and an odd number of bytes
def test_a_utf16_label_on_ascii_bytes_reads_as_utf8(extra: str) -> None:
    html = PAGE.format(BODY + extra)
    assert decode_html(html.encode(), "utf-16") == (html, "utf-8")
    meta = html.replace("<head>", '<head><meta charset="utf-16">')
    assert decode_html(meta.encode(), None) == (meta, "utf-8")


def test_utf16_bytes_without_a_byte_order_mark_read_in_their_label() -> None:
    html = PAGE.format(RU)
    assert decode_html(html.encode("utf-16-le"), "utf-16") == (html, "utf-16")


def test_a_page_declared_utf8_in_another_charset_is_read_in_the_detected_one() -> None:
    html = PAGE.format(RU + " " + RU)
    assert decode_html(html.encode("cp1251"), "utf-8") == (html, "cp1251")


def test_bytes_no_charset_reads_raise_a_message_naming_the_declared_one() -> None:
    with pytest.raises(UnicodeError, match=r"not valid UTF-8 \(declared in the HTTP header\) at byte 3"):
        decode_html(b"caf\xe9 \x81", "utf-8")


def test_binary_data_labelled_html_is_not_html(tmp_path: Path) -> None:
    noise = random.Random(0).randbytes(5000)
    warc = _write_warc(tmp_path / "bin.warc.gz", [
        {"url": f"http://example.com/{i}", "headers": [("Content-Type", "text/html; charset=utf-8")], "body": body}
        for i, body in enumerate([noise, noise.replace(b"\x00", b"")])])
    with open(warc, "rb") as f:
        errors = list(read_records(f, "warc"))
    assert [e.kind for e in errors] == ["not_html", "not_html"]
    assert "NUL byte" in errors[0].message and "control byte" in errors[1].message


def test_the_mislabelled_pages_of_a_warc_keep_their_text_and_charset(tmp_path: Path) -> None:
    pages = {"latin1": (PAGE.format("Café résumé naïve. " + BODY).encode(), "iso-8859-1", "utf-8"),
             "ru": (PAGE.format(RU).encode(), "iso-8859-1", "utf-8"),
             "cp1251": (PAGE.format(RU + " " + RU).encode("cp1251"), "utf-8", "cp1251"),
             "utf16": (PAGE.format(BODY).encode(), "utf-16", "utf-8")}
    warc = _write_warc(tmp_path / "mislabelled.warc.gz", [
        {"url": f"http://example.com/{k}", "headers": [("Content-Type", f"text/html; charset={label}")], "body": body}
        for k, (body, label, _) in pages.items()])
    with open(warc, "rb") as f:
        docs = {d.url.rsplit("/", 1)[1]: d for d in read_records(f, "warc")}
    assert {k: d.charset for k, d in docs.items()} == {k: v[2] for k, v in pages.items()}
    assert "Café résumé" in docs["latin1"].text and RU in docs["ru"].text and RU in docs["cp1251"].text


def test_gzip_and_chunked_bodies_are_decoded(tmp_path: Path) -> None:
    html = PAGE.format(BODY).encode()
    gz = gzip.compress(html)
    chunked = b"".join(b"%x\r\n%s\r\n" % (len(c), c) for c in (gz[:100], gz[100:])) + b"0\r\n\r\n"
    warc = _write_warc(tmp_path / "enc.warc.gz", [{"url": "http://example.com/", "body": chunked, "headers": [
        ("Content-Type", "text/html; charset=utf-8"), ("Content-Encoding", "gzip"), ("Transfer-Encoding", "chunked")]}])
    with open(warc, "rb") as f:
        (doc,) = read_records(f, "warc")
    assert BODY in doc.text


def test_wet_conversion_records_are_documents(capsys: Any, tmp_path: Path) -> None:
    wet = _write_warc(tmp_path / "x.warc.wet.gz", [
        {"url": "http://example.com/a", "type": "conversion", "body": "First page text.\nSecond line.".encode(),
         "warc_headers": {"Content-Type": "text/plain"}},
        {"url": "http://example.com/b", "type": "conversion", "body": b"   ",
         "warc_headers": {"Content-Type": "text/plain"}},
    ])
    code, out, _ = _run(capsys, tmp_path, {"path": str(wet)})  # format wet inferred from .warc.wet.gz
    assert code == 0
    (doc,) = kept(out)
    assert (doc["url"], doc["text"], doc["charset"]) == ("http://example.com/a", "First page text.\nSecond line.",
                                                         "utf-8")
    assert [e["kind"] for e in _errors(out)] == ["no_text"]


def test_a_file_that_is_not_warc_is_one_file_error(capsys: Any, tmp_path: Path) -> None:
    bad = tmp_path / "bad.warc.gz"
    bad.write_bytes(gzip.compress(b"this is not a WARC record\r\n\r\n"))
    code, out, _ = _run(capsys, tmp_path, {"path": str(bad)})
    assert code == 0
    (err,) = _errors(out)
    assert (err["location"], err["kind"]) == ("file", "corrupt_file")


def test_documents_of_other_sources_have_null_web_columns(capsys: Any, tmp_path: Path) -> None:
    (tmp_path / "a.jsonl").write_text(json.dumps({"text": "a plain document"}) + "\n", encoding="utf-8")
    recipe = {"name": "t", "sources": [{"path": str(SAMPLES[1]), "domain": "web"},
                                       {"path": "a.jsonl", "domain": "other"}],
              "steps": ["normalize"], "output": {"dir": str(tmp_path / "out")}, "executor": {"workers": 2}}
    path = tmp_path / "r.yaml"
    path.write_text(json.dumps(recipe), encoding="utf-8")
    assert run_curate(capsys, "run", path)[0] == 0
    docs = kept(tmp_path / "out")
    other = [d for d in docs if d["domain"] == "other"]
    assert len(other) == 1 and other[0]["url"] is None and other[0]["warc_record_id"] is None
    assert len(docs) == 16


def test_text_field_is_refused_for_a_warc_source(capsys: Any, tmp_path: Path) -> None:
    code, _, _ = _run(capsys, tmp_path, {"path": str(SAMPLES[0]), "text_field": "body"})
    assert code == 2


def test_resiliparse_extracts_the_same_pages(tmp_path: Path) -> None:
    with open(SAMPLES[1], "rb") as f:
        docs = [r for r in read_records(f, "warc", extractor="resiliparse") if hasattr(r, "text")]
    assert len(docs) == 15 and any("Creative Commons" in d.text for d in docs)


def test_the_shipped_common_crawl_recipe_runs_every_step_on_its_own_data(capsys: Any, tmp_path: Path,
                                                                          quickstart_lm: Path) -> None:
    import yaml

    recipe = ROOT / "recipes" / "common_crawl.yaml"
    steps = [next(iter(s)) if isinstance(s, dict) else s for s in yaml.safe_load(recipe.read_text())["steps"]]
    assert {"url_filter", "langid", "quality", "minhash_dedup", "perplexity"} <= set(steps)
    out = tmp_path / "cc"
    code, _ = run_curate(capsys, "run", recipe, f"steps[{steps.index('perplexity')}].perplexity.models.en="
                         f"{quickstart_lm}", "--output", out)
    assert code == 0
    acc = _accounting(out)
    assert acc["balanced"] and acc["read"] == 41 and acc["errored"] == 4 and acc["kept"] > 0
    assert acc["removed"]["url_filter"] == {"duplicate_url": 2}
    docs = kept(out)
    assert all(d["url"] and d["ppl"] is not None and d["lang"] == "en" for d in docs)
    assert (out / "card.md").is_file()



def test_a_warc_read_as_wet_warns_that_its_response_records_were_skipped(capsys: Any, tmp_path: Path) -> None:
    code, out, err = _run(capsys, tmp_path, {"path": str(SAMPLES[1]), "format": "wet"})
    assert code == 0 and _accounting(out)["read"] == 0
    assert f"{SAMPLES[1]}: no document: 15 response records, 2 resource records skipped: format wet reads " \
           "conversion records; use format: warc" in err


def test_each_file_that_gives_no_document_is_one_warning_saying_why(capsys: Any, tmp_path: Path) -> None:
    (tmp_path / "empty.warc.gz").write_bytes(b"")
    _write_warc(tmp_path / "requests.warc.gz", [{"url": f"http://example.com/{i}", "type": "request",
                                                 "headers": [("Host", "example.com")]} for i in range(3)])
    _write_warc(tmp_path / "pdfs.warc.gz", [{"url": "http://example.com/a.pdf", "body": b"%PDF-1.4",
                                             "headers": [("Content-Type", "application/pdf")]}])
    _write_warc(tmp_path / "good.warc.gz", [{"url": "http://example.com/", **_html()}])
    code, out, err = _run(capsys, tmp_path, {"path": "*.warc.gz"})
    assert code == 0 and len(kept(out)) == 1
    warnings = sorted(line for line in err.splitlines() if ": no document: " in line)
    assert warnings == ["empty.warc.gz: no document: no records (an empty file)",
                        "pdfs.warc.gz: no document: its one record read is an error (1 not_html; see errors/)",
                        "requests.warc.gz: no document: no response or resource record, only 3 request records"]


def test_warcio_warnings_stay_off_the_terminal_and_go_to_the_run_log(capsys: Any, tmp_path: Path) -> None:
    plain = tmp_path / "plain.warc.gz"
    plain.write_bytes(b"just some plain text, not gzipped\n" * 100)
    code, out, err = _run(capsys, tmp_path, {"path": str(plain)})
    assert code == 0 and "Record not followed by newline" not in err
    assert "warcio: WARNING: Record not followed by newline" in (out / "logs" / "run.log").read_text()
    (error,) = _errors(out)
    assert (error["location"], error["kind"]) == ("file", "corrupt_file")


def test_a_warc_gzipped_as_one_stream_is_a_one_line_error_saying_how_to_recompress(capsys: Any,
                                                                                  tmp_path: Path) -> None:
    buf = io.BytesIO()
    writer = WARCWriter(buf, gzip=False)
    for i in range(3):
        body = PAGE.format(f"{BODY} {i}").encode()
        writer.write_record(writer.create_warc_record(f"http://example.com/{i}", "response",
                                                      payload=io.BytesIO(body), http_headers=StatusAndHeaders(
                                                          "200 OK", [("Content-Type", "text/html")],
                                                          protocol="HTTP/1.1")))
    whole = tmp_path / "whole.warc.gz"
    whole.write_bytes(gzip.compress(buf.getvalue()))
    code, out, err = _run(capsys, tmp_path, {"path": str(whole)})
    assert code == 0 and len(kept(out)) == 1  # the records before the error are kept, as for any broken file
    (error,) = _errors(out)
    assert error["kind"] == "corrupt_file" and "\n" not in error["error"]
    assert error["error"].startswith("gzipped as one stream, not per record") and "warcio recompress" in error["error"]


def test_extractor_is_refused_for_a_source_that_is_not_warc(capsys: Any, tmp_path: Path) -> None:
    (tmp_path / "a.jsonl").write_text(json.dumps({"text": "a plain document"}) + "\n", encoding="utf-8")
    code, _, err = _run(capsys, tmp_path, {"path": "a.jsonl", "extractor": "resiliparse"})
    assert code == 2 and "extractor applies to format warc only" in err and "sources[0]" in err


def test_a_corrupt_gzip_member_is_an_error_saying_so_and_nothing_reaches_the_terminal(capsys: Any) -> None:
    data = bytearray(SAMPLES[1].read_bytes())
    data[60_000:60_400] = bytes(b ^ 0x5A for b in data[60_000:60_400])
    tally = RecordTally()
    records = list(read_records(io.BytesIO(bytes(data)), "warc", tally=tally))
    assert records[-1].kind == "truncated_record" and "a gzip member is corrupt" in records[-1].message
    assert tally.documents == len(records) - 1 and tally.warnings
    assert capsys.readouterr().err == ""
