"""`quality` per language: words segmented where a language has no spaces, distinct stop words from each language's
list, thresholds per language from YAML, and languages without rules passed through with a counted note."""

from __future__ import annotations

import json
import random
import subprocess
import sys
import zipfile
from pathlib import Path

import pyarrow as pa
import pyarrow.parquet as pq
import pytest
import yaml

from curate.steps.base import StepContext
from curate.steps.quality import Quality, QualityParams
from mixlab.config import validate
from mixlab.errors import ConfigError
from tests.conftest import ROOT, SHARED_DATA

UDHR = {"en": "eng", "de": "deu", "fr": "fra", "es": "spa", "ru": "rus", "zh": "cmn_hans", "ja": "jpn", "th": "tha"}
LIBRARY_ZH = ("今年春天，村里的图书馆开设了一间新的阅览室，最早来的读者大多是附近学校的学生。志愿者把墙壁刷成了淡绿色，"
              "又把旧橡木桌子搬到窗边，让阳光照在书页上。")


def _lines(lang: str) -> list[str]:
    """Non-blank lines of the Universal Declaration of Human Rights in ``lang`` (real text, public domain)."""
    with zipfile.ZipFile(SHARED_DATA / "langid" / "udhr2.zip") as z:
        text = z.read(f"udhr2/{UDHR[lang]}.txt").decode("utf-8")
    return [x for x in text.splitlines() if x.strip()]


def _step(**params) -> Quality:
    return Quality(QualityParams(**params), StepContext(seed=0, partitions=1))


def _judge(step: Quality, texts: list[str], langs: list[str | None], **columns) -> tuple[pa.Table, list]:
    batch = step.annotate(pa.table({"text": texts, "lang": pa.array(langs, pa.string()), **columns}))
    return batch, step.decide(batch).to_pylist()


@pytest.mark.parametrize("lang", ["en", "de", "fr", "es", "ru", "zh", "ja", "th"])
def test_real_text_of_each_language_is_kept_by_its_own_rules(lang: str) -> None:
    batch, why = _judge(_step(), ["\n".join(_lines(lang)[:40])], [lang])
    assert why == [None] and batch["q_rules"][0].as_py() == lang


@pytest.mark.parametrize("lang", ["en", "de", "fr", "es", "ru", "zh", "ja", "th"])
def test_boilerplate_repeating_a_line_is_removed_in_each_language(lang: str) -> None:
    lines = _lines(lang)
    _, why = _judge(_step(), ["\n".join(lines[4:12] + [lines[12]] * 12)], [lang])
    assert why == ["dup_lines"]


@pytest.mark.parametrize("lang", ["en", "de", "fr", "es", "ru", "zh", "ja", "th"])
def test_a_fragment_too_short_to_be_a_document_is_removed_in_each_language(lang: str) -> None:
    fragment = _lines(lang)[6][:24] if lang in ("zh", "ja", "th") else " ".join(_lines(lang)[6].split()[:12])
    _, why = _judge(_step(), [fragment], [lang])
    assert why == ["too_few_words"]


@pytest.mark.parametrize("lang", ["en", "de", "fr", "es", "ru", "zh"])  # ja: kana pairs recur by chance
def test_text_with_its_characters_shuffled_lacks_stop_words_in_each_language(lang: str) -> None:
    chars = list("\n".join(_lines(lang)[4:30]))
    random.Random(0).shuffle(chars)
    _, why = _judge(_step(), ["".join(chars)], [lang])
    assert why == ["too_few_stop_words"]


def test_chinese_words_are_segmented_not_split_on_whitespace() -> None:
    batch, why = _judge(_step(), [LIBRARY_ZH], ["zh"])
    assert 35 <= batch["q_words"][0].as_py() <= 60
    assert 1.2 <= batch["q_mean_word_length"][0].as_py() <= 2.5
    assert why == ["too_few_words"]  # ~40 words: short of 50, as an English text of 40 words would be


def test_japanese_particles_count_as_stop_words() -> None:
    batch, _ = _judge(_step(), ["\n".join(_lines("ja")[:10])], ["ja"])
    assert batch["q_stop_words"][0].as_py() >= 3


def test_english_stop_words_are_counted_distinct() -> None:
    french = " ".join(_lines("fr")[8:20]) + " the the"
    batch, why = _judge(_step(), [french], ["en"])
    assert batch["q_stop_words"][0].as_py() == 1 and why == ["too_few_stop_words"]


def test_stop_words_count_each_word_once() -> None:
    text = "the river runs past the mill and the town " + " ".join(f"w{i}x" for i in range(60))
    batch, _ = _judge(_step(), [text], ["en"])
    assert batch["q_stop_words"][0].as_py() == 2  # "the" three times, "and" once


def test_a_language_without_rules_passes_with_a_counted_note() -> None:
    step = _step()
    junk = "가 " * 3  # far too short for any rule set
    batch, why = _judge(step, [junk, junk, "\n".join(_lines("en")[:40])], ["ko", "ko", "en"])
    assert why == [None, None, None] and batch["q_rules"].to_pylist() == [None, None, "en"]
    assert step.notes(batch) == {"no_rules:ko": 2}


def test_documents_without_lang_are_judged_as_the_lang_param() -> None:
    batch, why = _judge(_step(), ["too short"], [None])
    assert batch["q_rules"].to_pylist() == ["en"] and why == ["too_few_words"]


def test_documents_without_lang_pass_when_lang_is_null() -> None:
    step = _step(lang=None)
    batch, why = _judge(step, ["too short"], [None])
    assert why == [None] and step.notes(batch) == {"no_rules:unknown": 1}


def test_code_documents_are_left_to_code_quality() -> None:
    step = _step(code_domains=["code"])
    code = "def f(x):\n    return x\n" * 3
    batch, why = _judge(step, [code], ["en"], domain=["code"])
    assert why == [None] and step.notes(batch) == {"no_rules:code": 1}


def _params(text: str) -> QualityParams:
    return validate(QualityParams, yaml.safe_load(text), prefix=("steps", 0, "quality"), source="recipe.yaml")


def test_thresholds_are_set_per_language_from_yaml() -> None:
    step = Quality(_params("languages: {zh: {min_words: 5, min_stop_words: null}, de: {min_words: 1000}}"),
                   StepContext(0, 1))
    de = "\n".join(_lines("de")[:40])
    _, why = _judge(step, [LIBRARY_ZH, de, "\n".join(_lines("en")[:40])], ["zh", "de", "en"])
    assert why == [None, "too_few_words", None]


def test_a_language_set_to_null_passes_and_default_judges_other_languages() -> None:
    step = Quality(_params("languages: {en: null}\ndefault: {min_words: 3}"), StepContext(0, 1))
    batch, why = _judge(step, ["too short", "안녕하세요 여러분 오늘은 도서관에 갑니다"], ["en", "ko"])
    assert batch["q_rules"].to_pylist() == [None, "ko"] and why == [None, "too_few_stop_words"]


def test_top_level_rule_keys_of_older_recipes_apply_to_every_language() -> None:
    params = _params("min_stop_words: null\nlanguages: {fr: {min_words: 10}}")
    assert params.rules("zh").min_stop_words is None and params.rules("en").min_stop_words is None
    assert params.rules("fr").min_words == 10 and params.rules("fr").min_stop_words is None
    dumped = params.model_dump(mode="json")
    assert dumped["min_stop_words"] is None and "min_words" not in dumped  # the stats show the keys given


def test_a_language_rule_overrides_the_top_level_one() -> None:
    params = _params("min_words: 20\nlanguages: {ja: {min_words: 80}}")
    assert params.rules("ja").min_words == 80 and params.rules("de").min_words == 20


def test_an_unknown_rule_key_names_its_place() -> None:
    with pytest.raises(ConfigError, match=r"steps\[0\]\.quality\.languages\.zh\.min_word\b"):
        _params("languages: {zh: {min_word: 5}}")


def test_segmenters_load_only_for_languages_that_need_them() -> None:
    code = ("import sys, pyarrow as pa\n"
            "from curate.steps.base import StepContext\n"
            "from curate.steps.quality import Quality, QualityParams\n"
            "s = Quality(QualityParams(), StepContext(0, 1))\n"
            "s.decide(s.annotate(pa.table({'text': ['a b c'], 'lang': ['en']})))\n"
            "print(json.dumps([m in sys.modules for m in ('jieba', 'sudachipy', 'pythainlp')]))\n")
    out = subprocess.run([sys.executable, "-c", "import json\n" + code], cwd=ROOT, capture_output=True, text=True,
                         check=True)
    assert json.loads(out.stdout) == [False, False, False]


CASE_22 = ROOT.parent / "shared" / "cases" / "field" / "22-gopher-rules-non-english" / "input" / "docs.jsonl"


@pytest.mark.skipif(not CASE_22.exists(), reason="the field case's documents are not here")
def test_curate_run_keeps_the_same_notice_in_five_languages_and_counts_unjudged_ones(tmp_path: Path) -> None:
    from curate.cli import main

    docs = [json.loads(x) for x in CASE_22.read_text(encoding="utf-8").splitlines()]
    docs.append({"id": "ko", "text": "마을 도서관이 올봄 새 열람실을 열었고 첫 방문객은 대부분 근처 학교 학생들이었다. " * 3})
    (tmp_path / "docs.jsonl").write_text("".join(json.dumps(d, ensure_ascii=False) + "\n" for d in docs),
                                         encoding="utf-8")
    (tmp_path / "recipe.yaml").write_text(
        "name: langs\nseed: 1\nsources:\n  - {path: docs.jsonl, format: jsonl, domain: web, id_field: id}\n"
        "steps:\n  - normalize: {}\n  - langid: {}\n  - quality: {}\noutput: {dir: out, keep_removed: all}\n"
        "executor: {workers: 1}\n", encoding="utf-8")
    assert main(["--quiet", "run", str(tmp_path / "recipe.yaml")]) == 0
    kept = {r["id"]: r for f in sorted((tmp_path / "out" / "data").rglob("*.parquet"))
            for r in pq.read_table(f).to_pylist()}
    assert sorted(kept) == ["de", "en", "es", "fr", "ko", "zh"]
    assert kept["zh"]["q_rules"] == "zh" and kept["ko"]["q_rules"] is None
    stats = json.loads((tmp_path / "out" / "stats" / "quality.json").read_text())
    assert stats["notes"] == {"no_rules:ko": 1}
