"""`curate run`: prepare the output directory, run the plan's phases on an executor, then write stats, the
mixture, the card and (last, atomically) the manifest. With mixture method doremi, the corpus is first written
without ``mixture.json``, then DoReMi learns the weights on it and the mixture, card and manifest are written again."""

from __future__ import annotations

import hashlib
import json
import platform
import shutil
import time
import traceback
from collections import Counter
from pathlib import Path
from typing import Any

from curate import card, integrity, languages, reuse, tasks
from curate.executors import Executor, LocalExecutor
from curate.layout import WORK_FORMAT, Layout, read_json, write_json_atomic, write_text_atomic
from curate.mixture import learn_doremi, weigh
from curate.plan import Plan, build_plan
from curate.readers import READ_STEP
from curate.recipe import Recipe, check_output
from curate.tokens import METHOD as TOKEN_ESTIMATE
from mixlab import __version__
from mixlab import logs
from mixlab.errors import ConfigError, MixlabError, RunError, storage_problem
from mixlab.logs import log

LEGACY_BYTES_PER_TOKEN = 4.0
"""Tokens of a shard written by an earlier mixlab, which recorded no estimate: its text bytes / 4."""


def prepare_output(recipe: Recipe, root: Path, fresh: bool) -> str:
    """Check ``root`` against this recipe before any work; return 'new', 'resume' or 'complete'.

    The caller holds the output's lock (:class:`curate.layout.OutputLock`). With ``fresh`` only what runs wrote is
    deleted (:meth:`Layout.clear`). Raises ConfigError, nothing done, for an output that overlaps the inputs, a
    non-empty directory holding no corpus, a run of another recipe or work format, a damaged state file or
    manifest, or a directory that cannot be written (read-only, full, forbidden).
    """
    check_output(recipe, root)
    try:
        return _prepare(recipe, Layout(root), fresh)
    except OSError as e:
        if (problem := storage_problem(e)) is None:
            raise
        raise ConfigError(f"cannot use the output directory {root}: {problem}") from None


def _prepare(recipe: Recipe, lay: Layout, fresh: bool) -> str:
    root, recipe_hash = lay.root, recipe.hash()
    if root.exists() and not root.is_dir():
        raise ConfigError(f"output.dir: {root} exists and is not a directory")
    state_file = lay.state / "recipe.json"
    is_ours = lay.manifest.exists() or state_file.exists()
    if root.exists() and not is_ours and (foreign := lay.foreign()) is not None:
        raise ConfigError(f"output.dir: {root} is not empty ({foreign}) and holds no mixlab corpus (no manifest.json "
                          "or .state/recipe.json); refusing to write into it or delete anything there")
    if fresh and root.exists():
        lay.clear()
    elif is_ours:
        saved = _saved_run(state_file if state_file.exists() else lay.manifest)
        old = saved["recipe_hash"]
        if old != recipe_hash:
            raise ConfigError(f"output.dir: {root} holds a run of a different recipe (hash {old[:12]} vs "
                              f"{recipe_hash[:12]}); pass --fresh to replace it or choose another output")
        if lay.manifest.exists():
            _saved_run(lay.manifest)
            return "complete"
        work_format = saved.get("work_format", 1)
        if work_format != WORK_FORMAT:
            raise ConfigError(f"output.dir: {root} holds an unfinished run whose temporary files are in another "
                              f"format (an earlier mixlab: format {work_format} vs {WORK_FORMAT}); pass --fresh "
                              "to rebuild it")
        return "resume"
    root.mkdir(parents=True, exist_ok=True)
    write_json_atomic(state_file, {"recipe_hash": recipe_hash, "recipe": recipe.to_dict(),
                                   "work_format": WORK_FORMAT})
    return "new"


def _saved_run(path: Path) -> dict[str, Any]:
    """``.state/recipe.json`` or ``manifest.json`` of an earlier run; ConfigError pointing to --fresh if damaged."""
    try:
        data = read_json(path)
        if not isinstance(data, dict) or not isinstance(data.get("recipe_hash"), str):
            raise ValueError("no recipe_hash")
    except ValueError as e:  # also JSON and UTF-8 decoding errors
        raise ConfigError(f"{path}: damaged, not the JSON a run writes ({str(e).splitlines()[0][:100]}); pass "
                          "--fresh to rebuild the output") from None
    return data


def run(recipe: Recipe, root: Path, workers: int, fresh: bool = False, keep_work: bool = False) -> dict[str, Any]:
    """Build the corpus at ``root``; returns the manifest.

    A complete corpus is checked against its manifest's sha256 and returned (RunError naming damaged files); an
    unfinished run is resumed only when its input files match the fingerprints recorded when it started
    (ConfigError naming the changed files otherwise), and its finished tasks are reused only when the files they
    wrote still match their checksums (the others run again)."""
    if not fresh:
        _keep_partitions(recipe, Layout(root))
    plan = build_plan(recipe)
    try:
        state = prepare_output(recipe, root, fresh)
    except ConfigError:
        if not fresh:
            _refuse_changed_file_list(recipe, Layout(root))
        raise
    lay = Layout(root)
    if state == "complete":
        manifest = integrity.read_manifest(lay.manifest)
        problems, n, nbytes = integrity.verify_manifest(root, manifest)
        if problems:
            raise integrity.damaged_corpus_error(root, problems)
        log.info(f"{root}: already complete for this recipe, its {n} files ({nbytes / 1e6:,.1f} MB) match the "
                 "manifest (use --fresh to rebuild)")
        return _learned_mixture(recipe, lay, manifest)
    _fingerprint_inputs(recipe, lay, state)
    handler = logs.add_file(lay.log)
    try:
        return _run(plan, lay, state, workers, keep_work)
    except MixlabError:
        raise
    except Exception as e:  # a full or read-only disk, else a bug: the traceback goes to the run's log
        log.debug(traceback.format_exc())
        if (problem := storage_problem(e)) is not None:
            raise RunError(f"{problem} (writing {root}); fix it and run again to resume; details in "
                           f"{lay.log}") from None
        log.error(f"curate run failed with an internal error; traceback in {lay.log}")
        raise
    finally:
        log.removeHandler(handler)
        handler.close()


def _keep_partitions(recipe: Recipe, lay: Layout) -> None:
    """An unfinished run's shuffle files are cut into the partitions it started with: resume with that count
    (the default depends on the input size and on the mixlab version; the output does not). ConfigError when the
    recipe sets another count explicitly."""
    if lay.manifest.exists():
        return
    try:
        saved = read_json(lay.state / "recipe.json")["recipe"]["executor"]["partitions"]
    except (OSError, ValueError, KeyError, TypeError):
        return
    current = recipe.model.executor.partitions
    if not isinstance(saved, int) or saved == current:
        return
    if recipe.partitions_given:
        raise ConfigError(f"executor.partitions: the unfinished run in {lay.root} shuffles into {saved} partitions, "
                          f"not {current}; resume with executor.partitions={saved}, or pass --fresh")
    log.info(f"resuming with the {saved} shuffle partitions the unfinished run started with")
    recipe.model.executor.partitions = saved


def _input_names(recipe: Recipe) -> dict[str, Path]:
    return {recipe.source_name(f): f for files in recipe.files for f in files}


def _fingerprint_inputs(recipe: Recipe, lay: Layout, state: str) -> None:
    """Record the input files' fingerprints when a run starts; on resume, refuse inputs that changed since."""
    path = lay.state / "inputs.json"
    if state == "resume" and path.exists():
        integrity.check_inputs(path, _input_names(recipe), lay.root)
        return
    if state == "resume":
        log.warning(f"{lay.root}: this unfinished run recorded no input fingerprints (an earlier mixlab); "
                    "recording them now, so changes made before this point go unnoticed")
    write_json_atomic(path, integrity.inputs_record(_input_names(recipe)))


def _refuse_changed_file_list(recipe: Recipe, lay: Layout) -> None:
    """When the output holds an unfinished run of this same recipe whose input files were added or removed since
    (which changes the recipe's hash), raise a ConfigError naming those files (or the damaged record of them)."""
    path = lay.state / "inputs.json"
    try:
        started = read_json(lay.state / "recipe.json")["recipe"]
    except (OSError, ValueError, KeyError, TypeError):
        return
    if lay.manifest.exists() or not path.exists() or started != json.loads(json.dumps(recipe.to_dict())):
        return
    integrity.check_inputs(path, _input_names(recipe), lay.root)


def _run(plan: Plan, lay: Layout, state: str, workers: int, keep_work: bool) -> dict[str, Any]:
    root, recipe = lay.root, plan.recipe
    started = time.time()
    files, units, steps = sum(len(u.files) for u in plan.units), len(plan.units), len(recipe.steps)
    log.info(f"curate run {recipe.name}: {files} file{'s' * (files != 1)} in {units} unit{'s' * (units != 1)}, "
             f"{steps} step{'s' * (steps != 1)}, {workers} worker{'s' * (workers != 1)} -> {root}")
    if state == "resume":
        again = reuse.invalidate_damaged(lay, plan)
        done = len(list(lay.state.rglob("*.done")))
        log.info(f"resuming {root}: {done} task{'s' * (done != 1)} already done" +
                 (f", {len(again)} finished tasks run again (their files were damaged or deleted)" if again else ""))
    with _executor(plan, root, workers) as ex:
        for seg in plan.segments:
            for phase in tasks.segment_phases(plan, seg):
                _run_phase(ex, lay, phase)
            if seg.index > 0 and not keep_work:
                shutil.rmtree(lay.segment_dir(seg.index - 1), ignore_errors=True)
                if seg.apply is not None:
                    shutil.rmtree(lay.shuffle_dir(seg.apply.name), ignore_errors=True)
                    shutil.rmtree(lay.side_dir(seg.apply.name), ignore_errors=True)
        domains = reuse.output_domains(lay, plan)
        _run_phase(ex, lay, tasks.finalize_phase(plan, domains))
    manifest = _learned_mixture(recipe, lay, _write_outputs(plan, lay, domains, time.time() - started))
    if not keep_work:
        shutil.rmtree(lay.work, ignore_errors=True)
    return manifest


def _executor(plan: Plan, root: Path, workers: int) -> Executor:
    """The recipe's executor: a local process pool, or Ray tasks (`curate.executors.ray`, imported only then)."""
    settings = plan.recipe.model.executor
    if settings.type == "ray":
        from curate.executors.ray import RayExecutor

        return RayExecutor(plan, root, workers, settings)
    return LocalExecutor(plan, root, workers)


def _run_phase(ex: Executor, lay: Layout, phase: tasks.Phase) -> None:
    """Hand the tasks of ``phase`` that have no completion marker yet to the executor."""
    ex.run(phase.description, [t for t in phase.tasks if not lay.done(t.id)])


def _shards(lay: Layout, task: str) -> list[dict[str, Any]]:
    return read_json(lay.task_stats(task))["shards"]


def _card_counts(lay: Layout, domains: list[str]) -> dict[str, card.DomainCounts]:
    """What the finalize task of each of ``domains`` counted of its kept documents for the data card, where its
    stats are still in ``.work`` and hold them (a task finished by an earlier mixlab has none): the card reads the
    shards of the other domains."""
    counts: dict[str, card.DomainCounts] = {}
    for d in domains:
        path = lay.task_stats(tasks.FinalizeDomainTask(d).id)
        if path.exists() and "card" in (st := read_json(path)):
            counts[d] = card.DomainCounts.from_json(st["card"])
    return counts


def _write_outputs(plan: Plan, lay: Layout, domains: list[str], seconds: float) -> dict[str, Any]:
    recipe = plan.recipe
    collected = tasks.collect_map_stats(lay, plan)
    per_domain: dict[str, Any] = {}
    for d in plan.domains:
        shards = _shards(lay, tasks.FinalizeDomainTask(d).id) if d in domains else []
        docs, nbytes = sum(s["docs"] for s in shards), sum(s["bytes"] for s in shards)
        tokens = sum(s.get("est_tokens", s["bytes"] / LEGACY_BYTES_PER_TOKEN) for s in shards)
        per_domain[d] = {"docs": docs, "bytes": nbytes, "est_tokens": round(tokens),
                         "shards": shards}
    removed_by_step: dict[str, dict[str, int]] = {}
    funnel = []
    totals = collected["totals"]
    read_params = {"max_doc_bytes": [s.max_doc_bytes for s in recipe.model.sources]}
    no_read_stats = {"documents_in": totals["read"] - totals["errored"], "removed": {}, "histograms": {}}
    collected["steps"].setdefault(READ_STEP, no_read_stats)  # a run resumed from stats written before step `read`
    removal_steps = [(READ_STEP, read_params, {}),
                     *((s.name, s.params.model_dump(mode="json"), s.cls.histograms) for s in recipe.steps)]
    for name, params, edges in removal_steps:
        st = collected["steps"][name]
        removed_by_step[name] = dict(sorted(st["removed"].items()))
        n_removed = sum(st["removed"].values())
        stats_doc = {"step": name, "params": params,
                     "documents_in": st["documents_in"], "removed": n_removed,
                     "kept": st["documents_in"] - n_removed, "removed_by_reason": removed_by_step[name],
                     "histograms": {col: {"edges": list(edges[col]), "counts": c}
                                    for col, c in st["histograms"].items()}}
        if st.get("notes"):
            stats_doc["notes"] = dict(sorted(st["notes"].items()))
        for stage in ("reduce", "combine"):
            if stage in st:
                stats_doc[stage] = st[stage]
        write_json_atomic(lay.stats / f"{name}.json", stats_doc)
        funnel.append({"step": name, "documents_in": st["documents_in"], "removed": n_removed})
    kept = sum(v["docs"] for v in per_domain.values())
    if kept == 0:
        log.warning(f"the corpus is empty: no document kept (read {totals['read']}, errored {totals['errored']}); "
                    f"see the warnings above, {lay.root / 'errors'} and {lay.stats}")
    removed_total = sum(sum(r.values()) for r in removed_by_step.values())
    accounting = {"read": totals["read"], "kept": kept, "errored": totals["errored"], "removed": removed_by_step,
                  "removed_total": removed_total,
                  "balanced": totals["read"] == kept + removed_total + totals["errored"]}
    if not accounting["balanced"]:
        raise RunError(f"accounting does not add up: read {totals['read']} != kept {kept} + removed "
                       f"{removed_total} + errored {totals['errored']} (a bug; please report it with {lay.log})")
    error_shards = _shards(lay, tasks.FinalizeErrorsTask().id)
    error_kinds: Counter[str] = Counter()
    import pyarrow.parquet as pq
    for s in error_shards:
        error_kinds.update(pq.read_table(lay.root / s["path"], columns=["kind"])["kind"].to_pylist())
    learned = recipe.model.mixture.method == "doremi"  # mixture.json comes later, from _learned_mixture
    mixture = None if learned else weigh(recipe.model.mixture, {d: per_domain[d]["est_tokens"] for d in plan.domains})
    if mixture is not None:
        write_json_atomic(lay.mixture, mixture)
    corpus_hash = hashlib.sha256("".join(s["sha256"] for d in sorted(per_domain)
                                         for s in per_domain[d]["shards"]).encode()).hexdigest()
    manifest = {
        "name": recipe.name, "recipe_hash": recipe.hash(), "recipe": recipe.to_dict(), "seed": recipe.model.seed,
        "created_at": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()), "seconds": round(seconds, 2),
        "tool_versions": _versions(),
        "sources": [{"domain": s.domain, "format": s.format, "files": [recipe.source_name(f) for f in files]}
                    for s, files in zip(recipe.model.sources, recipe.files)],
        "domains": per_domain, "corpus_sha256": corpus_hash, "token_estimate": TOKEN_ESTIMATE,
        "bytes_per_token_estimate": round(sum(v["bytes"] for v in per_domain.values())
                                          / max(1, sum(v["est_tokens"] for v in per_domain.values())), 4),
        "removed": {name: _shards(lay, tasks.FinalizeRemovedTask(name).id) for name in removed_by_step},
        "keep_removed": recipe.model.output.keep_removed if isinstance(recipe.model.output.keep_removed, str)
        else f"sample {recipe.model.output.keep_removed.sample}",
        "errors": {"shards": error_shards, "by_kind": dict(sorted(error_kinds.items()))},
        "files": integrity.file_entries(lay.root, [*([lay.mixture] if mixture else []),
                                                   *(p for p in lay.index.rglob("*")
                                                     if p.is_file() and not p.name.startswith("."))]),
        "funnel": funnel, "accounting": accounting, "mixture": mixture["weights"] if mixture else {},
    }
    if "langid" in collected["steps"]:
        manifest["languages"] = languages.keep_rates(lay.root, per_domain, collected["steps"]["langid"]["notes"])
    card.write_card(lay.root, manifest, plots=recipe.model.output.card_plots, counts=_card_counts(lay, domains))
    write_text_atomic(lay.manifest, json.dumps(manifest, indent=2, ensure_ascii=False) + "\n")
    return manifest


def _learned_mixture(recipe: Recipe, lay: Layout, manifest: dict[str, Any]) -> dict[str, Any]:
    """With mixture method doremi and no ``mixture.json`` in the manifest yet: learn the weights on the corpus
    (:func:`curate.mixture.learn_doremi`), then write ``mixture.json``, the card and the manifest with them."""
    if recipe.model.mixture.method != "doremi" or any(f["path"] == "mixture.json" for f in manifest["files"]):
        return manifest
    mixture = learn_doremi(recipe, lay.root, {d: v["est_tokens"] for d, v in manifest["domains"].items()})
    write_json_atomic(lay.mixture, mixture)
    manifest = {**manifest, "mixture": mixture["weights"],
                "files": sorted([*manifest["files"], *integrity.file_entries(lay.root, [lay.mixture])],
                                key=lambda f: f["path"])}
    card.write_card(lay.root, manifest, plots=recipe.model.output.card_plots,
                    counts=_card_counts(lay, list(manifest["domains"])))
    write_text_atomic(lay.manifest, json.dumps(manifest, indent=2, ensure_ascii=False) + "\n")
    return manifest


def _versions() -> dict[str, str]:
    import numpy
    import pyarrow

    return {"mixlab": __version__, "python": platform.python_version(), "pyarrow": pyarrow.__version__,
            "numpy": numpy.__version__}
