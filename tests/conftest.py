from __future__ import annotations

import os
import shutil
from pathlib import Path
from typing import Any, Callable

import pytest
import yaml

os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("HF_DATASETS_OFFLINE", "1")

ROOT = Path(__file__).resolve().parents[1]
SHARED_DATA = ROOT.parent / "shared" / "data"
QUICKSTART = ROOT / "recipes" / "quickstart.yaml"


@pytest.fixture(scope="session")
def aot_loops(tmp_path_factory: pytest.TempPathFactory) -> Any:
    """The ahead-of-time compiled MinHash loops (``curate.lsh_aot``): the ones ``make`` built into curate/, or,
    where they are absent or stale, built here into a temporary directory (~15 s); skipped only on a machine
    without a C compiler."""
    from curate import lsh_aot

    module = lsh_aot.load()
    if module is None:
        if not any(shutil.which(cc) for cc in ("cc", "gcc", "clang")):
            pytest.skip("no C compiler to build curate's ahead-of-time MinHash loops (curate uses numba's JIT)")
        where = tmp_path_factory.mktemp("lsh_aot")
        lsh_aot.build(where)
        module = lsh_aot.load(where)
    assert module is not None
    return module


@pytest.fixture(params=["aot", "jit"])
def compiled_loops(request: pytest.FixtureRequest, monkeypatch: pytest.MonkeyPatch) -> str:
    """Run the test once with each way of loading the compiled loops as ``curate.lsh.kernels``: the ahead-of-time
    extension, and numba's just-in-time compiled ``lsh_kernels``. Returns which."""
    from curate import lsh

    gate = lsh._Kernels(aot=False)
    if request.param == "aot":
        gate.module, gate.source = request.getfixturevalue("aot_loops"), "aot"
    monkeypatch.setattr(lsh, "kernels", gate)
    return str(request.param)


@pytest.fixture(scope="session")
def quickstart_lm(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The quickstart's English KenLM model, trained as `make demo` trains it."""
    from curate.cli import main

    out = tmp_path_factory.mktemp("qs-lm") / "en"
    assert main(["--quiet", "lm", "train", "--input", str(ROOT / "recipes/data/quickstart/wiki/wiki_demo.txt"),
                 "--lang", "en", "--order", "4", "--vocab-size", "8000", "--prune", "0", "1", "1",
                 "--out", str(out)]) == 0
    return out


def quickstart_overrides(lm: Path) -> list[str]:
    """Point the quickstart recipe's perplexity step at a model trained for the tests."""
    import yaml as _yaml

    steps = _yaml.safe_load(QUICKSTART.read_text())["steps"]
    index = next(i for i, s in enumerate(steps) if isinstance(s, dict) and "perplexity" in s)
    return [f"steps[{index}].perplexity.models.en={lm}"]


@pytest.fixture(scope="session")
def quickstart_out(tmp_path_factory: pytest.TempPathFactory, quickstart_lm: Path) -> Path:
    """The quickstart recipe built once for the whole session (2 workers)."""
    from curate.cli import main

    out = tmp_path_factory.mktemp("quickstart") / "out"
    assert main(["--quiet", "run", str(QUICKSTART), *quickstart_overrides(quickstart_lm), "--output", str(out),
                 "--workers", "2"]) == 0
    return out


@pytest.fixture
def write_recipe(tmp_path: Path) -> Callable[..., Path]:
    """Write a recipe dict as YAML into tmp_path; output goes to tmp_path/out unless given."""

    def write(recipe: dict[str, Any], name: str = "recipe.yaml") -> Path:
        recipe = dict(recipe)
        recipe.setdefault("name", "test")
        recipe.setdefault("output", {"dir": str(tmp_path / "out")})
        recipe.setdefault("executor", {"workers": 1})
        path = tmp_path / name
        path.write_text(yaml.safe_dump(recipe, sort_keys=False), encoding="utf-8")
        return path

    return write


def copy_quickstart_data(dst: Path) -> Path:
    src = ROOT / "recipes" / "data" / "quickstart"
    shutil.copytree(src, dst / "data" / "quickstart")
    return dst


def build_corpus(tmp_path: Path, docs: dict[str, list[str]], steps: list[Any], **recipe: Any) -> Path:
    """Write ``docs`` (domain -> texts) as one jsonl file per domain, run ``steps`` on them, return the output."""
    import json

    from curate.cli import main

    sources = []
    for domain, texts in docs.items():
        f = tmp_path / f"{domain}.jsonl"
        f.write_text("".join(json.dumps({"text": t}) + "\n" for t in texts), encoding="utf-8")
        sources.append({"path": f.name, "format": "jsonl", "domain": domain})
    out = tmp_path / recipe.pop("out_name", "out")
    spec = {"name": "t", "sources": sources, "steps": steps, "output": {"dir": str(out)},
            "executor": {"workers": 1}, **recipe}
    path = tmp_path / "recipe.yaml"
    path.write_text(yaml.safe_dump(spec, sort_keys=False), encoding="utf-8")
    assert main(["--quiet", "run", str(path), "--fresh"]) == 0
    return out


def kept(out: Path, columns: list[str] | None = None) -> list[dict[str, Any]]:
    import pyarrow.parquet as pq

    rows: list[dict[str, Any]] = []
    for f in sorted((out / "data").rglob("*.parquet")):
        rows += pq.read_table(f, columns=columns).to_pylist()
    return rows


def removed(out: Path, step: str) -> list[dict[str, Any]]:
    import pyarrow.parquet as pq

    rows: list[dict[str, Any]] = []
    for f in sorted((out / "removed" / step).glob("*.parquet")):
        rows += pq.read_table(f).to_pylist()
    return rows


@pytest.fixture(scope="session")
def english_lm(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A small CCNet-style English model trained by `curate lm train` on WikiText-2 validation text."""
    from curate.cli import main

    out = tmp_path_factory.mktemp("lm") / "en"
    assert main(["--quiet", "lm", "train", "--input", str(SHARED_DATA / "corpus" / "wiki" / "wikitext2_valid.txt"),
                 "--lang", "en", "--order", "4", "--vocab-size", "4000", "--out", str(out)]) == 0
    return out


@pytest.fixture(scope="session")
def tokenizer_dir(tmp_path_factory: pytest.TempPathFactory, quickstart_out: Path) -> Path:
    """A 1000-token SentencePiece BPE tokenizer trained on the quickstart corpus by `train tokenizer`."""
    from train.cli import main

    out = tmp_path_factory.mktemp("tokenizer")
    assert main(["--quiet", "tokenizer", "--corpus", str(quickstart_out), "--out", str(out),
                 "--vocab-size", "1000"]) == 0
    return out


TINY_MODEL = {"hidden_size": 32, "intermediate_size": 64, "num_hidden_layers": 2, "num_attention_heads": 2,
              "num_key_value_heads": 2}


def pretrain_config(tmp_path: Path, corpus: Path, tokenizer: Path, **sections: Any) -> Path:
    """A tiny pretraining config in ``tmp_path``; sections are merged over the defaults."""
    cfg: dict[str, Any] = {
        "corpus": str(corpus), "tokenizer": str(tokenizer), "out": str(tmp_path / "run"), "seed": 0,
        "model": {"config": dict(TINY_MODEL)},
        "data": {"seq_len": 32, "heldout_fraction": 0.05, "workers": 1},
        "optim": {"batch_size": 4, "max_steps": 6, "lr": 3e-3, "warmup_steps": 2},
        "eval": {"every": 3, "tokens_per_domain": 2000}, "checkpoint": {"every": 3, "keep": 3},
        "log": {"every": 1, "tensorboard": False},
    }
    for key, value in sections.items():
        if isinstance(value, dict) and isinstance(cfg.get(key), dict) and key != "model":
            cfg[key] = {**cfg[key], **value}
        else:
            cfg[key] = value
    tmp_path.mkdir(parents=True, exist_ok=True)
    path = tmp_path / "pretrain.yaml"
    path.write_text(yaml.safe_dump(cfg, sort_keys=False), encoding="utf-8")
    return path


@pytest.fixture(scope="session")
def pretrained_model(tmp_path_factory: pytest.TempPathFactory, quickstart_out: Path, tokenizer_dir: Path) -> Path:
    """A tiny model pretrained by `train pretrain` on the quickstart corpus (its final/ directory)."""
    from train.cli import main

    d = tmp_path_factory.mktemp("pretrained")
    cfg = pretrain_config(d, quickstart_out, tokenizer_dir, optim={"max_steps": 30, "batch_size": 8},
                          data={"seq_len": 64, "heldout_fraction": 0.05, "workers": 1}, eval={"every": 30},
                          checkpoint={"every": 30, "keep": 1})
    assert main(["--quiet", "pretrain", str(cfg)]) == 0
    return d / "run" / "final"


def sft_config(tmp_path: Path, base: Path, files: list[dict[str, Any]], **sections: Any) -> Path:
    cfg: dict[str, Any] = {
        "base": str(base), "out": str(tmp_path / "sft"), "seed": 0,
        "data": {"files": files, "max_len": 128, "heldout_fraction": 0.1},
        "peft": {"method": "lora", "r": 4, "alpha": 8, "dropout": 0.0},
        "optim": {"batch_size": 4, "max_steps": 4, "lr": 3e-3, "warmup_steps": 1, "weight_decay": 0.0},
        "eval": {"every": 2, "tokens_per_domain": 4000}, "checkpoint": {"every": 2, "keep": 2},
        "log": {"every": 1, "tensorboard": False},
    }
    for key, value in sections.items():
        cfg[key] = {**cfg[key], **value} if isinstance(value, dict) and isinstance(cfg.get(key), dict) else value
    tmp_path.mkdir(parents=True, exist_ok=True)
    path = tmp_path / "sft.yaml"
    path.write_text(yaml.safe_dump(cfg, sort_keys=False), encoding="utf-8")
    return path


# -- small curate runs through the command line (the safety tests) ----------------------------------------------
SMALL_DOC = "a document with enough words in it to pass every filter of the test"


def write_inputs(where: Path, name: str = "a.jsonl", n: int = 5) -> Path:
    """``n`` small JSONL documents in ``where/name``."""
    import json

    where.mkdir(parents=True, exist_ok=True)
    path = where / name
    path.write_text("".join(json.dumps({"text": f"{SMALL_DOC} number {i}"}) + "\n" for i in range(n)),
                    encoding="utf-8")
    return path


def small_recipe(tmp_path: Path, *sources: dict[str, Any], out: str = "out", name: str = "r.yaml") -> Path:
    """A one-step (normalize), one-worker recipe over ``sources`` (domain web unless given) into ``out``."""
    recipe = {"name": "t", "sources": [{"domain": "web", **s} for s in sources], "steps": ["normalize"],
              "output": {"dir": out}, "executor": {"workers": 1}}
    path = tmp_path / name
    path.write_text(yaml.safe_dump(recipe, sort_keys=False), encoding="utf-8")
    return path


def torchrun_train(command: str, config: Path, port: int) -> Any:
    """``train COMMAND CONFIG`` under torchrun with 2 processes (gloo over loopback, one thread each); the
    finished subprocess.CompletedProcess (text output captured)."""
    import subprocess
    import sys

    return subprocess.run([sys.executable, "-m", "torch.distributed.run", "--nproc_per_node", "2", "--master_addr",
                           "127.0.0.1", "--master_port", str(port), "-m", "train.cli", "--quiet", command, str(config)],
                          capture_output=True, text=True, env={**os.environ, "OMP_NUM_THREADS": "1"}, timeout=300)


def run_curate(capsys: Any, *args: Any, quiet: bool = True) -> tuple[int, str]:
    """``curate ARGS`` in this process: its exit code and stderr, which must hold no traceback."""
    from curate.cli import main

    code = main([*(["--quiet"] if quiet else []), *map(str, args)])
    err = capsys.readouterr().err
    assert "Traceback" not in err, err
    return code, err
