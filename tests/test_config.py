"""The shared config loader: overrides, key paths in errors, suggestions."""

from __future__ import annotations

import pytest
from pydantic import Field

from mixlab.config import Strict, apply_overrides, load_config, validate
from mixlab.errors import ConfigError


class Inner(Strict):
    threshold: float = Field(default=0.5, ge=0, le=1)


class Outer(Strict):
    name: str
    inner: Inner = Inner()
    items: list[Inner] = []


def test_override_sets_nested_key_and_parses_yaml_value() -> None:
    data = apply_overrides({"inner": {"threshold": 0.1}}, ["inner.threshold=0.9", "name=x", "items=[{threshold: 1}]"])
    assert data == {"inner": {"threshold": 0.9}, "name": "x", "items": [{"threshold": 1}]}


def test_override_indexes_lists() -> None:
    data = apply_overrides({"items": [{"threshold": 0.1}, {"threshold": 0.2}]}, ["items[1].threshold=0.7"])
    assert data["items"][1]["threshold"] == 0.7


def test_override_without_equals_is_a_config_error() -> None:
    with pytest.raises(ConfigError, match="expected key.path=value"):
        apply_overrides({}, ["inner.threshold"])


def test_override_past_the_end_of_a_list_names_the_path() -> None:
    with pytest.raises(ConfigError, match=r"items\[3\] does not exist"):
        apply_overrides({"items": []}, ["items[3].threshold=1"])


def test_unknown_key_names_the_path_and_suggests_the_nearest_key() -> None:
    with pytest.raises(ConfigError) as e:
        validate(Outer, {"name": "a", "items": [{}, {"thresold": 0.2}]})
    assert "items[1].thresold: unknown key, did you mean 'threshold'?" in str(e.value)


def test_bad_value_names_the_path_and_shows_the_value() -> None:
    with pytest.raises(ConfigError) as e:
        validate(Outer, {"name": "a", "inner": {"threshold": 3}})
    assert "inner.threshold" in str(e.value) and "(got 3)" in str(e.value)


def test_missing_required_key_is_reported() -> None:
    with pytest.raises(ConfigError, match="name: required key is missing"):
        validate(Outer, {})


def test_load_config_reads_yaml_and_applies_overrides(tmp_path) -> None:
    p = tmp_path / "c.yaml"
    p.write_text("name: a\ninner: {threshold: 0.2}\n")
    assert load_config(Outer, p, ["inner.threshold=0.3"]).inner.threshold == 0.3


def test_yaml_that_is_not_a_mapping_is_rejected(tmp_path) -> None:
    p = tmp_path / "c.yaml"
    p.write_text("- a\n- b\n")
    with pytest.raises(ConfigError, match="top level must be a mapping"):
        load_config(Outer, p)


def test_a_section_given_in_part_keeps_the_commands_own_defaults() -> None:
    from train.config import DPOConfig, SFTConfig

    given = {"out": "x", "base": "b", "data": {"files": [{"path": "a.jsonl"}]}, "optim": {"batch_size": 2}}
    sft, dpo = SFTConfig.model_validate(given), DPOConfig.model_validate(given)
    assert (sft.optim.lr, sft.optim.max_steps, sft.optim.weight_decay, sft.optim.batch_size) == (2e-4, 200, 0.0, 2)
    assert (dpo.optim.lr, dpo.optim.max_steps, dpo.optim.weight_decay, dpo.optim.batch_size) == (5e-5, 200, 0.0, 2)


def test_epochs_given_in_part_of_a_section_replace_the_commands_default_step_count() -> None:
    from train.config import SFTConfig

    sft = SFTConfig.model_validate({"out": "x", "base": "b", "data": {"files": [{"path": "a.jsonl"}]},
                                    "optim": {"epochs": 2}})
    assert sft.optim.epochs == 2 and sft.optim.lr == 2e-4
