"""Checkpoints can be trusted: no checkpoint file runs code, damage is found before loading (and `--resume` falls
back to the newest intact checkpoint), another model shape is refused before weights are read, and resume refuses
only what changes the training so far (raising `optim.max_steps` extends a run)."""

from __future__ import annotations

import json
import os
import random
import shutil
from pathlib import Path
from typing import Any

import numpy as np
import pytest
import torch

from mixlab.checksum import file_checksum
from mixlab.errors import ConfigError
from tests.conftest import SHARED_DATA, pretrain_config, sft_config
from train import checkpoint
from train.cli import main
from train.sampler import DomainStream, MixtureSampler


def _pretrain(config: Path, *args: str) -> int:
    return main(["--quiet", "pretrain", str(config), *args])


def _metrics(out: Path) -> list[dict[str, Any]]:
    return [json.loads(x) for x in (out / "metrics.jsonl").read_text().splitlines()]


def _one_error_line(err: str) -> str:
    lines = [x for x in err.splitlines() if x.startswith("train: error:")]
    assert len(lines) == 1 and "Traceback" not in err, err
    return lines[0]


@pytest.fixture(scope="module")
def stopped_run(tmp_path_factory: pytest.TempPathFactory, quickstart_out: Path, tokenizer_dir: Path) -> Path:
    """A 6-step run stopped at step 4, with checkpoints at steps 2 and 4 (copy it before changing it)."""
    d = tmp_path_factory.mktemp("stopped")
    cfg = pretrain_config(d, quickstart_out, tokenizer_dir, checkpoint={"every": 2, "keep": 3}, eval={"every": 100})
    assert _pretrain(cfg, "--stop-at", "4") == 0
    return d


def _copy(run: Path, to: Path) -> tuple[Path, Path]:
    """A copy of a run directory made by :func:`pretrain_config`, its config pointing at the copy."""
    shutil.copytree(run, to)
    cfg = to / "pretrain.yaml"
    cfg.write_text(cfg.read_text().replace(str(run / "run"), str(to / "run")))
    return cfg, to / "run" / "checkpoints"


def _rewrite_checksum(ckpt: Path, name: str) -> None:
    """Record ``name``'s current checksum in state.json, as a forger would."""
    state = json.loads((ckpt / "state.json").read_text())
    f = ckpt / name
    state["files"][name] = {"bytes": f.stat().st_size, checkpoint.CHECKSUM: file_checksum(f)}
    (ckpt / "state.json").write_text(json.dumps(state))


class _RunsCode:
    def __init__(self, marker: Path) -> None:
        self.marker = marker

    def __reduce__(self) -> tuple[Any, ...]:
        return os.system, (f"touch {self.marker}",)


@pytest.mark.parametrize("name", ["model.pt", "optimizer.pt", "rng.pt"])
def test_a_crafted_pickle_in_any_checkpoint_file_is_refused_and_runs_nothing(tmp_path: Path, stopped_run: Path,
                                                                          name: str, capsys) -> None:
    cfg, ckpts = _copy(stopped_run, tmp_path / "r")
    marker = tmp_path / "PWNED"
    torch.save({"state": _RunsCode(marker)}, ckpts / "step-0000004" / name)
    _rewrite_checksum(ckpts / "step-0000004", name)  # the checksum matches: only safe loading stands in the way
    assert _pretrain(cfg, "--resume", str(ckpts / "step-0000004")) == 2
    line = _one_error_line(capsys.readouterr().err)
    assert name in line and "system" in line and "could run code" in line
    assert not marker.exists()


def test_rng_states_round_trip_through_weights_only_loading(tmp_path: Path) -> None:
    random.seed(1), np.random.seed(2), torch.manual_seed(3), random.gauss(0, 1), np.random.standard_normal()
    torch.save(checkpoint.rng_state(), tmp_path / "rng.pt")
    before = (random.random(), random.gauss(0, 1), np.random.rand(3).tolist(), np.random.standard_normal(),
              torch.rand(3).tolist())
    checkpoint.set_rng_state(torch.load(tmp_path / "rng.pt", weights_only=True))
    after = (random.random(), random.gauss(0, 1), np.random.rand(3).tolist(), np.random.standard_normal(),
             torch.rand(3).tolist())
    assert before == after


def test_state_json_records_the_size_and_checksum_of_every_file(stopped_run: Path) -> None:
    ckpt = stopped_run / "run" / "checkpoints" / "step-0000004"
    files = json.loads((ckpt / "state.json").read_text())["files"]
    assert sorted(files) == ["model.pt", "optimizer.pt", "rng.pt"]
    for name, rec in files.items():
        f = ckpt / name
        assert rec == {"bytes": f.stat().st_size, checkpoint.CHECKSUM: file_checksum(f)}


def test_a_truncated_file_in_a_named_checkpoint_is_refused_naming_it(tmp_path: Path, stopped_run: Path,
                                                                    capsys) -> None:
    cfg, ckpts = _copy(stopped_run, tmp_path / "r")
    os.truncate(ckpts / "step-0000004" / "model.pt", 1000)
    assert _pretrain(cfg, "--resume", str(ckpts / "step-0000004")) == 2
    line = _one_error_line(capsys.readouterr().err)
    assert "step-0000004/model.pt is truncated" in line


def _flip_byte(path: Path) -> None:
    data = bytearray(path.read_bytes())
    data[len(data) // 2] ^= 0xFF
    path.write_bytes(bytes(data))


@pytest.mark.parametrize("damage", ["flipped byte", "missing file", "state.json not JSON"])
def test_resume_latest_falls_back_to_the_previous_checkpoint_when_the_newest_is_damaged(
        tmp_path: Path, stopped_run: Path, damage: str, capsys) -> None:
    cfg, ckpts = _copy(stopped_run, tmp_path / "r")
    newest = ckpts / "step-0000004"
    if damage == "flipped byte":
        _flip_byte(newest / "optimizer.pt")
    elif damage == "missing file":
        (newest / "rng.pt").unlink()
    else:
        (newest / "state.json").write_text('{"step": 4, "files": {')
    assert _pretrain(cfg, "--resume") == 0
    err = capsys.readouterr().err
    assert "step-0000004/" in err and "falling back to the previous checkpoint" in err
    assert "resuming from step-0000002 (step 2), the newest intact checkpoint" in err
    steps = [m["step"] for m in _metrics(tmp_path / "r" / "run")]
    assert steps == [1, 2, 3, 4, 5, 6]  # the records of steps 3-4 before the fallback are not kept twice


def test_resume_when_every_checkpoint_is_damaged_fails_with_one_line(tmp_path: Path, stopped_run: Path,
                                                                     capsys) -> None:
    cfg, ckpts = _copy(stopped_run, tmp_path / "r")
    for step in ("step-0000002", "step-0000004"):
        _flip_byte(ckpts / step / "model.pt")
    assert _pretrain(cfg, "--resume") == 2
    line = _one_error_line(capsys.readouterr().err)
    assert "no intact checkpoint" in line and "step-0000004/model.pt is damaged" in line and "1 older" in line


def test_resuming_from_the_fallback_checkpoint_gives_the_losses_of_an_uninterrupted_run(
        tmp_path: Path, stopped_run: Path, quickstart_out: Path, tokenizer_dir: Path) -> None:
    straight = pretrain_config(tmp_path / "straight", quickstart_out, tokenizer_dir,
                               checkpoint={"every": 2, "keep": 3}, eval={"every": 100})
    assert _pretrain(straight) == 0
    cfg, ckpts = _copy(stopped_run, tmp_path / "r")
    _flip_byte(ckpts / "step-0000004" / "model.pt")
    assert _pretrain(cfg, "--resume") == 0
    resumed = {m["step"]: m["loss"] for m in _metrics(tmp_path / "r" / "run")}
    assert resumed == {m["step"]: m["loss"] for m in _metrics(tmp_path / "straight" / "run")}


def test_another_model_shape_is_refused_before_any_weight_is_loaded(tmp_path: Path, stopped_run: Path,
                                                                   capsys) -> None:
    cfg, _ = _copy(stopped_run, tmp_path / "r")
    assert _pretrain(cfg, "--resume", "model.config.hidden_size=64") == 2
    line = _one_error_line(capsys.readouterr().err)
    assert "model.config.hidden_size 32 there, 64 here" in line


def test_weights_of_another_shape_are_named_before_loading(tmp_path: Path) -> None:
    small, large = torch.nn.Linear(4, 4), torch.nn.Linear(4, 8)
    checkpoint.save(tmp_path, 1, small, torch.optim.AdamW(small.parameters()), {}, keep=1)
    before = large.weight.detach().clone()
    with pytest.raises(ConfigError, match=r"model.pt holds another model shape: weight is \[4, 4\] there and "
                                          r"\[8, 4\] here"):
        checkpoint.load(tmp_path / "step-0000001", large, torch.optim.AdamW(large.parameters()))
    assert torch.equal(large.weight, before)


def test_resuming_with_another_seed_is_refused_naming_seed(tmp_path: Path, stopped_run: Path, capsys) -> None:
    cfg, _ = _copy(stopped_run, tmp_path / "r")
    assert _pretrain(cfg, "--resume", "seed=1") == 2
    line = _one_error_line(capsys.readouterr().err)
    assert "seed 0 there, 1 here" in line and "optim" not in line


def test_resuming_with_another_global_batch_is_refused(tmp_path: Path, stopped_run: Path, capsys) -> None:
    cfg, _ = _copy(stopped_run, tmp_path / "r")
    assert _pretrain(cfg, "--resume", "optim.grad_accum=2") == 2
    assert "global batch" in _one_error_line(capsys.readouterr().err)


def test_raising_max_steps_extends_a_finished_run_and_records_the_change(tmp_path: Path, quickstart_out: Path,
                                                                        tokenizer_dir: Path, capsys) -> None:
    from train.loop import lr_at

    cfg = pretrain_config(tmp_path, quickstart_out, tokenizer_dir, optim={"max_steps": 4, "batch_size": 4,
                                                                          "lr": 3e-3, "warmup_steps": 2},
                          eval={"every": 100})
    assert _pretrain(cfg) == 0
    first = _metrics(tmp_path / "run")
    capsys.readouterr()
    assert main(["pretrain", str(cfg), "--resume", "optim.max_steps=6", "optim.lr=0.001"]) == 0
    err = capsys.readouterr().err
    assert "with changed settings: optim.lr 0.003 -> 0.001, optim.max_steps 4 -> 6" in err
    records = _metrics(tmp_path / "run")
    assert [m["step"] for m in records] == [1, 2, 3, 4, 5, 6] and records[:4] == first
    optim = type("O", (), {"lr": 1e-3, "warmup_steps": 2, "max_steps": 6, "min_lr_ratio": 0.1})
    assert [m["lr"] for m in records[4:]] == [lr_at(4, optim), lr_at(5, optim)]
    state = json.loads((tmp_path / "run" / "checkpoints" / "step-0000006" / "state.json").read_text())
    assert state["resumes"] == [{"step": 4, "changed": {"optim.lr": [0.003, 0.001], "optim.max_steps": [4, 6]}}]
    assert state["data_plan"] == [4, 6]
    summary = json.loads((tmp_path / "run" / "summary.json").read_text())
    assert summary["steps"] == 6 and summary["resumes"] == state["resumes"]


def test_max_steps_below_the_checkpoint_step_is_refused(tmp_path: Path, stopped_run: Path, capsys) -> None:
    cfg, _ = _copy(stopped_run, tmp_path / "r")
    assert _pretrain(cfg, "--resume", "optim.max_steps=3") == 2
    assert "optim.max_steps: 3 is below the step" in _one_error_line(capsys.readouterr().err)


def _sampler(total: int) -> MixtureSampler:
    streams = {d: DomainStream(d, [np.arange(n * 8 + 1)], np.array([0]), np.array([0]), np.array([0, n * 8 + 1]))
               for d, n in (("a", 40), ("b", 25))}
    return MixtureSampler(streams, {"a": 0.6, "b": 0.4}, total, seq_len=8, max_repetition=4, seed=0)


def test_an_extended_sampler_keeps_the_planned_order_and_continues_each_domain() -> None:
    planned, extended = _sampler(30), _sampler(30)
    extended.extend(50)
    assert len(extended) == 80
    assert [extended.sequence(p)[1].tolist() for p in range(30)] == [planned.sequence(p)[1].tolist() for p in range(30)]
    for i, d in enumerate(extended.domains):
        seen = extended.within[extended.order == i]
        assert sorted(seen.tolist()) == list(range(extended.counts[d]))  # no sequence drawn twice out of turn
    assert extended.counts == {"a": 48, "b": 32}


def test_an_extension_past_max_repetition_is_refused() -> None:
    sampler = _sampler(30)
    with pytest.raises(ConfigError, match="optim.max_steps: the longer run cannot be drawn under max_repetition 4"):
        sampler.extend(300)


def test_deepspeed_without_a_launcher_is_refused_with_how_to_launch(tmp_path: Path, quickstart_out: Path,
                                                                   tokenizer_dir: Path, monkeypatch, capsys) -> None:
    pytest.importorskip("deepspeed", reason="install the `deepspeed` extra (make test does)")
    for var in ("RANK", "WORLD_SIZE", "LOCAL_RANK", "MASTER_ADDR", "MASTER_PORT", "OMPI_COMM_WORLD_RANK"):
        monkeypatch.delenv(var, raising=False)
    cfg = pretrain_config(tmp_path, quickstart_out, tokenizer_dir, distributed={"backend": "deepspeed"})
    assert _pretrain(cfg) == 2
    line = _one_error_line(capsys.readouterr().err)
    assert "deepspeed needs a launcher" in line and "deepspeed --num_gpus" in line and "torchrun" in line
    assert "RANK=0 WORLD_SIZE=1" in line
    assert not (tmp_path / "run").exists()


def test_deepspeed_files_that_import_anything_else_are_refused(tmp_path: Path) -> None:
    folder = tmp_path / "deepspeed" / "state"
    folder.mkdir(parents=True)
    torch.save({"module": {"w": torch.zeros(2)}, "ds_version": "0.19"}, folder / "mp_rank_00_model_states.pt")
    assert checkpoint.check_deepspeed_files(tmp_path) == tmp_path / "deepspeed"
    torch.save({"optimizer": _RunsCode(tmp_path / "PWNED")}, folder / "zero_pp_rank_0_mp_rank_00_optim_states.pt")
    with pytest.raises(ConfigError, match=r"optim_states.pt was refused: it imports posix.system"):
        checkpoint.check_deepspeed_files(tmp_path)
    assert not (tmp_path / "PWNED").exists()


def test_sft_resume_extends_max_steps_and_refuses_another_seed(tmp_path: Path, pretrained_model: Path,
                                                               capsys) -> None:
    alpaca = {"path": str(SHARED_DATA / "sft" / "alpaca_en_demo.json"), "format": "alpaca"}
    cfg = sft_config(tmp_path, pretrained_model, [alpaca])
    run = ["--quiet", "sft", str(cfg)]
    assert main(run) == 0
    assert main([*run, "--resume", "seed=1"]) == 2
    assert "seed 0 there, 1 here" in _one_error_line(capsys.readouterr().err)
    assert main([*run, "--resume", "optim.max_steps=6"]) == 0
    assert [m["step"] for m in _metrics(tmp_path / "sft")] == [1, 2, 3, 4, 5, 6]
