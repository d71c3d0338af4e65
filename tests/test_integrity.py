"""Damage is caught: input files are fingerprinted when a run starts and a resume after they changed is refused;
every file a task writes has a checksum in its completion marker, checked before the file is reused, so damage
makes the task run again instead of reaching the corpus; a corpus's shards are checked against its manifest by
`curate inspect --verify` and by `curate run` on a complete corpus; a damaged manifest is one line, not a
traceback."""

from __future__ import annotations

import json
import os
import random
import shutil
import signal
import subprocess
import sys
from pathlib import Path

import pytest
import yaml

from curate import integrity
from tests.conftest import ROOT

WORDS = ("the which would their there about water people after before during because between through river "
         "mountain city music garden letter window summer winter").split()
UNITS = 4
PARTITIONS = 2


def _inputs(d: Path) -> Path:
    rng = random.Random(7)
    d.mkdir(parents=True, exist_ok=True)
    for k in range(UNITS):
        docs = [" ".join(rng.choice(WORDS) for _ in range(rng.randint(20, 60))) for _ in range(150)]
        docs += docs[:10]  # exact duplicates for exact_dedup to remove
        (d / f"f{k}.jsonl").write_text("".join(json.dumps({"text": t}) + "\n" for t in docs), encoding="utf-8")
    return d


@pytest.fixture
def recipe(tmp_path: Path) -> Path:
    """Four JSONL files -> normalize, exact_dedup (a map, a shuffle in two partitions, an apply), one worker."""
    return _write_recipe(tmp_path)


def _write_recipe(tmp_path: Path) -> Path:
    _inputs(tmp_path / "in")
    spec = {"name": "integrity", "sources": [{"path": "in/*.jsonl", "domain": "web"}],
            "steps": ["normalize", "exact_dedup"], "output": {"dir": "out", "shard_docs": 200},
            "executor": {"workers": 1, "partitions": PARTITIONS}}
    path = tmp_path / "recipe.yaml"
    path.write_text(yaml.safe_dump(spec, sort_keys=False), encoding="utf-8")
    return path


def _curate(*args: str, cwd: Path, env: dict[str, str] | None = None) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "curate.cli", *args], cwd=cwd, capture_output=True, text=True,
                          env={**os.environ, "PYTHONPATH": str(ROOT), "MIXLAB_TASK_LOG": "1", **(env or {})},
                          timeout=300)


def _run(recipe: Path, *extra: str, kill_after: int | None = None) -> subprocess.CompletedProcess:
    env = {"MIXLAB_FAULT_KILL_AFTER_TASKS": str(kill_after)} if kill_after else None
    return _curate("run", str(recipe), *extra, cwd=recipe.parent, env=env)


def _killed(recipe: Path, kill_after: int) -> Path:
    r = _run(recipe, kill_after=kill_after)
    assert r.returncode == -signal.SIGKILL, r.stderr
    return recipe.parent / "out"


@pytest.fixture(scope="module")
def reference(tmp_path_factory: pytest.TempPathFactory) -> dict[str, str]:
    """The shards (path -> sha256) of an uninterrupted run of the ``recipe`` fixture's recipe."""
    path = _write_recipe(tmp_path_factory.mktemp("reference"))
    r = _run(path)
    assert r.returncode == 0, r.stderr
    return _shards(path.parent / "out")


def _shards(out: Path) -> dict[str, str]:
    m = json.loads((out / "manifest.json").read_text())
    return {s["path"]: s["sha256"] for _, s in integrity.listed_shards(m)}


def _executed(out: Path) -> list[str]:
    return (out / ".state" / "executed.log").read_text().split()


def _overwrite_text(path: Path, scribble: bytes = b"SCRIBBLED") -> None:
    """Overwrite bytes of a document's text inside an Arrow file, keeping its size."""
    data = bytearray(path.read_bytes())
    at = next(data.find(w.encode()) for w in WORDS if data.find(w.encode()) > 0)
    data[at:at + len(scribble)] = scribble
    path.write_bytes(bytes(data))


def _flip_byte(path: Path) -> None:
    data = bytearray(path.read_bytes())
    data[len(data) // 2] ^= 0xFF
    path.write_bytes(bytes(data))


# ------------------------------------------------------------------------------------------- input fingerprints

MAPS_OF_FIRST_SEGMENT = UNITS


@pytest.mark.parametrize("change", ["same_size_edit", "append", "add_file", "remove_file"])
def test_resume_after_an_input_changed_is_refused_naming_the_file(recipe: Path, change: str) -> None:
    out = _killed(recipe, kill_after=2)
    target = recipe.parent / "in" / "f1.jsonl"
    if change == "same_size_edit":
        text = target.read_text()
        target.write_text(text.replace("water", "WATER", 1))
    elif change == "append":
        with open(target, "a") as f:
            f.write(json.dumps({"text": "a new document"}) + "\n")
    elif change == "add_file":
        target = recipe.parent / "in" / "f9.jsonl"
        target.write_text(json.dumps({"text": "a new document"}) + "\n")
    else:
        target.unlink()

    r = _run(recipe)

    assert r.returncode == 2, r.stderr
    assert "Traceback" not in r.stderr
    assert f"in/{target.name}" in r.stderr and "--fresh" in r.stderr
    assert not (out / "manifest.json").exists()


def test_resume_with_unchanged_inputs_reuses_finished_tasks(recipe: Path, reference: dict[str, str]) -> None:
    out = _killed(recipe, kill_after=3)
    before = _executed(out)
    for f in (recipe.parent / "in").iterdir():
        os.utime(f)  # touched, not changed: small files are hashed whole

    r = _run(recipe)

    assert r.returncode == 0, r.stderr
    assert not set(before) & set(_executed(out)[len(before):])
    assert _shards(out) == reference


def test_a_large_input_modified_in_the_middle_counts_as_changed(tmp_path: Path,
                                                                monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(integrity, "HEAD_TAIL_BYTES", 16)
    f = tmp_path / "big.jsonl"
    f.write_bytes(b"x" * 100)
    before = integrity.fingerprint_inputs({"big.jsonl": f})[0]
    f.write_bytes(b"x" * 50 + b"y" + b"x" * 49)  # head and tail as before: only the mtime tells
    os.utime(f, ns=(before["big.jsonl"]["mtime_ns"] + 10**9,) * 2)

    changes = integrity.input_changes(before, integrity.fingerprint_inputs({"big.jsonl": f})[0])

    assert len(changes) == 1 and changes[0].startswith("big.jsonl: modified")


# --------------------------------------------------------------------------------------- checksums of task files

def test_every_file_a_run_writes_has_a_checksum_in_a_marker(recipe: Path) -> None:
    r = _run(recipe, "--keep-work")
    assert r.returncode == 0, r.stderr
    out = recipe.parent / "out"
    recorded: dict[str, dict] = {}
    for m in (out / ".state").rglob("*.done"):
        record = integrity.unseal(m.read_text())
        assert record is not None, m
        recorded.update(record["files"])
    written = {p.relative_to(out).as_posix() for top in (".work", "data", "removed", "errors")
               for p in (out / top).rglob("*") if p.is_file()}

    assert written == set(recorded)
    assert all(integrity.check_file(out, rel, rec) is None for rel, rec in recorded.items())


def test_text_scribbled_into_a_work_file_never_reaches_the_corpus(recipe: Path, reference: dict[str, str]) -> None:
    out = _killed(recipe, kill_after=MAPS_OF_FIRST_SEGMENT + PARTITIONS + 2)  # two units of the last segment done
    scribbled = sorted((out / ".work" / "final" / "web").glob("u*.arrow"))
    assert scribbled
    for f in scribbled:
        _overwrite_text(f)

    r = _run(recipe)

    assert r.returncode == 0, r.stderr
    assert f".work/final/web/{scribbled[0].name}: damaged" in r.stderr
    assert _shards(out) == reference
    texts = "".join(p.read_bytes().decode("latin-1") for p in (out / "data").rglob("*.parquet"))
    assert "SCRIBBLED" not in texts


def test_damage_to_a_file_already_read_and_deleted_reruns_the_tasks_that_made_it(recipe: Path,
                                                                                  reference: dict[str, str]) -> None:
    out = _killed(recipe, kill_after=MAPS_OF_FIRST_SEGMENT + PARTITIONS + UNITS)  # every map done, no shard yet
    shutil.rmtree(out / ".work" / "seg0")  # as the run deletes a segment's files once the next one has read them
    _flip_byte(out / ".work" / "final" / "web" / "u000002.arrow")
    before = _executed(out)

    r = _run(recipe)

    assert r.returncode == 0, r.stderr
    again = _executed(out)[len(before):]
    assert {"seg1/u000002", "seg0/u000002"} <= set(again)
    assert not {"seg1/u000001", "seg0/u000001", "reduce/exact_dedup/p0000"} & set(again)
    assert _shards(out) == reference


@pytest.mark.parametrize("damage", ["marker", "stats"])
def test_a_damaged_marker_or_task_stats_makes_the_task_run_again(recipe: Path, reference: dict[str, str],
                                                                  damage: str) -> None:
    out = _killed(recipe, kill_after=MAPS_OF_FIRST_SEGMENT + 1)
    if damage == "marker":
        (out / ".state" / "seg0" / "u000001.done").write_text("{not json")
    else:
        stats = out / ".work" / "stats" / "seg0" / "u000001.json"
        stats.write_text(stats.read_text().replace('"read": 160', '"read": 161'))
    before = _executed(out)

    r = _run(recipe)

    assert r.returncode == 0, r.stderr
    assert "seg0/u000001" in _executed(out)[len(before):]
    assert _shards(out) == reference
    assert json.loads((out / "manifest.json").read_text())["accounting"]["read"] == UNITS * 160


# ------------------------------------------------------------------------------------------- corpus vs manifest

@pytest.fixture
def corpus(recipe: Path) -> Path:
    r = _run(recipe)
    assert r.returncode == 0, r.stderr
    return recipe.parent / "out"


def test_inspect_verify_passes_on_an_intact_corpus(corpus: Path) -> None:
    r = _curate("inspect", str(corpus), "--verify", cwd=corpus.parent)
    assert r.returncode == 0, r.stderr
    assert "verified: all" in r.stdout


@pytest.mark.parametrize("damage", ["flip", "truncate", "delete"])
def test_inspect_verify_names_each_damaged_file_and_exits_1(corpus: Path, damage: str) -> None:
    shard = corpus / "data" / "web" / "part-00001.parquet"
    removed = next((corpus / "removed" / "exact_dedup").glob("*.parquet"))
    for f in (shard, removed):
        if damage == "flip":
            _flip_byte(f)
        elif damage == "truncate":
            f.write_bytes(f.read_bytes()[:-10])
        else:
            f.unlink()

    r = _curate("inspect", str(corpus), "--verify", cwd=corpus.parent)

    assert r.returncode == 1
    assert "Traceback" not in r.stderr
    for f in (shard, removed):
        assert f.relative_to(corpus).as_posix() in r.stderr
    assert "data/web/part-00000.parquet" not in r.stderr


def test_run_on_a_complete_corpus_with_a_damaged_shard_fails_naming_it(corpus: Path, recipe: Path) -> None:
    _flip_byte(corpus / "data" / "web" / "part-00000.parquet")

    r = _run(recipe)

    assert r.returncode == 1
    assert "data/web/part-00000.parquet" in r.stderr and "--fresh" in r.stderr
    assert "done:" not in r.stderr


def test_run_on_an_intact_complete_corpus_says_so(corpus: Path, recipe: Path) -> None:
    r = _run(recipe)
    assert r.returncode == 0, r.stderr
    assert "match the manifest" in r.stderr


@pytest.mark.parametrize("manifest", ["{bad", "[]", '{"name": "x"}', "\udcff"])
def test_a_damaged_manifest_is_one_line_from_inspect_and_run(corpus: Path, recipe: Path, manifest: str) -> None:
    (corpus / "manifest.json").write_bytes(manifest.encode("utf-8", "surrogateescape"))

    for r in (_curate("inspect", str(corpus), cwd=corpus.parent), _run(recipe)):
        assert r.returncode in (1, 2)
        assert "Traceback" not in r.stderr
        assert "manifest.json" in r.stderr and len(r.stderr.strip().splitlines()) == 1, r.stderr


def test_a_manifest_with_a_field_of_the_wrong_type_is_one_line(corpus: Path) -> None:
    m = json.loads((corpus / "manifest.json").read_text())
    m["accounting"]["read"] = "many"
    (corpus / "manifest.json").write_text(json.dumps(m))

    r = _curate("inspect", str(corpus), cwd=corpus.parent)

    assert r.returncode == 1 and "Traceback" not in r.stderr
    assert "accounting" in r.stderr


def test_a_damaged_input_fingerprint_record_is_one_line(recipe: Path) -> None:
    out = _killed(recipe, kill_after=2)
    (out / ".state" / "inputs.json").write_text('{"files": {"in/f0.jsonl": {"bytes": "x"}}}')

    r = _run(recipe)

    assert r.returncode == 2 and "Traceback" not in r.stderr
    assert "inputs.json: damaged" in r.stderr and "--fresh" in r.stderr
