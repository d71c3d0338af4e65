"""`train ablate`: mixtures, objective, regression, and a tiny study end to end (resume included)."""

from __future__ import annotations

import csv
import json
import os
import shutil
from pathlib import Path
from typing import Any

import numpy as np
import pytest
import yaml

from mixlab.config import validate
from tests.conftest import TINY_MODEL
from train import ablate, ablate_report
from train.config import AblateConfig, DomainObjective, PretrainConfig, WeightedObjective


def study_config(tmp_path: Path, corpus: Path, tokenizer: Path, **keys: Any) -> dict[str, Any]:
    """A tiny study: 4 steps of 4 x 32 tokens per run, one worker, in ``tmp_path/study``."""
    cfg: dict[str, Any] = {
        "corpus": str(corpus), "tokenizer": str(tokenizer), "out": str(tmp_path / "study"), "seed": 0,
        "model": {"config": dict(TINY_MODEL)}, "data": {"seq_len": 32, "heldout_fraction": 0.05, "workers": 1},
        "optim": {"batch_size": 4, "lr": 3e-3, "warmup_steps": 1}, "tokens": 512, "seeds": [0],
        "eval": {"tokens_per_domain": 1000}, "workers": 1,
        "mixtures": {"named": ["natural", "uniform"], "list": [{"code": 1, "web": 1}]}}
    cfg.update(keys)
    return cfg


def write_config(tmp_path: Path, cfg: dict[str, Any]) -> Path:
    path = tmp_path / "ablate.yaml"
    path.write_text(yaml.safe_dump(cfg, sort_keys=False), encoding="utf-8")
    return path


def read_csv(path: Path) -> list[dict[str, str]]:
    with open(path, newline="", encoding="utf-8") as f:
        return list(csv.DictReader(f))


# -- mixtures ----------------------------------------------------------------------------------------------------
def test_grid_gives_every_mixture_of_step_multiples_summing_to_one() -> None:
    mixes = ablate.grid(["a", "b", "c"], 0.25)
    assert len(mixes) == 15  # C(4 + 2, 2)
    assert len({tuple(m.values()) for m in mixes}) == 15
    for m in mixes:
        assert sum(m.values()) == pytest.approx(1.0)
        assert all(abs(w * 4 - round(w * 4)) < 1e-12 for w in m.values())


def test_dirichlet_samples_are_seeded_and_keep_the_minimum_weight() -> None:
    natural = {"a": 0.6, "b": 0.3, "c": 0.1}
    first = ablate.dirichlet(natural, 50, 1.0, 0.05, seed=3)
    assert first == ablate.dirichlet(natural, 50, 1.0, 0.05, seed=3)
    assert first != ablate.dirichlet(natural, 50, 1.0, 0.05, seed=4)
    for m in first:
        assert sum(m.values()) == pytest.approx(1.0)
        assert min(m.values()) >= 0.05 - 1e-12


def test_dirichlet_samples_center_on_the_natural_mixture() -> None:
    natural = {"a": 0.6, "b": 0.3, "c": 0.1}
    mean = np.mean([[m[d] for d in "abc"] for m in ablate.dirichlet(natural, 4000, 1.0, 0.0, seed=0)], axis=0)
    assert mean == pytest.approx([0.6, 0.3, 0.1], abs=0.02)


def test_named_natural_is_the_corpus_token_share_and_uniform_is_equal(tmp_path: Path, quickstart_out: Path,
                                                                     tokenizer_dir: Path) -> None:
    cfg = validate(AblateConfig, study_config(tmp_path, quickstart_out, tokenizer_dir))
    study = ablate.Study(cfg)
    tokens = json.loads((quickstart_out / "mixture.json").read_text())["tokens"]
    by_name = {m.name: m.weights for m in study.mixtures}
    assert by_name["natural"] == pytest.approx({d: n / sum(tokens.values()) for d, n in tokens.items()}, abs=1e-6)
    assert set(by_name["uniform"].values()) == {0.25}
    assert by_name["list-0"] == {"books": 0.0, "code": 0.5, "web": 0.5, "wiki": 0.0}


def test_a_mixture_json_path_is_a_named_mixture_and_duplicates_are_dropped(tmp_path: Path, quickstart_out: Path,
                                                                          tokenizer_dir: Path) -> None:
    (tmp_path / "doremi").mkdir()
    (tmp_path / "doremi" / "mixture.json").write_text(json.dumps({"weights": {"code": 3, "wiki": 1}}))
    cfg = validate(AblateConfig, study_config(tmp_path, quickstart_out, tokenizer_dir, mixtures={
        "named": ["uniform", str(tmp_path / "doremi" / "mixture.json")],
        "list": [{"books": 1, "code": 1, "web": 1, "wiki": 1}]}))
    names = {m.name: m.weights for m in ablate.Study(cfg).mixtures}
    assert list(names) == ["uniform", "doremi"]
    assert names["doremi"] == {"books": 0.0, "code": 0.75, "web": 0.0, "wiki": 0.25}


# -- objective ---------------------------------------------------------------------------------------------------
@pytest.mark.parametrize("objective, expected", [
    ("average", 2.5), ("worst", 4.0), (DomainObjective(domain="b"), 2.0),
    (WeightedObjective(weights={"a": 3, "d": 1}), 1.75)])
def test_objective_from_per_domain_losses(objective: Any, expected: float) -> None:
    losses = {"a": 1.0, "b": 2.0, "c": 3.0, "d": 4.0}
    assert ablate.objective_value(losses, objective) == pytest.approx(expected)


# -- regression --------------------------------------------------------------------------------------------------
def synthetic(objective: Any, mixtures: int = 24, seeds: int = 2) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    rng = np.random.default_rng(0)
    X = rng.dirichlet(np.ones(4), size=mixtures).repeat(seeds, axis=0)
    groups = np.repeat(np.arange(mixtures), seeds).astype(str)
    return X, objective(X, rng), groups


def test_regression_recovers_a_known_linear_objective_and_proposes_its_best_domain() -> None:
    c = np.array([3.0, 2.5, 2.0, 4.0])  # domain 2 lowers the objective most
    X, y, groups = synthetic(lambda X, rng: X @ c + rng.normal(0, 0.01, len(X)))
    fits = ablate_report.fit(X, y, groups)
    linear = next(f for f in fits if f.name == "linear")
    assert linear.spearman > 0.95
    assert ablate_report.best_fit(fits) is linear
    assert ablate_report.warnings_for(linear, 24) == []
    weights, predicted, _ = ablate_report.propose(linear, X, np.full(4, 0.25))
    assert int(np.argmax(weights)) == 2
    assert predicted < y.min() + 0.05


def test_regression_on_a_random_objective_warns() -> None:
    X, y, groups = synthetic(lambda X, rng: rng.normal(3.0, 0.1, len(X)), mixtures=12, seeds=1)
    fits = ablate_report.fit(X, y, groups)
    warnings = ablate_report.warnings_for(ablate_report.best_fit(fits), 12)
    assert warnings and any("Spearman" in w for w in warnings)


def test_too_few_mixtures_to_judge_warns_even_when_the_fit_looks_perfect() -> None:
    X, y, groups = synthetic(lambda X, rng: X @ np.array([1.0, 2.0, 3.0, 4.0]), mixtures=4, seeds=1)
    fit = ablate_report.best_fit(ablate_report.fit(X, y, groups))
    assert any("too few" in w for w in ablate_report.warnings_for(fit, 4))


def test_centering_by_seed_removes_what_a_seed_shares_across_mixtures() -> None:
    y = np.array([1.0, 2.0, 3.0, 1.5, 2.5, 3.5])  # seed 1 is 0.5 higher on every mixture
    seeds = np.array([0, 0, 0, 1, 1, 1])
    assert ablate_report.center_by_seed(y, seeds) == pytest.approx([1.25, 2.25, 3.25, 1.25, 2.25, 3.25])


# -- a tiny study end to end -------------------------------------------------------------------------------------
@pytest.fixture(scope="module")
def study_out(tmp_path_factory: pytest.TempPathFactory, quickstart_out: Path, tokenizer_dir: Path) -> Path:
    """A 3-mixture x 2-seed study on 2 worker processes (one of the mixtures leaves books and wiki out)."""
    from train.cli import main

    tmp = tmp_path_factory.mktemp("ablate")
    path = write_config(tmp, study_config(tmp, quickstart_out, tokenizer_dir, seeds=[0, 1], workers=2))
    assert main(["--quiet", "ablate", str(path)]) == 0
    return tmp / "study"


def test_a_study_writes_results_report_plots_and_a_mixture(study_out: Path) -> None:
    rows = read_csv(study_out / "results.csv")
    assert [(r["mixture"], r["seed"]) for r in rows] == [(m, s) for m in ("natural", "uniform", "list-0")
                                                         for s in ("0", "1")]
    for r in rows:
        losses = [float(r[f"loss_{d}"]) for d in ("books", "code", "web", "wiki")]
        assert all(0 < x < 20 for x in losses)  # domains without weight are evaluated too
        assert float(r["objective"]) == pytest.approx(np.mean(losses))
        assert r["tokens"] == "512" and r["steps"] == "4" and float(r["wall_seconds"]) > 0
    assert len({r["id"] for r in rows}) == 6
    report = (study_out / "report.md").read_text()
    assert "## Mixtures by objective" in report and "held-out Spearman" in report and "**Warning.**" in report
    for png in ablate_report.PLOTS.values():
        assert (study_out / png).read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"


def test_the_proposed_mixture_is_accepted_by_train_pretrain(study_out: Path, quickstart_out: Path,
                                                           tokenizer_dir: Path) -> None:
    from train import data as data_mod

    mixture = json.loads((study_out / "mixture.json").read_text())
    assert sum(mixture["weights"].values()) == pytest.approx(1.0, abs=1e-5)
    cfg = PretrainConfig.model_validate({"corpus": str(quickstart_out), "tokenizer": str(tokenizer_dir),
                                         "out": "unused", "data": {"weights": mixture["weights"], "workers": 1}})
    assert set(data_mod.prepare(quickstart_out, tokenizer_dir, cfg.data).weights) <= set(mixture["weights"])


def test_a_rerun_skips_finished_runs_and_writes_identical_results(study_out: Path,
                                                                  monkeypatch: pytest.MonkeyPatch) -> None:
    from train.cli import main

    before = (study_out / "results.csv").read_bytes()
    monkeypatch.setattr(ablate, "train_run", lambda spec: pytest.fail(f"trained {spec['id']} again"))
    assert main(["--quiet", "ablate", str(study_out.parent / "ablate.yaml")]) == 0
    assert (study_out / "results.csv").read_bytes() == before


def test_a_killed_run_resumes_from_its_checkpoint_to_the_same_losses(study_out: Path, tmp_path: Path) -> None:
    import torch

    from train.cli import main

    out = tmp_path / "study"
    shutil.copytree(study_out, out)
    config = write_config(tmp_path, {**yaml.safe_load((study_out.parent / "ablate.yaml").read_text()),
                                     "out": str(out), "workers": 1})
    rows = read_csv(out / "results.csv")
    killed, restarted = rows[2]["id"], rows[5]["id"]  # uniform seed 0 (checkpoint at step 2), list-0 seed 1 (none)
    pretrain = json.loads((out / "runs" / killed / "config.json").read_text())
    shutil.rmtree(out / "runs" / killed)
    shutil.rmtree(out / "runs" / restarted / "final")
    (out / "runs" / restarted / "result.json").unlink()
    (tmp_path / "pretrain.yaml").write_text(yaml.safe_dump({**pretrain, "out": str(out / "runs" / killed)}))
    threads = torch.get_num_threads()
    torch.set_num_threads(max(1, (os.cpu_count() or 1) // 2))  # as each of the study's 2 workers: the same sums
    try:
        assert main(["--quiet", "pretrain", str(tmp_path / "pretrain.yaml"), "--stop-at", "2"]) == 0
        assert main(["--quiet", "ablate", str(config)]) == 0  # one worker: in this process
    finally:
        torch.set_num_threads(threads)
    again = read_csv(out / "results.csv")
    strip = [{k: v for k, v in r.items() if k != "wall_seconds"} for r in rows]
    assert [{k: v for k, v in r.items() if k != "wall_seconds"} for r in again] == strip
    assert "resuming from" in (out / "logs" / f"{killed}.log").read_text()


# -- config errors -----------------------------------------------------------------------------------------------
@pytest.mark.parametrize("change, message", [
    ({"mixtures": {"list": [{"code": 1, "poetry": 1}], "named": ["uniform"]}},
     "mixtures.list[0]: unknown domain 'poetry'"),
    ({"mixtures": {"list": [{"code": 0, "web": 0}], "named": ["uniform"]}}, "mixtures.list[0]: every weight is 0"),
    ({"mixtures": {"grid": {"step": 0.3}}}, "mixtures.grid.step: 0.3 does not divide 1"),
    ({"mixtures": {"grid": {"domains": ["code", "poems"], "step": 0.5}}}, "mixtures.grid.domains: unknown domain"),
    ({"mixtures": {"named": ["uniform"], "list": [{"books": 2, "code": 2, "web": 2, "wiki": 2}]}},
     "mixtures: 1 distinct mixture(s)"),
    ({"mixtures": {"named": ["natural", "nowhere.json"]}}, "mixtures.named[1]: …nowhere.json is not natural"),
    ({"mixtures": {"dirichlet": {"count": 3, "min_weight": 0.3}}}, "mixtures.dirichlet.min_weight"),
    ({"objective": {"domain": "poetry"}}, "objective.domain: unknown domain 'poetry'"),
    ({"data": {"weights": {"code": 1}}}, "data.weights is set by each mixture"),
    ({"seeds": [1, 1]}, "seeds: seeds repeat"),
    ({"tokens": 64}, "optim.warmup_steps: 1 is not below the 1 steps"),
])
def test_a_wrong_config_is_refused_naming_the_key_before_any_run(change: dict[str, Any], message: str,
                                                                 tmp_path: Path, quickstart_out: Path,
                                                                 tokenizer_dir: Path,
                                                                 capsys: pytest.CaptureFixture[str]) -> None:
    from train.cli import main

    path = write_config(tmp_path, study_config(tmp_path, quickstart_out, tokenizer_dir, **change))
    assert main(["--quiet", "ablate", str(path)]) == 2
    err = capsys.readouterr().err
    assert all(part in err for part in message.split("…")) and "Traceback" not in err
    assert not (tmp_path / "study").exists()


def test_an_output_holding_other_files_is_refused(tmp_path: Path, quickstart_out: Path, tokenizer_dir: Path,
                                                  capsys: pytest.CaptureFixture[str]) -> None:
    from train.cli import main

    (tmp_path / "study").mkdir()
    (tmp_path / "study" / "notes.txt").write_text("mine")
    path = write_config(tmp_path, study_config(tmp_path, quickstart_out, tokenizer_dir))
    assert main(["--quiet", "ablate", str(path)]) == 2
    assert "holds files but no ablation study" in capsys.readouterr().err
    assert sorted(p.name for p in (tmp_path / "study").iterdir()) == ["notes.txt"]


def test_a_mixture_the_corpus_cannot_supply_is_refused_before_any_run(tmp_path: Path, quickstart_out: Path,
                                                                      tokenizer_dir: Path,
                                                                      capsys: pytest.CaptureFixture[str]) -> None:
    from train.cli import main

    path = write_config(tmp_path, study_config(tmp_path, quickstart_out, tokenizer_dir,
                                               data={"seq_len": 32, "max_repetition": 0.001, "workers": 1}))
    assert main(["--quiet", "ablate", str(path)]) == 2
    err = capsys.readouterr().err
    assert "mixtures: list-0 (books 0.000, code 0.500, web 0.500, wiki 0.000)" in err and "max_repetition" in err
    assert not (tmp_path / "study" / "runs").exists()

