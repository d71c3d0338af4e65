"""`curate card` on damaged or missing corpora and with `--out`: one line naming the file, no traceback, nothing
written where it should not be; Ray's start-up noise kept off the terminal and in the run log."""

from __future__ import annotations

import json
import logging
import os
import shutil
from pathlib import Path
from typing import Any, Callable

import pytest

from tests.conftest import run_curate


@pytest.fixture
def corpus(quickstart_out: Path, tmp_path: Path) -> Path:
    """A copy of the quickstart corpus, to damage."""
    out = tmp_path / "qs"
    shutil.copytree(quickstart_out, out)
    return out


def _first_shard(out: Path) -> Path:
    m = json.loads((out / "manifest.json").read_text(encoding="utf-8"))
    return out / next(iter(m["domains"].values()))["shards"][0]["path"]


def _truncate(path: Path) -> None:
    path.write_bytes(path.read_bytes()[:3000])


DAMAGE: dict[str, tuple[Callable[[Path], Path], str]] = {
    "mixture_not_json": (lambda out: _write(out / "mixture.json", "{bad"), "damaged (not JSON: "),
    "mixture_without_weights": (lambda out: _write(out / "mixture.json", "{}"), "damaged (no 'weights' object)"),
    "stats_not_json": (lambda out: _write(out / "stats" / "perplexity.json", '{"removed": '), "damaged (not JSON: "),
    "stats_not_an_object": (lambda out: _write(out / "stats" / "quality.json", "[]"), "damaged (not a JSON object)"),
    "shard_truncated": (lambda out: _damage_shard(out, _truncate), "damaged (not a readable Parquet file: "),
    "shard_missing": (lambda out: _damage_shard(out, Path.unlink), "damaged (missing: manifest.json lists it)"),
}


def _write(path: Path, text: str) -> Path:
    path.write_text(text, encoding="utf-8")
    return path


def _damage_shard(out: Path, how: Callable[[Path], Any]) -> Path:
    shard = _first_shard(out)
    how(shard)
    return shard


@pytest.mark.parametrize("damage", list(DAMAGE))
def test_curate_card_on_a_damaged_file_fails_in_one_line_naming_it_and_how_to_check(
        corpus: Path, damage: str, capsys: pytest.CaptureFixture[str]) -> None:
    make, says = DAMAGE[damage]
    before = (corpus / "card.md").read_text(encoding="utf-8")
    damaged = make(corpus)
    code, err = run_curate(capsys, "card", corpus)
    assert code == 1 and len(err.strip().splitlines()) == 1
    assert err.startswith(f"curate: error: {damaged}: {says}")
    assert f"`curate inspect {corpus} --verify`" in err and "`curate run RECIPE --fresh`" in err
    assert (corpus / "card.md").read_text(encoding="utf-8") == before


@pytest.mark.parametrize("command", ["card", "inspect"])
def test_a_missing_corpus_is_a_usage_error_for_card_and_inspect_alike(
        tmp_path: Path, command: str, capsys: pytest.CaptureFixture[str]) -> None:
    code, err = run_curate(capsys, command, tmp_path / "nosuch")
    assert (code, err.strip()) == (2, f"curate: error: {tmp_path / 'nosuch'}: no manifest.json, not a complete "
                                      "corpus")


def test_curate_card_out_inside_the_corpus_is_refused_and_writes_nothing(
        corpus: Path, capsys: pytest.CaptureFixture[str]) -> None:
    inside = corpus / "data" / "web" / "card.md"
    listing = sorted(p.relative_to(corpus) for p in corpus.rglob("*"))
    code, err = run_curate(capsys, "card", corpus, "--out", inside)
    assert code == 2
    assert err.strip() == (f"curate: error: --out {inside}: inside the corpus {corpus}, where only "
                           f"{corpus / 'card.md'} is its card; give a path outside the corpus (or leave out --out)")
    assert sorted(p.relative_to(corpus) for p in corpus.rglob("*")) == listing


def test_curate_card_out_naming_the_corpus_own_card_rewrites_it(
        corpus: Path, capsys: pytest.CaptureFixture[str]) -> None:
    (corpus / "card.md").unlink()
    code, _ = run_curate(capsys, "card", corpus, "--out", corpus / "card.md", "--no-plots")
    assert code == 0 and "# from this directory" in (corpus / "card.md").read_text(encoding="utf-8")


def test_a_card_written_outside_the_corpus_says_where_the_corpus_is_relative_to_it(
        quickstart_out: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    path = tmp_path / "data_cards" / "quickstart.md"
    assert run_curate(capsys, "card", quickstart_out, "--out", path, "--no-plots")[0] == 0
    text = path.read_text(encoding="utf-8")
    rel = os.path.relpath(quickstart_out.resolve(), path.parent.resolve())
    assert f'data_dir="data", split="train")  # from the corpus directory, {rel} from this card' in text
    assert f"Files (in the corpus directory `{rel}`):" in text
    assert (path.parent / rel / "manifest.json").resolve() == (quickstart_out / "manifest.json").resolve()
    assert "- `card.md` and `card/*.png`: the corpus's card and its figures" in text


def test_a_one_domain_card_says_1_domain(quickstart_out: Path) -> None:
    from curate import card

    m = json.loads((quickstart_out / "manifest.json").read_text(encoding="utf-8"))
    first = next(iter(m["domains"]))
    m["domains"] = {first: m["domains"][first]}
    assert f"in 1 domain ({first})," in card.render(m)


# -- Ray's start-up messages ------------------------------------------------------------------------------------------
@pytest.fixture
def run_log(tmp_path: Path) -> Any:
    from mixlab import logs

    logs.log.setLevel(logging.DEBUG)
    handler = logs.add_file(tmp_path / "run.log")
    yield tmp_path / "run.log"
    logs.log.removeHandler(handler)
    handler.close()


def test_what_ray_writes_to_stderr_while_starting_goes_to_the_run_log(run_log: Path,
                                                                      capfd: pytest.CaptureFixture[str]) -> None:
    from curate.executors.ray import stderr_to_run_log

    with stderr_to_run_log():
        os.write(2, b"[W] network_util.cc:330: Failed to determine local IP via external connectivity\n")
    assert "network_util" not in capfd.readouterr().err
    assert "DEBUG ray: [W] network_util.cc:330: Failed to determine local IP" in run_log.read_text()


def test_rays_token_authentication_notice_goes_to_the_run_log(run_log: Path,
                                                              capfd: pytest.CaptureFixture[str]) -> None:
    from curate.executors.ray import RAY_NOTICES, quiet_ray_notices

    quiet_ray_notices()
    quiet_ray_notices()
    notices = logging.getLogger(RAY_NOTICES[0])
    notices.addHandler(handler := logging.StreamHandler())
    try:
        notices.warning("Token authentication is enabled for this Ray cluster.")
    finally:
        notices.removeHandler(handler)
    assert "Token authentication" not in capfd.readouterr().err
    assert run_log.read_text().count("DEBUG ray: Token authentication is enabled") == 1
