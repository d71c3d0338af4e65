"""The config reference is generated from the pydantic models, the README holds it verbatim, and every command-line
option explains itself."""

from __future__ import annotations

import argparse
from pathlib import Path

import pytest
from pydantic import Field

from mixlab.config import Strict
from mixlab.errors import ConfigError
from train import config_reference as ref

ROOT = Path(__file__).resolve().parents[1]


def _row(name: str, key: str) -> ref.Row:
    return next(r for r in ref.rows(ref.model_for(name)) if r.key == key)


def _options_without_help(parser: argparse.ArgumentParser, path: str) -> list[str]:
    """Every argument and sub-command below ``parser`` whose help text is missing, as ``prog sub --option``."""
    missing = []
    for action in parser._actions:
        if isinstance(action, argparse._SubParsersAction):
            helped = {a.dest for a in action._choices_actions if a.help}
            for name, sub in action.choices.items():
                if name not in helped:
                    missing.append(f"{path} {name}")
                missing += _options_without_help(sub, f"{path} {name}")
        elif not action.help or action.help == argparse.SUPPRESS:
            missing.append(f"{path} {'/'.join(action.option_strings) or action.dest}")
    return missing


def test_readme_config_tables_match_the_models() -> None:
    readme = ROOT / "README.md"
    assert ref.stale_sections(readme) == [], "run: train config --update README.md"


def test_readme_has_a_table_for_every_train_command_the_recipe_and_every_step() -> None:
    named = ref.readme_sections((ROOT / "README.md").read_text(encoding="utf-8"))
    assert set(ref.train_commands()) | set(ref.recipe_sections()) <= set(named)


def test_every_train_config_key_has_a_description() -> None:
    undescribed = [f"{c}: {r.key}" for c in ref.train_commands() for r in ref.rows(ref.model_for(c))
                   if not r.description]
    assert undescribed == []


def test_every_train_and_curate_option_and_subcommand_has_help_text() -> None:
    from curate.cli import _parser as curate_parser
    from train.cli import _parser as train_parser

    assert _options_without_help(train_parser(), "train") + _options_without_help(curate_parser(), "curate") == []


def test_a_command_shows_its_own_defaults_of_a_shared_section() -> None:
    assert _row("pretrain", "optim.lr").default == "`0.0003`"
    assert _row("sft", "optim.lr").default == "`0.0002`"
    assert _row("ablate", "log.tensorboard").default == "`false`"


def test_nested_keys_are_dotted_and_list_items_bracketed() -> None:
    files = _row("sft", "data.files")
    assert (files.type, files.default) == ("[mapping, ...], not empty", "required")
    assert _row("sft", "data.files[].weight").type == "number, > 0"
    assert _row("ablate", "mixtures.grid.step").default == "required"


def test_a_key_is_named_as_yaml_writes_it_not_as_python_does() -> None:
    keys = [r.key for r in ref.rows(ref.model_for("ablate"))]
    assert "mixtures.list" in keys and "mixtures.explicit" not in keys


def test_type_column_gives_choices_nullability_and_bounds() -> None:
    assert _row("pretrain", "optim.precision").type.startswith("auto or fp32 or bf16")
    assert _row("pretrain", "data.heldout_fraction").type == "number, ≥ 0, < 0.5"
    assert _row("pretrain", "data.weights").type == "{string: number} or string or null"


def test_a_default_that_depends_on_the_machine_is_shown_as_computed() -> None:
    assert _row("recipe", "executor.workers").default == "computed"


def test_markdown_cells_escape_the_pipe() -> None:
    class Piped(Strict):
        sep: str = Field(default="|", description="between a | b")

    assert ref.markdown_table(Piped).splitlines()[2] == "| `sep` | string | `\\|` | between a \\| b |"


def test_render_readme_replaces_only_the_marked_tables() -> None:
    text = "intro\n<!-- config:sft -->\nold table\n<!-- /config:sft -->\noutro <!-- config:x --> unclosed\n"
    out = ref.render_readme(text, tables=lambda name: f"TABLE {name}\n")
    assert out == "intro\n<!-- config:sft -->\nTABLE sft\n<!-- /config:sft -->\noutro <!-- config:x --> unclosed\n"


def test_an_unknown_table_name_is_a_config_error_listing_the_known_ones() -> None:
    with pytest.raises(ConfigError, match="one of: pretrain, sft"):
        ref.render_readme("<!-- config:pretrian -->\n<!-- /config:pretrian -->")


def test_check_fails_on_a_stale_readme_and_update_fixes_it(tmp_path: Path, capsys: pytest.CaptureFixture) -> None:
    from train.cli import main

    readme = tmp_path / "README.md"
    readme.write_text("# x\n\n<!-- config:step:normalize -->\n| old |\n<!-- /config:step:normalize -->\n\nend\n")
    assert main(["config", "--check", str(readme)]) == 1
    assert "stale config tables: step:normalize" in capsys.readouterr().err
    assert main(["config", "--update", str(readme)]) == 0
    assert main(["config", "--check", str(readme)]) == 0
    assert readme.read_text().endswith("<!-- /config:step:normalize -->\n\nend\n")


def test_a_missing_readme_is_a_one_line_error(tmp_path: Path, capsys: pytest.CaptureFixture) -> None:
    from train.cli import main

    assert main(["config", "--update", str(tmp_path / "nope.md")]) == 2
    assert capsys.readouterr().err.strip().endswith("nope.md: No such file or directory")


def test_train_config_prints_the_commands_table(capsys: pytest.CaptureFixture) -> None:
    from train.cli import main

    assert main(["config", "sft"]) == 0
    assert capsys.readouterr().out == ref.table("sft")


def test_curate_config_prints_the_recipe_or_a_steps_params(capsys: pytest.CaptureFixture) -> None:
    from curate.cli import main

    assert main(["config", "recipe"]) == 0
    assert capsys.readouterr().out == ref.table("recipe")
    assert main(["config", "minhash_dedup"]) == 0
    assert "| `threshold` |" in capsys.readouterr().out


def test_curate_config_of_an_unknown_step_names_the_steps(capsys: pytest.CaptureFixture) -> None:
    from curate.cli import main

    assert main(["config", "dedup"]) == 2
    assert "'dedup' is neither recipe nor a step; steps: normalize" in capsys.readouterr().err
