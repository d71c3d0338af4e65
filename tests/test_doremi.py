"""`train doremi` (DoReMi, Xie et al. 2023): the weight update, the learned weights on a corpus with an unlearnable
domain, reproducibility and exact resume, the outputs, and `mixture: {method: doremi}` in a recipe."""

from __future__ import annotations

import csv
import json
import math
from pathlib import Path
from typing import Any

import numpy as np
import pytest
import torch
import yaml

from tests.conftest import ROOT, TINY_MODEL, build_corpus
from train.doremi import update_weights

CHARS = 1000
BYTE_PIECES_END = 260  # <unk> <s> </s> <pad> and the 256 byte pieces come first


def _chunks(text: str, n: int) -> list[str]:
    return [text[i * CHARS:(i + 1) * CHARS] for i in range(n)]


@pytest.fixture(scope="module", autouse=True)
def one_thread() -> Any:
    """One torch thread: on a shared two-core machine a tiny model's step is 10x slower with two."""
    before = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(before)


@pytest.fixture(scope="module")
def noisy_corpus(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, Path]:
    """A corpus of two real-text domains (Wikipedia prose, Python code; 60 documents of 1,000 characters each) and
    a domain of uniformly random tokens (60 documents of 200 tokens drawn uniformly from the tokenizer's pieces,
    byte pieces excepted): nothing to learn there. Built by `curate run`; returns it and the tokenizer, trained
    by `train tokenizer` on the real-text domains alone."""
    from train.cli import main
    from train.tokenizer import load_tokenizer

    data = ROOT / "recipes" / "data" / "quickstart"
    wiki = (data / "wiki" / "wiki_demo.txt").read_text(encoding="utf-8")
    code = "\n".join(p.read_text(encoding="utf-8") for p in sorted((data / "code").rglob("*.py"))[:60])
    docs = {"wiki": _chunks(wiki, 60), "code": _chunks(code, 60)}
    where = tmp_path_factory.mktemp("doremi-corpus")
    (where / "real").mkdir()
    (where / "noisy").mkdir()
    real = build_corpus(where / "real", docs, ["normalize"])
    assert main(["--quiet", "tokenizer", "--corpus", str(real), "--out", str(where / "tokenizer"),
                 "--vocab-size", "1500"]) == 0
    tok = load_tokenizer(where / "tokenizer")
    rng = np.random.default_rng(0)
    docs["noise"] = [tok.decode(rng.integers(BYTE_PIECES_END, len(tok), 200).tolist()) for _ in range(60)]
    return build_corpus(where / "noisy", docs, ["normalize"], mixture={"method": "uniform"}), where / "tokenizer"


def _config(tmp_path: Path, corpus: tuple[Path, Path], name: str = "doremi.yaml", **sections: Any) -> Path:
    """A tiny DoReMi config in ``tmp_path`` on ``corpus`` (its directory and tokenizer); sections are merged over
    the defaults."""
    cfg: dict[str, Any] = {
        "corpus": str(corpus[0]), "tokenizer": str(corpus[1]), "out": str(tmp_path / "run"), "seed": 0,
        "model": {"config": dict(TINY_MODEL)},
        "data": {"seq_len": 32, "heldout_fraction": 0.05, "workers": 1},
        "optim": {"batch_size": 6, "max_steps": 6, "lr": 3e-3, "warmup_steps": 2},
        "eval": {"every": 6, "tokens_per_domain": 1000}, "checkpoint": {"every": 3, "keep": 3},
        "log": {"every": 3, "tensorboard": False},
    }
    for key, value in sections.items():
        cfg[key] = {**cfg[key], **value} if isinstance(value, dict) and isinstance(cfg.get(key), dict) else value
    tmp_path.mkdir(parents=True, exist_ok=True)
    path = tmp_path / name
    path.write_text(yaml.safe_dump(cfg, sort_keys=False), encoding="utf-8")
    return path


def _doremi(config: Path, *args: str) -> int:
    from train.cli import main

    return main(["--quiet", "doremi", str(config), *args])


def _weights(out: Path) -> dict[str, float]:
    return json.loads((out / "mixture.json").read_text())["weights"]


# -- the update --------------------------------------------------------------------------------------------------
def test_the_update_is_exponentiated_gradient_then_smoothing_when_every_domain_is_present() -> None:
    alpha, excess = np.array([0.5, 0.3, 0.2]), np.array([0.4, 0.0, 1.3])
    eta, c = 0.7, 0.05
    a = alpha * np.exp(eta * excess)
    expected = (1 - c) * a / a.sum() + c / 3
    got = update_weights(alpha, excess, np.array([True, True, True]), eta, c).numpy()
    assert np.allclose(got, expected, rtol=1e-12, atol=0) and math.isclose(got.sum(), 1.0, rel_tol=1e-12)


def test_a_domain_absent_from_the_batch_keeps_its_weight_and_the_others_share_their_mass() -> None:
    alpha = torch.tensor([0.5, 0.3, 0.2], dtype=torch.float64)
    excess = torch.tensor([0.4, 9.9, 1.3], dtype=torch.float64)
    present = torch.tensor([True, False, True])
    eta, c = 1.0, 0.1
    got = update_weights(alpha, excess, present, eta, c)
    assert got[1] == alpha[1]
    mass = 0.5 + 0.2
    a = np.array([0.5 * math.exp(0.4), 0.2 * math.exp(1.3)])
    expected = (1 - c) * mass * a / a.sum() + c * mass / 2
    assert np.allclose(got[[0, 2]].numpy(), expected, rtol=1e-12, atol=0)
    assert math.isclose(float(got.sum()), 1.0, rel_tol=1e-12)


def test_no_domain_present_changes_nothing() -> None:
    alpha = torch.tensor([0.25, 0.75], dtype=torch.float64)
    assert torch.equal(update_weights(alpha, [1.0, 2.0], [False, False], 1.0, 0.5), alpha)


# -- end to end on a corpus with a noise domain ------------------------------------------------------------------
@pytest.fixture(scope="module")
def doremi_run(noisy_corpus: tuple[Path, Path], tmp_path_factory: pytest.TempPathFactory) -> Path:
    """`train doremi` on the noisy corpus: 40 steps of each model."""
    where = tmp_path_factory.mktemp("doremi-run")
    assert _doremi(_config(where, noisy_corpus, optim={"max_steps": 40}, eval={"every": 40},
                           checkpoint={"every": 40})) == 0
    return where / "run"


def test_the_unlearnable_domain_gets_less_than_its_natural_share(doremi_run: Path) -> None:
    mixture = json.loads((doremi_run / "mixture.json").read_text())
    assert mixture["weights"]["noise"] < mixture["natural_weights"]["noise"]
    assert mixture["weights"]["noise"] < min(mixture["weights"]["wiki"], mixture["weights"]["code"])
    assert math.isclose(sum(mixture["weights"].values()), 1.0, rel_tol=1e-9)


def test_a_run_writes_the_mixture_trajectory_losses_and_model_cards(doremi_run: Path) -> None:
    mixture = json.loads((doremi_run / "mixture.json").read_text())
    assert mixture["method"] == "doremi" and mixture["parameters"]["eta"] == 1.0
    assert mixture["reference"]["seed"] == 0 and mixture["proxy"]["model"]["config"]["hidden_size"] == 32
    rows = list(csv.DictReader((doremi_run / "trajectory.csv").open()))
    assert len(rows) == 40 and set(rows[0]) == {"round", "step", "code", "noise", "wiki"}
    mean = {d: sum(float(r[d]) for r in rows) / len(rows) for d in ("code", "noise", "wiki")}
    assert all(math.isclose(mean[d], mixture["weights"][d], rel_tol=1e-9) for d in mean)
    assert (doremi_run / "trajectory.png").read_bytes()[:4] == b"\x89PNG"
    evaluation = json.loads((doremi_run / "eval.json").read_text())["round-1"]
    assert set(evaluation["reference"]) == set(evaluation["proxy"]) == {"code", "noise", "wiki"}
    for role in ("reference", "proxy"):
        card = (doremi_run / "round-1" / role / "final" / "README.md").read_text()
        assert f"DoReMi {role} model" in card and "held-out loss" in card


# -- reproducibility and resume ----------------------------------------------------------------------------------
def _short(tmp_path: Path, corpus: tuple[Path, Path], **sections: Any) -> Path:
    return _config(tmp_path, corpus, optim={"max_steps": 6, "batch_size": 6, "lr": 3e-3, "warmup_steps": 2},
                   **sections)


@pytest.fixture(scope="module")
def short_run(noisy_corpus: tuple[Path, Path], tmp_path_factory: pytest.TempPathFactory) -> Path:
    """`train doremi` with 6 steps per model, checkpoints every 3."""
    where = tmp_path_factory.mktemp("doremi-short")
    assert _doremi(_short(where, noisy_corpus)) == 0
    return where / "run"


def test_the_same_seed_gives_the_same_weights(short_run: Path, noisy_corpus: tuple[Path, Path],
                                               tmp_path: Path) -> None:
    assert _doremi(_short(tmp_path, noisy_corpus)) == 0
    assert _weights(tmp_path / "run") == _weights(short_run)
    assert (tmp_path / "run" / "trajectory.csv").read_text() == (short_run / "trajectory.csv").read_text()


def test_another_seed_gives_other_weights(short_run: Path, noisy_corpus: tuple[Path, Path], tmp_path: Path) -> None:
    assert _doremi(_short(tmp_path, noisy_corpus), "seed=1") == 0
    assert _weights(tmp_path / "run") != _weights(short_run)


def test_a_run_killed_in_the_proxy_and_resumed_gives_the_uninterrupted_weights(
        short_run: Path, noisy_corpus: tuple[Path, Path], tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
        capsys: pytest.CaptureFixture[str]) -> None:
    from train.doremi import DoReMiTrainer

    def killed(self: DoReMiTrainer) -> None:
        if self.step == 4:  # after the checkpoint of step 3
            raise KeyboardInterrupt

    config = _short(tmp_path, noisy_corpus)
    with monkeypatch.context() as m:
        m.setattr(DoReMiTrainer, "after_optimizer_step", killed)
        assert _doremi(config) == 1
    assert "--resume" in capsys.readouterr().err
    assert not (tmp_path / "run" / "mixture.json").exists()
    assert _doremi(config, "--resume") == 0
    assert _weights(tmp_path / "run") == _weights(short_run)
    assert (tmp_path / "run" / "trajectory.csv").read_text() == (short_run / "trajectory.csv").read_text()


def test_resuming_with_another_eta_is_refused(short_run: Path, noisy_corpus: tuple[Path, Path], tmp_path: Path,
                                              capsys: pytest.CaptureFixture[str]) -> None:
    import shutil

    shutil.copytree(short_run, tmp_path / "run")
    assert _doremi(_short(tmp_path, noisy_corpus), "doremi.eta=0.5", "--resume") == 2
    err = capsys.readouterr().err
    assert "doremi (eta, smoothing, sampling)" in err and "Traceback" not in err


def test_a_used_output_is_refused_without_resume(short_run: Path, noisy_corpus: tuple[Path, Path],
                                                 capsys: pytest.CaptureFixture[str]) -> None:
    assert _doremi(_short(short_run.parent, noisy_corpus, name="again.yaml")) == 2
    assert "--resume" in capsys.readouterr().err


def test_without_a_tokenizer_one_is_trained_on_the_corpus_into_out(noisy_corpus: tuple[Path, Path],
                                                                   tmp_path: Path) -> None:
    config = _config(tmp_path, noisy_corpus, tokenizer=None, vocab_size=400, optim={"max_steps": 2},
                     eval={"every": 2}, checkpoint={"every": 2})
    assert _doremi(config) == 0
    mixture = json.loads((tmp_path / "run" / "mixture.json").read_text())
    assert mixture["tokenizer"]["path"] == str(tmp_path / "run" / "tokenizer")
    assert (tmp_path / "run" / "tokenizer" / "tokenizer.json").is_file()


def test_a_reference_mixture_naming_an_unknown_domain_is_refused(noisy_corpus: tuple[Path, Path], tmp_path: Path,
                                                                 capsys: pytest.CaptureFixture[str]) -> None:
    (tmp_path / "ref.json").write_text(json.dumps({"weights": {"wiki": 0.5, "books": 0.5}}))
    assert _doremi(_short(tmp_path, noisy_corpus, reference={"weights": "ref.json"})) == 2
    err = capsys.readouterr().err
    assert "reference.weights" in err and "books" in err


def test_iterated_doremi_trains_each_reference_on_the_previous_round_weights(noisy_corpus: tuple[Path, Path],
                                                                            tmp_path: Path) -> None:
    config = _config(tmp_path, noisy_corpus, rounds=2, optim={"max_steps": 2}, eval={"every": 2},
                     checkpoint={"every": 2})
    assert _doremi(config) == 0
    mixture = json.loads((tmp_path / "run" / "mixture.json").read_text())
    first, second = mixture["rounds"]
    assert second["reference_weights"] == first["weights"] and mixture["weights"] == second["weights"]
    drawn = json.loads((tmp_path / "run" / "round-2" / "reference" / "plan.json").read_text())["domains"]
    assert all(abs(drawn[d]["weight"] - w) <= 1 / 12 for d, w in first["weights"].items())  # 12 sequences drawn
    rows = list(csv.DictReader((tmp_path / "run" / "trajectory.csv").open()))
    assert [(r["round"], r["step"]) for r in rows] == [("1", "1"), ("1", "2"), ("2", "1"), ("2", "2")]


# -- from a recipe -----------------------------------------------------------------------------------------------
def _recipe(tmp_path: Path, corpus: Path, mixture: dict[str, Any]) -> Path:
    """A one-step recipe over the noisy corpus's documents (read back from its shards) with ``mixture``."""
    import pyarrow.parquet as pq

    sources = []
    for d in ("code", "noise", "wiki"):
        texts = pq.read_table(corpus / "data" / d, columns=["text"])["text"].to_pylist()
        (tmp_path / f"{d}.jsonl").write_text("".join(json.dumps({"text": t}) + "\n" for t in texts))
        sources.append({"path": f"{d}.jsonl", "domain": d})
    recipe = {"name": "noisy", "sources": sources, "steps": ["normalize"], "mixture": mixture,
              "output": {"dir": "out"}, "executor": {"workers": 1}}
    path = tmp_path / "recipe.yaml"
    path.write_text(yaml.safe_dump(recipe, sort_keys=False))
    return path


def test_a_recipe_with_mixture_doremi_writes_the_learned_weights_into_the_corpus(
        noisy_corpus: tuple[Path, Path], tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    from tests.conftest import run_curate

    doremi = yaml.safe_load(_short(tmp_path / "cfg", noisy_corpus).read_text())
    del doremi["corpus"], doremi["out"]
    (tmp_path / "doremi.yaml").write_text(yaml.safe_dump(doremi))
    recipe = _recipe(tmp_path, noisy_corpus[0], {"method": "doremi", "doremi": "doremi.yaml"})
    code, err = run_curate(capsys, "run", recipe)
    assert code == 0, err
    out = tmp_path / "out"
    mixture = json.loads((out / "mixture.json").read_text())
    learned = json.loads((out / "doremi" / "mixture.json").read_text())
    assert mixture["method"] == "doremi" and mixture["weights"] == learned["weights"]
    manifest = json.loads((out / "manifest.json").read_text())
    assert manifest["mixture"] == mixture["weights"]
    assert any(f["path"] == "mixture.json" for f in manifest["files"])
    card = (out / "card.md").read_text()
    assert all(f"{w:.4f} |" in card for w in mixture["weights"].values())
    assert run_curate(capsys, "inspect", out, "--verify")[0] == 0


def test_a_recipe_naming_a_missing_doremi_config_is_refused_before_work(
        noisy_corpus: tuple[Path, Path], tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    from tests.conftest import run_curate

    recipe = _recipe(tmp_path, noisy_corpus[0], {"method": "doremi", "doremi": "nope.yaml"})
    code, err = run_curate(capsys, "run", recipe)
    assert code == 2 and "mixture.doremi: 'nope.yaml' does not exist" in err
    assert not (tmp_path / "out").exists()


def test_a_recipe_with_an_invalid_doremi_config_names_its_key(noisy_corpus: tuple[Path, Path], tmp_path: Path,
                                                              capsys: pytest.CaptureFixture[str]) -> None:
    from tests.conftest import run_curate

    (tmp_path / "doremi.yaml").write_text(yaml.safe_dump({"doremi": {"etaa": 1.0}}))
    recipe = _recipe(tmp_path, noisy_corpus[0], {"method": "doremi", "doremi": "doremi.yaml"})
    code, err = run_curate(capsys, "validate", recipe)
    assert code == 2 and "doremi.etaa: unknown key, did you mean 'eta'?" in err


def test_method_doremi_needs_its_config(noisy_corpus: tuple[Path, Path], tmp_path: Path,
                                        capsys: pytest.CaptureFixture[str]) -> None:
    from tests.conftest import run_curate

    code, err = run_curate(capsys, "validate", _recipe(tmp_path, noisy_corpus[0], {"method": "doremi"}))
    assert code == 2 and "method 'doremi' needs doremi" in err


def test_curate_imports_no_torch_for_a_recipe_without_doremi() -> None:
    import subprocess
    import sys

    code = ("import sys, curate.cli, curate.run, curate.recipe, curate.mixture; "
            "sys.exit('torch' in sys.modules)")
    assert subprocess.run([sys.executable, "-c", code], cwd=ROOT).returncode == 0


def test_method_doremi_without_the_train_extra_says_what_to_install(noisy_corpus: tuple[Path, Path], tmp_path: Path,
                                                                     capsys: pytest.CaptureFixture[str],
                                                                     monkeypatch: pytest.MonkeyPatch) -> None:
    import importlib.util

    from tests.conftest import run_curate

    (tmp_path / "doremi.yaml").write_text("{}")
    recipe = _recipe(tmp_path, noisy_corpus[0], {"method": "doremi", "doremi": "doremi.yaml"})
    find_spec = importlib.util.find_spec
    monkeypatch.setattr(importlib.util, "find_spec", lambda name, *a: None if name == "torch" else find_spec(name, *a))
    code, err = run_curate(capsys, "validate", recipe)
    assert code == 2 and "mixture.method doremi needs the train extra: pip install -e .[train]" in err
