"""The governance ledger: what each curation decision removed from the few-shot pool, and what it moved.

A decision is the difference between two curation cells of the study, (with, without): each stage over
the previous stage the study ran (C1 over C0: language ID + PII redaction + dedup), and each full stage over a variant that
leaves a step out (C2 over `c2_no_ppl`: the perplexity cut). Per decision, stage, reason and language the
ledger gives the records removed (the curation reports' drop counts, with minus without), how many of them
the cells without the decision drew as shots (their seeded k-shot draw, re-run), and the paired bootstrap
difference (with - without, same method and seeds) of every headline metric.

`govtune.study.ledger.record_curation` (run by the grid after curating) copies the curation reports into
results.sqlite and computes the drawn counts from the curated pools in OUT/curation/; `governance_section`
here writes the report's governance section from the store alone."""

from __future__ import annotations

import json
from collections import Counter, defaultdict
from pathlib import Path

from govtune.constants import CURATION_STAGES
from govtune.data import papers
from govtune.evaluation.metric_registry import LANG_LABELS
from govtune.report.figures import _save, plt
from govtune.report.reading import Study, label, table
from govtune.report.significance import MARK, fmt_difference
from govtune.results.layout import StudyLayout
from govtune.results.store import load_curation

EXAMPLE_CHARS = 120  # a dropped example's text in the report, shortened
EXAMPLES_SHOWN = 2  # per reason


# --- what is compared ------------------------------------------------------------------------------------
def ledger_pairs(names: list[str], stage_of: dict[str, str]) -> list[tuple[str, str]]:
    """(with, without) decisions among the curation names: each stage over the previous stage present, then
    each variant's full stage over the variant (when the study ran that stage)."""
    stages = [s for s in CURATION_STAGES if s in names]
    pairs = list(zip(stages[1:], stages[:-1]))
    pairs += [(stage_of[v], v) for v in names if v not in CURATION_STAGES and stage_of.get(v) in names]
    return pairs


def curation_label(name: str) -> str:
    return name.upper() if name in CURATION_STAGES else name


# --- the report ----------------------------------------------------------------------------------------------
def _short(text: str) -> str:
    text = " ".join(str(text).split()).replace("|", "\\|")
    return text if len(text) <= EXAMPLE_CHARS else text[:EXAMPLE_CHARS - 3].rstrip() + "..."


def _dropped(cur: dict) -> dict[str, Counter]:
    """curation -> Counter {(stage, language, reason): records dropped}."""
    out: dict[str, Counter] = defaultdict(Counter)
    for r in cur["curation_counts"]:
        if r["kind"] == "dropped":
            out[r["curation"]][r["stage"], r["language"], r["reason"]] += r["n"]
    return out


def what_curation_did(s: "Study", cur: dict) -> str:
    """Records in, kept and dropped per curation, stage and language, with the reasons and a few examples."""

    study_langs = s.task_setting("xnli", "languages") or sorted({r["language"] for r in cur["curation_counts"]})
    counts = {(r["curation"], r["stage"], r["language"], r["kind"]): r["n"] for r in cur["curation_counts"]
              if r["kind"] in ("input", "kept")}
    dropped = _dropped(cur)
    rows = []
    for c in cur["curations"]:
        langs = study_langs if ":" not in c["curation"] else list(dict.fromkeys(  # a task file's own languages
            r["language"] for r in cur["curation_counts"] if r["curation"] == c["curation"]))
        for stage in CURATION_STAGES[:CURATION_STAGES.index(c["stage"]) + 1]:
            stage_drops = {key: n for key, n in dropped[c["curation"]].items() if key[0] == stage}
            if stage == "c0" and c["stage"] != "c0" and not stage_drops:
                continue  # C0 only validates: a row of its own only when it dropped something
            for lang in langs:
                n_in, n_kept = counts.get((c["curation"], stage, lang, "input")), counts.get(
                    (c["curation"], stage, lang, "kept"))
                if n_in is None:
                    continue
                reasons = sorted(((reason, n) for (st, lg, reason), n in stage_drops.items() if lg == lang),
                                 key=lambda x: (-x[1], x[0]))
                rows.append([curation_label(c["curation"]), stage.upper(), lang, str(n_in), str(n_kept),
                             str(n_in - n_kept), ", ".join(f"{reason} {n}" for reason, n in reasons) or "-"])
    steps = "; ".join(f"{curation_label(c['curation'])}: {c['steps'].replace(',', ', ') or 'no filter'}"
                      for c in cur["curations"])
    text = ("### Governance: what curation did\n\n"
            + (f"The few-shot pool ({papers.title(s.main_task)} rows {s.config.get('xnli_pool_rows')})"
               if s.main_task else
               "Each task's few-shot pool (its train split)")
            + " through each curation the study ran"
            + (" (a task file's pool as TASK:STAGE)" if any(":" in c["curation"] for c in cur["curations"]) else "")
            + f", before any shot was drawn: records in, kept and dropped per stage and language, with the reason "
            f"of every drop (a record is dropped by the first step that rejects it). Steps run: {steps}.\n\n"
            + table(["Curation", "Stage", "Language", "In", "Kept", "Dropped", "Dropped by reason"], rows))
    text += _changed_lines(cur)
    notes = sorted({note for c in cur["curations"] for note in json.loads(c["notes"] or "[]")})
    if notes:
        text += "\n\n" + "\n".join(f"> {note}" for note in notes)
    text += contamination_text(cur)
    by_reason: dict[str, list[dict]] = {}  # reason -> the examples of the first curation that has it
    for ex in cur["curation_examples"]:
        first = by_reason.setdefault(ex["reason"], [ex])
        if ex is not first[0] and ex["curation"] == first[0]["curation"] and len(first) < EXAMPLES_SHOWN:
            first.append(ex)
    if by_reason:
        text += "\n\nDropped examples (text shortened):\n\n" + "\n".join(
            f"- **{reason}**: " + "; ".join(f"({_where(e)}) “{_short(e['text'])}”" for e in exs)
            for reason, exs in by_reason.items())
    return text


def _changed_lines(cur: dict) -> str:
    """Records kept rewritten (PII redacted) per curation and language, with the entities per type."""
    changed: dict[tuple, dict[str, int]] = defaultdict(dict)
    for r in cur["curation_counts"]:
        if r["kind"] == "changed":
            changed[r["curation"], r["language"]][r["reason"] or "records"] = r["n"]
    if not changed:
        return ""
    lines = [f"- {curation_label(name)}, {lang}: {tags.pop('records', 0)} records redacted ("
             + ", ".join(f"{tag} {n}" for tag, n in sorted(tags.items())) + ")"
             for (name, lang), tags in sorted(changed.items())]
    return ("\n\nKept with personal data redacted (typed placeholders), apart from the drops above:\n\n"
            + "\n".join(lines))


def contamination_text(cur: dict) -> str:
    """Per curation, evaluation set and language: the pool records decontamination dropped for sharing an
    n-gram with that set (a record touching several sets counts under each)."""
    rows = [[curation_label(r["curation"]), r["stage"].upper(), r["reason"], r["language"], str(r["n"])]
            for r in cur["curation_counts"] if r["kind"] == "contamination" and r["n"]]
    if not rows:
        return ""
    return ("\n\nDecontamination dropped these pool records for sharing a word n-gram (a character n-gram in "
            "scripts written without spaces; sizes beside each set) with an evaluation set of the study, or for "
            "containing a shorter evaluation text whole (docs/governance.md):\n\n"
            + table(["Curation", "Stage", "Evaluation set (n-gram)", "Language", "Records"], sorted(rows)))


def _where(example: dict) -> str:
    return example["language"] + (f", id {example['example_id']}" if example["example_id"] else "")


# --- the ledger ------------------------------------------------------------------------------------------------
class Decision:
    """One ledger row group: the curation `with_` against `without`, same method and seeds."""

    def __init__(self, with_: str, without: str, steps: dict[str, str]):
        self.with_, self.without = with_, without
        before = steps.get(without, "").split(",")
        self.added = [x for x in steps.get(with_, "").split(",") if x and x not in before]
        self.removed: Counter = Counter()  # (stage, reason, language) -> records, with minus without
        self.drawn: Counter = Counter()  # (stage, reason, language) -> drawn shots removed, summed over seeds
        self.drawn_seeds: list[int] = []
        self.deltas: dict[str, dict[str, object]] = {}  # method -> metric -> bootstrap.Difference

    @property
    def label(self) -> str:
        added = f" (+{', +'.join(self.added)})" if self.added else ""
        return f"{curation_label(self.with_)} − {curation_label(self.without)}{added}"


def metric_columns(s: "Study") -> list[tuple[str, str, str]]:
    """(task, SQLite metric name, column title) of the ledger's deltas: the focus task's accuracies, gap and
    ECE, and the papers' translation task's average BLEU."""
    focus, translation = s.focus, s.translation_task
    cols = []
    if focus:
        langs = _languages(s)
        cols += [(focus, "macro", "Macro"),
                 *[(focus, f"languages.{lang}.accuracy", LANG_LABELS.get(lang, lang)) for lang in langs],
                 (focus, "parity_gap", "Δ (parity gap)"), (focus, "avg_ece", "Avg-ECE")]
    if translation:
        cols.append((translation, "average_bleu", "Avg BLEU"))
    return cols


def _languages(s: "Study") -> list[str]:
    """The languages of the ledger's columns: the study's, for the papers' task; a task file's own."""
    if s.focus and s.focus != s.main_task:
        return s.task_languages(s.focus)
    return s.languages


def build_ledger(s: "Study", cur: dict) -> list[Decision]:
    """Every decision between the study's trained curation cells, with its counts and metric deltas."""
    stage_of = {c["curation"]: c["stage"] for c in cur["curations"]}
    steps = {c["curation"]: c["steps"] for c in cur["curations"]}
    names = [n for n in s.stages if n in stage_of]
    dropped = _dropped(cur)
    decisions = []
    for with_, without in ledger_pairs(names, stage_of):
        d = Decision(with_, without, steps)
        for (stage, lang, reason), n in dropped[with_].items():
            d.removed[stage, reason, lang] += n
        for (stage, lang, reason), n in dropped[without].items():
            d.removed[stage, reason, lang] -= n
        d.removed = Counter({k: n for k, n in d.removed.items() if n})
        for r in cur["curation_shots"]:
            if (r["curation"], r["reference"], r["shots"]) == (with_, without, s.main_shots) and r["seed"] in s.seeds:
                d.drawn[r["stage"], r["reason"], r["language"]] += r["n"]
                if r["seed"] not in d.drawn_seeds:
                    d.drawn_seeds.append(r["seed"])
        for method in s.methods:
            a, b = s.cell(method, stage=with_), s.cell(method, stage=without)
            common = {r["seed"] for r in a} & {r["seed"] for r in b}
            a, b = ([r for r in runs if r["seed"] in common] for runs in (a, b))
            if not common:
                continue
            diffs = {}
            for task in {t for t, _, _ in metric_columns(s)}:
                diffs.update(s.intervals.difference(a, b, task) or {})
            d.deltas[method] = diffs
        decisions.append(d)
    return decisions


def ledger_text(s: "Study", decisions: list[Decision], figure: str | None) -> str:

    langs = _languages(s)
    rows = []
    for d in decisions:
        keys = sorted({(st, reason) for st, reason, _ in d.removed} | {(st, reason) for (st, reason, _), n
                                                                       in d.drawn.items() if n},
                      key=lambda x: (CURATION_STAGES.index(x[0]) if x[0] in CURATION_STAGES else 9, x[1]))
        for st, reason in keys:
            cells = [f"{d.removed.get((st, reason, lang), 0)} ({d.drawn.get((st, reason, lang), 0)})"
                     if d.drawn_seeds else str(d.removed.get((st, reason, lang), 0)) for lang in langs]
            total = sum(d.removed.get((st, reason, lang), 0) for lang in langs)
            rows.append([d.label, st.upper(), reason, *cells, str(total)])
        if not keys:
            rows.append([d.label, "-", "(no record removed)", *["0"] * len(langs), "0"])
    seeds = sorted({x for d in decisions for x in d.drawn_seeds})
    records = ("#### Records removed\n\n"
               "Per decision (curation with − curation without), stage, reason and language: records the decision "
               "removes from the pool (the curation reports' drop counts, with minus without; negative: records "
               "the decision keeps that the other dropped) and, in parentheses, how many of them the cells "
               f"without it drew as shots: the seeded {s.main_shots}-shot draw re-run on the pool without the "
               f"decision, summed over seed(s) {', '.join(map(str, seeds)) or '-'}.\n\n"
               + table(["Decision", "Stage", "Reason", *[f"{lang} removed (drawn)" for lang in langs], "Total"], rows))
    cols = metric_columns(s)
    delta_rows = []
    for d in decisions:
        for method, diffs in d.deltas.items():
            delta_rows.append([d.label, label(method), *[fmt_difference(diffs.get(key)) for _, key, _ in cols]])
    deltas = ("#### What the decisions moved\n\n"
              f"Paired bootstrap of the difference (with − without) between the two curation cells of the same "
              f"method, {s.main_shots}-shot, on the same test rows and the same 1,000 resamples; with several "
              f"seeds each side is the mean over the seeds both cells ran. Accuracy, parity gap and ECE in "
              f"points (for Δ and ECE lower is better, so a negative difference is an improvement), BLEU in "
              f"BLEU points; {MARK} marks an interval that excludes 0.\n\n{s.scope()}\n\n"
              + (table(["Decision", "Method", *[title for _, _, title in cols]], delta_rows) if delta_rows
                 else "No method ran under both curations of a decision."))
    text = ("### Governance ledger\n\nWhich governance decision moved which number: each curation stage over the "
            "previous one the study ran, and each full stage over a variant that leaves one of its steps out "
            "(`curation_variants`).\n\n" + records + "\n\n" + deltas)
    if figure:
        text += f"\n\n![governance ledger]({figure})"
    return text


def ledger_figure(s: "Study", decisions: list[Decision], path: Path) -> bool:
    """Per decision and method, each headline delta with its 95% paired interval."""
    cols = [c for c in metric_columns(s) if not c[1].startswith("languages.")]
    rows = [(f"{d.label}\n{label(m)}", diffs) for d in decisions for m, diffs in d.deltas.items()]
    if not rows or not any(key in diffs for _, diffs in rows for _, key, _ in cols):
        return False
    fig, axes = plt.subplots(1, len(cols), figsize=(3.2 * len(cols) + 1.5, 0.55 * len(rows) + 1.6), sharey=True,
                             squeeze=False)
    for ax, (_, key, title) in zip(axes[0], cols):
        for y, (_, diffs) in enumerate(rows):
            d = diffs.get(key)
            if d is not None:
                err = [[max(0.0, d.estimate - d.low)], [max(0.0, d.high - d.estimate)]]
                ax.errorbar(d.estimate, y, xerr=err, fmt="o", ms=5, capsize=3,
                            color="tab:red" if d.significant else "tab:blue")
        ax.axvline(0.0, color="grey", lw=0.8)
        ax.set_title(f"{title} (with − without)", fontsize=9)
        ax.grid(alpha=0.3, axis="x")
        ax.locator_params(axis="x", nbins=4)
    axes[0][0].set_yticks(range(len(rows)), [name for name, _ in rows], fontsize=8)
    axes[0][0].set_ylim(len(rows) - 0.5, -0.5)  # first decision on top
    fig.suptitle(f"Governance ledger ({s.model}, {s.main_shots}-shot; bars: paired 95% bootstrap intervals, "
                 f"red: excludes 0)", fontsize=10, y=1.0 + 0.3 / fig.get_figheight())
    _save(fig, path)
    return True


def governance_section(s: "Study") -> str | None:
    """What curation did (every study that curated), then the ledger when it ran several curation cells."""
    cur = load_curation(s.out_dir)
    if not cur["curations"]:
        return None
    parts = [what_curation_did(s, cur)]
    decisions = build_ledger(s, cur)
    if decisions:
        layout = StudyLayout(s.out_dir)
        layout.figures.mkdir(exist_ok=True)
        path = layout.figure("ledger.png")
        figure = path.relative_to(layout.root).as_posix() if ledger_figure(s, decisions, path) else None
        parts.append(ledger_text(s, decisions, figure))
    return "\n\n".join(parts)
