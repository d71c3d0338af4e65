"""Side files of a corpus are trusted only after a check: the MinHash index and mixture.json are recorded in the
manifest with their sha256, checked by `inspect --verify`, by `curate run` on a complete corpus, and before
`minhash_dedup: {against: [...]}` reads another corpus's index. `curate lm train` and `curate classifier train`
refuse impossible arguments before any work, with one line (exit 2)."""

from __future__ import annotations

import hashlib
import json
import shutil
from pathlib import Path

import pytest
import yaml

from curate.cli import main
from tests.conftest import SHARED_DATA, build_corpus

WIKI = SHARED_DATA / "corpus" / "wiki" / "wiki_demo.txt"
ARTICLES = [x for x in WIKI.read_text(encoding="utf-8").splitlines() if len(x.split()) > 100][:10]
INDEX_FILES = ["index/minhash/params.json", "index/minhash/bands.arrow", "index/minhash/docs.arrow"]


@pytest.fixture(scope="module")
def reference(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A corpus built with minhash_dedup (so it has an index), seed 1234."""
    d = tmp_path_factory.mktemp("reference")
    return build_corpus(d, {"web": ARTICLES}, ["minhash_dedup"], seed=1234)


@pytest.fixture
def corpus(tmp_path: Path, reference: Path) -> Path:
    """A copy of the reference corpus that a test may damage."""
    return Path(shutil.copytree(reference, tmp_path / "ref"))


def _flip_byte(path: Path) -> None:
    data = bytearray(path.read_bytes())
    data[len(data) // 2] ^= 0x01
    path.write_bytes(bytes(data))


def _dedup_against(tmp_path: Path, ref: Path) -> tuple[Path, Path]:
    """A recipe deduplicating two documents against ``ref``, and its output directory (not yet built)."""
    (tmp_path / "new.jsonl").write_text("".join(json.dumps({"text": t}) + "\n" for t in ARTICLES[:2]),
                                        encoding="utf-8")
    out = tmp_path / "new-out"
    recipe = {"name": "new", "seed": 1234, "sources": [{"path": "new.jsonl", "domain": "web"}],
              "steps": [{"minhash_dedup": {"against": [str(ref)]}}], "output": {"dir": str(out)},
              "executor": {"workers": 1}}
    path = tmp_path / "new.yaml"
    path.write_text(yaml.safe_dump(recipe), encoding="utf-8")
    return path, out


def _sha256(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


# ------------------------------------------------------------------------------------ the manifest records them

def test_the_manifest_records_the_index_and_mixture_with_their_sha256(reference: Path) -> None:
    files = json.loads((reference / "manifest.json").read_text())["files"]
    assert sorted(f["path"] for f in files) == sorted([*INDEX_FILES, "mixture.json"])
    for f in files:
        assert f["sha256"] == _sha256(reference / f["path"])
        assert f["bytes"] == (reference / f["path"]).stat().st_size


@pytest.mark.parametrize("name", [*INDEX_FILES, "mixture.json"])
def test_inspect_verify_names_a_damaged_side_file(corpus: Path, name: str, capsys) -> None:
    _flip_byte(corpus / name)
    assert main(["inspect", str(corpus), "--verify"]) == 1
    assert f"DAMAGED {name}: sha256 differs" in capsys.readouterr().out


def test_inspect_verify_names_a_truncated_index_file(corpus: Path, capsys) -> None:
    path = corpus / "index/minhash/bands.arrow"
    path.write_bytes(path.read_bytes()[:100])
    assert main(["inspect", str(corpus), "--verify"]) == 1
    assert "index/minhash/bands.arrow: 100 bytes where the manifest says" in capsys.readouterr().err


def test_rerunning_a_complete_corpus_refuses_a_damaged_index(tmp_path: Path, reference: Path, capsys) -> None:
    shutil.copytree(reference.parent, tmp_path / "src")
    out = tmp_path / "src" / "out"
    _flip_byte(out / "index/minhash/docs.arrow")
    assert main(["run", str(tmp_path / "src" / "recipe.yaml"), f"output.dir={out}"]) == 1
    assert "index/minhash/docs.arrow: sha256 differs from the manifest's" in capsys.readouterr().err


def test_a_manifest_without_files_from_an_earlier_mixlab_still_verifies(corpus: Path, capsys) -> None:
    m = json.loads((corpus / "manifest.json").read_text())
    del m["files"]
    (corpus / "manifest.json").write_text(json.dumps(m), encoding="utf-8")
    assert main(["inspect", str(corpus), "--verify"]) == 0
    assert "match the manifest's sha256" in capsys.readouterr().out


def test_a_manifest_whose_files_lie_outside_the_corpus_is_damaged(corpus: Path, capsys) -> None:
    m = json.loads((corpus / "manifest.json").read_text())
    m["files"][0]["path"] = "../elsewhere.json"
    (corpus / "manifest.json").write_text(json.dumps(m), encoding="utf-8")
    assert main(["inspect", str(corpus), "--verify"]) == 1
    assert "lies outside the corpus" in capsys.readouterr().err


# --------------------------------------------------------------------------- against: checks before it reads

@pytest.mark.parametrize("damage,name,says", [
    ("flip", "index/minhash/bands.arrow", "sha256 differs from the manifest's"),
    ("truncate", "index/minhash/bands.arrow", "bytes where the manifest says"),
    ("flip", "index/minhash/docs.arrow", "sha256 differs from the manifest's"),
    ("garbage", "index/minhash/params.json", "bytes where the manifest says"),
])
def test_against_a_damaged_index_fails_before_work_naming_the_file(tmp_path: Path, corpus: Path, damage: str,
                                                                   name: str, says: str, capsys) -> None:
    path = corpus / name
    if damage == "flip":
        _flip_byte(path)
    elif damage == "truncate":
        path.write_bytes(path.read_bytes()[:1000])
    else:
        path.write_text("{not json", encoding="utf-8")
    recipe, out = _dedup_against(tmp_path, corpus)
    assert main(["run", str(recipe)]) == 2
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1
    assert f"{corpus}/{name}: " in err and says in err and "rebuild that corpus" in err
    assert not out.exists()


@pytest.mark.parametrize("name,damage,says", [
    ("index/minhash/bands.arrow", b"\x00" * 64, "bands.arrow: damaged index file"),
    ("index/minhash/docs.arrow", b"ARROW1" + b"\x00" * 64, "docs.arrow: damaged index file"),
    ("index/minhash/params.json", b'{"format": 1,', "params.json: damaged"),
    ("index/minhash/params.json", b"[1, 2]", "params.json: damaged (not a JSON object)"),
])
def test_against_an_index_of_an_earlier_mixlab_is_checked_for_damage(tmp_path: Path, corpus: Path, name: str,
                                                                     damage: bytes, says: str, capsys) -> None:
    m = json.loads((corpus / "manifest.json").read_text())
    del m["files"]
    (corpus / "manifest.json").write_text(json.dumps(m), encoding="utf-8")
    (corpus / name).write_bytes(damage)
    recipe, out = _dedup_against(tmp_path, corpus)
    assert main(["run", str(recipe)]) == 2
    err = capsys.readouterr().err
    assert says in err and "rebuild that corpus" in err
    assert not out.exists()


def test_against_an_index_of_an_earlier_mixlab_still_dedups(tmp_path: Path, corpus: Path) -> None:
    m = json.loads((corpus / "manifest.json").read_text())
    del m["files"]
    (corpus / "manifest.json").write_text(json.dumps(m), encoding="utf-8")
    recipe, out = _dedup_against(tmp_path, corpus)
    assert main(["--quiet", "run", str(recipe)]) == 0
    assert json.loads((out / "manifest.json").read_text())["accounting"]["removed"]["minhash_dedup"] == \
        {"near_duplicate_of_reference": 2}


def test_against_an_unfinished_corpus_is_refused(tmp_path: Path, corpus: Path, capsys) -> None:
    (corpus / "manifest.json").unlink()
    recipe, out = _dedup_against(tmp_path, corpus)
    assert main(["run", str(recipe)]) == 2
    assert f"{corpus} is not a complete corpus" in capsys.readouterr().err
    assert not out.exists()


def test_against_a_corpus_with_a_damaged_manifest_names_the_manifest(tmp_path: Path, corpus: Path, capsys) -> None:
    (corpus / "manifest.json").write_text("{", encoding="utf-8")
    recipe, out = _dedup_against(tmp_path, corpus)
    assert main(["run", str(recipe)]) == 2
    assert f"{corpus / 'manifest.json'}: damaged" in capsys.readouterr().err
    assert not out.exists()


# ------------------------------------------------------------------------------- lm and classifier arguments

def _lm(tmp_path: Path, *args: str) -> list[str]:
    return ["lm", "train", "--input", str(WIKI), "--lang", "en", *args]


@pytest.mark.parametrize("out,says", [("afile", "exists and is not a directory"),
                                      ("afile/sub", "cannot be created: {tmp}/afile is a file")])
def test_lm_train_refuses_an_out_that_cannot_be_a_directory(tmp_path: Path, out: str, says: str, capsys) -> None:
    (tmp_path / "afile").write_text("mine", encoding="utf-8")
    assert main(_lm(tmp_path, "--out", str(tmp_path / out))) == 2
    err = capsys.readouterr().err
    assert says.format(tmp=tmp_path) in err and len(err.strip().splitlines()) == 1
    assert (tmp_path / "afile").read_text() == "mine"


@pytest.mark.parametrize("prune,says", [(["-1"], "cannot be negative"),
                                        (["0", "0", "0", "0", "0", "0"], "6 thresholds need --order 6 or more"),
                                        (["0", "1", "0"], "must not decrease")])
def test_lm_train_refuses_prune_thresholds_kenlm_rejects(tmp_path: Path, prune: list[str], says: str,
                                                         capsys) -> None:
    assert main(_lm(tmp_path, "--out", str(tmp_path / "m"), "--prune", *prune)) == 2
    assert says in capsys.readouterr().err
    assert not (tmp_path / "m").exists()


def test_lm_train_names_a_missing_domain_and_lists_the_corpus_domains(tmp_path: Path, reference: Path,
                                                                     capsys) -> None:
    assert main(["lm", "train", "--input", str(reference), "--lang", "en", "--out", str(tmp_path / "m"),
                 "--domain", "nosuch"]) == 2
    assert f"--domain nosuch: the corpus {reference} has no such domain (its domains: web)" in \
        capsys.readouterr().err
    assert not (tmp_path / "m").exists()


def test_lm_train_refuses_a_domain_without_a_corpus_input(tmp_path: Path, capsys) -> None:
    assert main(_lm(tmp_path, "--out", str(tmp_path / "m"), "--domain", "web")) == 2
    assert "only a corpus directory input has domains" in capsys.readouterr().err


def _classifier(tmp_path: Path, *args: str) -> list[str]:
    neg = tmp_path / "neg.jsonl"
    neg.write_text("".join(json.dumps({"text": f"buy cheap pills now {i} click here"}) + "\n" for i in range(50)),
                   encoding="utf-8")
    return ["classifier", "train", "--positive", str(WIKI), "--negative", str(neg), *args]


@pytest.mark.parametrize("args,says", [
    (["--held-out", "1.5"], "--held-out 1.5: the fraction"),
    (["--held-out", "0"], "--held-out 0.0: the fraction"),
    (["--held-out", "nan"], "--held-out nan: the fraction"),
    (["--epochs", "0"], "--epochs 0: must be at least 1"),
    (["--threshold", "7"], "--threshold 7.0: a probability"),
    (["--threshold", "-0.1"], "--threshold -0.1: a probability"),
    (["--max-docs", "0"], "--max-docs 0: must be at least 20"),
])
def test_classifier_train_refuses_impossible_arguments(tmp_path: Path, args: list[str], says: str, capsys) -> None:
    assert main(_classifier(tmp_path, "--out", str(tmp_path / "c"), *args)) == 2
    assert says in capsys.readouterr().err
    assert not (tmp_path / "c").exists()


def test_classifier_train_refuses_a_held_out_share_that_leaves_too_little_to_train(tmp_path: Path, capsys) -> None:
    assert main(_classifier(tmp_path, "--out", str(tmp_path / "c"), "--held-out", "0.99")) == 2
    assert "documents to train on" in capsys.readouterr().err
    assert not (tmp_path / "c").exists()


@pytest.mark.parametrize("out", ["afile", "afile/sub"])
def test_classifier_train_refuses_an_out_that_cannot_be_a_directory(tmp_path: Path, out: str, capsys) -> None:
    (tmp_path / "afile").write_text("mine", encoding="utf-8")
    assert main(_classifier(tmp_path, "--out", str(tmp_path / out))) == 2
    assert f"--out {tmp_path / out}:" in capsys.readouterr().err
    assert (tmp_path / "afile").read_text() == "mine"


def test_classifier_train_names_a_missing_input(tmp_path: Path, capsys) -> None:
    assert main(["classifier", "train", "--positive", str(WIKI), "--negative", str(tmp_path / "nope.jsonl"),
                 "--out", str(tmp_path / "c")]) == 2
    assert f"--negative {tmp_path / 'nope.jsonl'}: no such file" in capsys.readouterr().err


def test_against_an_index_of_an_earlier_mixlab_with_missing_documents_is_refused(tmp_path: Path, corpus: Path,
                                                                                 capsys) -> None:
    import pyarrow as pa

    from curate.steps.minhash import MinhashDedup

    m = json.loads((corpus / "manifest.json").read_text())
    del m["files"]
    (corpus / "manifest.json").write_text(json.dumps(m), encoding="utf-8")
    docs = corpus / "index/minhash/docs.arrow"
    with pa.ipc.new_file(str(docs), MinhashDedup.side_schema) as w:
        w.write_table(MinhashDedup.side_schema.empty_table())
    recipe, out = _dedup_against(tmp_path, corpus)
    assert main(["run", str(recipe)]) == 2
    assert f"{docs}: damaged index file: it holds 0 documents where params.json says" in capsys.readouterr().err
    assert not out.exists()
