"""`normalize`: what it changes in a document's text and what it leaves alone."""

from __future__ import annotations

import pyarrow as pa

from curate.steps.base import StepContext
from curate.steps.normalize import Normalize, NormalizeParams


def _norm(text: str, **params) -> str:
    step = Normalize(NormalizeParams(**params), StepContext(seed=0, partitions=1))
    return step.annotate(pa.table({"text": [text]}))["text"][0].as_py()


def test_composes_to_nfc() -> None:
    assert _norm("Cafe\u0301") == "Caf\u00e9"


def test_unifies_line_endings_and_strips_trailing_spaces() -> None:
    assert _norm("a  \r\nb\rc\t\n") == "a\nb\nc"


def test_removes_control_nul_and_zero_width_characters_but_keeps_tabs() -> None:
    assert _norm("a\x00b\x07c\u200bd\ufeffe\tf") == "abcde\tf"


def test_maps_unicode_spaces_to_plain_spaces() -> None:
    assert _norm("a\u00a0b\u3000c") == "a b c"


def test_keeps_indentation_unless_asked_to_collapse() -> None:
    code = "def f():\n    return 1"
    assert _norm(code) == code
    assert _norm("a    b", collapse_spaces=True) == "a b"


def test_folds_runs_of_blank_lines() -> None:
    assert _norm("a\n\n\n\n\nb") == "a\n\nb"
    assert _norm("a\n\n\n\n\nb", max_blank_lines=0) == "a\nb"


def test_a_document_left_empty_is_removed_with_a_reason() -> None:
    step = Normalize(NormalizeParams(), StepContext(seed=0, partitions=1))
    batch = step.annotate(pa.table({"text": ["\u200b\x00 ", "kept"]}))
    assert step.decide(batch).to_pylist() == ["empty_after_normalize", None]
