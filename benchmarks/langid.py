"""Accuracy and speed of the `langid` step on real sentences in ~180 languages, against raw fastText.

What it measures, on the Universal Declaration of Human Rights in NLTK's ``udhr2.zip`` (``../shared/data/langid``;
one file per language or variant, the language in the file name: ``eng.txt``, ``fra.txt``, ``cmn_hans.txt``):

* unit: a line: the non-empty lines of each file (~90 per file), reported for all of them and for "sentences",
  the lines of at least 20 characters once trimmed (~60 per file; the rest are headings such as "Article 12",
  "Preamble" or placeholders such as "[missing]", which say little about the language);
* truth: the file's ISO 639-3 code mapped to lid.176's label (``LID_LABEL`` below: ISO 639-1 where it exists,
  a macrolanguage's members to its code, e.g. ``arb`` -> ``ar``, ``pes`` -> ``fa``, ``quz`` -> ``qu``). Files whose
  language lid.176 does not know (its labels: ``model.get_labels()`` of ``curate.models.default_lid_model()``),
  files named by number (no language code) and files with no non-empty line are skipped and counted, with why;
* (a) ``step``: what the pipeline does: ``curate.steps.langid.Langid.annotate`` on a pyarrow table of the lines
  (default params: the first 10,000 characters, whitespace folded, case kept; no letter or digit -> ``unknown``,
  counted as wrong), on Arrow tables of 1,000 rows (the executor's batch size) built before timing, as the
  pipeline's documents already are Arrow;
* (b) ``raw``: the same lid.176 model called directly (``model.predict(lines, k=1)``) on the raw line text (Python
  strings), only newlines removed (fastText needs one line), in the same batches;
* top-1 accuracy per file and overall (micro: over lines; macro: mean over files), the share of lines at or above
  the step's default ``threshold`` (0.65) and the accuracy among them, and the number of lines on which (a) and (b)
  predict a different label;
* speed: lines/s of (a) and (b) over all evaluated lines, in this process, the two alternating, best of
  ``--repeat`` (3) rounds, after waiting until no other benchmark (pipeline/minhash/dedup) runs and the machine is
  otherwise idle (taken again, up to 6 times, when other processes kept more than 0.25 cores busy meanwhile; the
  load seen is reported).

Prints the overall table and the ``--worst`` (15) files with the lowest step accuracy on sentences; appends both to
``benchmarks/RESULTS.md``. The table of every file goes to ``benchmarks/.work/langid/per_file.md``, the skipped
files with the reason to ``benchmarks/.work/langid/skipped.txt``.

Run (from the project root, with the project's virtualenv):

    python benchmarks/langid.py                # ~1 min
    python benchmarks/langid.py --no-record    # print only
    python benchmarks/langid.py --no-wait      # smoke run: time at once even if other benchmarks run; not recorded
"""

from __future__ import annotations

import argparse
import sys
import zipfile
from collections import Counter
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import pyarrow as pa

sys.path.insert(0, str(Path(__file__).resolve().parent))

from contention import timed_when_quiet  # noqa: E402
from report import (ROOT, SHARED, WORK, add_no_record_no_wait, append_results, command_line,  # noqa: E402
                    git_commit, header, markdown)

UDHR = SHARED / "langid" / "udhr2.zip"
BATCH = 1000
THRESHOLD = 0.65
SENTENCE_CHARS = 20
"""a line of at least this many characters (trimmed) counts as a sentence"""
OUT = WORK / "langid"

LID_LABEL: dict[str, str] = {
    # ISO 639-3 (the part of the file name before "_") -> lid.176 label
    "afr": "af", "amh": "am", "arb": "ar", "ast": "ast", "azj": "az", "bcl": "bcl", "bel": "be", "ben": "bn",
    "bod": "bo", "bos": "bs", "bre": "br", "bul": "bg", "cat": "ca", "ceb": "ceb", "ces": "cs", "ckb": "ckb",
    "cmn": "zh", "cos": "co", "cym": "cy", "dan": "da", "deu": "de", "div": "dv", "ell": "el", "eml": "eml",
    "eng": "en", "epo": "eo", "est": "et", "eus": "eu", "fin": "fi", "fra": "fr", "gla": "gd", "gle": "ga",
    "glg": "gl", "gug": "gn", "guj": "gu", "hat": "ht", "heb": "he", "hin": "hi", "hrv": "hr", "hsb": "hsb",
    "hun": "hu", "hye": "hy", "ido": "io", "ilo": "ilo", "ina": "ia", "ind": "id", "isl": "is", "ita": "it",
    "jav": "jv", "jpn": "ja", "kan": "kn", "kat": "ka", "kaz": "kk", "khk": "mn", "khm": "km", "kir": "ky",
    "kor": "ko", "lao": "lo", "lat": "la", "lav": "lv", "lit": "lt", "ltz": "lb", "mai": "mai", "mal": "ml",
    "mar": "mr", "min": "min", "mkd": "mk", "mlt": "mt", "mya": "my", "nds": "nds", "nep": "ne", "nld": "nl",
    "nno": "nn", "nob": "no", "oss": "os", "pam": "pam", "pan": "pa", "pbu": "ps", "pes": "fa", "plt": "mg",
    "pnb": "pnb", "pol": "pl", "por": "pt", "roh": "rm", "ron": "ro", "rus": "ru", "sah": "sah", "san": "sa",
    "sco": "sco", "slk": "sk", "slv": "sl", "som": "so", "spa": "es", "srp": "sr", "sun": "su", "swe": "sv",
    "swh": "sw", "tam": "ta", "tat": "tt", "tgk": "tg", "tgl": "tl", "tha": "th", "tuk": "tk", "tur": "tr",
    "tyv": "tyv", "uig": "ug", "ukr": "uk", "urd": "ur", "uzn": "uz", "vec": "vec", "vep": "vep", "vie": "vi",
    "war": "war", "wln": "wa", "ydd": "yi", "yor": "yo",
    # not the code lid.176 uses for the same letters: ISO 639-3 "als" is Tosk Albanian (lid's "als" is Alemannic)
    "als": "sq",
    # NLTK's names that are not ISO 639-3 codes
    "fri": "fy",   # Western Frisian (ISO 639-3 fry)
    "mly": "ms",   # Malay (ISO 639-3 zsm/zlm)
    # members of a group lid.176 has one label for
    "bho": "bh", "mag": "bh",  # Bhojpuri, Magahi: Bihari (lid's bh)
    "nhn": "nah",              # Central Nahuatl: Nahuatl (lid's nah)
    "src": "sc",               # Logudorese Sardinian: Sardinian
    "auv": "oc", "lnc": "oc", "prv": "oc",  # Auvergnat, Languedocien, Provençal: retired codes, now Occitan
    **{q: "qu" for q in ("qud", "qug", "quy", "quz", "qva", "qvc", "qvh", "qvm", "qvn", "qwh", "qxa", "qxn",
                         "qxu")},  # Quechua varieties (quc is K'iche', a Mayan language: not among them)
}


@dataclass
class LangFile:
    name: str
    """file name without .txt, e.g. cmn_hans"""
    label: str
    lines: list[str]


@dataclass
class Skipped:
    name: str
    reason: str


def read_udhr(path: Path = UDHR) -> dict[str, str]:
    """File stem -> text of every ``*.txt`` in the zip."""
    with zipfile.ZipFile(path) as z:
        return {Path(n).stem: z.read(n).decode("utf-8") for n in sorted(z.namelist()) if n.endswith(".txt")}


def model_labels() -> set[str]:
    """lid.176's labels without ``__label__``."""
    from curate.models import default_lid_model, load_fasttext

    return {x[9:] for x in load_fasttext(default_lid_model()).get_labels()}


def select_files(texts: dict[str, str], labels: set[str]) -> tuple[list[LangFile], list[Skipped]]:
    """Files to evaluate (with their non-empty lines) and the skipped ones with the reason."""
    files, skipped = [], []
    for name, text in texts.items():
        code = name.split("_")[0]
        lines = [x for x in text.split("\n") if x.strip()]
        if code.isdigit():
            skipped.append(Skipped(name, "no language code in the file name"))
        elif code not in LID_LABEL:
            skipped.append(Skipped(name, "language not among lid.176's labels"))
        elif LID_LABEL[code] not in labels:
            skipped.append(Skipped(name, f"mapped label {LID_LABEL[code]!r} not among lid.176's labels"))
        elif not lines:
            skipped.append(Skipped(name, "no non-empty line"))
        else:
            files.append(LangFile(name, LID_LABEL[code], lines))
    return files, skipped


def make_step() -> Any:
    from curate.steps.base import StepContext
    from curate.steps.langid import Langid, LangidParams

    step = Langid(LangidParams(), StepContext(seed=0, partitions=1))
    step.setup()
    return step


def arrow_batches(lines: list[str]) -> list[pa.Table]:
    """The lines as the pipeline holds them: Arrow tables of BATCH rows with ``text`` and ``domain``."""
    return [pa.table({"text": pa.array(lines[i:i + BATCH], pa.string()),
                      "domain": pa.array(["udhr"] * len(lines[i:i + BATCH]), pa.string())})
            for i in range(0, len(lines), BATCH)]


def step_predict(step: Any, batches: list[pa.Table]) -> tuple[list[str], np.ndarray]:
    """(a): the step's annotate on the Arrow batches (built beforehand: the pipeline's documents are Arrow)."""
    langs: list[str] = []
    scores = []
    for batch in batches:
        out = step.annotate(batch)
        langs += out["lang"].to_pylist()
        scores.append(out["lang_score"].to_numpy())
    return langs, np.concatenate(scores)


def raw_predict(model: Any, lines: list[str]) -> tuple[list[str], np.ndarray]:
    """(b): lid.176 on the raw lines (newlines removed only), in the same batches."""
    langs: list[str] = []
    scores = []
    for i in range(0, len(lines), BATCH):
        labels, probs = model.predict([x.replace("\n", " ") for x in lines[i:i + BATCH]], k=1)
        langs += [lab[0][9:] for lab in labels]
        scores.append(np.array([p[0] for p in probs], dtype=np.float32))
    return langs, np.concatenate(scores)


@dataclass
class PathResult:
    name: str
    correct: np.ndarray
    """per line"""
    confident: np.ndarray
    """per line: score >= THRESHOLD"""
    labels: list[str]
    scores: np.ndarray


def score_path(name: str, truth: list[str], labels: list[str], scores: np.ndarray) -> PathResult:
    correct = np.array([a == b for a, b in zip(truth, labels)])
    return PathResult(name, correct, scores >= THRESHOLD, labels, scores)


def sentence_mask(files: list[LangFile]) -> np.ndarray:
    """Per line: at least SENTENCE_CHARS characters once trimmed."""
    return np.array([len(x.strip()) >= SENTENCE_CHARS for f in files for x in f.lines])


@dataclass
class FileScore:
    file: LangFile
    lines: slice
    sentences: np.ndarray
    """indices of the file's sentence lines"""


def file_scores(files: list[LangFile], sentence: np.ndarray) -> list[FileScore]:
    out, i = [], 0
    for f in files:
        out.append(FileScore(f, slice(i, i + len(f.lines)), i + np.flatnonzero(sentence[i:i + len(f.lines)])))
        i += len(f.lines)
    return out


def _mean(x: np.ndarray) -> float:
    return float(x.mean()) if len(x) else float("nan")


def overall_table(fs: list[FileScore], sentence: np.ndarray, results: list[PathResult],
                  speed: dict[str, float]) -> str:
    rows = []
    everything = np.ones(len(sentence), dtype=bool)
    for subset, mask in (("sentences", sentence), ("all lines", everything)):
        for r in results:
            macro = [_mean(r.correct[np.flatnonzero(mask[f.lines]) + f.lines.start]) for f in fs]
            macro = [m for m in macro if m == m]
            conf = r.confident & mask
            rows.append([subset, r.name, f"{int(mask.sum()):,}", f"{len(macro)}", f"{_mean(r.correct[mask]):.4f}",
                         f"{np.mean(macro):.4f}", f"{conf.sum() / mask.sum():.3f}",
                         f"{_mean(r.correct[conf]):.4f}", f"{speed[r.name]:,.0f}"])
    return markdown(["lines", "path", "lines", "files", "accuracy (micro: lines)", "accuracy (macro: files)",
                     f"share with score >= {THRESHOLD}", f"accuracy when score >= {THRESHOLD}",
                     "lines/s (all lines)"], rows, "llrrrrrrr")


def file_rows(fs: list[FileScore], step: PathResult, raw: PathResult) -> list[tuple[float, list[str]]]:
    """(sort key, row) per file: accuracy on sentences and on all lines for both paths, wrong labels."""
    out = []
    for f in fs:
        idx = f.sentences
        wrong = Counter(step.labels[i] for i in idx if not step.correct[i])
        acc = _mean(step.correct[idx])
        out.append((acc if acc == acc else -1.0,
                    [f.file.name, f.file.label, str(len(idx)), f"{acc:.3f}", f"{_mean(raw.correct[idx]):.3f}",
                     str(len(f.file.lines)), f"{_mean(step.correct[f.lines]):.3f}",
                     f"{_mean(raw.correct[f.lines]):.3f}",
                     ", ".join(f"{lab} {c}" for lab, c in wrong.most_common(3))]))
    return out


def files_table(rows: list[tuple[float, list[str]]]) -> str:
    return markdown(["file", "truth", "sentences", "step accuracy", "raw accuracy", "all lines", "step accuracy",
                     "raw accuracy", "most frequent wrong labels on sentences (step)"], [r for _, r in rows],
                    "llrrrrrrl")


def disagreements(files: list[LangFile], step: PathResult, raw: PathResult) -> list[tuple[str, str, str, str]]:
    """(file, line, step label, raw label) for every line where the two paths differ."""
    out = []
    i = 0
    for f in files:
        for line in f.lines:
            if step.labels[i] != raw.labels[i]:
                out.append((f.name, line.strip()[:80], step.labels[i], raw.labels[i]))
            i += 1
    return out


def skipped_summary(skipped: list[Skipped]) -> str:
    by = Counter(s.reason for s in skipped)
    parts = []
    for reason, n in by.most_common():
        names = [s.name for s in skipped if s.reason == reason]
        shown = ", ".join(names[:12]) + (f", … ({len(names) - 12} more)" if len(names) > 12 else "")
        parts.append(f"{n} {reason} ({shown})")
    return "; ".join(parts)


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--repeat", type=int, default=3, help="timing rounds; the best is reported (default 3)")
    ap.add_argument("--worst", type=int, default=15, help="files shown with the lowest step accuracy")
    add_no_record_no_wait(ap)
    return ap.parse_args(argv)


def main(argv: list[str] | None = None) -> None:
    a = parse_args(argv)
    commit = git_commit()
    from curate.models import default_lid_model, load_fasttext

    labels = model_labels()
    files, skipped = select_files(read_udhr(), labels)
    lines = [x for f in files for x in f.lines]
    truth = [f.label for f in files for _ in f.lines]
    step, model = make_step(), load_fasttext(default_lid_model())
    batches = arrow_batches(lines)
    step_res = score_path("step", truth, *step_predict(step, batches))
    raw_res = score_path("raw", truth, *raw_predict(model, lines))
    sentence = sentence_mask(files)
    fs = file_scores(files, sentence)
    no_content = sum(1 for lab in step_res.labels if lab == "unknown")
    seconds, load = timed_when_quiet({"step": lambda: step_predict(step, batches),
                                      "raw": lambda: raw_predict(model, lines)}, a.repeat, wait=not a.no_wait)
    speed = {k: len(lines) / v for k, v in seconds.items()}
    diff = disagreements(files, step_res, raw_res)
    overall = overall_table(fs, sentence, [step_res, raw_res], speed)
    rows = file_rows(fs, step_res, raw_res)
    worst = files_table(sorted(rows, key=lambda r: (r[0], r[1][0]))[:a.worst])
    OUT.mkdir(parents=True, exist_ok=True)
    (OUT / "per_file.md").write_text(files_table(sorted(rows, key=lambda r: r[1][0])) + "\n", encoding="utf-8")
    (OUT / "skipped.txt").write_text("".join(f"{x.name}\t{x.reason}\n" for x in skipped), encoding="utf-8")
    langs = sorted({f.label for f in files})
    summary = (f"{len(files)} files evaluated ({len(langs)} lid.176 labels, {len(lines):,} non-empty lines, "
               f"{int(sentence.sum()):,} of them sentences of >= {SENTENCE_CHARS} characters); "
               f"{len(skipped)} of {len(files) + len(skipped)} files skipped: {skipped_summary(skipped)}.")
    same = np.array([x == y for x, y in zip(step_res.labels, raw_res.labels)])
    gap_sent = _mean(step_res.correct[sentence]) - _mean(raw_res.correct[sentence])
    verdict = (f"The two paths predict a different label on {len(diff)} of {len(lines):,} lines"
               + (" (" + "; ".join(f"{d[0]} {d[1]!r}: step {d[2]}, raw {d[3]}" for d in diff[:5])
                  + (" …" if len(diff) > 5 else "") + ")" if diff else "")
               + f"; where they agree, the largest score difference is "
               f"{np.abs(step_res.scores[same] - raw_res.scores[same]).max():.2g}. Accuracy step - raw = "
               f"{gap_sent:+.4f} on sentences, {step_res.correct.mean() - raw_res.correct.mean():+.4f} on all lines. "
               f"{no_content} lines have no letter or digit: the step calls them `unknown` (counted wrong).")
    print(summary, "\n", sep="")
    print(overall, "\n")
    print(verdict, "\n")
    print(f"The {a.worst} files with the lowest step accuracy on sentences:\n")
    print(worst)
    print(f"\nevery file: {(OUT / 'per_file.md').relative_to(ROOT)}; "
          f"skipped: {(OUT / 'skipped.txt').relative_to(ROOT)}")
    print(f"\nother processes kept {load:.2f} cores busy during the timing")
    if not (a.no_record or a.no_wait):
        entry = header("langid: lid.176 accuracy and speed, step vs raw fastText (UDHR lines)",
                       command_line(), commit)
        entry += [f"- speed: best of {a.repeat} alternating rounds in one process, batches of {BATCH} lines; other "
                  f"processes kept {load:.2f} cores busy during the timing", "",
                  summary, "", overall, "", verdict, "",
                  f"The {a.worst} files with the lowest step accuracy on sentences (every file: "
                  f"`benchmarks/.work/langid/per_file.md`):", "", worst]
        append_results("\n".join(entry))
        print("\nappended to benchmarks/RESULTS.md")


if __name__ == "__main__":
    main()
