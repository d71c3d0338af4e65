"""`langid` predicts on prose: code blocks, URLs, e-mail addresses and markup are left out of the text it scores,
the document's text is unchanged, and the share it scored is recorded."""

from __future__ import annotations

import zipfile
from pathlib import Path

import pyarrow as pa
import pytest

from curate.steps.base import StepContext
from curate.steps.langid import Langid, LangidParams, prose
from tests.conftest import SHARED_DATA, build_corpus, kept

HOWTO = ("To install the package, run the following command in a terminal:\n\n"
         "    pip install --upgrade example-toolkit==2.3.1\n    export EXAMPLE_HOME=/opt/example\n"
         "    example-cli init --config ./config/default.yaml\n\nThen open the dashboard in your browser.")
HOWTO_PROSE = "To install the package, run the following command in a terminal:\n\nThen open the dashboard in your browser."
FENCED = ("To install the package, run the following command in a terminal:\n\n```bash\n"
          "pip install --upgrade example-toolkit==2.3.1\nexport EXAMPLE_HOME=/opt/example\n```\n\n"
          "Then open the dashboard in your browser.")


def _annotate(texts: list[str], **params) -> pa.Table:
    step = Langid(LangidParams(**params), StepContext(seed=0, partitions=1))
    step.setup()
    return step.annotate(pa.table({"text": texts, "domain": ["web"] * len(texts)}))


def _lang(texts: list[str], **params) -> list[tuple[str, float, float]]:
    out = _annotate(texts, **params)
    return list(zip(out["lang"].to_pylist(), out["lang_score"].to_pylist(), out["lang_scored_fraction"].to_pylist()))


@pytest.mark.parametrize("doc", [HOWTO, FENCED], ids=["indented", "fenced"])
def test_a_howto_with_a_shell_block_is_english_with_its_prose_only_confidence(doc: str) -> None:
    (lang, score, _), (_, prose_score, _) = _lang([doc, HOWTO_PROSE])
    assert lang == "en" and score > 0.65
    assert score == pytest.approx(prose_score, abs=0.02)


def test_a_howto_with_a_shell_block_is_kept_by_a_run_with_the_default_threshold(tmp_path: Path) -> None:
    out = build_corpus(tmp_path, {"web": [HOWTO]}, ["langid"])
    assert [(r["lang"], r["text"]) for r in kept(out)] == [("en", HOWTO)]


@pytest.mark.parametrize("doc,control", [
    ("Per gli orari dei treni regionali consultate il sito https://www.example.it/orari/regionali?linea=12&giorno="
     "lunedi oppure la pagina https://www.example.it/prezzi/abbonamenti-mensili-studenti",
     "Per gli orari dei treni regionali consultate il sito oppure la pagina"),
    ("Voir la documentation complète : www.docs.example.org/fr/guide/installation.html pour les détails.",
     "Voir la documentation complète : pour les détails."),
], ids=["https", "www"])
def test_urls_are_not_scored(doc: str, control: str) -> None:
    (lang, score, fraction), (lang_c, score_c, _) = _lang([doc, control])
    assert (lang, round(score, 3)) == (lang_c, round(score_c, 3))
    assert fraction < 0.6


def test_email_addresses_are_not_scored() -> None:
    doc = "Bei Fragen zur Anmeldung schreiben Sie bitte an studienbuero.anmeldung@example-hochschule.de"
    (lang, score, _), (lang_c, score_c, _) = _lang([doc, "Bei Fragen zur Anmeldung schreiben Sie bitte an"])
    assert (lang, round(score, 3)) == (lang_c, round(score_c, 3)) == ("de", round(score_c, 3))


def test_html_tags_and_entities_are_not_scored() -> None:
    doc = ('<div class="content-wrapper"><p style="margin:0">Il treno per Milano parte alle otto&nbsp;e '
           'mezza</p><br/><span class="footer-note">dal binario tre</span></div>')
    (lang, score, _), (lang_c, score_c, _) = _lang([doc, "Il treno per Milano parte alle otto e mezza dal binario "
                                                         "tre"])
    assert (lang, round(score, 3)) == (lang_c, round(score_c, 3))


def test_the_documents_text_is_unchanged() -> None:
    docs = [HOWTO, FENCED, "Mail me at someone@example.org <b>now</b>"]
    assert _annotate(docs)["text"].to_pylist() == docs


def test_the_scored_share_is_recorded() -> None:
    (_, _, howto), (_, _, plain) = _lang([HOWTO, HOWTO_PROSE])
    scored = sum(not c.isspace() for c in HOWTO_PROSE)
    assert howto == pytest.approx(scored / sum(not c.isspace() for c in HOWTO), abs=1e-6)
    assert plain == 1.0


def test_a_document_with_too_little_prose_is_scored_on_its_whole_text() -> None:
    listing = "Example:\n\n```python\n" + "def area(r):\n    return 3.14159 * r * r\n" * 5 + "```\n"
    (lang, score, fraction), = _lang([listing])
    (lang_all, score_all, _), = _lang([" ".join(listing.split())], min_prose_chars=0)
    assert fraction == 1.0 and (lang, round(score, 3)) == (lang_all, round(score_all, 3))


def test_min_prose_chars_zero_scores_even_a_few_words_of_prose() -> None:
    listing = "Example:\n\n```python\n" + "def area(r):\n    return 3.14159 * r * r\n" * 5 + "```\n"
    (_, _, fraction), = _lang([listing], min_prose_chars=0)
    assert fraction == pytest.approx(len("Example:") / sum(not c.isspace() for c in listing), abs=1e-6)


def test_an_unclosed_fence_leaves_out_the_rest_of_the_sample() -> None:
    assert prose(pa.array(["Intro text here.\n```\ncode line\nmore code"])).to_pylist() == ["Intro text here."]


def test_indented_lines_that_continue_a_paragraph_are_prose() -> None:
    text = "A paragraph that goes on\n    and continues on an indented line."
    assert prose(pa.array([text])).to_pylist() == [text]


def test_text_indented_throughout_is_layout_not_code() -> None:
    with zipfile.ZipFile(SHARED_DATA / "langid" / "udhr2.zip") as z:
        udhr = z.read("udhr2/cmn_hans.txt").decode("utf-8")
    (lang, score, fraction), = _lang([udhr])
    assert lang == "zh" and score > 0.9 and fraction == 1.0


def test_a_document_without_letters_is_unknown_with_nothing_scored() -> None:
    assert _lang(["!!! --- ???"]) == [("unknown", 0.0, 0.0)]


def test_indented_verse_after_a_blank_line_is_prose_not_code() -> None:
    verse = ("She sang a song:\n\n    In su' vespri giocondi, dolcemente\n      Sul lago tranquillissimo voghiamo,\n"
             "    Da delicate mani facilmente\n      Son mossi i remi, e alla ventura andiamo.")
    assert prose(pa.array([verse])).to_pylist() == [verse]


def test_an_indented_program_after_a_blank_line_is_code() -> None:
    doc = "Compute the area:\n\n    def area(r):\n        return 3.14159 * r * r\n\nThat is all."
    assert prose(pa.array([doc])).to_pylist() == ["Compute the area:\n\n\nThat is all."]


def test_a_real_book_chapter_with_indented_poems_is_scored_almost_whole() -> None:
    book = Path(__file__).resolve().parents[1] / "recipes/data/quickstart/books/it-alice/ch-000.txt"
    (lang, score, fraction), = _lang([book.read_text(encoding="utf-8")])
    assert lang == "it" and score > 0.9 and fraction > 0.99
