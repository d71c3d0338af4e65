"""What training reads from disk is checked before use: the token cache is tokenized again where it is damaged, a
damaged corpus shard or mixture is one line naming the file, and `train tokenizer --out` replaces only a tokenizer of
its own."""

from __future__ import annotations

import json
import logging
import math
import shutil
from pathlib import Path
from typing import Callable, Iterator

import numpy as np
import pytest

from mixlab import checksum
from mixlab.config import load_config
from mixlab.errors import ConfigError, RunError
from tests.conftest import pretrain_config
from train import corpus as corpus_mod
from train import token_cache
from train.cli import main
from train.config import PretrainConfig
from train.corpus import Corpus
from train.tokenizer import sample_corpus


@pytest.fixture(scope="module")
def cached_corpus(tmp_path_factory: pytest.TempPathFactory, quickstart_out: Path, tokenizer_dir: Path) -> Path:
    """A copy of the quickstart corpus with its token cache built for ``tokenizer_dir``."""
    root = tmp_path_factory.mktemp("cached") / "corpus"
    shutil.copytree(quickstart_out, root)
    c = Corpus(root)
    token_cache.build(c, tokenizer_dir, c.domains, 1)
    return root


@pytest.fixture
def corpus_copy(tmp_path: Path, cached_corpus: Path) -> Path:
    """A copy of ``cached_corpus`` (token cache included) that a test may damage."""
    return Path(shutil.copytree(cached_corpus, tmp_path / "corpus"))


@pytest.fixture
def messages() -> Iterator[list[str]]:
    """The messages mixlab logs while the test runs."""
    got: list[str] = []
    handler = logging.Handler(logging.INFO)
    handler.emit = lambda record: got.append(record.getMessage())  # type: ignore[method-assign]
    logging.getLogger("mixlab").addHandler(handler)
    yield got
    logging.getLogger("mixlab").removeHandler(handler)


def _all_tokens(root: Path, tokenizer_dir: Path) -> dict[str, list[np.ndarray]]:
    c = Corpus(root)
    token_cache.build(c, tokenizer_dir, c.domains, 1)
    return {d: [np.array(s.tokens) for s in token_cache.load(c, tokenizer_dir, d)] for d in c.domains}


def _truncate(path: Path, size: int) -> None:
    path.write_bytes(path.read_bytes()[:size])


def _flip(path: Path) -> None:
    data = bytearray(path.read_bytes())
    data[len(data) // 2] ^= 0x01
    path.write_bytes(bytes(data))


def _old_meta(path: Path) -> None:
    meta = json.loads(path.read_text())
    del meta["files"]
    path.write_text(json.dumps(meta))


CACHE_DAMAGE: dict[str, tuple[str, Callable[[Path], None]]] = {
    "meta_not_json": (".json", lambda p: p.write_text("{")),
    "meta_without_checksums": (".json", _old_meta),
    "tokens_truncated": (".tokens", lambda p: _truncate(p, 1001)),
    "tokens_empty": (".tokens", lambda p: _truncate(p, 0)),
    "tokens_byte_flipped": (".tokens", _flip),
    "docs_truncated": (".docs.npy", lambda p: _truncate(p, 100)),
    "ids_deleted": (".ids.npy", lambda p: p.unlink()),
}


@pytest.mark.parametrize("damage", sorted(CACHE_DAMAGE))
def test_damaged_token_cache_shard_is_tokenized_again(damage: str, corpus_copy: Path, cached_corpus: Path,
                                                      tokenizer_dir: Path, messages: list[str]) -> None:
    expected = _all_tokens(cached_corpus, tokenizer_dir)
    suffix, hurt = CACHE_DAMAGE[damage]
    target = token_cache.cache_dir(Corpus(corpus_copy), tokenizer_dir) / "web" / "part-00000"
    hurt(target.with_suffix(suffix))
    got = _all_tokens(corpus_copy, tokenizer_dir)
    assert all(np.array_equal(a, b) for d in expected for a, b in zip(expected[d], got[d], strict=True))
    again = [m for m in messages if "again" in m]
    assert len(again) == 1 and "web/part-00000" in again[0]
    assert any("tokenizing 1 shards" in m for m in messages)


def test_cache_files_are_hashed_once_per_process(corpus_copy: Path, tokenizer_dir: Path,
                                                 monkeypatch: pytest.MonkeyPatch) -> None:
    calls: list[Path] = []
    real = checksum.file_checksum
    monkeypatch.setattr(checksum, "file_checksum", lambda p: calls.append(p) or real(p))
    for _ in range(3):
        _all_tokens(corpus_copy, tokenizer_dir)
    assert len(calls) == len(set(calls)) == 3 * sum(len(Corpus(corpus_copy).shards(d))
                                                   for d in Corpus(corpus_copy).domains)


def test_pretrain_trains_on_a_token_cache_with_a_flipped_byte(tmp_path: Path, corpus_copy: Path,
                                                               tokenizer_dir: Path,
                                                               capsys: pytest.CaptureFixture[str]) -> None:
    tokens = token_cache.cache_dir(Corpus(corpus_copy), tokenizer_dir) / "wiki" / "part-00000.tokens"
    _flip(tokens)
    cfg = pretrain_config(tmp_path / "pt", corpus_copy, tokenizer_dir, optim={"max_steps": 1, "warmup_steps": 0})
    assert main(["pretrain", str(cfg)]) == 0
    assert ("wiki/part-00000: part-00000.tokens: damaged: its checksum differs from the one recorded when it was "
            "written; tokenizing") in capsys.readouterr().err


SHARD_DAMAGE: dict[str, Callable[[Path], None]] = {
    "deleted": lambda p: p.unlink(),
    "byte_flipped": _flip,
    "truncated": lambda p: _truncate(p, p.stat().st_size // 2),
}


@pytest.mark.parametrize("damage", sorted(SHARD_DAMAGE))
def test_train_tokenizer_on_a_damaged_shard_names_it(damage: str, tmp_path: Path, corpus_copy: Path,
                                                     capsys: pytest.CaptureFixture[str]) -> None:
    shard = corpus_copy / "data" / "wiki" / "part-00000.parquet"
    SHARD_DAMAGE[damage](shard)
    rc = main(["--quiet", "tokenizer", "--corpus", str(corpus_copy), "--out", str(tmp_path / "tok"),
               "--vocab-size", "300", "--sample-chars", "200000"])
    err = capsys.readouterr().err.strip().splitlines()
    assert rc == 1
    assert len(err) == 1 and str(shard) in err[0] and "--verify" in err[0] and "Traceback" not in err[0]


def test_token_cache_refuses_to_tokenize_a_damaged_shard(corpus_copy: Path, tokenizer_dir: Path) -> None:
    c = Corpus(corpus_copy)
    shutil.rmtree(c.root / "tokens")
    _flip(c.root / "data" / "books" / "part-00000.parquet")
    with pytest.raises(RunError, match=r"books/part-00000\.parquet: damaged shard"):
        token_cache.build(c, tokenizer_dir, c.domains, 1)


def test_shard_is_hashed_once_per_process(corpus_copy: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    calls: list[Path] = []
    real = corpus_mod._sha256
    monkeypatch.setattr(corpus_mod, "_sha256", lambda p: calls.append(p) or real(p))
    c = Corpus(corpus_copy)
    shard = c.shards("wiki")[0]
    for _ in range(3):
        assert sum(b.num_rows for b in c.batches(shard, ("text",), batch_size=16)) == shard.docs
    assert calls == [shard.path]


@pytest.fixture
def tokenizer_run(tmp_path: Path, quickstart_out: Path) -> Callable[..., int]:
    def run(out: Path, *extra: str) -> int:
        return main(["--quiet", "tokenizer", "--corpus", str(quickstart_out), "--out", str(out), "--vocab-size", "400",
                     "--sample-chars", "200000", *extra])

    return run


def _contents(root: Path) -> dict[str, bytes]:
    return {str(p.relative_to(root)): p.read_bytes() for p in sorted(root.rglob("*")) if p.is_file()}


def test_tokenizer_out_refuses_a_model_directory(tmp_path: Path, tokenizer_run: Callable[..., int],
                                                  capsys: pytest.CaptureFixture[str]) -> None:
    model = tmp_path / "model"
    model.mkdir()
    (model / "config.json").write_text("{}")
    (model / "tokenizer.json").write_text('{"model": "theirs"}')
    before = _contents(model)
    assert tokenizer_run(model) == 2
    assert _contents(model) == before
    err = capsys.readouterr().err
    assert str(model) in err and "mixlab_tokenizer.json" in err


def test_tokenizer_out_refuses_a_corpus(tmp_path: Path, corpus_copy: Path, tokenizer_run: Callable[..., int]) -> None:
    before = _contents(corpus_copy)
    assert tokenizer_run(corpus_copy) == 2
    assert _contents(corpus_copy) == before


def test_tokenizer_out_replaces_its_own_tokenizer(tmp_path: Path, tokenizer_dir: Path,
                                                  tokenizer_run: Callable[..., int]) -> None:
    out = Path(shutil.copytree(tokenizer_dir, tmp_path / "tok"))
    assert tokenizer_run(out) == 0
    assert json.loads((out / "mixlab_tokenizer.json").read_text())["requested_vocab_size"] == 400


def test_tokenizer_refuses_a_negative_seed(tmp_path: Path, tokenizer_run: Callable[..., int],
                                           capsys: pytest.CaptureFixture[str]) -> None:
    assert tokenizer_run(tmp_path / "tok", "--seed", "-3") == 2
    assert "--seed -3" in capsys.readouterr().err
    assert not (tmp_path / "tok").exists()


@pytest.mark.parametrize("weights", ["{web: -1, wiki: 2}", "{web: .nan, wiki: 1}", "{web: .inf}",
                                     "{web: 0, wiki: 0}"])
def test_config_refuses_negative_non_finite_or_all_zero_weights(weights: str, tmp_path: Path) -> None:
    cfg = pretrain_config(tmp_path, tmp_path / "corpus", tmp_path / "tok")
    with pytest.raises(ConfigError, match=r"data\.weights: "):
        load_config(PretrainConfig, cfg, [f"data.weights={weights}"])


@pytest.mark.parametrize("weight", [-0.5, math.inf, "0.3"])
def test_corpus_with_a_bad_mixture_weight_names_the_file(weight: object, corpus_copy: Path) -> None:
    mixture = corpus_copy / "mixture.json"
    data = json.loads(mixture.read_text())
    data["weights"]["web"] = weight
    mixture.write_text(json.dumps(data))
    with pytest.raises(ConfigError, match=rf"{mixture}: damaged \(weight of 'web'"):
        Corpus(corpus_copy)


def test_tokenizer_sample_never_exceeds_the_requested_characters(tmp_path: Path, quickstart_out: Path) -> None:
    c = Corpus(quickstart_out)
    weights = {d: 3.0 for d in c.domains} | {c.domains[0]: 12.0}
    written = sample_corpus(c, weights, 100_000, tmp_path / "sample.txt")
    assert sum(written.values()) <= 100_000
    assert written[c.domains[0]] == pytest.approx(100_000 * 12 / (12 + 3 * (len(c.domains) - 1)), rel=0.01)
