"""Every mistake a user can make or fix on the command line ends in one line and exit 1 or 2, never a traceback;
common options go before or after the subcommand."""

from __future__ import annotations

import argparse
import errno
import json
import os
from pathlib import Path
from typing import Any, Iterator

import pytest
import yaml

from curate import tasks
from curate.cli import _parser as curate_parser
from curate.cli import main
from mixlab import cli
from mixlab.errors import storage_problem
from tests.conftest import run_curate
from train.cli import _parser as train_parser

CPUS = os.cpu_count() or 1


@pytest.fixture
def recipe(tmp_path: Path) -> Path:
    (tmp_path / "a.jsonl").write_text("".join(json.dumps({"text": f"a document of several words, number {i}"})
                                              + "\n" for i in range(40)), encoding="utf-8")
    path = tmp_path / "r.yaml"
    path.write_text(yaml.safe_dump({"name": "t", "sources": [{"path": "a.jsonl", "domain": "web"}],
                                    "steps": ["normalize"], "output": {"dir": "out"},
                                    "executor": {"workers": 1}}), encoding="utf-8")
    return path


def one_line(err: str) -> str:
    lines = err.strip().splitlines()
    assert len(lines) == 1, err
    return lines[0]


# ------------------------------------------------------------------------------------------ overrides, workers


@pytest.mark.parametrize("command", ["validate", "run"])
def test_override_that_is_not_valid_yaml_names_the_override(recipe: Path, capsys: Any, command: str) -> None:
    code, err = run_curate(capsys, command, recipe, "output.shard_docs=[unclosed")

    assert code == 2
    assert one_line(err).startswith("curate: error: override 'output.shard_docs=[unclosed': the value is not valid")


def test_recipe_workers_above_four_per_cpu_are_refused_before_work(recipe: Path, capsys: Any) -> None:
    code, err = run_curate(capsys, "run", recipe, f"executor.workers={4 * CPUS + 1}")

    assert code == 2 and f"executor.workers: at most {4 * CPUS}" in err
    assert not (recipe.parent / "out").exists()


@pytest.mark.parametrize("workers", [0, 4 * CPUS + 1])
def test_workers_option_out_of_range_is_refused_before_work(recipe: Path, capsys: Any, workers: int) -> None:
    code, err = run_curate(capsys, "run", recipe, "--workers", workers)

    assert code == 2 and one_line(err).startswith("curate: error: --workers: ")
    assert not (recipe.parent / "out").exists()


def test_four_workers_per_cpu_are_allowed(recipe: Path) -> None:
    from curate.recipe import load_recipe

    assert load_recipe(recipe, [f"executor.workers={4 * CPUS}"]).model.executor.workers == 4 * CPUS


# ------------------------------------------------------------------------------------------ common options


def leaf_commands(parser: argparse.ArgumentParser, path: tuple[str, ...] = ()) -> Iterator[tuple[Any, ...]]:
    """(path of subcommand names, the leaf subparser) for every subcommand at any depth."""
    for action in parser._actions:
        if isinstance(action, argparse._SubParsersAction):
            for name, sub in action.choices.items():
                yield from leaf_commands(sub, (*path, name))
            return
    yield path, parser


def minimal_argv(sub: argparse.ArgumentParser) -> list[str]:
    argv: list[str] = []
    for a in sub._actions:
        if not a.option_strings and a.nargs not in ("*", "?"):
            argv.append("1")
        elif a.option_strings and a.required:
            argv += [a.option_strings[0], "1"]
    return argv


def every_leaf() -> list[Any]:
    return [pytest.param(make, path, id=f"{make.__module__.split('.')[0]} {' '.join(path)}")
            for make in (curate_parser, train_parser) for path, _ in leaf_commands(make())]


@pytest.mark.parametrize("make, path", every_leaf())
@pytest.mark.parametrize("option, dest", [("--quiet", "quiet"), ("-q", "quiet"), ("--verbose", "verbose")])
def test_common_options_are_accepted_after_every_subcommand(make: Any, path: tuple[str, ...], option: str,
                                                            dest: str) -> None:
    parser = make()
    cli.add_common_options(parser)
    sub = dict(leaf_commands(parser))[path]

    args, extra = parser.parse_known_args([*path, *minimal_argv(sub), option])

    assert extra == [] and getattr(args, dest) is True


@pytest.mark.parametrize("argv, quiet", [(["--quiet", "validate", "r.yaml"], True),
                                         (["validate", "r.yaml", "--quiet"], True),
                                         (["--quiet", "validate", "r.yaml", "--verbose"], True),
                                         (["validate", "r.yaml"], False)])
def test_common_option_given_before_the_subcommand_is_kept(argv: list[str], quiet: bool) -> None:
    parser = curate_parser()
    cli.add_common_options(parser)
    assert parser.parse_known_args(argv)[0].quiet is quiet


def test_curate_accepts_quiet_after_the_recipe(recipe: Path, capsys: Any) -> None:
    assert main(["run", str(recipe), "--quiet"]) == 0
    assert capsys.readouterr().err == ""


# ------------------------------------------------------------------------------------------ storage errors


def test_full_disk_in_a_worker_process_is_one_line_and_exit_1(recipe: Path, capsys: Any,
                                                                monkeypatch: Any) -> None:
    def full(*args: Any) -> None:
        raise OSError(errno.ENOSPC, "No space left on device", str(recipe.parent / "out" / ".work" / "x.arrow"))

    monkeypatch.setattr(tasks, "run_map", full)  # the forked workers inherit it

    code, err = run_curate(capsys, "run", recipe, "--workers", 2)

    assert code == 1
    assert "x.arrow: no space left on the device" in one_line(err)
    assert "Traceback" in (recipe.parent / "out" / "logs" / "run.log").read_text()


def test_read_only_output_is_one_line_and_exit_2(recipe: Path, capsys: Any, monkeypatch: Any) -> None:
    real_mkdir = os.mkdir
    read_only = recipe.parent / "ro"

    def mkdir(path: Any, *args: Any, **kwargs: Any) -> None:
        if Path(path).is_relative_to(read_only):
            raise OSError(errno.EROFS, "Read-only file system", str(path))
        real_mkdir(path, *args, **kwargs)

    monkeypatch.setattr(os, "mkdir", mkdir)

    code, err = run_curate(capsys, "run", recipe, "--output", read_only / "out")

    assert code == 2 and "read-only file system" in one_line(err)


def test_output_path_that_is_a_file_is_refused(recipe: Path, capsys: Any) -> None:
    (recipe.parent / "taken").write_text("a file")

    code, err = run_curate(capsys, "run", recipe, "--output", recipe.parent / "taken")

    assert code == 2 and "is not a directory" in one_line(err)


def run_command(command: Any) -> int:
    parser = argparse.ArgumentParser(prog="tool")
    parser.add_argument("--quiet", action="store_true")
    parser.add_argument("--verbose", action="store_true")
    parser.add_subparsers(dest="command").add_parser("go")
    return cli.run(parser, {"go": command}, ["go"], interrupted="")


@pytest.mark.parametrize("err, expected", [
    (PermissionError(errno.EACCES, "Permission denied", "/data/x"), "/data/x: permission denied"),
    (OSError(errno.EROFS, "Read-only file system", "/mnt/ro/y"), "/mnt/ro/y: read-only file system"),
    (OSError(errno.ENOSPC, "No space left on device"), "no space left on the device"),
])
def test_runner_turns_a_storage_error_of_any_command_into_one_line(capsys: Any, err: OSError,
                                                                   expected: str) -> None:
    def command(args: argparse.Namespace) -> int:
        raise err

    assert run_command(command) == 1
    assert one_line(capsys.readouterr().err) == f"tool: error: {expected}"


def test_runner_lets_a_bug_raise_with_its_traceback() -> None:
    def command(args: argparse.Namespace) -> int:
        raise ZeroDivisionError("a bug")

    with pytest.raises(ZeroDivisionError):
        run_command(command)


def test_arrow_errors_are_recognized_by_the_errno_in_their_text() -> None:
    arrow = OSError("Error writing bytes to file. Detail: [errno 28] No space left on device")
    assert storage_problem(arrow) == "no space left on the device"
    assert storage_problem(OSError("Error reading: [errno 5] Input/output error")) is None
