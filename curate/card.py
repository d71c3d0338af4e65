"""The data card: a Hugging Face dataset card (``card.md``, YAML front matter + Markdown) and its figures, written
from the manifest, the step statistics and the counts of the corpus's kept documents (:class:`DomainCounts`: made
while `curate run` writes the shards, or by one read of the shards for `curate card`).

The card follows the Hugging Face dataset card (https://huggingface.co/docs/hub/datasets-cards): front matter with
``language``, ``license`` (each source's ``license:`` in the recipe), ``size_categories``, ``task_categories`` and
``pretty_name``; then a description, the sources with their licences, the processing funnel with removal reasons,
tables per domain and per language (the ``lang`` langid wrote, read from the shards), the mixture weights with
their method and provenance, a few truncated example records and the known limitations. Figures
(`curate.card_plots`) are PNG files in a folder named after the card (``card/`` beside ``card.md``), each drawn
only when its data exists. Card and figures are views of the corpus: they are not in the manifest's checksummed
``files`` and `curate card OUT` rebuilds them.
"""

from __future__ import annotations

import json
import os
from collections import Counter
from pathlib import Path
from typing import TYPE_CHECKING, Any, Iterator, Literal, Mapping

import numpy as np

from curate import languages
from mixlab.errors import RunError
from mixlab.logs import log

if TYPE_CHECKING:
    import pyarrow as pa

LENGTH_EDGES = [round(10 ** (k / 4), 3) for k in range(4, 33)]
"""bin edges of document length in UTF-8 bytes: 10 B to 100 MB, 4 bins per decade"""
PPL_EDGES = [round(10 ** (k / 40), 3) for k in range(0, 241)]
"""bin edges of KenLM perplexity: 1 to 10^6, 40 bins per decade"""
EXAMPLE_CHARS = 300
"""characters of an example record shown in the card"""
MAX_EXAMPLES = 6
MAX_LANGUAGE_COLUMNS = 8
"""languages shown by name in the per-domain table and figure; the others are summed as 'other'"""
PLOTS_MIN_READ = 1_000
"""documents a run must read for ``output.card_plots: auto`` to draw the card's figures (histograms of fewer show
little, and drawing them costs about a second)"""
NO_LANG = "none"
"""key of documents without a ``lang`` annotation (not identified, or a domain outside langid's scope)"""

_SIZE_CATEGORIES = [(1_000, "n<1K"), (10_000, "1K<n<10K"), (100_000, "10K<n<100K"), (1_000_000, "100K<n<1M"),
                    (10**7, "1M<n<10M"), (10**8, "10M<n<100M"), (10**9, "100M<n<1B"), (10**10, "1B<n<10B"),
                    (10**11, "10B<n<100B"), (10**12, "100B<n<1T")]


def write_card(root: Path, manifest: dict[str, Any], card_path: Path | None = None,
               plots: bool | Literal["auto"] = True,
               counts: Mapping[str, DomainCounts] | None = None) -> None:
    """Write the data card of the corpus at ``root`` (``manifest``: its manifest, written or about to be) to
    ``card_path`` (default ``root/card.md``) and its figures as PNG files into the folder of the card's name
    beside it (``root/card/``), each file atomically. ``plots``: draw the figures (True), not (False), or only when
    the run read at least :data:`PLOTS_MIN_READ` documents (``"auto"``, the recipe's ``output.card_plots``
    default); a card without them says why in one line. Figures no longer drawn are deleted from that folder (only
    names `curate.card_plots` draws). Reads ``root/stats/``, ``root/mixture.json`` when present, and the
    ``text``/``lang`` and annotation columns of the data shards of each domain not in ``counts`` (domain ->
    :class:`DomainCounts` of its kept documents; the card is the same either way), plus the removed shards when
    all were kept; raises RunError naming a stats file, ``mixture.json`` or shard that is damaged or missing,
    OSError when a file cannot be read or written. A card written outside the corpus says where the corpus is,
    relative to the card. Without matplotlib the card is written without figures and one line says so."""
    from curate import card_plots

    path = card_path or root / "card.md"
    folder = path.with_suffix("")
    facts = collect(root, manifest, counts)
    if path.parent.resolve() != root.resolve():
        facts["corpus_dir"] = _relative(root, path.parent)
    figures: dict[str, str] = {}
    read = manifest["accounting"]["read"]
    if plots == "auto" and read < PLOTS_MIN_READ:
        facts["no_plots"] = (f"This card has no figures: the run read {_n(read)} documents, fewer than the "
                             f"{_n(PLOTS_MIN_READ)} from which `output.card_plots: auto` draws them; "
                             "`curate card` on this directory draws them.")
    elif not plots:
        facts["no_plots"] = ("This card has no figures (`output.card_plots: false` or `curate card --no-plots`); "
                             "`curate card` on this directory draws them.")
    elif card_plots.available():
        for name, data in facts["figures"].items():
            _write_bytes_atomic(folder / f"{name}.png", card_plots.draw(name, data))
            figures[name] = f"{folder.name}/{name}.png"
    else:
        log.info("matplotlib is not installed: the data card has no figures (pip install matplotlib)")
    for name in card_plots.FIGURES:
        stale = folder / f"{name}.png"
        if name not in figures and stale.exists():
            stale.unlink()
    if folder.is_dir() and not any(folder.iterdir()):
        folder.rmdir()
    _write_bytes_atomic(path, render(manifest, facts, figures).encode("utf-8"))


def _relative(root: Path, start: Path) -> str:
    """The corpus directory ``root`` as a POSIX path relative to ``start`` (a card's folder), or absolute when
    there is none."""
    try:
        return Path(os.path.relpath(root.resolve(), start.resolve())).as_posix()
    except ValueError:
        return root.resolve().as_posix()


def _write_bytes_atomic(path: Path, data: bytes) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.tmp{os.getpid()}")
    with open(tmp, "wb") as f:
        f.write(data)
        f.flush()
        os.fsync(f.fileno())
    os.replace(tmp, path)


def _damaged(root: Path, path: Path, problem: str) -> RunError:
    """The one-line error for a corpus file the card cannot use."""
    return RunError(f"{path}: damaged ({problem.splitlines()[0] if problem else 'unreadable'}); "
                    f"`curate inspect {root} --verify` checks the corpus's files, `curate run RECIPE --fresh` "
                    "rebuilds it")


def _read_json(root: Path, path: Path, key: str | None = None) -> dict[str, Any]:
    """The JSON object in ``path`` (a stats file or ``mixture.json`` of the corpus at ``root``), with ``key``
    holding an object when given. Raises RunError naming the file when it is not JSON or not of that form."""
    try:
        value = json.loads(path.read_text(encoding="utf-8"))
    except UnicodeDecodeError as e:
        raise _damaged(root, path, f"not UTF-8: {e}") from None
    except ValueError as e:
        raise _damaged(root, path, f"not JSON: {e}") from None
    if not isinstance(value, dict):
        raise _damaged(root, path, "not a JSON object")
    if key is not None and not isinstance(value.get(key), dict):
        raise _damaged(root, path, f"no {key!r} object")
    return value


# -- numbers ---------------------------------------------------------------------------------------------------------
def _counts(values: np.ndarray, edges: list[float]) -> np.ndarray:
    """Counts per bin [e_i, e_i+1) of ``values`` clipped into [e_0, e_last]; NaN is not counted."""
    values = values[~np.isnan(values)]
    idx = np.searchsorted(np.asarray(edges), np.clip(values, edges[0], edges[-1]), side="right") - 1
    return np.bincount(np.clip(idx, 0, len(edges) - 2), minlength=len(edges) - 1)


def _batches(root: Path, shards: list[dict[str, Any]], columns: list[str]) -> Iterator[dict[str, Any]]:
    """The shards' rows as batches of ``{column: pyarrow array}``, only the wanted columns each shard has."""
    import pyarrow.parquet as pq

    import pyarrow as pa

    for shard in shards:
        try:
            f = pq.ParquetFile(root / shard["path"])
            present = [c for c in columns if c in f.schema_arrow.names]
            for batch in f.iter_batches(batch_size=8192, columns=present):
                yield {c: batch.column(c) for c in present}
        except FileNotFoundError:
            raise _damaged(root, root / shard["path"], "missing: manifest.json lists it") from None
        except pa.ArrowException as e:
            raise _damaged(root, root / shard["path"], f"not a readable Parquet file: {e}") from None


def _floats(batch: Mapping[str, Any], column: str) -> np.ndarray:
    if column not in batch:
        return np.full(0, np.nan)
    return batch[column].to_numpy(zero_copy_only=False).astype(np.float64)


def perplexity_lang(steps: list[dict[str, Any]]) -> str | None:
    """The language the recipe's ``perplexity`` step scores every document in (its ``lang`` parameter), or None
    when each document's ``lang`` column decides. ``steps``: the recipe's steps as ``Recipe.to_dict`` writes them
    (``[{name: params}]``, the manifest's ``recipe.steps``)."""
    ppl_step = next((s for s in steps if "perplexity" in s), {}).get("perplexity")
    return ppl_step.get("lang") if ppl_step else None


def _add_perplexity(hists: dict[str, np.ndarray], batch: Mapping[str, Any], ppl_lang: str | None) -> None:
    """Add the ``ppl`` values of ``batch`` to ``hists`` (language -> counts per :data:`PPL_EDGES` bin); a
    language is ``ppl_lang`` when given, else the ``lang`` column's (``"None"`` where null)."""
    values = _floats(batch, "ppl")
    if not len(values):
        return
    lang = (np.full(len(values), ppl_lang, dtype=object) if ppl_lang else
            np.asarray(batch["lang"].to_pylist() if "lang" in batch else [None] * len(values), dtype=object))
    for code in set(lang[~np.isnan(values)].tolist()):
        hist = hists.setdefault(str(code), np.zeros(len(PPL_EDGES) - 1, np.int64))
        hist += _counts(values[lang == code], PPL_EDGES)


def _add_groups(exact: Counter[int], near: Counter[int], batch: Mapping[str, Any]) -> None:
    """Count the duplicate group size of each document of ``batch`` in a group (``exact_copies`` of exact_dedup,
    ``dup_count`` of minhash_dedup; 2 or more)."""
    for column, counter in (("exact_copies", exact), ("dup_count", near)):
        sizes = _floats(batch, column)
        size, docs = np.unique(sizes[sizes >= 2].astype(np.int64), return_counts=True)
        counter.update(dict(zip(size.tolist(), docs.tolist())))


KEPT_COLUMNS = ["id", "text", "lang", "url", "ppl", "exact_copies", "dup_count"]
"""the data shards' columns the card counts (those a shard has)"""


class DomainCounts:
    """What the card shows of one domain's kept documents, counted batch by batch in fixed bins (memory does not
    grow with the corpus): the length histogram over :data:`LENGTH_EDGES` and the text bytes, documents per
    ``lang`` (``none`` where null, in order of first appearance), the first document as an example (text cut at
    :data:`EXAMPLE_CHARS`), the kept documents' perplexity histograms per language over :data:`PPL_EDGES` and the
    sizes of their duplicate groups. The finalize task counts them while it writes the domain's shards
    (`curate.tasks.run_finalize_domain`, kept in its stats as :meth:`to_json`); :func:`collect` counts them from
    the shards when they are not given. ``ppl_lang``: :func:`perplexity_lang` of the recipe."""

    def __init__(self, ppl_lang: str | None = None) -> None:
        self.ppl_lang = ppl_lang
        self.length = np.zeros(len(LENGTH_EDGES) - 1, np.int64)
        self.bytes = 0
        self.langs: Counter[str] = Counter()
        self.example: dict[str, Any] | None = None
        self.ppl: dict[str, np.ndarray] = {}
        self.exact: Counter[int] = Counter()
        self.near: Counter[int] = Counter()

    def add(self, batch: pa.Table | pa.RecordBatch | Mapping[str, Any]) -> None:
        """Count the documents of ``batch``, in corpus order: a ``pyarrow.Table`` or ``{column: array}`` with at
        least ``text`` (other :data:`KEPT_COLUMNS` counted when present)."""
        import pyarrow as pa
        import pyarrow.compute as pc

        if isinstance(batch, (pa.Table, pa.RecordBatch)):
            batch = {c: batch[c] for c in KEPT_COLUMNS if c in batch.column_names}
        size = pc.binary_length(batch["text"]).to_numpy(zero_copy_only=False).astype(np.float64)
        self.length += _counts(size, LENGTH_EDGES)
        self.bytes += int(size.sum())
        lang = batch["lang"].to_pylist() if "lang" in batch else [None] * len(size)
        self.langs.update(NO_LANG if x is None else x for x in lang)
        if self.example is None and len(size):
            text = batch["text"][0].as_py()
            self.example = {"id": batch["id"][0].as_py(), "lang": lang[0],
                            "url": batch["url"][0].as_py() if "url" in batch else None,
                            "bytes": int(size[0]), "text": text[:EXAMPLE_CHARS],
                            "truncated": len(text) > EXAMPLE_CHARS}
        _add_perplexity(self.ppl, batch, self.ppl_lang)
        _add_groups(self.exact, self.near, batch)

    def to_json(self) -> dict[str, Any]:
        """The counts as a JSON object (:meth:`from_json` reads it back)."""
        return {"length_counts": self.length.tolist(), "bytes": self.bytes, "langs": dict(self.langs),
                "example": self.example, "ppl": {code: h.tolist() for code, h in self.ppl.items()},
                "exact": {str(k): n for k, n in self.exact.items()},
                "near": {str(k): n for k, n in self.near.items()}}

    @classmethod
    def from_json(cls, data: dict[str, Any]) -> DomainCounts:
        """The counts :meth:`to_json` wrote. Raises KeyError or ValueError when ``data`` is not of that form."""
        counts = cls()
        counts.length = np.asarray(data["length_counts"], np.int64)
        if counts.length.shape != (len(LENGTH_EDGES) - 1,):
            raise ValueError(f"length_counts: {len(counts.length)} bins, not {len(LENGTH_EDGES) - 1}")
        counts.bytes = int(data["bytes"])
        counts.langs = Counter({str(k): int(n) for k, n in data["langs"].items()})
        counts.example = data["example"]
        counts.ppl = {code: np.asarray(h, np.int64) for code, h in data["ppl"].items()}
        if any(h.shape != (len(PPL_EDGES) - 1,) for h in counts.ppl.values()):
            raise ValueError(f"ppl: histograms not of {len(PPL_EDGES) - 1} bins")
        counts.exact = Counter({int(k): int(n) for k, n in data["exact"].items()})
        counts.near = Counter({int(k): int(n) for k, n in data["near"].items()})
        return counts


def _later_removed(manifest: dict[str, Any], step: str, own: bool) -> list[dict[str, Any]]:
    """Removed shards of the steps after ``step`` (and of ``step`` itself when ``own``), when the run kept every
    removed document; otherwise none (a sample would skew the figures)."""
    if manifest["keep_removed"] != "all":
        return []
    order = [f["step"] for f in manifest["funnel"]]
    after = order[order.index(step) + (0 if own else 1):]
    return [s for name in after for s in manifest["removed"].get(name, [])]


def collect(root: Path, manifest: dict[str, Any], counts: Mapping[str, DomainCounts] | None = None
            ) -> dict[str, Any]:
    """Everything the card shows beyond the manifest: ``stats`` (step -> its stats file), ``mixture``
    (``mixture.json`` or None), ``langs`` (domain -> {lang or ``none``: kept documents}), ``examples``
    (``[{domain, id, lang, url, bytes, text, truncated}]``, text cut at ``EXAMPLE_CHARS``) and ``figures``
    (figure name -> the numbers it draws, in the form `curate.card_plots` documents; only figures with data).
    ``counts``: domain -> :class:`DomainCounts` of its kept documents, counted as its shards were written; the
    data shards of a domain not in it are read once to count them. Also reads the removed shards of the steps
    from perplexity and after each dedup step when the run kept all removed documents; memory does not grow with
    the corpus (fixed histogram bins)."""
    steps = [f["step"] for f in manifest["funnel"]]
    stats = {s: _read_json(root, root / "stats" / f"{s}.json") for s in steps
             if (root / "stats" / f"{s}.json").exists()}
    mixture_file = root / "mixture.json"
    mixture = _read_json(root, mixture_file, "weights") if mixture_file.exists() else None
    ppl_lang = perplexity_lang(manifest["recipe"]["steps"])
    langs: dict[str, Counter[str]] = {}
    lengths: dict[str, dict[str, Any]] = {}
    kept_ppl: dict[str, np.ndarray] = {}
    removed_ppl: dict[str, np.ndarray] = {}
    exact: Counter[int] = Counter()
    near: Counter[int] = Counter()
    examples: list[dict[str, Any]] = []
    empty = np.zeros(len(PPL_EDGES) - 1, np.int64)
    for domain, v in manifest["domains"].items():
        domain_counts = (counts or {}).get(domain)
        if domain_counts is None:
            domain_counts = DomainCounts(ppl_lang)
            for batch in _batches(root, v["shards"], KEPT_COLUMNS):
                domain_counts.add(batch)
        langs[domain] = domain_counts.langs
        lengths[domain] = {"counts": domain_counts.length.tolist(), "docs": v["docs"], "bytes": domain_counts.bytes}
        if domain_counts.example is not None and len(examples) < MAX_EXAMPLES:
            examples.append({"domain": domain, **domain_counts.example})
        for code, hist in domain_counts.ppl.items():
            kept_ppl[code] = kept_ppl.get(code, empty) + hist
        exact.update(domain_counts.exact)
        near.update(domain_counts.near)
    if "perplexity" in steps:
        for batch in _batches(root, _later_removed(manifest, "perplexity", own=True), ["lang", "ppl"]):
            _add_perplexity(removed_ppl, batch, ppl_lang)
    for step, column in (("exact_dedup", "exact_copies"), ("minhash_dedup", "dup_count")):
        if step in steps:
            for batch in _batches(root, _later_removed(manifest, step, own=False), [column]):
                _add_groups(exact, near, batch)
    ppl = {code: {"kept": kept_ppl.get(code, empty), "removed": removed_ppl.get(code, empty)}
           for code in {*kept_ppl, *removed_ppl}}
    population = ("every document the step saw" if manifest["keep_removed"] == "all"
                  else "kept documents only: removed ones were not all saved")
    figures: dict[str, Any] = {"funnel": _funnel(manifest)}
    if manifest["domains"] and any(v["docs"] for v in manifest["domains"].values()):
        figures["length"] = {"edges": LENGTH_EDGES, "domains": lengths}
    if any(k != NO_LANG for c in langs.values() for k in c):
        figures["languages"] = {"domains": {d: dict(c.most_common()) for d, c in langs.items()},
                                "shown": _shown_languages(langs)}
    cutoffs = stats.get("perplexity", {}).get("combine", {}).get("cutoffs", {})
    if ppl:
        figures["perplexity"] = {
            "edges": PPL_EDGES, "population": population,
            "langs": {code: {"kept": v["kept"].tolist(), "removed": v["removed"].tolist(),
                             "head_max": cutoffs.get(code, {}).get("head_max"),
                             "middle_max": cutoffs.get(code, {}).get("middle_max")} for code, v in sorted(ppl.items())}}
    qc = stats.get("quality_classifier", {}).get("histograms", {}).get("quality_score")
    if qc and sum(qc["counts"]):
        figures["quality_score"] = {**qc, "threshold": stats["quality_classifier"]["params"].get("threshold")}
    gopher = {k: h for k, h in stats.get("quality", {}).get("histograms", {}).items() if sum(h["counts"])}
    if gopher:
        figures["gopher_signals"] = {"documents": stats["quality"]["documents_in"], "signals": gopher}
    if exact or near:
        figures["duplicates"] = {"exact": {str(k): n for k, n in sorted(exact.items())},
                                 "near": {str(k): n for k, n in sorted(near.items())}, "population": population}
    return {"stats": stats, "mixture": mixture, "langs": {d: dict(c) for d, c in langs.items()},
            "examples": examples, "figures": figures}


def _funnel(m: dict[str, Any]) -> dict[str, Any]:
    """The funnel figure's numbers: documents left after each step, from the manifest alone."""
    left = m["funnel"][0]["documents_in"] if m["funnel"] else m["accounting"]["kept"]
    steps = []
    for f in m["funnel"]:
        left -= f["removed"]
        steps.append({"step": f["step"], "removed": f["removed"], "remaining": left,
                      "reasons": m["accounting"]["removed"].get(f["step"], {})})
    acc = m["accounting"]
    return {"read": acc["read"], "errored": acc["errored"], "kept": acc["kept"], "steps": steps}


def _shown_languages(langs: dict[str, Counter[str]]) -> list[str]:
    total: Counter[str] = Counter()
    for c in langs.values():
        total.update({k: n for k, n in c.items() if k != NO_LANG})
    return [k for k, _ in sorted(total.items(), key=lambda kv: (-kv[1], kv[0]))[:MAX_LANGUAGE_COLUMNS]]


# -- Markdown --------------------------------------------------------------------------------------------------------
def _n(x: int) -> str:
    return f"{x:,}"


def _mb(x: int) -> str:
    return f"{x / 1e6:,.2f}"


def _cell(s: Any) -> str:
    return str(s).replace("|", "\\|").replace("\n", " ")


def _fence(text: str) -> str:
    """A code fence longer than any run of backticks in ``text``."""
    longest = max((len(run) for run in text.split("\n") for run in _backtick_runs(run)), default=0)
    return "`" * max(3, longest + 1)


def _backtick_runs(line: str) -> list[str]:
    runs, cur = [], ""
    for ch in line:
        if ch == "`":
            cur += ch
        elif cur:
            runs.append(cur)
            cur = ""
    return runs + ([cur] if cur else [])


def size_category(n: int) -> str:
    """The Hugging Face ``size_categories`` value for ``n`` examples (``n<1K`` ... ``n>1T``)."""
    return next((label for limit, label in _SIZE_CATEGORIES if n < limit), "n>1T")


def licences(m: dict[str, Any]) -> list[str]:
    """Each source's declared licence (recipe ``sources[i].license``, lower-cased as the Hub writes licence ids),
    distinct, in source order; ``unknown`` for sources that declare none."""
    seen: list[str] = []
    for s in m["recipe"]["sources"]:
        lic = str(s.get("license") or "unknown").lower()
        if lic not in seen:
            seen.append(lic)
    return seen


def front_matter(m: dict[str, Any], facts: dict[str, Any] | None) -> dict[str, Any]:
    """The card's YAML metadata: Hugging Face dataset card fields, and ``configs`` so that
    ``datasets.load_dataset`` on the corpus directory reads ``data/*/*.parquet`` (the layout of a dataset repository
    whose README.md is the card, wherever the card was written)."""
    total: Counter[str] = Counter()
    for c in (facts or {}).get("langs", {}).values():
        total.update({k: n for k, n in c.items() if k not in (NO_LANG, "unknown")})
    if not facts and m.get("languages"):
        total.update({k: v["kept"] for k, v in m["languages"].items() if v["kept"]})
    langs = [k for k, _ in sorted(total.items(), key=lambda kv: (-kv[1], kv[0]))]
    meta: dict[str, Any] = {"pretty_name": m["name"]}
    if langs:
        meta["language"] = langs
        meta["multilinguality"] = "multilingual" if len(langs) > 1 else "monolingual"
    lic = licences(m)
    meta["license"] = lic[0] if len(lic) == 1 else lic
    meta.update({"size_categories": [size_category(m["accounting"]["kept"])],
                 "task_categories": ["text-generation"], "task_ids": ["language-modeling"],
                 "source_datasets": ["original"], "tags": ["mixlab", "pretraining"],
                 "configs": [{"config_name": "default", "data_files": [{"split": "train",
                                                                         "path": "data/*/*.parquet"}]}]})
    return meta


def render(m: dict[str, Any], facts: dict[str, Any] | None = None, figures: dict[str, str] | None = None) -> str:
    """The card's text for manifest ``m``. ``facts`` is :func:`collect`'s result (without it the sections read
    from the shards and the stats are left out) and ``figures`` maps figure names to their relative links."""
    import yaml

    facts, figures = facts or {}, figures or {}
    acc = m["accounting"]
    stats = facts.get("stats", {})
    step_names = [f["step"] for f in m["funnel"]]
    total_bytes = sum(v["bytes"] for v in m["domains"].values())
    total_tokens = sum(v["est_tokens"] for v in m["domains"].values())
    lic = licences(m)
    corpus_dir = facts.get("corpus_dir")
    where = f"from the corpus directory, {corpus_dir} from this card" if corpus_dir else "from this directory"
    out = ["---", yaml.safe_dump(front_matter(m, facts or None), sort_keys=False, allow_unicode=True).rstrip(),
           "---", "", f"# Dataset Card for {m['name']}", "",
           f"A pretraining corpus of **{_n(acc['kept'])} documents** ({_mb(total_bytes)} MB of text, about "
           f"{_n(total_tokens)} tokens) in {len(m['domains'])} domain{'s' * (len(m['domains']) != 1)} "
           f"({', '.join(m['domains']) or 'none'}), "
           f"curated by mixlab {m['tool_versions']['mixlab']} with the steps "
           f"{' → '.join(f'`{s}`' for s in step_names[1:]) or '(none)'} and weighted by the "
           f"`{m['recipe']['mixture']['method']}` mixture.", "",
           "## Dataset Details", "", "### Dataset Description", "",
           f"- **Recipe:** `{m['name']}`, hash `{m['recipe_hash'][:12]}`, seed {m['seed']}",
           f"- **Built by:** mixlab {m['tool_versions']['mixlab']} "
           f"(Python {m['tool_versions'].get('python', '?')}, pyarrow {m['tool_versions'].get('pyarrow', '?')})",
           f"- **Corpus hash:** `{m['corpus_sha256'][:16]}` (sha256 over the data shards' sha256)",
           f"- **Licence:** {', '.join(lic)} (as the recipe declares per source; see Sources)", "",
           "### Sources", "", "| domain | format | licence | files | first file |", "|---|---|---|---:|---|"]
    for s, rs in zip(m["sources"], m["recipe"]["sources"]):
        first = f"`{_cell(s['files'][0])}`" if s["files"] else "(no file)"
        out.append(f"| {s['domain']} | {s['format']} | {_cell(rs.get('license') or 'unknown')} | {len(s['files'])} | "
                   f"{first} |")
    out += ["", "## Uses", "", "Pretraining or continued pretraining of language models, as a weighted mixture of "
            "its domains (`mixture.json`). Load it with:", "", "```python", "from datasets import load_dataset",
            f'corpus = load_dataset("parquet", data_dir="data", split="train")  # {where}', "```", ""]
    if facts.get("no_plots"):
        out += [facts["no_plots"], ""]
    out += _structure(m, figures, corpus_dir)
    out += _creation(m, stats, figures)
    if m.get("languages"):
        out += languages.card_lines(m["languages"])
    if any(k != NO_LANG for c in facts.get("langs", {}).values() for k in c):
        out += _languages_per_domain(facts, figures)
    out += _signals(m, stats, facts, figures)
    out += _mixture(m, facts.get("mixture"))
    if facts.get("examples"):
        out += _examples(facts["examples"])
    out += _limitations(m, stats)
    return "\n".join(out) + "\n"


def _figure(figures: dict[str, str], name: str, alt: str) -> list[str]:
    return ["", f"![{alt}]({figures[name]})"] if name in figures else []


def _structure(m: dict[str, Any], figures: dict[str, str], corpus_dir: str | None = None) -> list[str]:
    out = ["## Dataset Structure", "",
           f"Tokens are estimated {m['token_estimate']}." if m.get("token_estimate") else
           f"Tokens are estimated as text bytes / {m['bytes_per_token_estimate']:g}.", "",
           "| domain | documents | MB of text | mean bytes / doc | est. tokens | shards | mixture weight |",
           "|---|---:|---:|---:|---:|---:|---:|"]
    for d, v in m["domains"].items():
        mean = round(v["bytes"] / v["docs"]) if v["docs"] else 0
        out.append(f"| {d} | {_n(v['docs'])} | {_mb(v['bytes'])} | {_n(mean)} | {_n(v['est_tokens'])} | "
                   f"{len(v['shards'])} | {m['mixture'].get(d, 0.0):.4f} |")
    out += _figure(figures, "length", "Document length per domain")
    out += ["", f"Files (in the corpus directory `{corpus_dir}`):" if corpus_dir else "Files:", "",
            "- `data/<domain>/part-*.parquet`: kept documents (columns: "
            "`id`, `text`, `domain`, `source` and the annotations of every step)",
            f"- `removed/<step>/`: removed documents with `reason` (kept: {m['keep_removed']})",
            "- `errors/`: records that could not be read, with `source` and `location`",
            "- `stats/<step>.json`: per-step counters and histograms; `manifest.json`: every shard with its sha256",
            "- `card.md` and `card/*.png`: " + ("the corpus's card and its figures" if corpus_dir else
                                                "this card and its figures") + " (`curate card OUT` rebuilds them)",
            ""]
    return out


def _creation(m: dict[str, Any], stats: dict[str, Any], figures: dict[str, str]) -> list[str]:
    acc = m["accounting"]
    out = ["## Dataset Creation", "", "### Accounting", "",
           f"Documents read **{_n(acc['read'])}** = kept **{_n(acc['kept'])}** + removed "
           f"**{_n(acc['removed_total'])}** + errored **{_n(acc['errored'])}** "
           f"({'balanced' if acc['balanced'] else 'NOT BALANCED'}).", "",
           "### Step funnel", "", "Steps run in this order; a step with `domains` sees only those domains' documents.",
           "", "| step | documents in | removed | kept | share removed | main reasons |",
           "|---|---:|---:|---:|---:|---|"]
    for f in m["funnel"]:
        share = f["removed"] / f["documents_in"] if f["documents_in"] else 0.0
        reasons = sorted(acc["removed"].get(f["step"], {}).items(), key=lambda kv: (-kv[1], kv[0]))
        main = ", ".join(f"{r} {_n(n)}" for r, n in reasons[:3]) + (", …" if len(reasons) > 3 else "")
        out.append(f"| {f['step']} | {_n(f['documents_in'])} | {_n(f['removed'])} | "
                   f"{_n(f['documents_in'] - f['removed'])} | {share:.1%} | {main} |")
    out += _figure(figures, "funnel", "Processing funnel: documents left after each step and removed by it")
    out += ["", "### Removal reasons", "", "| step | reason | documents |", "|---|---|---:|"]
    for step, reasons in acc["removed"].items():
        for reason, count in sorted(reasons.items(), key=lambda kv: (-kv[1], kv[0])):
            out.append(f"| {step} | {reason} | {_n(count)} |")
    if m["errors"]["by_kind"]:
        out += ["", "### Errors", "", "| kind | records |", "|---|---:|"]
        out += [f"| {k} | {_n(v)} |" for k, v in m["errors"]["by_kind"].items()]
    notes = {s: st["notes"] for s, st in stats.items() if st.get("notes") and s != "langid"}
    if notes:
        out += ["", "Step notes: " + "; ".join(f"`{s}`: " + ", ".join(f"{k} {_n(v)}" for k, v in n.items())
                                                for s, n in notes.items()) + "."]
    return out


def _languages_per_domain(facts: dict[str, Any], figures: dict[str, str]) -> list[str]:
    langs = facts["langs"]
    shown = _shown_languages({d: Counter(c) for d, c in langs.items()})
    others = any(k not in shown and k != NO_LANG for c in langs.values() for k in c)
    unlabelled = any(c.get(NO_LANG) for c in langs.values())
    head = ["domain", "documents", *shown, *(["other"] if others else []), *(["not identified"] if unlabelled else [])]
    out = ["", "## Languages per domain", "",
           "What each domain holds: its kept documents by the `lang` column langid wrote (not identified: a domain "
           "outside langid's scope, or no langid step).", "",
           "| " + " | ".join(head) + " |", "|---|" + "---:|" * (len(head) - 1)]
    for d, c in langs.items():
        total = sum(c.values())
        row = [d, _n(total), *(_n(c.get(k, 0)) for k in shown)]
        if others:
            row.append(_n(sum(n for k, n in c.items() if k not in shown and k != NO_LANG)))
        if unlabelled:
            row.append(_n(c.get(NO_LANG, 0)))
        out.append("| " + " | ".join(row) + " |")
    out += _figure(figures, "languages", "Languages per domain")
    return out


def _signals(m: dict[str, Any], stats: dict[str, Any], facts: dict[str, Any], figures: dict[str, str]
             ) -> list[str]:
    out: list[str] = []
    ppl = stats.get("perplexity")
    if ppl:
        combine = ppl.get("combine", {})
        fig = facts.get("figures", {}).get("perplexity", {}).get("langs", {})
        out += ["", "## Perplexity", "",
                f"KenLM perplexity (CCNet) per language; buckets cut at {combine.get('cutoffs_from', 'the cutoffs')}"
                + (f" {combine['percentiles']}" if combine.get("cutoffs_from") == "corpus percentiles" else "")
                + f"; kept buckets: {', '.join(ppl['params'].get('keep_buckets') or ['all'])}.", "",
                "| language | scored | head ≤ | middle ≤ | kept in corpus |", "|---|---:|---:|---:|---:|"]
        for code, c in combine.get("cutoffs", {}).items():
            kept = _n(sum(fig[code]["kept"])) if code in fig else "—"
            out.append(f"| {code} | {_n(c['documents'])} | {c['head_max']:,.1f} | {c['middle_max']:,.1f} | {kept} |")
        out += _figure(figures, "perplexity", "Perplexity histogram with the bucket cutoffs")
    qc = stats.get("quality_classifier")
    if qc:
        out += ["", "## Quality classifier", "",
                f"fastText classifier `{qc['params'].get('model')}`: {_n(qc['documents_in'])} documents scored, "
                f"threshold {qc['params'].get('threshold')}, {_n(qc['removed'])} removed."]
        out += _figure(figures, "quality_score", "Quality-classifier score histogram")
    if "quality" in stats:
        q = stats["quality"]
        out += ["", "## Quality rules", "",
                f"Gopher rules on {_n(q['documents_in'])} documents, {_n(q['removed'])} removed "
                "(reasons above); the signals as measured:"]
        out += _figure(figures, "gopher_signals", "Gopher quality signals")
    dup = [(s, stats[s]) for s in ("exact_dedup", "minhash_dedup") if s in stats]
    if dup:
        out += ["", "## Duplicates", ""]
        for s, st in dup:
            red, comb = st.get("reduce", {}), st.get("combine", {})
            if s == "exact_dedup":
                out.append(f"- `exact_dedup`: {_n(red.get('duplicate_groups', 0))} groups of identical documents "
                           f"({_n(red.get('documents_in_duplicate_groups', 0))} documents), {_n(st['removed'])} "
                           "removed")
            else:
                out.append(f"- `minhash_dedup`: {_n(comb.get('clusters', 0))} near-duplicate clusters "
                           f"({_n(comb.get('documents_in_clusters', 0))} documents) at Jaccard ≥ "
                           f"{comb.get('threshold', '?')}, {_n(st['removed'])} removed")
        out += _figure(figures, "duplicates", "Duplicate group sizes")
    return out


def _mixture(m: dict[str, Any], mixture: dict[str, Any] | None) -> list[str]:
    method = m["recipe"]["mixture"]["method"]
    out = ["", "## Mixture", ""]
    if mixture is None:
        return out + [f"Method `{method}`: the weights are not written yet (`mixture.json`)."]
    out += [f"Method `{mixture.get('method', method)}`: {mixture.get('provenance', '')}.", "",
            "| domain | est. tokens | token share | weight |", "|---|---:|---:|---:|"]
    tokens = mixture.get("tokens") or {d: v["est_tokens"] for d, v in m["domains"].items()}
    total = sum(tokens.values()) or 1
    for d, w in mixture["weights"].items():
        out.append(f"| {d} | {_n(tokens.get(d, 0))} | {tokens.get(d, 0) / total:.4f} | {w:.4f} |")
    out += [f"- {w}" for w in mixture.get("warnings", [])]
    return out


def _examples(examples: list[dict[str, Any]]) -> list[str]:
    out = ["", "## Example records", "",
           f"The first kept document of each domain, cut at {EXAMPLE_CHARS} characters."]
    for e in examples:
        fence = _fence(e["text"])
        url = f", `{_cell(e['url'])}`" if e.get("url") else ""
        out += ["", f"**{e['domain']}** `{_cell(e['id'])}` (lang {e['lang'] or '—'}, {_n(e['bytes'])} bytes"
                f"{', truncated' if e['truncated'] else ''}{url}):", "", fence + "text", e["text"], fence]
    return out


def _limitations(m: dict[str, Any], stats: dict[str, Any]) -> list[str]:
    recipe_steps = {name: params for s in m["recipe"]["steps"] for name, params in s.items()}
    out = ["", "## Bias, Risks, and Limitations", "",
           "- Token counts are estimates (see Dataset Structure); a tokenizer "
           "trained on the corpus gives exact counts (`train tokenizer`, `curate mix --tokenizer`).",
           "- Licences are what the recipe declares per source; they were not checked document by document."]
    unknown = sorted({s["domain"] for s in m["recipe"]["sources"] if str(s.get("license") or "unknown") == "unknown"})
    if unknown:
        out.append(f"- Sources of {', '.join(unknown)} declare no licence (`unknown`): check them before "
                   "redistributing.")
    if any(s.get("format") in ("warc", "wet") for s in m["recipe"]["sources"]):
        out.append("- Web pages' text was extracted from HTML (or taken from Common Crawl's WET extracts): "
                   "extraction can keep navigation and boilerplate or drop parts of the main text.")
    if "langid" in recipe_steps:
        scope = recipe_steps["langid"].get("domains")
        out.append("- Languages are fastText lid.176 predictions on each document's prose; short or mixed-language "
                   "documents can be mislabelled" + (f"; only {', '.join(scope)} were identified" if scope else "")
                   + ".")
    else:
        out.append("- No language identification ran: the card's languages are unknown.")
    if "quality" in recipe_steps:
        no_rules = {k.split(":", 1)[1]: n for k, n in stats.get("quality", {}).get("notes", {}).items()
                    if k.startswith("no_rules:")}
        out.append("- Gopher quality rules are heuristics (the paper's thresholds for English, FineWeb-2's for the "
                   "other languages with rules)" +
                   (f"; {', '.join(f'{k} ({n:,})' for k, n in no_rules.items())} passed unjudged (no rules)"
                    if no_rules else "") + ".")
    if "perplexity" in recipe_steps:
        p = recipe_steps["perplexity"]
        out.append(f"- Perplexity is measured by KenLM models of {', '.join(p.get('models', {}))}: text unlike their "
                   "reference text scores high whatever its quality" +
                   ("; buckets are relative to this corpus (percentiles), not absolute" if not p.get("cutoffs")
                    else "") + ".")
    if "minhash_dedup" not in recipe_steps:
        out.append("- No near-duplicate removal (`minhash_dedup`) ran.")
    elif not recipe_steps["minhash_dedup"].get("against"):
        out.append("- Duplicates were removed within this corpus only; overlap with other corpora or with "
                   "evaluation sets was not checked.")
    if "exact_dedup" not in recipe_steps:
        out.append("- No exact deduplication (`exact_dedup`) ran.")
    if m["keep_removed"] != "all":
        out.append(f"- Removed documents were kept as `{m['keep_removed']}`: figures over removed documents show "
                   "kept documents only.")
    if m["accounting"]["errored"]:
        out.append(f"- {_n(m['accounting']['errored'])} records could not be read (`errors/`).")
    if not {"pii", "toxicity"} & set(recipe_steps):
        out.append("- No step filters personal information (PII) or toxic content.")
    return out + [""]
