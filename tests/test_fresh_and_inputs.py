"""`--fresh` deletes only files whose names mixlab writes, even inside its own folders; a directory holding no
corpus is never cleared; source paths are checked at validate time (directories, empty lists) and a file reached
through hard links is read once; damaged state and a directory given as a config are one line and exit 2."""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Any

import pytest
import yaml

from curate.layout import Layout, is_written
from mixlab.config import load_yaml
from mixlab.errors import ConfigError
from tests.conftest import run_curate, small_recipe, write_inputs



def kept_docs(out: Path) -> int:
    return json.loads((out / "manifest.json").read_text())["accounting"]["kept"]


@pytest.fixture
def built(tmp_path: Path, capsys: Any) -> Path:
    """A complete corpus in tmp_path/out built from tmp_path/in/a.jsonl by tmp_path/r.yaml."""
    write_inputs(tmp_path / "in")
    assert run_curate(capsys, "run", small_recipe(tmp_path, {"path": "in/a.jsonl"}))[0] == 0
    return tmp_path / "out"


# ------------------------------------------------------------------------------------------ --fresh


def test_fresh_refuses_a_directory_whose_only_content_is_a_users_log(tmp_path: Path, capsys: Any) -> None:
    write_inputs(tmp_path / "in")
    (tmp_path / "out2" / "logs").mkdir(parents=True)
    (tmp_path / "out2" / "logs" / "important.log").write_text("x")

    code, err = run_curate(capsys, "run", small_recipe(tmp_path, {"path": "in/a.jsonl"}), "--output",
                       tmp_path / "out2", "--fresh")

    assert code == 2 and "holds no mixlab corpus" in err and "logs/important.log" in err
    assert (tmp_path / "out2" / "logs" / "important.log").read_text() == "x"


def test_fresh_keeps_user_files_inside_the_folders_mixlab_writes(built: Path, tmp_path: Path, capsys: Any) -> None:
    mine = {"data/README.md": "readme", "data/web/my_notes.txt": "notes", "stats/mystats.json": "{}",
            "logs/mine.log": "log"}
    for rel, text in mine.items():
        (built / rel).write_text(text)

    code, err = run_curate(capsys, "run", tmp_path / "r.yaml", "--fresh", quiet=False)

    assert code == 0
    assert {rel: (built / rel).read_text() for rel in mine} == mine
    assert "--fresh kept 4 path(s) that mixlab did not write" in err and "data/web/my_notes.txt" in err
    assert kept_docs(built) == 5


def test_clear_deletes_every_name_a_run_writes_and_the_folders_left_empty(tmp_path: Path) -> None:
    written = ["manifest.json", ".mixture.json.tmp77", "card.md", "data/web/part-00000.parquet",
               "data/web/.part-00001.parquet.tmp12", "removed/quality/part-00000.parquet", "errors/part-00003.parquet",
               "stats/quality.json", "stats/read.json", "logs/run.log", "index/minhash/bands.arrow",
               "tokens/51a590442e2e34a7/web/part-00000.docs.npy", "tokens/51a590442e2e34a7/web/.part-00000.tokens",
               ".state/recipe.json", ".state/seg0/u1.done", ".work/anything/at/all.txt"]
    mine = ["NOTES.txt", "data/web/part-1.parquet", "data/web/sub/part-00000.parquet", "stats/quality.json.bak",
            "logs/run.log.1", "index/other/params.json", "tokens/README", "removed/quality/notes.md"]
    for rel in written + mine:
        (tmp_path / rel).parent.mkdir(parents=True, exist_ok=True)
        (tmp_path / rel).write_text(rel)
    (tmp_path / "removed" / "langid").mkdir()

    Layout(tmp_path).clear()

    left = sorted(p.relative_to(tmp_path).as_posix() for p in tmp_path.rglob("*") if p.is_file())
    assert left == sorted(mine)
    assert not (tmp_path / "removed" / "langid").exists() and not (tmp_path / "errors").exists()


def test_clear_removes_a_symlink_it_reaches_but_never_what_it_points_to(tmp_path: Path) -> None:
    elsewhere = tmp_path / "elsewhere"
    write_inputs(elsewhere, "part-00000.parquet")
    out = tmp_path / "out"
    (out / "data" / "web").mkdir(parents=True)
    (out / "data" / "web" / "part-00000.parquet").symlink_to(elsewhere / "part-00000.parquet")
    (out / "data" / "books").symlink_to(elsewhere, target_is_directory=True)

    Layout(out).clear()

    assert (elsewhere / "part-00000.parquet").exists()
    assert not os.path.lexists(out / "data" / "web" / "part-00000.parquet")
    assert (out / "data" / "books").is_symlink()


@pytest.mark.parametrize("rel", ["mystats.json", "stats/mystats.json", "stats/.quality.json.tmp", "data/README.md",
                                 "data/web/my_notes.txt", "logs/mine.log", "errors/mine.parquet",
                                 "tokens/not-hex/web/part-00000.json"])
def test_a_name_mixlab_does_not_write_is_not_its_own(rel: str) -> None:
    assert not is_written(tuple(rel.split("/")))


def test_fresh_on_an_output_holding_only_mixlab_names_clears_it(tmp_path: Path, capsys: Any) -> None:
    write_inputs(tmp_path / "in")
    (tmp_path / "out" / "logs").mkdir(parents=True)
    (tmp_path / "out" / "logs" / "run.log").write_text("an earlier attempt")

    assert run_curate(capsys, "run", small_recipe(tmp_path, {"path": "in/a.jsonl"}), "--fresh")[0] == 0

    assert "an earlier attempt" not in (tmp_path / "out" / "logs" / "run.log").read_text()


# ------------------------------------------------------------------------------------------ source paths


@pytest.mark.parametrize("fmt", ["jsonl", "parquet", None])
def test_a_directory_path_for_a_file_format_is_refused_at_validate_time(tmp_path: Path, capsys: Any,
                                                                       fmt: str | None) -> None:
    write_inputs(tmp_path / "in")
    recipe = small_recipe(tmp_path, {"path": "in", **({"format": fmt} if fmt else {})})

    code, err = run_curate(capsys, "validate", recipe)

    assert code == 2
    assert err.startswith("curate: error: sources[0].path: 'in' is a directory")
    assert f"'in/*.{fmt or 'jsonl'}'" in err


def test_a_glob_lists_files_not_the_directories_it_matches(tmp_path: Path, capsys: Any) -> None:
    write_inputs(tmp_path / "in")
    write_inputs(tmp_path / "in" / "sub.jsonl", "b.jsonl")

    assert run_curate(capsys, "run", small_recipe(tmp_path, {"path": "in/*.jsonl"}))[0] == 0

    m = json.loads((tmp_path / "out" / "manifest.json").read_text())
    assert m["sources"][0]["files"] == ["in/a.jsonl"] and m["accounting"]["errored"] == 0


@pytest.mark.parametrize("paths", [["in/a.jsonl", "in/sub/hard.jsonl"], ["in/**/*.jsonl"]])
def test_a_hard_linked_file_in_one_source_is_read_once(tmp_path: Path, capsys: Any, paths: list[str]) -> None:
    write_inputs(tmp_path / "in")
    (tmp_path / "in" / "sub").mkdir()
    os.link(tmp_path / "in" / "a.jsonl", tmp_path / "in" / "sub" / "hard.jsonl")

    code, err = run_curate(capsys, "run", small_recipe(tmp_path, {"path": paths}))

    assert code == 0 and "hard.jsonl is a hard link of" in err
    assert kept_docs(tmp_path / "out") == 5


def test_a_hard_linked_file_in_two_sources_is_read_once_by_the_first(tmp_path: Path, capsys: Any) -> None:
    write_inputs(tmp_path / "in")
    write_inputs(tmp_path / "in", "b.jsonl", n=3)
    (tmp_path / "in" / "sub").mkdir()
    os.link(tmp_path / "in" / "a.jsonl", tmp_path / "in" / "sub" / "hard.jsonl")
    recipe = small_recipe(tmp_path, {"path": "in/a.jsonl"}, {"path": ["in/sub/hard.jsonl", "in/b.jsonl"]})

    code, err = run_curate(capsys, "run", recipe)

    assert code == 0 and "sources[1].path: 1 file(s) also named by sources[0]" in err
    assert kept_docs(tmp_path / "out") == 5 + 3


@pytest.mark.parametrize("override", ["sources[0].path=[]", "sources[0].path=''", "sources[0].path=['']"])
def test_an_empty_source_path_is_a_config_error_naming_the_key(tmp_path: Path, capsys: Any, override: str) -> None:
    write_inputs(tmp_path / "in")

    code, err = run_curate(capsys, "run", small_recipe(tmp_path, {"path": "in/a.jsonl"}), override)

    assert code == 2 and "sources[0].path: must name at least one file" in err
    assert not (tmp_path / "out").exists()


# ------------------------------------------------------------------------------------------ damaged state, config


@pytest.mark.parametrize("record", ["inputs.json", "recipe.json"])
def test_a_damaged_state_record_of_an_unfinished_run_exits_2(built: Path, tmp_path: Path, capsys: Any,
                                                             record: str) -> None:
    (built / "manifest.json").unlink()
    (built / ".state" / record).write_text("{not json")

    code, err = run_curate(capsys, "run", tmp_path / "r.yaml")

    assert code == 2
    assert err.count("\n") == 1 and f"{record}: damaged" in err and "--fresh" in err


def test_a_directory_given_as_a_yaml_file_says_so(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="is a directory, not a YAML file"):
        load_yaml(tmp_path)
