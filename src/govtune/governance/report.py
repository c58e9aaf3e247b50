"""The stage report: counts kept and dropped per stage, language and reason, as JSON and Markdown tables."""

from __future__ import annotations

from collections import Counter, defaultdict
from collections.abc import Sequence
from typing import Any

from govtune.governance.records import STAGES, Record, full_text, is_pair

_EXAMPLE_CHARS = 200


def _lang(record: Record) -> str:
    lang = record.get("lang")
    return lang if isinstance(lang, str) and lang else "?"


def _example(record: Record) -> dict[str, Any]:
    try:
        text = full_text(record) if "text" in record or is_pair(record) else str(record.get("raw", ""))
    except (TypeError, AttributeError):
        text = str(record.get("raw", ""))
    out = {k: record[k] for k in ("id", "line", "lang") if k in record}
    out["text"] = text if len(text) <= _EXAMPLE_CHARS else text[:_EXAMPLE_CHARS] + "..."
    return out


class ReportCounts:
    """What the report needs of every record, counted as records go by (kept ones need only their
    language): small dicts per stage, language and reason, and the first examples of each reason. A
    streamed curation feeds it record by record; `build_report` feeds it lists."""

    def __init__(self, examples_per_reason: int = 3):
        self.examples_per_reason = examples_per_reason
        self.kept_by_lang: Counter = Counter()
        self.dropped: Counter = Counter()  # (lang, stage, reason)
        self.examples: dict[str, list] = defaultdict(list)
        # Records a transforming step kept rewritten (PII redaction), apart from the drops: per (lang, stage),
        # and the entities per (lang, stage, tag); examples show the rewritten text.
        self.changed: Counter = Counter()
        self.changed_tags: Counter = Counter()
        self.changed_examples: list[dict] = []

    def kept(self, record: Record) -> None:
        self.kept_by_lang[_lang(record)] += 1

    def drop(self, record: Record) -> None:
        self.dropped[_lang(record), record["stage"], record["reason"]] += 1
        if len(self.examples[record["reason"]]) < self.examples_per_reason:
            self.examples[record["reason"]].append(_example(record))

    def change(self, record: Record, stage: str, tags) -> None:
        """A record kept rewritten at `stage` (the rewritten record), with its tags' counts."""
        lang = _lang(record)
        self.changed[lang, stage] += 1
        for tag, n in tags.items():
            self.changed_tags[lang, stage, tag] += n
        if len(self.changed_examples) < self.examples_per_reason:
            self.changed_examples.append({**_example(record), "tags": dict(tags)})

    def report(self, n_input: int, langs: Sequence[str], stage: str, steps: list[dict], notes: list[str]) -> dict:
        last = STAGES.index(stage)
        exit_stage = Counter()  # (lang, index of the stage that dropped it, or last + 1 if kept)
        for lang, n in self.kept_by_lang.items():
            exit_stage[lang, last + 1] += n
        for (lang, s, _), n in self.dropped.items():
            exit_stage[lang, STAGES.index(s)] += n
        all_langs = list(langs) + sorted({lang for lang, _ in exit_stage} - set(langs))
        stages: dict[str, Any] = {}
        for s_idx, s in enumerate(STAGES[:last + 1]):
            reached = {lang: sum(n for (l2, e), n in exit_stage.items() if l2 == lang and e >= s_idx)
                       for lang in all_langs}
            by_reason: dict[str, dict[str, int]] = defaultdict(dict)
            for (lang, s2, reason), n in self.dropped.items():
                if s2 == s:
                    by_reason[lang][reason] = by_reason[lang].get(reason, 0) + n
            out_n = {lang: reached[lang] - sum(by_reason.get(lang, {}).values()) for lang in all_langs}
            changed_tags: dict[str, dict[str, int]] = defaultdict(dict)
            for (lang, s2, tag), n in self.changed_tags.items():
                if s2 == s:
                    changed_tags[lang][tag] = n
            stages[s] = {"input": sum(reached.values()), "kept": sum(out_n.values()),
                         "dropped": sum(reached.values()) - sum(out_n.values()),
                         "input_by_language": reached, "kept_by_language": out_n,
                         "dropped_by_language": {lang: dict(sorted(c.items())) for lang, c in by_reason.items()},
                         "changed_by_language": {lang: n for (lang, s2), n in sorted(self.changed.items()) if s2 == s},
                         "changed_by_type": {lang: dict(sorted(c.items())) for lang, c in sorted(changed_tags.items())}}
        reasons = Counter()
        for (_, _, reason), n in self.dropped.items():
            reasons[reason] += n
        n_kept, n_dropped = sum(self.kept_by_lang.values()), sum(self.dropped.values())
        return {
            "stage": stage, "languages": list(langs), "input": n_input, "kept": n_kept, "dropped": n_dropped,
            "kept_by_language": {lang: self.kept_by_lang.get(lang, 0) for lang in all_langs},
            "by_reason": dict(sorted(reasons.items())), "leakage": reasons.get("leakage", 0), "stages": stages,
            "steps": steps, "notes": list(notes), "examples": dict(self.examples),
            "changed": sum(self.changed.values()), "changed_examples": list(self.changed_examples),
        }


def build_report(n_input: int, kept: Sequence[Record], dropped: Sequence[Record], langs: Sequence[str],
                 stage: str, steps: list[dict], notes: list[str], examples_per_reason: int = 3,
                 changes: Sequence[tuple[Record, str, dict]] = ()) -> dict:
    """The report of a curation; `changes`: (rewritten record, stage, tags) of each record a step rewrote."""
    counts = ReportCounts(examples_per_reason)
    for r in kept:
        counts.kept(r)
    for r in dropped:
        counts.drop(r)
    for r, stage_of_change, tags in changes:
        counts.change(r, stage_of_change, tags)
    return counts.report(n_input, langs, stage, steps, notes)


def report_markdown(report: dict) -> str:
    """Markdown tables of a report from `build_report`."""
    langs = list(report["kept_by_language"])
    lines = [f"# Curation report (stage {report['stage'].upper()})", "",
             f"Input {report['input']} records, kept {report['kept']}, dropped {report['dropped']}"
             f" (leakage into protected evaluation data: {report['leakage']}).", ""]
    for note in report["notes"]:
        lines += [f"> {note}", ""]
    lines += ["## Records per stage and language", "",
              "| stage | " + " | ".join(f"{lang} in | {lang} kept" for lang in langs) + " | total kept |",
              "|---|" + "---|---|" * len(langs) + "---|"]
    for s, block in report["stages"].items():
        cells = [f"{block['input_by_language'].get(lang, 0)} | {block['kept_by_language'].get(lang, 0)}"
                 for lang in langs]
        lines.append(f"| {s.upper()} | " + " | ".join(cells) + f" | {block['kept']} |")
    lines += ["", "## Dropped per stage, reason and language", "",
              "| stage | reason | " + " | ".join(langs) + " | total |", "|---|---|" + "---|" * (len(langs) + 1)]
    for s, block in report["stages"].items():
        reasons = sorted({r for c in block["dropped_by_language"].values() for r in c})
        for reason in reasons:
            counts = [block["dropped_by_language"].get(lang, {}).get(reason, 0) for lang in langs]
            lines.append(f"| {s.upper()} | {reason} | " + " | ".join(map(str, counts)) + f" | {sum(counts)} |")
    lines += _changed_markdown(report, langs)
    if report["steps"]:
        lines += ["", "## Steps", "", "| step | stage | input | kept | seconds |", "|---|---|---|---|---|"]
        for st in report["steps"]:
            lines.append(f"| {st['name']} | {st['stage'].upper()} | {st['input']} | {st['kept']} | {st['seconds']} |")
        for st in (st for st in report["steps"] if "contaminated_by_set" in st):
            from govtune.governance.decontam import details_markdown

            lines += details_markdown(st)
    if report["examples"]:
        lines += ["", "## Dropped examples", ""]
        for reason, exs in report["examples"].items():
            lines.append(f"**{reason}**")
            lines.append("")
            for ex in exs:
                where = ", ".join(f"{k}={ex[k]}" for k in ("id", "line", "lang") if k in ex)
                text = ex["text"].replace("\n", " / ").replace("|", "\\|")
                lines.append(f"- ({where}) {text}")
            lines.append("")
    return "\n".join(lines).rstrip() + "\n"


def _changed_markdown(report: dict, langs: list[str]) -> list[str]:
    """Records kept rewritten (PII redaction) per stage, language and type, with examples (redacted text)."""
    if not report.get("changed"):
        return []
    lines = ["", "## Kept rewritten (PII redacted) per stage, type and language", "",
             f"{report['changed']} records had personal data replaced by placeholders, counted apart from the drops "
             f"(a later step may still drop one, e.g. as a duplicate once redacted); entities per type, and records "
             f"per language in the last row.", "",
             "| stage | type | " + " | ".join(langs) + " | total |", "|---|---|" + "---|" * (len(langs) + 1)]
    for s, block in report["stages"].items():
        by_type = block.get("changed_by_type", {})
        for tag in sorted({t for c in by_type.values() for t in c}):
            counts = [by_type.get(lang, {}).get(tag, 0) for lang in langs]
            lines.append(f"| {s.upper()} | {tag} | " + " | ".join(map(str, counts)) + f" | {sum(counts)} |")
        if block.get("changed_by_language"):
            counts = [block["changed_by_language"].get(lang, 0) for lang in langs]
            lines.append(f"| {s.upper()} | records | " + " | ".join(map(str, counts)) + f" | {sum(counts)} |")
    lines += ["", "Examples:", ""]
    for ex in report.get("changed_examples", []):
        text = ex["text"].replace("\n", " / ").replace("|", "\\|")
        lines.append(f"- ({ex.get('lang', '?')}; {', '.join(f'{k} {v}' for k, v in ex['tags'].items())}) {text}")
    return lines
