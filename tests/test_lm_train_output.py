"""`curate lm train --out DIR` writes only into a new or empty directory or over an earlier `lm train` output, and
its messages read well on small inputs."""

from __future__ import annotations

import contextlib
import io
import json
import shutil
from pathlib import Path

import pytest

from tests.conftest import SHARED_DATA, run_curate
from curate.cli import main

SMALL_TEXT = SHARED_DATA / "corpus" / "wiki" / "lee_background.cor"
"""360 kB of English prose: enough for a model, under a million characters"""


def _train(capsys: pytest.CaptureFixture[str], out: Path, quiet: bool = True) -> tuple[int, str]:
    return run_curate(capsys, "lm", "train", "--input", SMALL_TEXT, "--lang", "en", "--order", "3",
                      "--vocab-size", "2000", "--out", out, quiet=quiet)


def test_lm_train_refuses_a_directory_of_other_files_naming_one(tmp_path: Path, capsys) -> None:
    out = tmp_path / "notes"
    out.mkdir()
    (out / "notes.txt").write_text("mine", encoding="utf-8")
    code, err = _train(capsys, out)
    assert code == 2
    assert f"--out {out}: not a `curate lm train` output" in err and f"it already holds {out / 'notes.txt'}" in err
    assert len(err.strip().splitlines()) == 1
    assert sorted(p.name for p in out.iterdir()) == ["notes.txt"]


def test_lm_train_refuses_a_model_json_it_did_not_write_naming_the_file(tmp_path: Path, capsys) -> None:
    out = tmp_path / "other"
    out.mkdir()
    (out / "model.json").write_text('{"architectures": ["GPT2LMHeadModel"]}', encoding="utf-8")
    code, err = _train(capsys, out)
    assert code == 2 and f"training would overwrite {out / 'model.json'}" in err
    assert json.loads((out / "model.json").read_text()) == {"architectures": ["GPT2LMHeadModel"]}


@pytest.fixture(scope="module")
def retrained(english_lm: Path, tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, int, str]:
    """An earlier `lm train` output holding a file of the user's too, trained over again; its exit code and
    stderr (not quiet)."""
    out = tmp_path_factory.mktemp("retrain") / "en"
    shutil.copytree(english_lm, out)
    (out / "notes.txt").write_text("mine", encoding="utf-8")
    err = io.StringIO()
    with contextlib.redirect_stderr(err):
        code = main(["lm", "train", "--input", str(SMALL_TEXT), "--lang", "en", "--order", "3", "--vocab-size",
                     "2000", "--out", str(out)])
    return out, code, err.getvalue()


def test_lm_train_replaces_an_earlier_output_and_leaves_other_files(retrained: tuple[Path, int, str]) -> None:
    out, code, _ = retrained
    assert code == 0
    card = json.loads((out / "model.json").read_text())
    assert card["order"] == 3 and card["data"]["inputs"] == [str(SMALL_TEXT)]
    assert (out / "notes.txt").read_text() == "mine"
    assert sorted(p.name for p in out.iterdir()) == ["README.md", "lm.binary", "model.json", "notes.txt", "sp.model"]


def test_lm_train_counts_under_a_million_characters_exactly(retrained: tuple[Path, int, str]) -> None:
    out, _, err = retrained
    characters = json.loads((out / "model.json").read_text())["data"]["characters"]
    assert f"{characters:,} characters; training SentencePiece" in err
    assert " M characters" not in err
