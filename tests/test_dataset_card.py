"""The data card as a Hugging Face dataset card: front matter the Hub's parsers accept, the sections people read, and
figures whose numbers (carried in each PNG's ``mixlab:data`` chunk) agree with the manifest and the step stats."""

from __future__ import annotations

import json
import logging
import re
import shutil
import warnings
from pathlib import Path
from typing import Any

import pytest
from PIL import Image

from curate import card, card_plots
from tests.conftest import ROOT, SHARED_DATA, build_corpus, run_curate
from tests.test_quality_classifier import _spam, classifier  # noqa: F401  (the module's trained-model fixture)


@pytest.fixture(scope="module")
def qs_card(quickstart_out: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The quickstart corpus's card rebuilt by `curate card --out` into a folder of its own."""
    from curate.cli import main

    path = tmp_path_factory.mktemp("card") / "quickstart.md"
    assert main(["--quiet", "card", str(quickstart_out), "--out", str(path)]) == 0
    return path


def _manifest(out: Path) -> dict[str, Any]:
    return json.loads((out / "manifest.json").read_text(encoding="utf-8"))


def _stats(out: Path, step: str) -> dict[str, Any]:
    return json.loads((out / "stats" / f"{step}.json").read_text(encoding="utf-8"))


def _figure(path: Path) -> dict[str, Any]:
    """The numbers a figure draws, from its PNG's text chunk."""
    with Image.open(path) as im:
        assert im.format == "PNG" and im.width >= 400 and im.height >= 200
        return json.loads(im.text[card_plots.DATA_KEY])


def _front_matter(path: Path) -> dict[str, Any]:
    import yaml

    text = path.read_text(encoding="utf-8")
    assert text.startswith("---\n")
    return yaml.safe_load(text.split("---\n")[1])


# -- the card as the Hub reads it ------------------------------------------------------------------------------------
def test_hugging_face_parses_the_card_without_a_warning(qs_card: Path, caplog: pytest.LogCaptureFixture) -> None:
    from datasets.utils.metadata import MetadataConfigs
    from huggingface_hub import DatasetCard

    with warnings.catch_warnings(record=True) as caught, caplog.at_level(logging.DEBUG):
        warnings.simplefilter("always")
        parsed = DatasetCard.load(qs_card)
        configs = MetadataConfigs.from_dataset_card_data(parsed.data)
    assert [str(w.message) for w in caught] == []
    assert [r.getMessage() for r in caplog.records if r.levelno >= logging.WARNING] == []
    assert parsed.data.pretty_name == "quickstart" and parsed.text.lstrip().startswith("# Dataset Card for quickstart")
    assert configs["default"]["data_files"] == [{"split": "train", "path": "data/*/*.parquet"}]


def test_with_the_card_as_its_readme_datasets_loads_the_corpus_directory(qs_card: Path, quickstart_out: Path,
                                                                         tmp_path: Path) -> None:
    import datasets

    repo = tmp_path / "repo"
    shutil.copytree(quickstart_out / "data", repo / "data")
    shutil.copy(qs_card, repo / "README.md")
    corpus = datasets.load_dataset(str(repo), split="train", cache_dir=str(tmp_path / "cache"))
    assert corpus.num_rows == _manifest(quickstart_out)["accounting"]["kept"]


def test_front_matter_holds_the_recipes_licences_and_the_corpus_languages_and_size(qs_card: Path,
                                                                                   quickstart_out: Path) -> None:
    import datasets

    resources = Path(datasets.__file__).parent / "utils" / "resources"
    meta = _front_matter(qs_card)
    m = _manifest(quickstart_out)
    assert meta["license"] == ["odc-by", "other", "cc-by-sa-3.0", "mit"]
    assert meta["language"][0] == "en" and set(meta["language"]) == {k for k, v in m["languages"].items() if v["kept"]}
    assert set(meta["language"]) <= set(json.loads((resources / "languages.json").read_text()))
    assert meta["size_categories"] == ["n<1K"] and m["accounting"]["kept"] < 1000
    assert meta["size_categories"][0] in json.loads((resources / "size_categories.json").read_text())
    assert meta["task_categories"] == ["text-generation"] and meta["multilinguality"] == "multilingual"


def test_the_card_lists_sources_with_licences_funnel_reasons_domains_mixture_examples_and_limitations(
        qs_card: Path, quickstart_out: Path) -> None:
    text = qs_card.read_text(encoding="utf-8")
    m = _manifest(quickstart_out)
    assert "| wiki | lines | cc-by-sa-3.0 | 1 | `data/quickstart/wiki/wiki_demo.txt` |" in text
    assert "| perplexity | 265 | 106 | 159 | 40.0% | ppl_bucket_tail 106 |" in text
    assert "| quality | too_few_words | 26 |" in text
    assert "| books | 81 | 42 | 13 | 13 | 13 | 0 |" in text  # Languages per domain: books hold en, de, fr, it
    assert "| code | 248 | 0 | 0 | 0 | 0 | 248 |" in text  # code is outside langid's scope
    mixture = json.loads((quickstart_out / "mixture.json").read_text())
    assert f"Method `temperature`: {mixture['provenance']}." in text
    assert all(f"{w:.4f} |" in text for w in m["mixture"].values())
    for heading in ("## Example records", "## Bias, Risks, and Limitations", "## Perplexity", "## Duplicates"):
        assert heading in text
    assert "**wiki** `data/quickstart/wiki/wiki_demo.txt:1` (lang en, 43,803 bytes, truncated)" in text


def test_every_figure_the_card_links_exists_beside_it(qs_card: Path) -> None:
    links = re.findall(r"!\[[^\]]*\]\(([^)]+)\)", qs_card.read_text(encoding="utf-8"))
    assert sorted(links) == [f"quickstart/{n}.png" for n in
                             ("funnel", "gopher_signals", "languages", "length", "perplexity")]
    assert all((qs_card.parent / link).is_file() for link in links)
    assert not (qs_card.parent / "quickstart" / "duplicates.png").exists()  # the quickstart has no duplicates


# -- figures agree with the manifest and the stats -------------------------------------------------------------------
def test_funnel_figure_draws_the_manifests_funnel_and_reasons(qs_card: Path, quickstart_out: Path) -> None:
    m = _manifest(quickstart_out)
    fig = _figure(qs_card.parent / "quickstart" / "funnel.png")
    assert [(s["step"], s["removed"], s["reasons"]) for s in fig["steps"]] == [
        (f["step"], f["removed"], m["accounting"]["removed"][f["step"]]) for f in m["funnel"]]
    assert fig["steps"][-1]["remaining"] == m["accounting"]["kept"] == fig["kept"]


def test_length_and_language_figures_count_every_kept_document(qs_card: Path, quickstart_out: Path) -> None:
    m = _manifest(quickstart_out)
    length = _figure(qs_card.parent / "quickstart" / "length.png")
    for d, v in m["domains"].items():
        assert sum(length["domains"][d]["counts"]) == v["docs"] and length["domains"][d]["bytes"] == v["bytes"]
    langs = _figure(qs_card.parent / "quickstart" / "languages.png")["domains"]
    assert {d: sum(c.values()) for d, c in langs.items()} == {d: v["docs"] for d, v in m["domains"].items()}
    for lang, rate in m["languages"].items():
        assert sum(c.get(lang, 0) for c in langs.values()) == rate["kept"]


def test_perplexity_figure_holds_every_scored_document_and_the_steps_cutoffs(qs_card: Path,
                                                                            quickstart_out: Path) -> None:
    st = _stats(quickstart_out, "perplexity")
    fig = _figure(qs_card.parent / "quickstart" / "perplexity.png")["langs"]["en"]
    assert sum(fig["kept"]) + sum(fig["removed"]) == st["reduce"]["scored_documents"] == 265
    assert sum(fig["kept"]) == st["kept"] and sum(fig["removed"]) == st["removed"]
    cut = st["combine"]["cutoffs"]["en"]
    assert (fig["head_max"], fig["middle_max"]) == (cut["head_max"], cut["middle_max"])


def test_gopher_figure_is_the_quality_steps_histograms(qs_card: Path, quickstart_out: Path) -> None:
    st = _stats(quickstart_out, "quality")
    fig = _figure(qs_card.parent / "quickstart" / "gopher_signals.png")
    assert fig["documents"] == st["documents_in"]
    assert fig["signals"] == {k: h for k, h in st["histograms"].items() if sum(h["counts"])}


@pytest.fixture(scope="module")
def scored_dup_corpus(tmp_path_factory: pytest.TempPathFactory, classifier: Path) -> Path:  # noqa: F811
    """Wikipedia paragraphs and spam, scored by the quality classifier, with exact and near duplicates."""
    wiki = [x for x in (SHARED_DATA / "corpus/wiki/wikitext2_valid.txt").read_text(encoding="utf-8").splitlines()
            if len(x.split()) > 120][:12]
    near = [w + " An added closing sentence here." for w in wiki[:3]]
    docs = wiki + [wiki[0], wiki[0], wiki[5]] + near + _spam(6, 3)
    steps = [{"quality_classifier": {"model": str(classifier), "threshold": 0.5}}, "exact_dedup",
             {"minhash_dedup": {"threshold": 0.7}}]
    tmp = tmp_path_factory.mktemp("dups")
    return build_corpus(tmp, {"web": docs}, steps, output={"dir": str(tmp / "out"), "card_plots": True})


def test_duplicate_figure_counts_the_groups_the_dedup_steps_found(scored_dup_corpus: Path) -> None:
    exact, near = _stats(scored_dup_corpus, "exact_dedup"), _stats(scored_dup_corpus, "minhash_dedup")
    fig = _figure(scored_dup_corpus / "card" / "duplicates.png")
    assert fig["exact"] == {"3": 1, "2": 1}  # wiki[0] three times, wiki[5] twice
    assert sum(fig["exact"].values()) == exact["reduce"]["duplicate_groups"]
    assert sum(int(s) * n for s, n in fig["exact"].items()) == exact["reduce"]["documents_in_duplicate_groups"]
    assert sum(fig["near"].values()) == near["combine"]["clusters"] == 3
    assert sum(int(s) * n for s, n in fig["near"].items()) == near["combine"]["documents_in_clusters"]


def test_quality_score_figure_is_the_classifier_steps_histogram_with_its_threshold(scored_dup_corpus: Path) -> None:
    st = _stats(scored_dup_corpus, "quality_classifier")
    fig = _figure(scored_dup_corpus / "card" / "quality_score.png")
    assert fig["counts"] == st["histograms"]["quality_score"]["counts"] and sum(fig["counts"]) == 24
    assert fig["threshold"] == 0.5


# -- rebuilding, and what a run leaves -------------------------------------------------------------------------------
def test_curate_card_rebuilds_the_card_and_drops_figures_that_no_longer_apply(
        scored_dup_corpus: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    out = tmp_path / "out"
    shutil.copytree(scored_dup_corpus, out)
    (out / "card.md").unlink()
    (out / "card" / "perplexity.png").write_bytes(b"stale")  # a figure of an earlier recipe
    (out / "card" / "mine.png").write_bytes(b"the user's")
    shards = {p: p.read_bytes() for p in (out / "data").rglob("*.parquet")}
    code, _ = run_curate(capsys, "card", out)
    assert code == 0 and (out / "card.md").read_text(encoding="utf-8").startswith("---\npretty_name: t\n")
    assert not (out / "card" / "perplexity.png").exists() and (out / "card" / "mine.png").read_bytes() == b"the user's"
    assert {p: p.read_bytes() for p in (out / "data").rglob("*.parquet")} == shards
    assert run_curate(capsys, "inspect", out, "--verify")[0] == 0


def test_a_run_that_read_fewer_than_1000_documents_writes_no_figures_and_says_how_to_get_them(
        quickstart_out: Path, tmp_path: Path) -> None:
    read = _manifest(quickstart_out)["accounting"]["read"]
    assert read < card.PLOTS_MIN_READ
    path = tmp_path / "c.md"
    card.write_card(quickstart_out, _manifest(quickstart_out), path, plots="auto")
    text = path.read_text(encoding="utf-8")
    assert "![" not in text and not (tmp_path / "c").exists()
    assert (f"This card has no figures: the run read {read:,} documents, fewer than the 1,000 from which "
            "`output.card_plots: auto` draws them; `curate card` on this directory draws them." in text)


def test_card_plots_false_writes_no_figures_whatever_the_corpus_size(scored_dup_corpus: Path, tmp_path: Path) -> None:
    path = tmp_path / "c.md"
    card.write_card(scored_dup_corpus, {**_manifest(scored_dup_corpus),
                                        "accounting": {**_manifest(scored_dup_corpus)["accounting"], "read": 10**6}},
                    path, plots=False)
    assert "![" not in path.read_text(encoding="utf-8") and not (tmp_path / "c").exists()
    assert "This card has no figures (`output.card_plots: false` or `curate card --no-plots`)" in path.read_text()


def test_curate_card_no_plots_removes_the_figures_and_curate_card_draws_them_back(
        scored_dup_corpus: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    out = tmp_path / "out"
    shutil.copytree(scored_dup_corpus, out)
    assert run_curate(capsys, "card", out, "--no-plots")[0] == 0
    assert not (out / "card").exists() and "![" not in (out / "card.md").read_text(encoding="utf-8")
    assert run_curate(capsys, "card", out)[0] == 0
    assert (out / "card" / "funnel.png").is_file() and "![" in (out / "card.md").read_text(encoding="utf-8")


def test_card_plots_does_not_change_the_recipe_hash(write_recipe: Any, tmp_path: Path) -> None:
    from curate.recipe import load_recipe

    (tmp_path / "a.jsonl").write_text('{"text": "x"}\n')
    path = write_recipe({"sources": [{"path": "a.jsonl", "domain": "web"}], "steps": ["normalize"]})
    assert load_recipe(path, ["output.card_plots=false"]).hash() == load_recipe(path).hash()


def test_curate_card_refuses_a_directory_without_a_corpus(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    code, err = run_curate(capsys, "card", tmp_path)
    assert code == 2 and "no manifest.json, not a complete corpus" in err


def test_without_matplotlib_the_card_is_written_without_figures_and_one_line_says_so(
        scored_dup_corpus: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
        caplog: pytest.LogCaptureFixture) -> None:
    monkeypatch.setattr(card_plots, "available", lambda: False)
    path = tmp_path / "c.md"
    with caplog.at_level(logging.INFO, logger="mixlab"):
        card.write_card(scored_dup_corpus, _manifest(scored_dup_corpus), path)
    assert "![" not in path.read_text(encoding="utf-8") and not (tmp_path / "c").exists()
    assert [r.getMessage() for r in caplog.records if "matplotlib" in r.getMessage()] == [
        "matplotlib is not installed: the data card has no figures (pip install matplotlib)"]


def test_a_licence_that_is_not_an_id_is_refused_before_work(write_recipe: Any, tmp_path: Path,
                                                            capsys: pytest.CaptureFixture[str]) -> None:
    (tmp_path / "a.jsonl").write_text('{"text": "x"}\n')
    path = write_recipe({"sources": [{"path": "a.jsonl", "domain": "web", "license": "MIT or whatever"}],
                         "steps": ["normalize"]})
    code, err = run_curate(capsys, "validate", path)
    assert code == 2 and "sources[0].license" in err


def test_an_example_fence_is_longer_than_any_backtick_run_in_the_text() -> None:
    assert card._fence("plain") == "```"
    assert card._fence("code:\n````python\nx\n````") == "`````"


def test_the_shipped_cards_link_only_figures_that_exist() -> None:
    cards = sorted((ROOT / "data_cards").glob("*.md"))
    assert cards
    for path in cards:
        for link in re.findall(r"!\[[^\]]*\]\(([^)]+)\)", path.read_text(encoding="utf-8")):
            assert (path.parent / link).is_file(), f"{path.name}: {link}"


def test_fresh_deletes_the_cards_figures_but_not_other_files_in_its_folder() -> None:
    from curate.layout import is_written

    assert all(is_written(("card", f"{name}.png")) for name in card_plots.FIGURES)
    assert is_written(("card", ".funnel.png.tmp123")) and not is_written(("card", "mine.png"))
