"""`normalize`: Unicode NFC, line endings, control and zero-width characters, trailing and excess blank space.

Interior runs of spaces are kept by default (code indentation is content); ``collapse_spaces`` folds them.
All work is vectorized Arrow compute (RE2), no per-document Python.
"""

from __future__ import annotations

from typing import Literal

import pyarrow as pa
import pyarrow.compute as pc

from curate.steps.base import MapStep, StepParams


class NormalizeParams(StepParams):
    form: Literal["NFC", "NFKC"] = "NFC"
    collapse_spaces: bool = False
    max_blank_lines: int = 1


_CONTROL = r"[\x{0}-\x{8}\x{b}\x{c}\x{e}-\x{1f}\x{7f}-\x{9f}\x{200b}\x{200c}\x{200d}\x{2060}\x{feff}\x{fffe}]"
_SPACES = r"[\x{a0}\x{1680}\x{2000}-\x{200a}\x{202f}\x{205f}\x{3000}]"


class Normalize(MapStep):
    name = "normalize"
    Params = NormalizeParams
    columns = {"normalized_chars_delta": pa.int64()}

    def annotate(self, batch: pa.Table) -> pa.Table:
        p: NormalizeParams = self.params
        text = batch["text"]
        before = pc.utf8_length(text)
        text = pc.utf8_normalize(text, form=p.form)
        text = pc.replace_substring_regex(text, r"\r\n?|\x{2028}|\x{2029}|\x{85}", "\n")
        text = pc.replace_substring_regex(text, _CONTROL, "")
        text = pc.replace_substring_regex(text, _SPACES, " ")
        if p.collapse_spaces:
            text = pc.replace_substring_regex(text, r"[ \t]{2,}", " ")
        text = pc.replace_substring_regex(text, r"[ \t]+\n", "\n")
        text = pc.replace_substring_regex(text, r"\n{" + str(p.max_blank_lines + 2) + ",}",
                                          "\n" * (p.max_blank_lines + 1))
        text = pc.utf8_trim_whitespace(text)
        delta = pc.subtract(before, pc.utf8_length(text))
        batch = batch.set_column(batch.schema.get_field_index("text"), "text", text)
        return batch.append_column("normalized_chars_delta", pc.cast(delta, pa.int64()))

    def decide(self, batch: pa.Table) -> pa.Array:
        empty = pc.equal(pc.utf8_length(batch["text"]), 0)
        return pc.if_else(empty, pa.scalar("empty_after_normalize"), pa.scalar(None, pa.string()))
