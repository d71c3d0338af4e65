"""`curate mix`: a corpus's weighted mixture as one shuffled Parquet dataset."""

from __future__ import annotations

import json
import shutil
from collections import defaultdict
from pathlib import Path

import pyarrow.parquet as pq
import pytest

from curate.cli import main
from tests.conftest import run_curate

WEIGHTS = {"books": 0.5, "code": 0.3, "web": 0.2, "wiki": 0.0}
TOKENS = 300_000


def _weights(tmp_path: Path, weights: object, name: str = "weights.json") -> Path:
    path = tmp_path / name
    path.write_text(json.dumps(weights), encoding="utf-8")
    return path


def _mix(corpus: Path, weights: Path, out: Path, *extra: object, tokens: int = TOKENS) -> None:
    assert main(["--quiet", "mix", str(corpus), "--weights", str(weights), "--tokens", str(tokens),
                 "--out", str(out), *map(str, extra)]) == 0


def _rows(out: Path, columns: list[str] | None = None) -> list[dict]:
    rows: list[dict] = []
    for f in sorted((out / "data").glob("*.parquet")):
        rows += pq.read_table(f, columns=columns).to_pylist()
    return rows


def _corpus_docs(corpus: Path) -> dict[str, dict[str, str]]:
    """domain -> id -> text of a corpus."""
    docs: dict[str, dict[str, str]] = defaultdict(dict)
    for f in (corpus / "data").rglob("*.parquet"):
        for r in pq.read_table(f, columns=["id", "text", "domain"]).to_pylist():
            docs[r["domain"]][r["id"]] = r["text"]
    return docs


def _check_shares(out: Path, corpus: Path, tokens_of) -> None:
    written: dict[str, float] = defaultdict(float)
    for r in _rows(out, ["text", "domain"]):
        written[r["domain"]] += tokens_of(r["text"])
    longest = {d: max(tokens_of(t) for t in docs.values()) for d, docs in _corpus_docs(corpus).items()}
    assert "wiki" not in written
    for d, w in WEIGHTS.items():
        if w:
            assert w * TOKENS <= written[d] < w * TOKENS + longest[d], d


def test_each_domain_gets_weight_times_tokens_within_one_document(quickstart_out: Path, tmp_path: Path) -> None:
    out = tmp_path / "mix"
    _mix(quickstart_out, _weights(tmp_path, {"weights": WEIGHTS}), out)
    import pyarrow as pa

    from curate.tokens import document_estimates

    _check_shares(out, quickstart_out, lambda text: float(document_estimates(pa.array([text]))[0]))
    m = json.loads((out / "manifest.json").read_text())
    assert m["counting"]["method"] == "estimate" and m["tokens_requested"] == TOKENS
    assert m["source"]["corpus_sha256"] == json.loads((quickstart_out / "manifest.json").read_text())["corpus_sha256"]


@pytest.mark.parametrize("total", [1, 55, 100, 349, 350])
def test_a_domain_draw_stops_at_the_first_document_that_reaches_its_share(total: int) -> None:
    import numpy as np

    from curate.mix import draw

    tokens = np.array([10.0, 20.0, 30.0, 40.0])
    x = draw("web", tokens, 0.5, total, seed=0)
    need = 0.5 * total
    assert tokens[x.docs[:-1]].sum() < need <= tokens[x.docs].sum() == x.tokens_written
    for e in range(int(x.epochs.max())):
        assert sorted(x.docs[x.epochs == e]) == [0, 1, 2, 3]
    assert len(set(x.docs[x.epochs == x.epochs.max()])) == int((x.epochs == x.epochs.max()).sum())


def test_a_plain_domain_weight_object_is_accepted_and_normalized(quickstart_out: Path, tmp_path: Path) -> None:
    out = tmp_path / "mix"
    _mix(quickstart_out, _weights(tmp_path, {"books": 5, "code": 3, "web": 2}), out)
    m = json.loads((out / "manifest.json").read_text())
    assert m["weights"] == pytest.approx(WEIGHTS)


def test_same_inputs_and_seed_give_byte_identical_files(quickstart_out: Path, tmp_path: Path) -> None:
    weights = _weights(tmp_path, {"weights": WEIGHTS})
    _mix(quickstart_out, weights, tmp_path / "a", "--seed", 3, "--shard-docs", 100)
    _mix(quickstart_out, weights, tmp_path / "b", "--seed", 3, "--shard-docs", 100)
    a = sorted((tmp_path / "a" / "data").iterdir())
    assert len(a) > 1
    assert [p.name for p in a] == sorted(p.name for p in (tmp_path / "b" / "data").iterdir())
    assert all(p.read_bytes() == (tmp_path / "b" / "data" / p.name).read_bytes() for p in a)


def test_another_seed_gives_another_order(quickstart_out: Path, tmp_path: Path) -> None:
    weights = _weights(tmp_path, {"weights": WEIGHTS})
    _mix(quickstart_out, weights, tmp_path / "a", "--seed", 1)
    _mix(quickstart_out, weights, tmp_path / "b", "--seed", 2)
    assert [r["id"] for r in _rows(tmp_path / "a", ["id"])] != [r["id"] for r in _rows(tmp_path / "b", ["id"])]


def test_documents_are_shuffled_across_domains(quickstart_out: Path, tmp_path: Path) -> None:
    _mix(quickstart_out, _weights(tmp_path, {"weights": WEIGHTS}), tmp_path / "mix")
    domains = [r["domain"] for r in _rows(tmp_path / "mix", ["domain"])]
    runs = 1 + sum(a != b for a, b in zip(domains, domains[1:]))
    assert runs > len(domains) / 3


def test_repeated_documents_carry_their_epoch(quickstart_out: Path, tmp_path: Path) -> None:
    out = tmp_path / "mix"
    _mix(quickstart_out, _weights(tmp_path, {"weights": WEIGHTS}), out, tokens=1_000_000)
    rows = _rows(out, ["id", "epoch"])
    uses: dict[str, list[int]] = defaultdict(list)
    for r in rows:
        uses[r["id"]].append(r["epoch"])
    assert any(len(e) > 1 for e in uses.values())
    assert all(sorted(e) == list(range(len(e))) for e in uses.values())


def test_a_share_beyond_max_repetition_is_refused_with_the_table_before_writing(
        quickstart_out: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    out = tmp_path / "mix"
    code, err = run_curate(capsys, "mix", quickstart_out, "--weights", _weights(tmp_path, {"weights": WEIGHTS}),
                           "--tokens", 3_000_000, "--max-repetition", 5, "--out", out)
    assert code == 2
    assert "tokens needed" in err and "available" in err and "epochs" in err
    available = {d: v["est_tokens"] for d, v in json.loads((quickstart_out / "manifest.json").read_text())
                 ["domains"].items()}
    too_small = [d for d, w in WEIGHTS.items() if w and w * 3_000_000 > 5 * available[d]]
    assert too_small
    assert [line.split()[0] for line in err.splitlines() if "<- too small" in line] == too_small
    assert not out.exists()


def test_tokenizer_counts_tokens_exactly(quickstart_out: Path, tokenizer_dir: Path, tmp_path: Path) -> None:
    from transformers import AutoTokenizer

    out = tmp_path / "mix"
    _mix(quickstart_out, _weights(tmp_path, {"weights": WEIGHTS}), out, "--tokenizer", tokenizer_dir)
    tok = AutoTokenizer.from_pretrained(str(tokenizer_dir))
    _check_shares(out, quickstart_out, lambda text: len(tok(text, add_special_tokens=False)["input_ids"]))
    m = json.loads((out / "manifest.json").read_text())
    assert m["counting"]["method"] == "tokenizer"
    assert "tokenizer" in (out / "card.md").read_text()


def test_the_output_loads_with_datasets(quickstart_out: Path, tmp_path: Path) -> None:
    import datasets

    out = tmp_path / "mix"
    _mix(quickstart_out, _weights(tmp_path, {"weights": WEIGHTS}), out, "--shard-docs", 100)
    ds = datasets.load_dataset("parquet", data_files=str(out / "data" / "*.parquet"), split="train",
                               cache_dir=str(tmp_path / "hf"))
    m = json.loads((out / "manifest.json").read_text())
    assert ds.num_rows == m["docs_written"] == sum(v["docs_written"] for v in m["domains"].values())
    assert {"text", "domain", "id", "epoch"} <= set(ds.column_names)
    assert ds[0]["text"] == _rows(out, ["text"])[0]["text"]


def test_manifest_lists_every_file_with_its_sha256(quickstart_out: Path, tmp_path: Path) -> None:
    from curate.arrow_io import sha256_file

    out = tmp_path / "mix"
    _mix(quickstart_out, _weights(tmp_path, {"weights": WEIGHTS}), out, "--shard-docs", 100)
    m = json.loads((out / "manifest.json").read_text())
    assert sorted(f["path"] for f in m["files"]) == sorted(f"data/{p.name}" for p in (out / "data").iterdir())
    assert all(sha256_file(out / f["path"]) == f["sha256"] for f in m["files"])


def test_a_damaged_corpus_shard_is_refused_naming_it(quickstart_out: Path, tmp_path: Path,
                                                     capsys: pytest.CaptureFixture[str]) -> None:
    corpus = tmp_path / "corpus"
    shutil.copytree(quickstart_out / "data", corpus / "data")
    for name in ("manifest.json", "mixture.json"):
        shutil.copy(quickstart_out / name, corpus / name)
    shard = corpus / "data" / "web" / "part-00000.parquet"
    raw = bytearray(shard.read_bytes())
    raw[len(raw) // 2] ^= 0xFF
    shard.write_bytes(bytes(raw))
    out = tmp_path / "mix"
    code, err = run_curate(capsys, "mix", corpus, "--weights", _weights(tmp_path, {"weights": WEIGHTS}),
                           "--tokens", TOKENS, "--out", out)
    assert code == 1
    assert len(err.strip().splitlines()) == 1 and str(shard) in err and "sha256" in err
    assert not out.exists()


@pytest.mark.parametrize("weights, says", [
    ({"weights": {"books": 1, "news": 1}}, "'news' is not in the corpus"),
    ({"books": -1, "code": 1}, "'books'"),
    ({"books": float("nan")}, "'books'"),
    ({"books": 0, "code": 0}, "every weight is 0"),
    ([0.5, 0.5], "expected a mixture.json"),
])
def test_bad_weights_are_one_line_config_errors(quickstart_out: Path, tmp_path: Path,
                                                capsys: pytest.CaptureFixture[str], weights: object,
                                                says: str) -> None:
    code, err = run_curate(capsys, "mix", quickstart_out, "--weights", _weights(tmp_path, weights),
                           "--tokens", TOKENS, "--out", tmp_path / "mix")
    assert code == 2 and says in err and len(err.strip().splitlines()) == 1


@pytest.mark.parametrize("problem", ["missing corpus", "a mix output as the corpus", "missing weights",
                                     "zero tokens", "out is a file"])
def test_user_mistakes_are_one_line_config_errors(quickstart_out: Path, tmp_path: Path,
                                                  capsys: pytest.CaptureFixture[str], problem: str) -> None:
    args = {"corpus": quickstart_out, "--weights": _weights(tmp_path, {"weights": WEIGHTS}), "--tokens": TOKENS,
            "--out": tmp_path / "mix"}
    if problem == "missing corpus":
        args["corpus"] = tmp_path / "nowhere"
    elif problem == "a mix output as the corpus":
        _mix(quickstart_out, args["--weights"], tmp_path / "first")
        args["corpus"] = tmp_path / "first"
    elif problem == "missing weights":
        args["--weights"] = tmp_path / "none.json"
    elif problem == "zero tokens":
        args["--tokens"] = 0
    else:
        (tmp_path / "mix").write_text("mine")
    code, err = run_curate(capsys, "mix", args["corpus"], *[x for k in ("--weights", "--tokens", "--out")
                                                            for x in (k, args[k])])
    assert code == 2 and len(err.strip().splitlines()) == 1


def test_a_directory_with_user_files_is_never_written_into(quickstart_out: Path, tmp_path: Path,
                                                            capsys: pytest.CaptureFixture[str]) -> None:
    out = tmp_path / "mix"
    (out / "data").mkdir(parents=True)
    mine = out / "data" / "part-00000.parquet"
    mine.write_bytes(b"my own file")
    code, err = run_curate(capsys, "mix", quickstart_out, "--weights", _weights(tmp_path, {"weights": WEIGHTS}),
                           "--tokens", TOKENS, "--out", out)
    assert code == 2 and "holds no `curate mix` output" in err
    assert mine.read_bytes() == b"my own file" and sorted(out.rglob("*")) == [out / "data", mine]


def test_an_earlier_mix_is_replaced_and_user_files_beside_it_kept(quickstart_out: Path, tmp_path: Path) -> None:
    weights = _weights(tmp_path, {"weights": WEIGHTS})
    out = tmp_path / "mix"
    _mix(quickstart_out, weights, out, "--shard-docs", 50)
    notes = out / "notes.txt"
    notes.write_text("mine")
    _mix(quickstart_out, weights, out, "--shard-docs", 500, "--seed", 9)
    m = json.loads((out / "manifest.json").read_text())
    assert m["seed"] == 9 and len(m["files"]) == 1
    assert sorted(p.name for p in (out / "data").iterdir()) == ["part-00000.parquet"]
    assert notes.read_text() == "mine"


def test_an_earlier_mix_with_a_user_file_in_data_is_refused(quickstart_out: Path, tmp_path: Path,
                                                             capsys: pytest.CaptureFixture[str]) -> None:
    weights = _weights(tmp_path, {"weights": WEIGHTS})
    out = tmp_path / "mix"
    _mix(quickstart_out, weights, out)
    extra = out / "data" / "extra.parquet"
    extra.write_bytes(b"mine")
    code, err = run_curate(capsys, "mix", quickstart_out, "--weights", weights, "--tokens", TOKENS, "--out", out)
    assert code == 2 and str(extra) in err
    assert extra.read_bytes() == b"mine"


def test_the_corpus_directory_itself_is_refused(quickstart_out: Path, tmp_path: Path,
                                                capsys: pytest.CaptureFixture[str]) -> None:
    code, err = run_curate(capsys, "mix", quickstart_out, "--weights", _weights(tmp_path, {"weights": WEIGHTS}),
                           "--tokens", TOKENS, "--out", quickstart_out / "mixed")
    assert code == 2 and "overlaps the corpus" in err
    assert not (quickstart_out / "mixed").exists()


def test_the_command_prints_a_summary_table(quickstart_out: Path, tmp_path: Path,
                                            capsys: pytest.CaptureFixture[str]) -> None:
    _mix(quickstart_out, _weights(tmp_path, {"weights": WEIGHTS}), tmp_path / "mix")
    lines = capsys.readouterr().out.splitlines()
    assert lines[0].split() == ["domain", "weight", "tokens", "asked", "written", "docs", "epochs"]
    assert [line.split()[0] for line in lines[1:5]] == ["books", "code", "web", "wiki"]
    assert "documents" in lines[5] and "(estimate)" in lines[5]


def test_inspect_summarizes_a_mix_output_and_verifies_its_files(tmp_path: Path, quickstart_out: Path,
                                                                 capsys: pytest.CaptureFixture[str]) -> None:
    from curate.cli import main

    out = tmp_path / "mix"
    weights = tmp_path / "w.json"
    weights.write_text('{"books": 1, "wiki": 1}', encoding="utf-8")
    assert main(["mix", str(quickstart_out), "--weights", str(weights), "--tokens", "20000", "--out", str(out)]) == 0
    capsys.readouterr()
    assert main(["inspect", str(out), "--verify"]) == 0
    text = capsys.readouterr().out
    assert text.startswith("a `curate mix` dataset of ") and "verified: all" in text
    shard = sorted((out / "data").glob("*.parquet"))[0]
    shard.write_bytes(shard.read_bytes()[:-10] + b"0123456789")
    assert main(["inspect", str(out), "--verify"]) == 1
    assert f"DAMAGED data/{shard.name}: sha256 differs from the manifest" in capsys.readouterr().out
