"""`quality` (Gopher rules): each signal, each rule's reason, and the defaults on real text."""

from __future__ import annotations

import numpy as np
import pyarrow as pa
import pytest

from curate.steps.base import StepContext
from curate.steps.quality import Quality, QualityParams, repetition
from tests.conftest import SHARED_DATA

PROSE = ("The history of the river and the town that grew with it is long. People came to trade, "
         "to fish and to build. Over the years the bridges were rebuilt, the market moved, and the old mill "
         "became a museum that tells how the water shaped the lives of those who lived beside it. Today the "
         "banks are a park where families walk and children learn to swim in the summer.")


def _run(texts: list[str], **params) -> tuple[pa.Table, list]:
    step = Quality(QualityParams(**params), StepContext(seed=0, partitions=1))
    batch = step.annotate(pa.table({"text": texts}))
    return batch, step.decide(batch).to_pylist()


def test_clean_prose_passes_every_rule() -> None:
    _, why = _run([PROSE])
    assert why == [None]


def test_word_count_and_mean_word_length_are_measured() -> None:
    batch, _ = _run(["aa bbbb cccccc"])
    assert batch["q_words"][0].as_py() == 3
    assert batch["q_mean_word_length"][0].as_py() == pytest.approx(4.0)


@pytest.mark.parametrize("text,reason", [
    ("too short to be a document", "too_few_words"),
    (" ".join(["the", "supercalifragilisticexpialidocious"] * 30), "mean_word_length"),
    (PROSE + " #tag" * 20, "symbol_word_ratio"),
    ("\n".join(f"- item number {w} of the list and the things" for w in "abcdefghij"), "bullet_lines"),
    ("\n".join(f"and the story of {w} goes on through the night and into the day..." for w in "abcdefghijkl"),
     "ellipsis_lines"),
    (PROSE + " 12345 67890 ---- ==== ++++" * 6, "non_alpha_words"),
    (PROSE.replace("the ", "a ").replace("and ", "plus ").replace("to ", "unto ").replace("of ", "from ")
     .replace("with ", "by ").replace("that ", "which "), "too_few_stop_words"),
])
def test_each_rule_removes_with_its_reason(text: str, reason: str) -> None:
    assert _run([text])[1] == [reason]


def test_repeated_lines_and_paragraphs_are_caught() -> None:
    para = "This is one paragraph about the weather and the sea that we repeat."
    assert _run(["\n\n".join([PROSE] + [para] * 6)], min_words=10)[1] == ["dup_lines"]


def test_top_ngram_rule_catches_keyword_spam() -> None:
    spam = PROSE + " " + " ".join(["cheap flights"] * 40)
    batch, why = _run([spam], max_dup_ngram_chars_ratio=None)
    assert why == ["top_2gram"] and batch["q_top_2gram_ratio"][0].as_py() > 0.2


def test_a_rule_set_to_null_is_off() -> None:
    assert _run(["too short to be a document"], min_words=None)[1] == [None]


def test_duplicate_ngram_fraction_counts_every_covered_character() -> None:
    ids = np.array([1, 2, 3, 4, 5, 1, 2, 3, 4, 5, 9], dtype=np.int64)
    lengths = np.ones(len(ids), dtype=np.int64)
    out = repetition(ids, lengths, np.array([0, 11]), np.array([False]), tops=[2], dups=[5])
    assert out["q_dup_5gram_ratio"][0] == pytest.approx(10 / 11)
    assert out["q_top_2gram_ratio"][0] == pytest.approx(4 / 11)


def test_repetition_never_crosses_document_boundaries() -> None:
    ids = np.array([1, 2, 3, 4, 5, 1, 2, 3, 4, 5], dtype=np.int64)  # one 5-gram in each of two documents
    out = repetition(ids, np.ones(10, np.int64), np.array([0, 5, 10]), np.array([False, False]), tops=[2], dups=[5])
    assert out["q_dup_5gram_ratio"].tolist() == [0.0, 0.0] and out["q_top_2gram_ratio"].tolist() == [0.0, 0.0]


def test_batch_signals_equal_single_document_signals() -> None:
    texts = [PROSE, PROSE + " " + PROSE, "a b c a b c a b c\n\nx\n\nx", "word"]
    together = _run(texts)[0]
    for i, t in enumerate(texts):
        alone = _run([t])[0]
        for col in together.column_names:
            if col.startswith("q_"):
                a, b = together[col][i].as_py(), alone[col][0].as_py()
                assert a == pytest.approx(b, nan_ok=True), (col, i)


def test_repetition_computed_in_chunks_of_documents_equals_one_pass(monkeypatch: pytest.MonkeyPatch) -> None:
    from curate.steps import quality

    texts = [PROSE, PROSE + " " + PROSE, "a b c a b c a b c\n\nx\n\nx", "", "word", PROSE * 3]
    whole = _run(texts)[0]
    monkeypatch.setattr(quality, "REPETITION_CHUNK_WORDS", 40)  # smaller than most documents
    chunked = _run(texts)[0]
    assert chunked.equals(whole)


def test_repetition_is_skipped_over_max_words_but_the_document_is_removed() -> None:
    batch, why = _run([" ".join(["word"] * 200)], max_words=100)
    assert why == ["too_many_words"] and batch["q_dup_5gram_ratio"][0].as_py() is None


def test_defaults_keep_most_real_wikipedia_text() -> None:
    lines = (SHARED_DATA / "corpus" / "wiki" / "wiki_demo.txt").read_text(encoding="utf-8").splitlines()
    _, why = _run([x for x in lines if x.strip()])
    assert sum(w is None for w in why) / len(why) >= 0.9
