"""`data.weights` of `train pretrain` may name a mixture file — a corpus's mixture.json, a `train doremi` or `train
ablate` result, or a plain {domain: weight} object — relative to the config file."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from mixlab.config import load_config
from mixlab.errors import ConfigError
from train.config import PretrainConfig


def _config(tmp_path: Path, weights: object) -> Path:
    path = tmp_path / "pretrain.yaml"
    path.write_text(json.dumps({"corpus": "c", "tokenizer": "t", "out": "o", "data": {"weights": weights}}),
                    encoding="utf-8")
    return path


def _load(path: Path) -> PretrainConfig:
    return load_config(PretrainConfig, path, []).resolve(path.parent)


def test_a_mixture_json_given_by_path_relative_to_the_config_sets_the_weights(tmp_path: Path) -> None:
    (tmp_path / "doremi").mkdir()
    (tmp_path / "doremi" / "mixture.json").write_text(json.dumps(
        {"method": "doremi", "weights": {"web": 0.25, "wiki": 0.75}}), encoding="utf-8")
    assert _load(_config(tmp_path, "doremi/mixture.json")).data.weights == {"web": 0.25, "wiki": 0.75}


def test_a_plain_weights_object_file_is_accepted(tmp_path: Path) -> None:
    (tmp_path / "w.json").write_text('{"web": 1, "code": 3}', encoding="utf-8")
    assert _load(_config(tmp_path, "w.json")).data.weights == {"web": 1.0, "code": 3.0}


@pytest.mark.parametrize("content, reason", [(None, "does not exist"), ("{", "is not a readable JSON file"),
                                             ('{"weights": {"web": -1}}', "weights must be finite numbers >= 0"),
                                             ("[1, 2]", "holds no weights")])
def test_a_bad_mixture_file_is_named_with_the_key(tmp_path: Path, content: str | None, reason: str) -> None:
    if content is not None:
        (tmp_path / "m.json").write_text(content, encoding="utf-8")
    with pytest.raises(ConfigError) as e:
        _load(_config(tmp_path, "m.json"))
    assert str(e.value).startswith(f"data.weights: {tmp_path / 'm.json'}") and reason in str(e.value)
