"""Code curated as code: `line_dedup` leaves code files whole unless asked, and `code_quality` judges code files by
LLaMA's and StarCoder's heuristics (one rule per test), noting licence headers."""

from __future__ import annotations

import ast
import base64
import json
import random
from pathlib import Path
from typing import Any

import pyarrow as pa
import pytest
import yaml

from curate.cli import main
from curate.steps.base import StepContext
from curate.steps.code_quality import CodeQuality, CodeQualityParams, is_code_file, licence_of
from tests.conftest import kept

FILES = {
    "a.py": "import os\nimport sys\n\n\ndef list_files(path):\n    result = []\n    for name in os.listdir(path):\n"
            "        if name.endswith('.txt'):\n            result.append(name)\n        else:\n            continue\n"
            "    return result\n\n\nif __name__ == '__main__':\n    print(list_files(sys.argv[1]))\n",
    "b.py": "import os\nimport sys\n\n\ndef list_dirs(path):\n    result = []\n    for name in os.listdir(path):\n"
            "        if os.path.isdir(name):\n            result.append(name)\n        else:\n            continue\n"
            "    return result\n\n\nif __name__ == '__main__':\n    print(list_dirs(sys.argv[1]))\n",
    "c.py": "import os\nimport sys\n\n\ndef sizes(paths):\n    result = []\n    for p in paths:\n"
            "        result.append(os.path.getsize(p))\n    return result\n\n\nif __name__ == '__main__':\n"
            "    print(sizes(sys.argv[1:]))\n",
}
PROSE = ["Cookie notice: we use cookies on this site.\n" + f"This article tells a story of its own about {topic}, with "
         "enough words in it to stay a document after the shared line goes." for topic in ("rivers", "bread", "kites")]


def _recipe(tmp_path: Path, line_dedup: dict[str, Any], code_as: str = "txt") -> Path:
    (tmp_path / "code").mkdir(exist_ok=True)
    if code_as == "txt":
        for name, text in FILES.items():
            (tmp_path / "code" / name).write_text(text, encoding="utf-8")
        code = {"path": "code/*.py", "format": "txt", "domain": "code"}
    else:
        (tmp_path / "code" / "files.jsonl").write_text(
            "".join(json.dumps({"text": t}) + "\n" for t in FILES.values()), encoding="utf-8")
        code = {"path": "code/files.jsonl", "format": "jsonl", "domain": "code"}
    (tmp_path / "web.jsonl").write_text("".join(json.dumps({"text": t}) + "\n" for t in PROSE), encoding="utf-8")
    spec = {"name": "t", "sources": [code, {"path": "web.jsonl", "format": "jsonl", "domain": "web"}],
            "steps": [{"line_dedup": line_dedup}], "output": {"dir": str(tmp_path / "out")},
            "executor": {"workers": 1}}
    path = tmp_path / "recipe.yaml"
    path.write_text(yaml.safe_dump(spec, sort_keys=False), encoding="utf-8")
    return path


def _run(path: Path) -> list[dict[str, Any]]:
    assert main(["--quiet", "run", str(path), "--fresh"]) == 0
    return kept(path.parent / "out")


def _code_docs(rows: list[dict[str, Any]]) -> list[dict[str, Any]]:
    return [r for r in rows if r["domain"] == "code"]


def test_line_dedup_leaves_code_files_whole_so_they_still_parse(tmp_path: Path) -> None:
    rows = _run(_recipe(tmp_path, {}))
    code = _code_docs(rows)
    assert sorted(r["text"] for r in code) == sorted(t.strip("\n") for t in FILES.values())
    for r in code:
        ast.parse(r["text"])
        assert r["line_dedup_code"] is True and r["dup_lines_removed"] is None


def test_line_dedup_still_cuts_repeated_lines_out_of_prose_next_to_code(tmp_path: Path) -> None:
    web = [r for r in _run(_recipe(tmp_path, {})) if r["domain"] == "web"]
    assert all("Cookie notice" not in r["text"] for r in web)
    assert [r["dup_lines_removed"] for r in web] == [1, 1, 1]
    assert [r["line_dedup_code"] for r in web] == [False] * 3


def test_line_dedup_counts_the_code_documents_it_left_whole_in_its_stats(tmp_path: Path) -> None:
    path = _recipe(tmp_path, {})
    _run(path)
    stats = json.loads((tmp_path / "out" / "stats" / "line_dedup.json").read_text())
    assert stats["notes"] == {"code_documents_left_whole": len(FILES)}


def test_line_dedup_on_code_domains_leaves_code_read_from_jsonl_whole(tmp_path: Path) -> None:
    code = _code_docs(_run(_recipe(tmp_path, {"code_domains": ["code"]}, code_as="jsonl")))
    assert sorted(r["text"] for r in code) == sorted(t.strip("\n") for t in FILES.values())


def test_line_dedup_cuts_lines_out_of_code_only_when_the_recipe_opts_in(tmp_path: Path) -> None:
    code = _code_docs(_run(_recipe(tmp_path, {"code": True})))
    assert all(r["dup_lines_removed"] > 0 for r in code)
    assert "import os" not in code[0]["text"]


def test_plan_warns_that_code_in_line_dedups_scope_is_left_whole(tmp_path: Path, capsys: Any) -> None:
    assert main(["validate", str(_recipe(tmp_path, {}))]) == 0
    err = capsys.readouterr().err
    assert "steps[0].line_dedup: code (3 code files) in its scope: code documents are left whole" in err


def test_plan_warns_when_line_dedup_is_told_to_cut_lines_out_of_code(tmp_path: Path, capsys: Any) -> None:
    assert main(["validate", str(_recipe(tmp_path, {"code": True}))]) == 0
    assert "code: true cuts repeated lines out of code files of code (3 code files)" in capsys.readouterr().err


def test_plan_says_nothing_when_line_dedup_is_limited_to_prose_domains(tmp_path: Path, capsys: Any) -> None:
    assert main(["validate", str(_recipe(tmp_path, {"domains": ["web"]}))]) == 0
    assert "line_dedup" not in capsys.readouterr().err


def test_code_domains_naming_an_unknown_domain_is_a_config_error(tmp_path: Path, capsys: Any) -> None:
    assert main(["validate", str(_recipe(tmp_path, {"code_domains": ["kode"]}))]) == 2
    assert "steps[0].line_dedup: code_domains: unknown domain 'kode'" in capsys.readouterr().err


def test_code_files_are_known_by_extension_or_name_and_containers_are_not() -> None:
    assert [is_code_file(n) for n in ("src/x.py", "lib/Y.JAVA", "Makefile", "build/Dockerfile", "a.rs")] == [True] * 5
    assert [is_code_file(n) for n in ("web.jsonl", "dump.json", "notes.txt", "README.md", "page.html")] == [False] * 5


# -- code_quality ---------------------------------------------------------------------------------------------------
GOOD = FILES["a.py"]


def _judge(texts: list[str], sources: list[str] | None = None, **params: Any) -> tuple[pa.Table, list[str | None]]:
    sources = sources or [f"f{i}.py" for i in range(len(texts))]
    step = CodeQuality(CodeQualityParams(**params), StepContext(seed=0, partitions=1))
    batch = step.annotate(pa.table({"text": texts, "source": sources, "domain": ["code"] * len(texts)}))
    return batch, step.decide(batch).to_pylist()


def _minified_js() -> str:
    rng = random.Random(0)
    parts = [f"function {c}{i}(a,b){{return a.{c}?b[{i}]:a+b}}var x{i}=document.getElementById(\"n{i}\");"
             for i, c in ((i, rng.choice("abcdefgh")) for i in range(60))]
    return "!function(){" + "".join(parts) + "}();\n"


def test_ordinary_code_passes_every_rule() -> None:
    _, why = _judge([GOOD, FILES["b.py"]])
    assert why == [None, None]


def test_auto_generated_files_are_removed() -> None:
    text = "# Code generated by protoc-gen-go. DO NOT EDIT.\n# source: api.proto\n\n" + GOOD
    batch, why = _judge([text])
    assert batch["code_auto_generated"][0].as_py() is True and why == ["auto_generated"]


def test_an_auto_generated_marker_below_the_header_lines_does_not_count() -> None:
    _, why = _judge(["\n" * 10 + "# this file is auto-generated\n" + GOOD])
    assert why == [None]


def test_a_long_base64_blob_is_encoded_data() -> None:
    blob = base64.b64encode(random.Random(1).randbytes(3000)).decode()
    text = GOOD + f'\nICON = (\n    "{blob}"\n)\n'
    batch, why = _judge([text])
    assert batch["code_longest_encoded"][0].as_py() > 1024 and why == ["encoded_data"]


def test_files_mostly_of_numeric_data_lines_are_removed() -> None:
    rows = "\n".join(", ".join(f"{random.Random(i).random():.6f}" for _ in range(8)) + "," for i in range(80))
    batch, why = _judge([f"WEIGHTS = [\n{rows}\n]\n"])
    assert batch["code_data_fraction"][0].as_py() > 0.9 and why == ["data_lines"]


def test_a_code_file_with_a_list_of_numbers_one_per_line_is_not_data() -> None:
    text = GOOD + "\nPRIMES = [\n" + "".join(f"    {p},\n" for p in (2, 3, 5, 7, 11, 13, 17, 19, 23, 29)) + "]\n"
    _, why = _judge([text * 3])
    assert why == [None]


def test_minified_javascript_is_removed_as_minified() -> None:
    batch, why = _judge([_minified_js()], sources=["vendor/lib.min.js"])
    assert batch["code_minified_fraction"][0].as_py() > 0.9 and why == ["minified"]


def test_a_line_over_the_maximum_length_removes_the_file() -> None:
    text = GOOD + "MESSAGE = '" + " ".join(["a readable sentence of words"] * 40) + "'\n"
    _, why = _judge([text])
    assert why == ["max_line_length"]


def test_a_long_mean_line_length_removes_the_file() -> None:
    line = "value = compute(" + ", ".join(f"argument_{i}" for i in range(10)) + ")  # a comment"
    _, why = _judge(["\n".join([line] * 20)])
    assert why == ["avg_line_length"]


def test_a_low_alphanumeric_share_removes_the_file() -> None:
    batch, why = _judge(["\n".join(["# " + "=-" * 30, "x = 1", "#" * 60] * 10)])
    assert batch["code_alnum_fraction"][0].as_py() < 0.25 and why == ["alnum_fraction"]


def test_a_rule_set_to_null_is_off() -> None:
    _, why = _judge([_minified_js()], max_minified_fraction=None, max_line_length=None, max_avg_line_length=None)
    assert why == [None]


def test_prose_documents_pass_through_with_null_annotations() -> None:
    batch, why = _judge(["Not code at all, " * 200 + "\n", GOOD], sources=["web.jsonl", "a.py"])
    assert why == [None, None]
    assert batch["code_max_line_length"].to_pylist()[0] is None
    assert batch["code_max_line_length"].to_pylist()[1] == max(len(x) for x in GOOD.split("\n"))


def test_documents_of_code_domains_are_judged_whatever_their_source() -> None:
    _, why = _judge([_minified_js()], sources=["files.jsonl"], code_domains=["code"])
    assert why == ["minified"]


@pytest.mark.parametrize("header,spdx", [
    ("# SPDX-License-Identifier: Apache-2.0 OR MIT", "Apache-2.0 OR MIT"),
    ("# Permission is hereby granted, free of charge, to any person obtaining a copy", "MIT"),
    ("# Licensed under the Apache License, Version 2.0 (the \"License\");", "Apache-2.0"),
    ("# under the terms of the GNU General Public License as published by the Free Software Foundation, either\n"
     "# version 3 of the License, or (at your option) any later version.", "GPL-3.0-or-later"),
    ("# Redistribution and use in source and binary forms, with or without modification, are permitted\n"
     "# 3. Neither the name of the copyright holder nor the names of its contributors", "BSD-3-Clause"),
    ("# Copyright 2021 Example Corp. All rights reserved.", "LicenseRef-unknown"),
    ("# computes ord(c) for every c", None),
])
def test_licence_headers_are_named_by_spdx_id(header: str, spdx: str | None) -> None:
    assert licence_of(header) == spdx


def test_a_licence_header_is_noted_and_the_file_kept() -> None:
    text = "# Copyright (c) 2020 A. Author\n# Permission is hereby granted, free of charge, to any person\n" + GOOD
    batch, why = _judge([text])
    assert batch["code_licence"][0].as_py() == "MIT" and why == [None]


def test_plan_warns_when_no_code_can_reach_code_quality(tmp_path: Path, capsys: Any) -> None:
    (tmp_path / "web.jsonl").write_text(json.dumps({"text": PROSE[0]}) + "\n", encoding="utf-8")
    spec = {"name": "t", "sources": [{"path": "web.jsonl", "domain": "web"}], "steps": ["code_quality"],
            "output": {"dir": str(tmp_path / "out")}}
    (tmp_path / "r.yaml").write_text(yaml.safe_dump(spec), encoding="utf-8")
    assert main(["validate", str(tmp_path / "r.yaml")]) == 0
    assert "steps[0].code_quality: no code document can reach it" in capsys.readouterr().err


def test_code_quality_counts_judged_code_passed_prose_and_licences_in_its_notes() -> None:
    step = CodeQuality(CodeQualityParams(), StepContext(seed=0, partitions=1))
    texts = ["# SPDX-License-Identifier: MIT\n" + GOOD, GOOD, "Plain prose, not code."]
    batch = step.annotate(pa.table({"text": texts, "source": ["a.py", "b.py", "web.jsonl"], "domain": ["d"] * 3}))
    assert step.notes(batch) == {"code_documents_judged": 2, "not_code_passed_through": 1,
                                 "licence_header_MIT": 1}


# -- the shipped recipe: Chinese, English and code --------------------------------------------------------------------
def test_the_zh_en_code_recipe_keeps_similar_shares_of_chinese_and_english_and_all_real_code(tmp_path: Path) -> None:
    recipe = Path(__file__).resolve().parents[1] / "recipes" / "zh_en_code.yaml"
    out = tmp_path / "out"
    assert main(["--quiet", "run", str(recipe), "--output", str(out), "--workers", "2"]) == 0
    card = (out / "card.md").read_text(encoding="utf-8")
    rates = {}
    for line in card[card.index("## Languages"):].split("\n## ")[0].splitlines():
        cells = [c.strip() for c in line.strip("|").split("|")]
        if len(cells) == 4 and cells[3].endswith("%"):
            rates[cells[0]] = float(cells[3].rstrip("%")) / 100
    assert rates["zh"] >= 0.85 and rates["en"] >= 0.75 and abs(rates["zh"] - rates["en"]) < 0.2
    manifest = json.loads((out / "manifest.json").read_text(encoding="utf-8"))
    assert manifest["languages"]["zh"]["identified"] == 56
    assert manifest["domains"]["code"]["docs"] == 248
    code = kept(out, columns=["domain", "code_licence", "line_dedup_code"])
    assert {r["line_dedup_code"] for r in code if r["domain"] == "code"} == {None}
