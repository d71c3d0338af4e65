"""`curate run`: prepare the output directory, run the plan's phases on an executor, then write stats, the
mixture, the card and (last, atomically) the manifest."""

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

from curate import card, tasks
from curate.executors import LocalExecutor, Task
from curate.layout import WORK_FORMAT, Layout, read_json, write_json_atomic, write_text_atomic
from curate.mixture import weigh
from curate.plan import Plan, build_plan
from curate.recipe import Recipe
from curate.steps import REGISTRY
from mixlab import __version__
from mixlab import logs
from mixlab.errors import ConfigError, MixlabError, RunError
from mixlab.logs import log

BYTES_PER_TOKEN = 4.0
"""Token estimate used in the manifest and the natural mixture until `train` tokenizes for real."""


def prepare_output(recipe: Recipe, root: Path, fresh: bool) -> str:
    """Check ``root`` against this recipe; return 'new', 'resume' or 'complete'."""
    lay = Layout(root)
    recipe_hash = recipe.hash()
    if root.exists() and not root.is_dir():
        raise ConfigError(f"output.dir: {root} exists and is not a directory")
    is_ours = lay.manifest.exists() or (lay.state / "recipe.json").exists()
    if root.exists() and any(p.name != "logs" for p in root.iterdir()) and not is_ours:
        raise ConfigError(f"output.dir: {root} is not empty and holds no mixlab corpus; refusing to write into it")
    if fresh and root.exists():
        lay.clear()
    elif is_ours:
        old = read_json(lay.state / "recipe.json")["recipe_hash"] if (lay.state / "recipe.json").exists() \
            else read_json(lay.manifest).get("recipe_hash")
        if old != recipe_hash:
            raise ConfigError(f"output.dir: {root} holds a run of a different recipe (hash {old[:12]} vs "
                              f"{recipe_hash[:12]}); pass --fresh to replace it or choose another output")
        if lay.manifest.exists():
            return "complete"
        work_format = read_json(lay.state / "recipe.json").get("work_format", 1)
        if work_format != WORK_FORMAT:
            raise ConfigError(f"output.dir: {root} holds an unfinished run whose temporary files are in another "
                              f"format (an earlier mixlab: format {work_format} vs {WORK_FORMAT}); pass --fresh "
                              "to rebuild it")
        return "resume"
    root.mkdir(parents=True, exist_ok=True)
    write_json_atomic(lay.state / "recipe.json", {"recipe_hash": recipe_hash, "recipe": recipe.to_dict(),
                                                  "work_format": WORK_FORMAT})
    return "new"


def run(recipe: Recipe, root: Path, workers: int, fresh: bool = False, keep_work: bool = False) -> dict[str, Any]:
    """Build the corpus at ``root``; returns the manifest."""
    plan = build_plan(recipe)
    state = prepare_output(recipe, root, fresh)
    lay = Layout(root)
    if state == "complete":
        log.info(f"{root}: already complete for this recipe (use --fresh to rebuild)")
        return read_json(lay.manifest)
    handler = logs.add_file(lay.log)
    try:
        return _run(plan, lay, state, workers, keep_work)
    except MixlabError:
        raise
    except Exception:  # a bug: the traceback goes to the run's log, and up
        log.debug(traceback.format_exc())
        log.error(f"curate run failed with an internal error; traceback in {lay.log}")
        raise
    finally:
        log.removeHandler(handler)
        handler.close()


def _run(plan: Plan, lay: Layout, state: str, workers: int, keep_work: bool) -> dict[str, Any]:
    root, recipe = lay.root, plan.recipe
    if state == "resume":
        done = len(list(lay.state.rglob("*.done")))
        log.info(f"resuming {root}: {done} tasks already done")
    started = time.time()
    log.info(f"curate run {recipe.name}: {sum(len(u.files) for u in plan.units)} files in {len(plan.units)} units, "
             f"{len(recipe.steps)} steps, {workers} workers -> {root}")
    P = recipe.model.executor.partitions
    with LocalExecutor(plan, root, workers) as ex:
        for seg in plan.segments:
            todo = [Task(tasks.map_task_id(seg.index, u.index), "map", (seg.index, u.index)) for u in plan.units]
            names = "+".join(s.name for s in seg.steps) or "read"
            ex.run([t for t in todo if not lay.done(t.id)], f"{names}")
            if seg.keys is not None:
                todo = [Task(tasks.reduce_task_id(seg.keys.name, p), "reduce", (seg.index, p)) for p in range(P)]
                ex.run([t for t in todo if not lay.done(t.id)], f"{seg.keys.name} reduce")
                if REGISTRY[seg.keys.name].has_combine:  # type: ignore[attr-defined]
                    todo = [Task(tasks.combine_task_id(seg.keys.name), "combine", (seg.index,))]
                    ex.run([t for t in todo if not lay.done(t.id)], f"{seg.keys.name} combine")
            if seg.index > 0 and not keep_work:
                shutil.rmtree(lay.work / f"seg{seg.index - 1}", ignore_errors=True)
                if seg.apply is not None:
                    for stage in ("shuffle", "side"):
                        shutil.rmtree(lay.work / stage / seg.apply.name, ignore_errors=True)
        domains = sorted(str(p.relative_to(lay.work / "final")) for p in (lay.work / "final").glob("**/")
                         if any(p.glob("u*.arrow"))) if (lay.work / "final").exists() else []
        final = [Task(f"finalize/data/{d}", "finalize_domain", (d,)) for d in domains]
        final += [Task(f"finalize/removed/{s.name}", "finalize_side", (s.name,)) for s in recipe.steps]
        final.append(Task("finalize/errors", "finalize_side", ("errors",)))
        ex.run([t for t in final if not lay.done(t.id)], "write shards")
    manifest = _write_outputs(plan, lay, domains, time.time() - started)
    if not keep_work:
        shutil.rmtree(lay.work, ignore_errors=True)
    return manifest


def _shards(lay: Layout, task: str) -> list[dict[str, Any]]:
    return read_json(lay.task_stats(task))["shards"]


def _write_outputs(plan: Plan, lay: Layout, domains: list[str], seconds: float) -> dict[str, Any]:
    recipe = plan.recipe
    collected = tasks.collect_map_stats(lay, plan)
    per_domain: dict[str, Any] = {}
    for d in plan.domains:
        shards = _shards(lay, f"finalize/data/{d}") if d in domains else []
        docs, nbytes = sum(s["docs"] for s in shards), sum(s["bytes"] for s in shards)
        per_domain[d] = {"docs": docs, "bytes": nbytes, "est_tokens": round(nbytes / BYTES_PER_TOKEN),
                         "shards": shards}
    removed_by_step: dict[str, dict[str, int]] = {}
    funnel = []
    for spec in recipe.steps:
        st = collected["steps"][spec.name]
        removed_by_step[spec.name] = dict(sorted(st["removed"].items()))
        n_removed = sum(st["removed"].values())
        stats_doc = {"step": spec.name, "params": spec.params.model_dump(mode="json"),
                     "documents_in": st["documents_in"], "removed": n_removed,
                     "kept": st["documents_in"] - n_removed, "removed_by_reason": removed_by_step[spec.name],
                     "histograms": {col: {"edges": _edges(spec.name, col), "counts": c}
                                    for col, c in st["histograms"].items()}}
        for stage in ("reduce", "combine"):
            if stage in st:
                stats_doc[stage] = st[stage]
        write_json_atomic(lay.stats / f"{spec.name}.json", stats_doc)
        funnel.append({"step": spec.name, "documents_in": st["documents_in"], "removed": n_removed})
    totals = collected["totals"]
    kept = sum(v["docs"] for v in per_domain.values())
    removed_total = sum(sum(r.values()) for r in removed_by_step.values())
    accounting = {"read": totals["read"], "kept": kept, "errored": totals["errored"], "removed": removed_by_step,
                  "removed_total": removed_total,
                  "balanced": totals["read"] == kept + removed_total + totals["errored"]}
    if not accounting["balanced"]:
        raise RunError(f"accounting does not add up: read {totals['read']} != kept {kept} + removed "
                       f"{removed_total} + errored {totals['errored']} (a bug; please report it with {lay.log})")
    error_shards = _shards(lay, "finalize/errors")
    error_kinds: Counter[str] = Counter()
    import pyarrow.parquet as pq
    for s in error_shards:
        error_kinds.update(pq.read_table(lay.root / s["path"], columns=["kind"])["kind"].to_pylist())
    mixture = weigh(recipe.model.mixture, {d: per_domain[d]["est_tokens"] for d in plan.domains})
    write_json_atomic(lay.mixture, mixture)
    corpus_hash = hashlib.sha256("".join(s["sha256"] for d in sorted(per_domain)
                                         for s in per_domain[d]["shards"]).encode()).hexdigest()
    manifest = {
        "name": recipe.name, "recipe_hash": recipe.hash(), "recipe": recipe.to_dict(), "seed": recipe.model.seed,
        "created_at": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()), "seconds": round(seconds, 2),
        "tool_versions": _versions(),
        "sources": [{"domain": s.domain, "format": s.format, "files": [recipe.source_name(f) for f in files]}
                    for s, files in zip(recipe.model.sources, recipe.files)],
        "domains": per_domain, "corpus_sha256": corpus_hash, "bytes_per_token_estimate": BYTES_PER_TOKEN,
        "removed": {spec.name: _shards(lay, f"finalize/removed/{spec.name}") for spec in recipe.steps},
        "keep_removed": recipe.model.output.keep_removed if isinstance(recipe.model.output.keep_removed, str)
        else f"sample {recipe.model.output.keep_removed.sample}",
        "errors": {"shards": error_shards, "by_kind": dict(sorted(error_kinds.items()))},
        "funnel": funnel, "accounting": accounting, "mixture": mixture["weights"],
    }
    text = card.render(manifest)
    write_text_atomic(lay.card, text)
    write_text_atomic(lay.manifest, json.dumps(manifest, indent=2, ensure_ascii=False) + "\n")
    return manifest


def _edges(step: str, col: str) -> list[float]:
    from curate.steps import REGISTRY

    return list(REGISTRY[step].histograms[col])


def _versions() -> dict[str, str]:
    import numpy
    import pyarrow

    return {"mixlab": __version__, "python": platform.python_version(), "pyarrow": pyarrow.__version__,
            "numpy": numpy.__version__}
