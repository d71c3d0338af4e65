"""`train pretrain` and `train sft` runs can be trusted with their directories and inputs: a non-empty output is
refused without `--resume`, a failed write (a full disk) is one line naming the file and leaves no partial
checkpoint, a damaged or wrong model, peft or architecture input is one line naming the file or key before any
tokenizing, `--stop-at` and interrupts say what can be done next, and `--quiet` silences the model libraries."""

from __future__ import annotations

import errno
import json
import os
import shutil
import subprocess
import sys
import warnings
from pathlib import Path
from typing import Any

import pytest
import torch

from tests.conftest import TINY_MODEL, pretrain_config, sft_config
from train import data as data_mod
from train.cli import main
from train.loop import Trainer

REPLIES = [{"messages": [{"role": "user", "content": f"Say {w}."}, {"role": "assistant", "content": w}]}
           for w in ["yes", "no", "maybe", "sure", "ok", "fine", "right", "good"] * 3]


def _pretrain(config: Path, *args: str) -> int:
    return main(["--quiet", "pretrain", str(config), *args])


def _one_error_line(err: str) -> str:
    lines = [x for x in err.splitlines() if x.startswith("train: ")]
    assert len(lines) == 1 and "Traceback" not in err, err
    return lines[0]


def _tree(path: Path) -> dict[str, bytes]:
    return {p.relative_to(path).as_posix(): p.read_bytes() for p in sorted(path.rglob("*")) if p.is_file()}


@pytest.fixture
def no_tokenizing(monkeypatch: pytest.MonkeyPatch) -> None:
    """Fail the test if a run gets as far as tokenizing its corpus."""
    def prepare(*args: Any, **kwargs: Any) -> None:
        raise AssertionError("the corpus was tokenized before the refusal")

    monkeypatch.setattr(data_mod, "prepare", prepare)


@pytest.fixture(scope="module")
def tiny_model(tmp_path_factory: pytest.TempPathFactory, tokenizer_dir: Path) -> Path:
    """An untrained tiny Llama saved with `save_pretrained`, with the test tokenizer beside it."""
    from transformers import AutoTokenizer, LlamaConfig, LlamaForCausalLM

    d = tmp_path_factory.mktemp("tiny-model")
    tok = AutoTokenizer.from_pretrained(str(tokenizer_dir))
    torch.manual_seed(0)
    LlamaForCausalLM(LlamaConfig(vocab_size=len(tok), **TINY_MODEL)).save_pretrained(str(d))
    tok.save_pretrained(str(d))
    return d


def _sft_setup(tmp_path: Path, base: Path, **sections: Any) -> Path:
    data = tmp_path / "chat.jsonl"
    data.write_text("".join(json.dumps(r) + "\n" for r in REPLIES), encoding="utf-8")
    sections.setdefault("optim", {"max_steps": 1})
    return sft_config(tmp_path, base, [{"path": str(data)}], eval={"every": 100}, **sections)


# -- 1. the output directory ------------------------------------------------------------------------------------

def test_a_non_empty_out_is_refused_without_resume_and_left_as_it_was(tmp_path: Path, quickstart_out: Path,
                                                                      tokenizer_dir: Path, no_tokenizing: None,
                                                                      capsys: pytest.CaptureFixture[str]) -> None:
    cfg = pretrain_config(tmp_path, quickstart_out, tokenizer_dir)
    out = tmp_path / "run"
    out.mkdir()
    for name in ("config.json", "plan.json", "metrics.jsonl"):
        (out / name).write_text(f"the user's {name}\n")
    before = _tree(out)
    assert _pretrain(cfg) == 2
    line = _one_error_line(capsys.readouterr().err)
    assert f"out: {out} is not empty" in line and "--resume to continue" in line and "another or an empty out" in line
    assert _tree(out) == before


def test_an_earlier_run_is_not_trained_over_without_resume(tmp_path: Path, quickstart_out: Path,
                                                           tokenizer_dir: Path, capsys: pytest.CaptureFixture[str]
                                                           ) -> None:
    cfg = pretrain_config(tmp_path, quickstart_out, tokenizer_dir, optim={"max_steps": 2},
                          checkpoint={"every": 1, "keep": 3}, eval={"every": 100})
    assert _pretrain(cfg) == 0
    before = _tree(tmp_path / "run")
    assert _pretrain(cfg) == 2
    assert "holds a run with checkpoints up to step-0000002" in _one_error_line(capsys.readouterr().err)
    assert _tree(tmp_path / "run") == before


def test_sft_into_a_non_empty_out_is_refused_before_anything_is_loaded(tmp_path: Path,
                                                                       capsys: pytest.CaptureFixture[str]) -> None:
    cfg = _sft_setup(tmp_path, tmp_path / "no-model-here")
    (tmp_path / "sft").mkdir()
    (tmp_path / "sft" / "notes.txt").write_text("mine\n")
    assert main(["sft", str(cfg)]) == 2
    assert f"out: {tmp_path / 'sft'} is not empty (it holds notes.txt)" in _one_error_line(capsys.readouterr().err)


def test_an_out_that_is_a_file_is_refused(tmp_path: Path, quickstart_out: Path, tokenizer_dir: Path,
                                          capsys: pytest.CaptureFixture[str]) -> None:
    cfg = pretrain_config(tmp_path, quickstart_out, tokenizer_dir)
    (tmp_path / "run").write_text("a file\n")
    assert _pretrain(cfg) == 2
    assert "is a file, not a directory" in _one_error_line(capsys.readouterr().err)


# -- 2. failed writes -------------------------------------------------------------------------------------------

def _failing_torch_save(monkeypatch: pytest.MonkeyPatch, error: BaseException, step: str) -> None:
    """torch.save writes part of a file, then raises ``error``, for the checkpoint directory named ``step``."""
    real = torch.save

    def save(obj: Any, f: Any, *args: Any, **kwargs: Any) -> None:
        if step in str(f):
            Path(f).write_bytes(b"partial")
            raise error
        real(obj, f, *args, **kwargs)

    monkeypatch.setattr(torch, "save", save)


def test_a_checkpoint_that_cannot_be_written_is_one_line_and_leaves_no_partial_checkpoint(
        tmp_path: Path, quickstart_out: Path, tokenizer_dir: Path, monkeypatch: pytest.MonkeyPatch,
        capsys: pytest.CaptureFixture[str]) -> None:
    cfg = pretrain_config(tmp_path, quickstart_out, tokenizer_dir, optim={"max_steps": 2},
                          checkpoint={"every": 1, "keep": 3}, eval={"every": 100})
    _failing_torch_save(monkeypatch, RuntimeError("[enforce fail at inline_container.cc:672] . unexpected pos 64 "
                                                  "vs 32"), "step-0000001")
    assert _pretrain(cfg) == 1
    line = _one_error_line(capsys.readouterr().err)
    assert f"{tmp_path / 'run' / 'checkpoints' / 'step-0000001'}: cannot write the checkpoint" in line
    assert "unexpected pos" in line and "no checkpoint was written yet: run the same command again" in line
    assert not (tmp_path / "run").exists()  # nothing to resume: what the run wrote is gone, so it can start over
    monkeypatch.undo()
    assert _pretrain(cfg) == 0


def test_a_full_disk_at_a_later_checkpoint_points_to_the_last_one_and_resume_finishes(
        tmp_path: Path, quickstart_out: Path, tokenizer_dir: Path, monkeypatch: pytest.MonkeyPatch,
        capsys: pytest.CaptureFixture[str]) -> None:
    cfg = pretrain_config(tmp_path, quickstart_out, tokenizer_dir, optim={"max_steps": 3},
                          checkpoint={"every": 1, "keep": 3}, eval={"every": 100})
    checkpoints = tmp_path / "run" / "checkpoints"
    _failing_torch_save(monkeypatch, OSError(errno.ENOSPC, "No space left on device"), "step-0000002")
    assert _pretrain(cfg) == 1
    line = _one_error_line(capsys.readouterr().err)
    assert f"{checkpoints / 'step-0000002'}: cannot write the checkpoint: no space left on the device" in line
    assert f"`--resume` continues from the last checkpoint ({checkpoints / 'step-0000001'})" in line
    assert sorted(p.name for p in checkpoints.iterdir()) == ["step-0000001"]
    monkeypatch.undo()
    assert _pretrain(cfg, "--resume") == 0
    assert (tmp_path / "run" / "final" / "model.safetensors").is_file()


def test_a_final_model_that_cannot_be_written_leaves_no_partial_final(tmp_path: Path, quickstart_out: Path,
                                                                      tokenizer_dir: Path,
                                                                      monkeypatch: pytest.MonkeyPatch,
                                                                      capsys: pytest.CaptureFixture[str]) -> None:
    from train.pretrain import Pretrainer

    cfg = pretrain_config(tmp_path, quickstart_out, tokenizer_dir, optim={"max_steps": 2},
                          checkpoint={"every": 1, "keep": 3}, eval={"every": 100})
    real = Pretrainer.save_final

    def save_final(self: Pretrainer, directory: Path, weights: Any) -> None:
        real(self, directory, weights)
        raise OSError(errno.EDQUOT, "Disk quota exceeded", str(directory / "model.safetensors"))

    monkeypatch.setattr(Pretrainer, "save_final", save_final)
    assert _pretrain(cfg) == 1
    line = _one_error_line(capsys.readouterr().err)
    assert f"{tmp_path / 'run' / 'final'}: cannot write the final model: disk quota exceeded" in line
    assert not (tmp_path / "run" / "final").exists() and not (tmp_path / "run" / ".final.tmp").exists()
    monkeypatch.undo()
    assert _pretrain(cfg, "--resume") == 0
    assert (tmp_path / "run" / "final" / "model.safetensors").is_file()


@pytest.mark.skipif(os.geteuid() != 0 or shutil.which("mount") is None, reason="mounting a tmpfs needs root")
def test_pretraining_onto_a_full_tmpfs_is_one_line_and_leaves_nothing_partial(tmp_path: Path, quickstart_out: Path,
                                                                             tokenizer_dir: Path) -> None:
    disk = tmp_path / "disk"
    disk.mkdir()
    if subprocess.run(["mount", "-t", "tmpfs", "-o", "size=300k", "tmpfs", str(disk)]).returncode != 0:
        pytest.skip("this container cannot mount a tmpfs")
    try:
        cfg = pretrain_config(tmp_path, quickstart_out, tokenizer_dir, out=str(disk / "run"),
                              optim={"max_steps": 2}, checkpoint={"every": 1, "keep": 3}, eval={"every": 100})
        proc = subprocess.run([sys.executable, "-m", "train.cli", "--quiet", "pretrain", str(cfg)],
                              capture_output=True, text=True, timeout=300)
        assert proc.returncode == 1
        line = _one_error_line(proc.stderr)
        assert f"{disk / 'run'}" in line and "cannot write" in line
        assert not list(disk.rglob("*.tmp")) and not list(disk.rglob(".step-*"))
    finally:
        subprocess.run(["umount", str(disk)])


# -- 3. damaged or wrong model, peft and architecture inputs ----------------------------------------------------

def _damaged_model(tiny_model: Path, to: Path, kind: str) -> tuple[Path, str]:
    """A copy of ``tiny_model`` damaged as ``kind``, and the file the error must name."""
    shutil.copytree(tiny_model, to)
    weights = to / "model.safetensors"
    if kind == "truncated weights":
        with open(weights, "r+b") as f:
            f.truncate(weights.stat().st_size // 2)
        return to, str(weights)
    if kind == "overwritten weights":
        weights.write_bytes(b"\0" * 64)
        return to, str(weights)
    if kind == "no weights":
        weights.unlink()
        return to, f"{to} holds no weights"
    if kind == "config not JSON":
        (to / "config.json").write_text("{")
        return to, str(to / "config.json")
    if kind == "config without model_type":
        (to / "config.json").write_text("{}")
        return to, str(to / "config.json")
    shutil.rmtree(to)
    to.mkdir()
    return to, f"{to}: not a model: it holds nothing"


MODEL_DAMAGE = ["truncated weights", "overwritten weights", "no weights", "config not JSON",
                "config without model_type", "empty directory"]


@pytest.mark.parametrize("kind", MODEL_DAMAGE)
def test_a_damaged_model_path_is_named_before_tokenizing(tmp_path: Path, quickstart_out: Path, tokenizer_dir: Path,
                                                         tiny_model: Path, kind: str, no_tokenizing: None,
                                                         capsys: pytest.CaptureFixture[str]) -> None:
    model, named = _damaged_model(tiny_model, tmp_path / "model", kind)
    cfg = pretrain_config(tmp_path, quickstart_out, tokenizer_dir, model={"path": str(model)})
    assert _pretrain(cfg) == 2
    line = _one_error_line(capsys.readouterr().err)
    assert line.startswith("train: error: model.path: ") and named in line
    assert not (tmp_path / "run").exists()


def test_an_undamaged_model_path_still_trains(tmp_path: Path, quickstart_out: Path, tokenizer_dir: Path,
                                              tiny_model: Path) -> None:
    cfg = pretrain_config(tmp_path, quickstart_out, tokenizer_dir, model={"path": str(tiny_model)},
                          optim={"max_steps": 1}, eval={"every": 100})
    assert _pretrain(cfg) == 0


def test_an_architecture_transformers_rejects_is_refused_before_tokenizing(tmp_path: Path, quickstart_out: Path,
                                                                          tokenizer_dir: Path, no_tokenizing: None,
                                                                          capsys: pytest.CaptureFixture[str]) -> None:
    cfg = pretrain_config(tmp_path, quickstart_out, tokenizer_dir)
    assert main(["pretrain", str(cfg), "model.config={hidden_size: 63, num_attention_heads: 4}"]) == 2
    line = _one_error_line(capsys.readouterr().err)
    assert line == "train: error: model.config: The hidden size (63) is not a multiple of the number of attention " \
                   "heads (4)."


@pytest.mark.parametrize("kind", ["truncated weights", "config not JSON", "empty directory"])
def test_a_damaged_sft_base_is_named_in_one_line(tmp_path: Path, tokenizer_dir: Path, tiny_model: Path, kind: str,
                                                 capsys: pytest.CaptureFixture[str]) -> None:
    base, named = _damaged_model(tiny_model, tmp_path / "base", kind)
    cfg = _sft_setup(tmp_path, base, tokenizer=str(tokenizer_dir))
    assert main(["sft", str(cfg)]) == 2
    line = _one_error_line(capsys.readouterr().err)
    assert line.startswith("train: error: base: ") and named in line


def test_a_peft_target_module_the_model_lacks_is_named_with_the_choices(tmp_path: Path, tiny_model: Path,
                                                                        capsys: pytest.CaptureFixture[str]) -> None:
    cfg = _sft_setup(tmp_path, tiny_model, peft={"target_modules": ["q_proj", "nonexistent"]})
    assert main(["sft", str(cfg)]) == 2
    line = _one_error_line(capsys.readouterr().err)
    assert line == "train: error: peft.target_modules: nonexistent names no module of the base model; its linear " \
                   "layers are down_proj, gate_proj, k_proj, lm_head, o_proj, q_proj, up_proj, v_proj"
    assert not (tmp_path / "sft").exists()


def test_generate_names_a_truncated_weights_file(tmp_path: Path, tiny_model: Path,
                                                 capsys: pytest.CaptureFixture[str]) -> None:
    model, named = _damaged_model(tiny_model, tmp_path / "model", "truncated weights")
    assert main(["generate", str(model), "--prompt", "hi"]) == 2
    assert named in _one_error_line(capsys.readouterr().err)


# -- 4. --stop-at and interrupts --------------------------------------------------------------------------------

@pytest.mark.parametrize("command", ["pretrain", "sft"])
@pytest.mark.parametrize("stop_at", ["0", "-1"])
def test_stop_at_below_one_is_refused(tmp_path: Path, command: str, stop_at: str,
                                      capsys: pytest.CaptureFixture[str]) -> None:
    assert main([command, str(tmp_path / "never-read.yaml"), "--stop-at", stop_at]) == 2
    assert _one_error_line(capsys.readouterr().err) == f"train: error: --stop-at {stop_at}: must be a step of at " \
                                                        "least 1"


def test_stop_at_not_past_the_resumed_step_is_refused(tmp_path: Path, quickstart_out: Path, tokenizer_dir: Path,
                                                      capsys: pytest.CaptureFixture[str]) -> None:
    cfg = pretrain_config(tmp_path, quickstart_out, tokenizer_dir, checkpoint={"every": 2, "keep": 3},
                          eval={"every": 100})
    assert _pretrain(cfg, "--stop-at", "2") == 0
    assert _pretrain(cfg, "--resume", "--stop-at", "2") == 2
    assert "--stop-at 2: must be past the step the run starts at (2)" in _one_error_line(capsys.readouterr().err)


def _interrupt_at(monkeypatch: pytest.MonkeyPatch, step: int) -> None:
    real = Trainer.train_step

    def train_step(self: Trainer) -> dict[str, Any]:
        if self.step + 1 == step:
            raise KeyboardInterrupt
        return real(self)

    monkeypatch.setattr(Trainer, "train_step", train_step)


def test_an_interrupt_before_the_first_checkpoint_says_to_start_again_and_that_works(
        tmp_path: Path, quickstart_out: Path, tokenizer_dir: Path, monkeypatch: pytest.MonkeyPatch,
        capsys: pytest.CaptureFixture[str]) -> None:
    cfg = pretrain_config(tmp_path, quickstart_out, tokenizer_dir, optim={"max_steps": 4},
                          checkpoint={"every": 3, "keep": 3}, eval={"every": 100})
    _interrupt_at(monkeypatch, 2)
    assert _pretrain(cfg) == 1
    err = capsys.readouterr().err
    assert err.strip().splitlines()[-1] == "train: interrupted; no checkpoint was written yet: run the same " \
                                           "command again to start over"
    monkeypatch.undo()
    assert _pretrain(cfg) == 0


def test_an_interrupt_after_a_checkpoint_names_the_one_resume_continues_from(
        tmp_path: Path, quickstart_out: Path, tokenizer_dir: Path, monkeypatch: pytest.MonkeyPatch,
        capsys: pytest.CaptureFixture[str]) -> None:
    cfg = pretrain_config(tmp_path, quickstart_out, tokenizer_dir, optim={"max_steps": 4},
                          checkpoint={"every": 2, "keep": 3}, eval={"every": 100})
    _interrupt_at(monkeypatch, 4)
    assert _pretrain(cfg) == 1
    last = capsys.readouterr().err.strip().splitlines()[-1]
    assert last == "train: interrupted; `--resume` continues from the last checkpoint " \
                   f"({tmp_path / 'run' / 'checkpoints' / 'step-0000002'})"


# -- 5. --quiet and the model libraries -------------------------------------------------------------------------

@pytest.mark.parametrize("quiet", [False, True])
def test_quiet_silences_the_loading_progress_bar_of_transformers(tiny_model: Path, quiet: bool,
                                                                 monkeypatch: pytest.MonkeyPatch,
                                                                 capsys: pytest.CaptureFixture[str]) -> None:
    monkeypatch.setattr(sys.stderr, "isatty", lambda: True)  # progress bars are drawn on terminals only
    args = ["generate", str(tiny_model), "--prompt", "hi", "--max-new-tokens", "2", "--temperature", "0"]
    assert main(["-q", *args] if quiet else args) == 0
    err = capsys.readouterr().err
    assert ("Loading weights" in err) != quiet
    if quiet:
        assert err == ""


def test_sft_raises_no_deprecation_warning_of_transformers(tmp_path: Path, tiny_model: Path) -> None:
    cfg = _sft_setup(tmp_path, tiny_model)
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        assert main(["--quiet", "sft", str(cfg)]) == 0
    assert not [w for w in caught if "is_gradient_checkpointing" in str(w.message)]
