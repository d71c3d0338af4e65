"""What training reads is read whole: the tokenizer round-trips every text through AutoTokenizer, SentencePiece is
fed every sampled character, SFT records are split on newlines only, and a wrong tokenizer, argument or data file is
one line with exit 2, never a traceback."""

from __future__ import annotations

import json
import random
from pathlib import Path

import pyarrow.parquet as pq
import pytest

from mixlab.errors import ConfigError
from tests.conftest import build_corpus, pretrain_config, sft_config
from train import sft_data
from train.corpus import Corpus
from train.tokenizer import MAX_SENTENCE_BYTES, chunks, sample_corpus, train_tokenizer

ODD_TEXTS = [" one leading space", "   three leading spaces", "\ttab first", "trailing spaces   ",
             "inner  double   spaces", "\n\nstarts with newlines", "line one\r\nline two\r\n", "tabs\tin\tthe\tmiddle",
             "中文文本，没有空格。", "日本語のテキスト", "emoji 🙂🚀 and ZWJ 👩‍👩‍👧", " ", "  ", "\u2028\u00a0\u3000", "x"]
COMMON = "the river runs past a small town where people walk and talk in the evening light".split()
LONG_WORDS = ["zorvex", "quandil", "mirthop", "skelvar", "dunbrio"]


def _words(r: random.Random, pool: list[str], n: int) -> str:
    return " ".join(r.choice(pool) for _ in range(n))


@pytest.fixture(scope="module")
def long_line_corpus(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """Domain `prose`: ordinary multi-line documents; domain `long`: made-up words in documents that are one line
    of ~40 KB each (minified code, a CJK page without newlines)."""
    r = random.Random(7)
    prose = ["\n".join(_words(r, COMMON, 12) + "." for _ in range(8)) for _ in range(60)]
    long = [_words(r, LONG_WORDS + COMMON, 6000) for _ in range(6)]
    return build_corpus(tmp_path_factory.mktemp("long-lines"), {"prose": prose, "long": long}, [])


@pytest.fixture(scope="module")
def cjk_corpus(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """One domain of Chinese-like text with ~2,000 distinct characters, all frequent."""
    r = random.Random(3)
    docs = ["".join(chr(0x4E00 + r.randrange(2000)) for _ in range(1500)) for _ in range(40)]
    return build_corpus(tmp_path_factory.mktemp("cjk"), {"zh": docs}, [])


def _tok(directory: Path):  # noqa: ANN202
    from transformers import AutoTokenizer

    return AutoTokenizer.from_pretrained(str(directory))


# -- the tokenizer is lossless through AutoTokenizer -------------------------------------------------------------

def test_autotokenizer_round_trip_keeps_every_domain_and_odd_whitespace(tokenizer_dir: Path,
                                                                        quickstart_out: Path) -> None:
    tok = _tok(tokenizer_dir)
    texts = list(ODD_TEXTS)
    for f in sorted((quickstart_out / "data").rglob("*.parquet")):
        texts += pq.read_table(f, columns=["text"])["text"].to_pylist()[:20]
    texts += [" " + t for t in texts[-5:]] + ["  " + t + " \r\n" for t in texts[-5:]]
    lost = [t for t in texts if tok.decode(tok(t, add_special_tokens=False)["input_ids"]) != t]
    assert lost == []


def test_autotokenizer_gives_the_ids_the_token_cache_stores(tokenizer_dir: Path, quickstart_out: Path) -> None:
    import sentencepiece as spm

    from train import token_cache

    tok = _tok(tokenizer_dir)
    sp = spm.SentencePieceProcessor(model_file=str(tokenizer_dir / "tokenizer.model"))
    texts = list(ODD_TEXTS) + pq.read_table(next((quickstart_out / "data").rglob("*.parquet")),
                                            columns=["text"])["text"].to_pylist()[:30]
    hf = tok(texts, add_special_tokens=False)["input_ids"]
    assert hf == sp.encode(texts)
    assert token_cache._Encoder(tokenizer_dir).encode(texts) == hf


def test_texts_encoded_one_after_another_decode_to_their_concatenation(tokenizer_dir: Path) -> None:
    tok = _tok(tokenizer_dir)
    parts = ["<|user|>\n", "Hi there", "\n", "<|assistant|>\n", " Hello!", "</s>", "\n"]
    ids = [i for p in parts for i in tok(p, add_special_tokens=False)["input_ids"]]
    assert tok.decode(ids) == "".join(parts)


def test_token_cache_uses_autotokenizer_ids_when_sentencepiece_disagrees(tmp_path: Path,
                                                                         quickstart_out: Path) -> None:
    import sentencepiece as spm
    from transformers import LlamaTokenizer

    from train import token_cache

    lines = pq.read_table(next((quickstart_out / "data" / "wiki").glob("*.parquet")),
                          columns=["text"])["text"].to_pylist()
    (tmp_path / "s.txt").write_text("\n".join(x for t in lines for x in t.split("\n") if x.strip()), encoding="utf-8")
    spm.SentencePieceTrainer.train(input=str(tmp_path / "s.txt"), model_prefix=str(tmp_path / "tokenizer"),
                                   model_type="bpe", vocab_size=400, byte_fallback=True, add_dummy_prefix=True,
                                   unk_id=0, bos_id=1, eos_id=2, pad_id=3, hard_vocab_limit=False, minloglevel=2)
    old = tmp_path / "old"  # a tokenizer as `train tokenizer` wrote it before: SentencePiece adds a dummy prefix
    old.mkdir()
    (tmp_path / "tokenizer.model").rename(old / "tokenizer.model")
    LlamaTokenizer.from_pretrained(str(old), legacy=False).save_pretrained(str(old))
    texts = [" leading space", "plain"]
    assert token_cache._Encoder(old).encode(texts) == _tok(old)(texts, add_special_tokens=False)["input_ids"]


# -- SentencePiece is fed every sampled character ----------------------------------------------------------------

def test_chunks_stay_under_the_byte_limit_and_join_back() -> None:
    line = "word " * 3000 + "中文" * 4000 + " tail"
    pieces = list(chunks(line, 1000))
    assert "".join(pieces) == line
    assert all(0 < len(p.encode("utf-8")) <= 1000 for p in pieces)
    assert pieces[1].startswith(" word")  # cut before the space: the next piece starts a word as in the text
    assert list(chunks("short line", 1000)) == ["short line"]


def test_one_line_documents_are_sampled_in_pieces_under_the_limit(long_line_corpus: Path, tmp_path: Path) -> None:
    corpus = Corpus(long_line_corpus)
    got = sample_corpus(corpus, {"long": 1.0}, 10_000_000, tmp_path / "s.txt")
    lines = (tmp_path / "s.txt").read_text(encoding="utf-8").split("\n")[:-1]
    assert max(len(x.encode("utf-8")) for x in lines) <= MAX_SENTENCE_BYTES
    docs = [t for s in corpus.shards("long") for b in corpus.batches(s, ("text",)) for t in b.column(0).to_pylist()]
    assert got["long"] == sum(len(x) for x in lines) == sum(len(d) for d in docs)


def test_the_sample_never_has_more_lines_than_sentencepiece_loads(quickstart_out: Path, tmp_path: Path) -> None:
    corpus = Corpus(quickstart_out)
    weights = {d: 1 / len(corpus.domains) for d in corpus.domains}
    got = sample_corpus(corpus, weights, 10_000_000, tmp_path / "s.txt", max_lines=400)
    lines = (tmp_path / "s.txt").read_text(encoding="utf-8").split("\n")[:-1]
    assert len(lines) <= 400
    assert sum(got.values()) == sum(len(x) for x in lines)


def test_a_domain_of_long_one_line_documents_shapes_the_vocabulary(long_line_corpus: Path, tmp_path: Path) -> None:
    info = train_tokenizer(long_line_corpus, tmp_path / "tok", vocab_size=400)
    tok = _tok(tmp_path / "tok")
    assert info["sample_chars"]["long"] > 200_000
    assert all(len(tok(" " + w, add_special_tokens=False)["input_ids"]) == 1 for w in LONG_WORDS)


# -- `train tokenizer` arguments -----------------------------------------------------------------------------------

@pytest.mark.parametrize("vocab", ["0", "-5", "100"])
def test_train_tokenizer_refuses_a_vocabulary_below_specials_and_bytes(quickstart_out: Path, tmp_path: Path,
                                                                       vocab: str,
                                                                       capsys: pytest.CaptureFixture[str]) -> None:
    from train.cli import main

    assert main(["tokenizer", "--corpus", str(quickstart_out), "--out", str(tmp_path / "t"), "--vocab-size",
                 vocab]) == 2
    assert f"--vocab-size {vocab}: must be at least 261" in capsys.readouterr().err
    assert not (tmp_path / "t").exists()


def test_train_tokenizer_refuses_out_naming_a_file(quickstart_out: Path, tmp_path: Path,
                                                    capsys: pytest.CaptureFixture[str]) -> None:
    from train.cli import main

    (tmp_path / "afile").write_text("mine\n")
    assert main(["tokenizer", "--corpus", str(quickstart_out), "--out", str(tmp_path / "afile")]) == 2
    assert "--out" in capsys.readouterr().err and (tmp_path / "afile").read_text() == "mine\n"


def test_train_tokenizer_says_which_vocabulary_size_the_characters_need(cjk_corpus: Path, tmp_path: Path,
                                                                        capsys: pytest.CaptureFixture[str]) -> None:
    from train.cli import main

    assert main(["--quiet", "tokenizer", "--corpus", str(cjk_corpus), "--out", str(tmp_path / "t"),
                 "--vocab-size", "1000"]) == 2
    err = capsys.readouterr().err
    assert "--vocab-size 1000: the sample needs at least" in err and "Traceback" not in err


def test_curate_lm_train_says_which_vocabulary_size_chinese_needs(tmp_path: Path,
                                                                  capsys: pytest.CaptureFixture[str]) -> None:
    from curate.cli import main

    r = random.Random(5)
    text = "\n".join("".join(chr(0x4E00 + r.randrange(3000)) for _ in range(60)) for _ in range(1500))
    (tmp_path / "zh.txt").write_text(text, encoding="utf-8")
    assert main(["--quiet", "lm", "train", "--input", str(tmp_path / "zh.txt"), "--lang", "zh",
                 "--vocab-size", "2000", "--out", str(tmp_path / "lm")]) == 2
    err = capsys.readouterr().err
    assert "--vocab-size 2000: the text has" in err and "use --vocab-size" in err


# -- a tokenizer, corpus or model path that cannot work -------------------------------------------------------------

@pytest.mark.parametrize("kind", ["missing", "empty", "file", "damaged"])
def test_pretrain_refuses_a_tokenizer_directory_that_holds_no_tokenizer(tmp_path: Path, kind: str,
                                                                        capsys: pytest.CaptureFixture[str]) -> None:
    from train.cli import main

    tok = tmp_path / "tok"
    if kind == "empty":
        tok.mkdir()
    elif kind == "file":
        tok.write_text("x")
    elif kind == "damaged":
        tok.mkdir()
        (tok / "tokenizer.json").write_text("{not json")
    cfg = pretrain_config(tmp_path, tmp_path / "corpus", tok)
    assert main(["pretrain", str(cfg)]) == 2
    err = capsys.readouterr().err
    assert err.startswith(f"train: error: tokenizer: {tok}") and err.count("\n") == 1
    assert not (tmp_path / "run").exists()


def test_a_damaged_corpus_manifest_is_one_line_naming_it(tmp_path: Path) -> None:
    (tmp_path / "manifest.json").write_text('{"domains": {"web": ')
    with pytest.raises(ConfigError, match="manifest.json: damaged"):
        Corpus(tmp_path)


@pytest.mark.parametrize("args, message", [
    (["--max-new-tokens", "-1"], "--max-new-tokens -1: must be at least 1"),
    (["--max-new-tokens", "0"], "--max-new-tokens 0: must be at least 1"),
    (["--temperature", "-0.5"], "--temperature -0.5: must be 0 (greedy) or positive"),
    (["--top-p", "0"], "--top-p 0.0: must be in (0, 1]"),
    (["--top-p", "1.5"], "--top-p 1.5: must be in (0, 1]"),
])
def test_generate_refuses_sampling_settings_that_cannot_work(tmp_path: Path, args: list[str], message: str,
                                                             capsys: pytest.CaptureFixture[str]) -> None:
    from train.cli import main

    assert main(["generate", str(tmp_path), "--prompt", "hi", *args]) == 2
    assert capsys.readouterr().err == f"train: error: {message}\n"


@pytest.mark.parametrize("kind", ["missing", "empty", "tokenizer only"])
def test_generate_refuses_a_path_that_is_not_a_model(tmp_path: Path, tokenizer_dir: Path, kind: str,
                                                     capsys: pytest.CaptureFixture[str]) -> None:
    from train.cli import main

    model = tokenizer_dir if kind == "tokenizer only" else tmp_path / "m"
    if kind == "empty":
        model.mkdir()
    assert main(["generate", str(model), "--prompt", "hi"]) == 2
    assert capsys.readouterr().err.startswith(f"train: error: {model}: not a")


# -- SFT data files ---------------------------------------------------------------------------------------------------

def _messages(i: int, content: str = "") -> dict:
    return {"messages": [{"role": "user", "content": f"q{i} {content}"},
                         {"role": "assistant", "content": f"a{i} {content}"}]}


@pytest.mark.parametrize("char", ["\u2028", "\u2029", "\u0085", "\x1c", "\x1d", "\x1e", "\x0b", "\x0c", "\r", "\t"])
def test_sft_records_split_on_newlines_only(tmp_path: Path, char: str) -> None:
    path = tmp_path / "d.jsonl"
    lines = [json.dumps(_messages(i, "before@after"), ensure_ascii=False).replace("@", char) for i in range(3)]
    path.write_text("".join(line + "\n" for line in lines), encoding="utf-8", newline="")
    assert char in path.read_bytes().decode("utf-8")  # raw in the file, not escaped
    convs, problems = sft_data.load(path, "auto")
    assert problems == []
    assert [c.messages for c in convs] == [_messages(i, f"before{char}after")["messages"] for i in range(3)]


def test_sft_crlf_lines_and_a_byte_order_mark_are_read(tmp_path: Path) -> None:
    path = tmp_path / "d.jsonl"
    path.write_bytes(b"\xef\xbb\xbf" + b"".join(json.dumps(_messages(i)).encode() + b"\r\n" for i in range(3)))
    convs, problems = sft_data.load(path, "auto")
    assert (len(convs), problems) == (3, [])


def test_sft_non_utf8_line_is_listed_with_its_line_and_skipped(tmp_path: Path) -> None:
    path = tmp_path / "d.jsonl"
    good = "".join(json.dumps(_messages(i)) + "\n" for i in range(3)).encode()
    path.write_bytes(good + b'{"messages": [{"role": "user", "content": "caf\xe9"}]}\n' + good)
    convs, problems = sft_data.load(path, "auto")
    assert len(convs) == 6
    assert [(p.file, p.location) for p in problems] == [("d.jsonl", "line 4")]
    assert problems[0].reason.startswith("not UTF-8 (byte 0xe9")


def test_sft_non_utf8_json_list_is_one_line_naming_the_file(tmp_path: Path) -> None:
    path = tmp_path / "d.json"
    path.write_bytes(b'[\n{"instruction": "caf\xe9", "output": "x"}\n]\n')
    with pytest.raises(ConfigError, match=r"d.json: not UTF-8 \(byte 0xe9 at line 2\)"):
        sft_data.load(path, "auto")


def _sft_cli(tmp_path: Path, tokenizer_dir: Path, content: bytes, **sections: object) -> list[str]:
    from transformers import LlamaConfig, LlamaForCausalLM

    from tests.conftest import TINY_MODEL

    (tmp_path / "d.jsonl").write_bytes(content)
    # a whole base (it is checked before the data); the data is refused before the base is loaded
    LlamaForCausalLM(LlamaConfig(vocab_size=1000, **TINY_MODEL)).save_pretrained(str(tmp_path / "base"))
    cfg = sft_config(tmp_path, tmp_path / "base", [{"path": str(tmp_path / "d.jsonl")}],
                     tokenizer=str(tokenizer_dir), **sections)
    return ["sft", str(cfg)]


def test_sft_non_utf8_line_fails_the_run_under_on_error_fail(tmp_path: Path, tokenizer_dir: Path,
                                                             capsys: pytest.CaptureFixture[str]) -> None:
    from train.cli import main

    data = b"".join(json.dumps(_messages(i)).encode() + b"\n" for i in range(20)) + b'{"x": "\xff"}\n'
    argv = _sft_cli(tmp_path, tokenizer_dir, data, data={"on_error": "fail"})
    assert main(argv) == 2
    err = capsys.readouterr().err
    assert "d.jsonl line 21: not UTF-8" in err and "Traceback" not in err


def test_sft_with_no_examples_left_prints_the_summary_before_the_error(tmp_path: Path, tokenizer_dir: Path,
                                                                       capsys: pytest.CaptureFixture[str]) -> None:
    from train.cli import main

    data = b"".join(json.dumps({"messages": [{"role": "user", "content": f"q{i}"}]}).encode() + b"\n"
                    for i in range(4))
    assert main(["--quiet", *_sft_cli(tmp_path, tokenizer_dir, data)]) == 2
    err = capsys.readouterr().err
    assert err.index("SFT data:") < err.index("d.jsonl") < err.index("train: error: data: no training examples")
    assert "  skipped d.jsonl line 1: no assistant turn\n" in err


def test_sft_examples_cut_to_max_len_are_counted_as_truncated(tmp_path: Path, tokenizer_dir: Path) -> None:
    long_answer = {"messages": [{"role": "user", "content": "q"}, {"role": "assistant", "content": "word " * 200}]}
    path = tmp_path / "d.jsonl"
    path.write_text(json.dumps(long_answer) + "\n" + json.dumps(_messages(1)) + "\n", encoding="utf-8")
    chat = sft_data.ChatFormat(_tok(tokenizer_dir))
    prepared = sft_data.prepare([(path, "auto", 1.0)], chat, 64, "assistant", 0.0, 0)
    assert prepared.summary["d.jsonl"]["train"] == 2 and prepared.summary["d.jsonl"]["truncated"] == 1
