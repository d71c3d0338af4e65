"""The `curate` command: run, validate, inspect."""

from __future__ import annotations

import argparse
import os
import sys
from pathlib import Path
from typing import TYPE_CHECKING, Any

from mixlab import cli
from mixlab.errors import EXIT_OK, ConfigError, MixlabError, RunError
from mixlab.logs import log

if TYPE_CHECKING:
    from importlib.machinery import ModuleSpec


def _parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="curate", description="Build a curated pretraining corpus from raw text.")
    p.add_argument("--quiet", "-q", action="store_true", help="only warnings and errors")
    p.add_argument("--verbose", "-v", action="store_true", help="also debug messages")
    sub = p.add_subparsers(dest="command", required=True)
    r = sub.add_parser("run", help="build the corpus a recipe describes")
    r.add_argument("recipe", type=Path, help="the recipe YAML file (keys: `curate config recipe`)")
    r.add_argument("overrides", nargs="*", metavar="key.path=value", help="override recipe values")
    r.add_argument("--output", "-o", type=Path, help="output directory (default: the recipe's output.dir)")
    r.add_argument("--workers", "-w", type=int, help="worker processes (default: the recipe's executor.workers)")
    g = r.add_mutually_exclusive_group()
    g.add_argument("--resume", dest="fresh", action="store_false", default=False,
                   help="continue an interrupted run in the output directory (default)")
    g.add_argument("--fresh", dest="fresh", action="store_true",
                   help="delete what runs wrote in the output directory (never other files) and start again")
    r.add_argument("--keep-work", action="store_true", help="keep intermediate files in OUT/.work")
    r.add_argument("--executor", choices=["local", "ray"], help="where tasks run (default: the recipe's "
                   "executor.type): local processes, or Ray tasks on a cluster sharing the filesystem")
    r.add_argument("--address", help="with --executor ray: the Ray cluster (auto, HOST:PORT or ray://HOST:PORT; "
                   "default: the recipe's executor.address, else a Ray instance started on this machine)")
    v = sub.add_parser("validate", help="check a recipe without running it")
    v.add_argument("recipe", type=Path, help="the recipe YAML file")
    v.add_argument("overrides", nargs="*", metavar="key.path=value", help="override recipe values")
    i = sub.add_parser("inspect", help="summarize a built corpus")
    i.add_argument("output", type=Path, help="a directory written by `curate run` or `curate mix`")
    i.add_argument("--verify", action="store_true",
                   help="re-hash every file the manifest lists against its sha256; exit 1 naming damaged ones")
    cd = sub.add_parser("card", help="rebuild the data card (card.md and its figures) of a built corpus")
    cd.add_argument("output", type=Path, help="a corpus directory written by `curate run`")
    cd.add_argument("--out", type=Path, metavar="CARD.md", help="write the card here instead, its figures in the "
                    "folder of its name beside it (e.g. data_cards/quickstart.md, data_cards/quickstart/)")
    cd.add_argument("--no-plots", action="store_true", help="write the card without its figures (default: draw "
                    "them, whatever the recipe's output.card_plots)")
    mx = sub.add_parser("mix", help="write a weighted mixture of a corpus as shuffled Parquet shards")
    mx.add_argument("corpus", type=Path, help="a corpus directory written by `curate run`")
    mx.add_argument("--weights", required=True, type=Path, metavar="MIXTURE.json",
                    help="a mixture.json (its 'weights') or a {domain: weight} JSON object; normalized")
    mx.add_argument("--tokens", required=True, metavar="N", help="tokens in all, e.g. 1000000 or 1e6")
    mx.add_argument("--out", required=True, type=Path, help="empty or new directory, or an earlier mix output")
    mx.add_argument("--seed", type=int, default=0, help="seed of the document sample and the shuffle (default 0)")
    mx.add_argument("--max-repetition", type=float, default=4.0, help="epochs a domain may be repeated (4)")
    mx.add_argument("--tokenizer", type=Path, help="count tokens exactly with this tokenizer directory "
                    "(default: the corpus's bytes-per-token estimate)")
    mx.add_argument("--shard-docs", type=int, default=50_000, help="documents per output shard")

    lm = sub.add_parser("lm", help="KenLM language models").add_subparsers(dest="action", required=True)
    t = lm.add_parser("train", help="train a CCNet-style SentencePiece + KenLM model")
    t.add_argument("--input", nargs="+", required=True, type=Path, metavar="FILE_OR_CORPUS",
                   help="text files (jsonl[.gz|.zst], parquet, or one document per line) or corpus directories")
    t.add_argument("--lang", required=True, help="the language the model scores, e.g. en (named in its card)")
    t.add_argument("--out", required=True, type=Path, help="directory to write the model to")
    t.add_argument("--order", type=int, help="n-gram order, 2 to 8 (default: 3 below 20M characters of text, "
                   "else 5)")
    t.add_argument("--vocab-size", type=int, help="SentencePiece pieces (default: 8 x sqrt(characters) rounded "
                   "to thousands, 1,000 to 65,536)")
    t.add_argument("--prune", type=int, nargs="*", help="lmplz --prune count thresholds from unigrams up: "
                   "non-negative, non-decreasing, at most --order values (default 0 0 1; none given: no pruning)")
    t.add_argument("--domain", help="only this domain of a corpus input")

    cl = sub.add_parser("classifier", help="fastText quality classifiers").add_subparsers(dest="action",
                                                                                         required=True)
    c = cl.add_parser("train", help="train a classifier: reference-quality text vs other text")
    c.add_argument("--positive", nargs="+", required=True, type=Path, metavar="FILE_OR_CORPUS",
                   help="reference-quality text: files (as for lm train) or corpus directories")
    c.add_argument("--negative", nargs="+", required=True, type=Path, metavar="FILE_OR_CORPUS",
                   help="other text, e.g. random web pages: files or corpus directories")
    c.add_argument("--out", required=True, type=Path, help="directory to write model.bin and model.json to")
    c.add_argument("--held-out", type=float, default=0.1, help="fraction held out for evaluation, in (0, 1)")
    c.add_argument("--seed", type=int, default=0, help="seed of the held-out split and of fastText (default 0)")
    c.add_argument("--epochs", type=int, default=10, help="fastText training epochs (default 10)")
    c.add_argument("--max-docs", type=int, default=200_000, help="documents read per class (default %(default)s)")
    c.add_argument("--threshold", type=float, default=0.5,
                   help="probability in [0, 1] for the reported precision/recall")
    cf = sub.add_parser("config", help="every key of the recipe or of a step's params: type, default, description "
                        "(Markdown)")
    cf.add_argument("name", help="recipe, or a step name (normalize, quality, minhash_dedup, ...)")
    return p


def _cmd_run(args: argparse.Namespace) -> int:
    from curate.layout import OutputLock
    from curate.recipe import check_workers, load_recipe
    from curate.run import run

    executor = [f"executor.type={args.executor}"] if args.executor else []
    recipe = load_recipe(args.recipe, [*args.overrides, *executor])
    if args.address is not None:
        if recipe.model.executor.type != "ray":
            raise ConfigError("--address: only with --executor ray (or executor.type: ray in the recipe)")
        recipe.model.executor.address = args.address
    elif recipe.model.executor.type == "local" and recipe.model.executor.address is not None:
        log.warning(f"executor.address {recipe.model.executor.address} is ignored: tasks run on the local "
                    "executor (executor.type local); pass --executor ray to use the cluster")
    root = (args.output or recipe.output_dir()).resolve()
    if args.workers is not None:
        check_workers(args.workers, "--workers")
    workers = args.workers if args.workers is not None else recipe.model.executor.workers
    with OutputLock(root):
        manifest = run(recipe, root, workers, fresh=args.fresh, keep_work=args.keep_work)
    _print_summary(manifest, root)
    return EXIT_OK


def _print_summary(m: dict, root: Path) -> None:
    acc = m["accounting"]
    log.info(f"done: {root}")
    log.info(f"  read {acc['read']:,} = kept {acc['kept']:,} + removed {acc['removed_total']:,} "
             f"+ errored {acc['errored']:,}")
    for step, reasons in acc["removed"].items():
        if reasons:
            log.info(f"  {step}: " + ", ".join(f"{r} {n:,}" for r, n in sorted(reasons.items())))
    for d, v in m["domains"].items():
        log.info(f"  {d:<12} {v['docs']:>9,} docs {v['bytes'] / 1e6:>10,.2f} MB  ~{v['est_tokens']:,} tokens  "
                 f"weight {m['mixture'].get(d, 0):.3f}")


def _cmd_validate(args: argparse.Namespace) -> int:
    from curate.plan import build_plan
    from curate.recipe import check_output, load_recipe

    recipe = load_recipe(args.recipe, args.overrides)
    plan = build_plan(recipe)
    check_output(recipe, recipe.output_dir())
    files = sum(len(f) for f in recipe.files)
    n, units = len(recipe.model.sources), len(plan.units)
    print(f"{args.recipe}: ok — {n} source{'s' * (n != 1)} ({files} file{'s' * (files != 1)}, {units} "
          f"unit{'s' * (units != 1)}), "
          f"steps: {' -> '.join(s.name for s in recipe.steps) or '(none)'}, output: {recipe.output_dir()}")
    return EXIT_OK


def _cmd_inspect(args: argparse.Namespace) -> int:
    from curate.integrity import damaged_corpus_error, read_manifest, verify_manifest
    from curate.layout import Layout

    lay = Layout(args.output)
    if not lay.manifest.exists():
        hint = " (an unfinished run: `curate run` again to resume)" if lay.state.exists() else ""
        raise MixlabError(f"{args.output}: no manifest.json, not a complete corpus{hint}")
    from curate import mix

    if mix.is_mix_output(args.output):
        m = mix.read_mix_manifest(args.output)
        print(f"a `curate mix` dataset of {m['source']['corpus']} (seed {m['seed']}), created {m['created_at']}")
        _print_mix(args.output, m)
        if args.verify:
            problems = mix.verify(args.output, m)
            for p in problems:
                print(f"DAMAGED {p}")
            if problems:
                raise RunError(f"{args.output}: {len(problems)} damaged files (first: {problems[0]})")
            print(f"verified: all {len(m['files'])} files match the manifest's sha256")
        return EXIT_OK
    m = read_manifest(lay.manifest)
    print(f"{m['name']}  recipe {m['recipe_hash'][:12]}  created {m['created_at']}  corpus {m['corpus_sha256'][:16]}")
    print(f"{'domain':<16}{'docs':>10}{'MB':>10}{'est. tokens':>14}{'shards':>8}{'weight':>8}")
    for d, v in m["domains"].items():
        print(f"{d:<16}{v['docs']:>10,}{v['bytes'] / 1e6:>10.2f}{v['est_tokens']:>14,}{len(v['shards']):>8}"
              f"{m['mixture'].get(d, 0):>8.3f}")
    acc = m["accounting"]
    print(f"accounting: read {acc['read']:,} = kept {acc['kept']:,} + removed {acc['removed_total']:,} "
          f"+ errored {acc['errored']:,}  ({'balanced' if acc['balanced'] else 'NOT BALANCED'})")
    for step, reasons in acc["removed"].items():
        print(f"  {step:<14} " + (", ".join(f"{r}: {n:,}" for r, n in sorted(reasons.items())) or "nothing removed"))
    if m["errors"].get("by_kind"):
        print("errors: " + ", ".join(f"{k}: {v:,}" for k, v in m["errors"]["by_kind"].items()))
    if args.verify:
        problems, n, nbytes = verify_manifest(args.output, m)
        for p in problems:
            print(f"DAMAGED {p}")
        if problems:
            raise damaged_corpus_error(args.output, problems)
        print(f"verified: all {n} files ({nbytes / 1e6:,.1f} MB) match the manifest's sha256")
    return EXIT_OK


def _cmd_card(args: argparse.Namespace) -> int:
    from curate import card, mix
    from curate.integrity import read_manifest
    from curate.layout import Layout, OutputLock

    lay = Layout(args.output)
    if mix.is_mix_output(args.output):
        raise ConfigError(f"{args.output}: a `curate mix` dataset, whose card `curate mix` writes; give a corpus")
    if not lay.manifest.exists():
        hint = " (an unfinished run: `curate run` again to resume)" if lay.state.exists() else ""
        raise ConfigError(f"{args.output}: no manifest.json, not a complete corpus{hint}")
    m = read_manifest(lay.manifest)
    path = args.out or lay.card
    if args.out is not None and args.out.suffix != ".md":
        raise ConfigError(f"--out {args.out}: the card is a Markdown file; give a path ending in .md")
    own = path.resolve() == lay.card.resolve()
    if not own and path.resolve().is_relative_to(args.output.resolve()):
        raise ConfigError(f"--out {args.out}: inside the corpus {args.output}, where only {lay.card} is its card; "
                          "give a path outside the corpus (or leave out --out)")
    from contextlib import nullcontext

    try:
        with OutputLock(args.output.resolve()) if own else nullcontext():
            card.write_card(args.output, m, path, plots=not args.no_plots)
    except OSError as e:
        raise RunError(f"{args.output}: cannot write its card ({e}); `curate inspect {args.output} --verify` "
                       "checks the corpus's files") from None
    figures = path.with_suffix("")
    n = len(list(figures.glob("*.png"))) if figures.is_dir() else 0
    print(f"{path}: data card of {m['name']} with {n} figures in {figures}/")
    return EXIT_OK


def _cmd_mix(args: argparse.Namespace) -> int:
    from curate import mix

    m = mix.mix(args.corpus, args.weights, mix.parse_count(args.tokens, "--tokens"), args.out, seed=args.seed,
                max_repetition=args.max_repetition, tokenizer=args.tokenizer, shard_docs=args.shard_docs)
    _print_mix(args.out, m)
    return EXIT_OK


def _print_mix(out: Path, m: dict[str, Any]) -> None:
    """The per-domain table of a `curate mix` manifest."""
    print(f"{'domain':<16}{'weight':>8}{'tokens asked':>14}{'written':>12}{'docs':>8}{'epochs':>8}")
    for d, v in m["domains"].items():
        print(f"{d:<16}{v['weight']:>8.3f}{v['tokens_requested']:>14,}{v['tokens_written']:>12,}"
              f"{v['docs_written']:>8,}{v['repetition']:>8.2f}")
    print(f"{out}: {m['docs_written']:,} documents, {m['tokens_written']:,} tokens "
          f"({m['counting']['method']}) in {len(m['files'])} shards")


def _cmd_lm(args: argparse.Namespace) -> int:
    from curate import lm

    card = lm.train(args.input, args.out, args.lang, order=args.order, vocab_size=args.vocab_size,
                    prune=args.prune, domain=args.domain)
    print(f"{args.out}: {card['order']}-gram, {card['vocab_size']} pieces, {card['data']['tokens']:,} training tokens, "
          f"{card['size_bytes']['lm.binary'] / 1e6:.1f} MB")
    return EXIT_OK


def _cmd_classifier(args: argparse.Namespace) -> int:
    from curate import classifier

    card = classifier.train(args.positive, args.negative, args.out, held_out=args.held_out, seed=args.seed,
                            epochs=args.epochs, max_docs=args.max_docs, threshold=args.threshold)
    m = card["held_out_metrics"]
    print(f"{args.out}: held-out precision {m['precision']:.3f} recall {m['recall']:.3f} F1 {m['f1']:.3f} "
          f"ROC AUC {m['roc_auc']:.3f} on {card['documents']['held_out']} documents")
    return EXIT_OK


def _cmd_config(args: argparse.Namespace) -> int:
    from curate.steps import REGISTRY
    from train.config_reference import table

    if args.name != "recipe" and args.name not in REGISTRY:
        raise ConfigError(f"{args.name!r} is neither recipe nor a step; steps: {', '.join(REGISTRY)}")
    print(table("recipe" if args.name == "recipe" else f"step:{args.name}"), end="")
    return EXIT_OK


class _NoPandasYet:
    """A meta path finder (importlib.abc.MetaPathFinder's protocol; that module takes 28 ms to import) that answers
    ``import pandas`` with ModuleNotFoundError (see :func:`_arrow_without_pandas`)."""

    def find_spec(self, name: str, path: object = None, target: object = None) -> ModuleSpec | None:
        if name == "pandas":
            raise ModuleNotFoundError("pandas is imported when something needs it", name=name)
        return None


def _arrow_without_pandas() -> None:
    """Spare the process pandas' import (0.3 s, a third of a small run) that pyarrow makes at its first conversion
    only to ask whether the input is a pandas object (apache/arrow#34994); curate never hands it one.

    That first look is made to find no pandas; pyarrow retries the import the first time something really needs
    pandas (``to_pandas``, ``from_pandas``), which then works as usual. Done only at a process's start (pandas not
    imported yet), by the program's entry point: inside another program pandas objects may be on their way to
    Arrow, and Arrow would take them for plain sequences until that retry.
    """
    if "pandas" in sys.modules:
        return
    import pyarrow as pa

    finder = _NoPandasYet()
    sys.meta_path.insert(0, finder)
    try:
        pa.array([0])
    finally:
        sys.meta_path.remove(finder)


def main(argv: list[str] | None = None) -> int:
    if argv is None:  # the program itself, not a caller inside another program
        _arrow_without_pandas()
        os.environ.setdefault("PYDANTIC_DISABLE_PLUGINS", "__all__")  # no scan of every package's entry points
    commands = {"run": _cmd_run, "validate": _cmd_validate, "inspect": _cmd_inspect, "lm": _cmd_lm,
                "classifier": _cmd_classifier, "mix": _cmd_mix, "card": _cmd_card, "config": _cmd_config}
    return cli.run(_parser(), commands, argv, interrupted="run the same command again to resume")


if __name__ == "__main__":
    sys.exit(main())
