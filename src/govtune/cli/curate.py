"""`govtune curate`: curate a pool to stage C0/C1/C2 and optionally draw the k-shot set."""

from __future__ import annotations

import argparse
from pathlib import Path

from govtune.cli.curate_task import curate_task_cli
from govtune.governance.columns import parse_columns
from govtune.governance.config import CurationConfig
from govtune.governance.io import load_pool, read_jsonl, write_json, write_jsonl, write_text
from govtune.governance.pipeline import check_languages, curate
from govtune.governance.records import XNLI_LABELS, check_labels
from govtune.governance.report import report_markdown
from govtune.governance.sampling import sample_kshot_file
from govtune.governance.sources import iter_pool
from govtune.governance.stream import BATCH, curate_to_files


def register(subparsers) -> None:
    p = subparsers.add_parser(
        "curate", help="label-free data governance: language ID, deduplication, quality filters, k-shot",
        description="Curate a pool of records (JSON lines, CSV or Parquet with text or premise+hypothesis, lang, "
                    "optional label and id; other field names through --columns) and write kept.jsonl, "
                    "dropped.jsonl, report.json, report.md (and shots.jsonl with --shots) to --out. The pool is "
                    "streamed in batches (memory does not grow with it beyond the deduplication index), except "
                    "with --ppl-model, whose per-language perplexity cut needs the whole pool in memory.")
    p.add_argument("--input", default=None,
                   help="JSON-lines, CSV or Parquet file, a directory saved by datasets' save_to_disk, or a hub "
                        "dataset name (streamed)")
    p.add_argument("--task", default=None,
                   help="a task file (docs/tasks.md) instead of --input/--langs: its train split, read through "
                        "its columns, curated against its validation and test rows")
    p.add_argument("--columns", default="",
                   help="your field names for govtune's: TARGET=FIELD,... with targets text, text_pair, label, "
                        "lang, id, e.g. text=body,lang=language,label=intent")
    p.add_argument("--labels", default=None,
                   help="valid labels: a comma-separated list (billing,refund,...), 'any' (not checked) or 'xnli' "
                        "(entailment, neutral, contradiction or 0/1/2). Default: xnli, or any when --columns "
                        "maps label")
    p.add_argument("--split", default="train", help="split to read when --input is a dataset")
    p.add_argument("--langs", default=None, help="comma-separated language codes (ISO 639-1, ISO 639-3 or FLORES-200: "
                                                  "en,zho_Hant,swh), required with --input; with --skip langid "
                                                  "any codes")
    p.add_argument("--stage", default="c2", choices=["c0", "c1", "c2"], help="last stage to run")
    p.add_argument("--out", required=True, help="output directory")
    p.add_argument("--shots", type=int, default=None, help="draw this many examples per language")
    p.add_argument("--seed", type=int, default=0, help="seed of the k-shot draw")
    p.add_argument("--protected", default=None,
                   help="evaluation records (JSON lines); pool records that duplicate them are dropped as leakage")
    p.add_argument("--eval-set", action="append", default=None, metavar="NAME=FILE",
                   help="an evaluation set to decontaminate against (repeatable): JSON lines, each a record with "
                        "text (or premise and hypothesis), a string or a list of strings; a pool record sharing a "
                        "13-word (50-character) n-gram with one is dropped. Default: the --protected records")
    p.add_argument("--skip-invalid", action="store_true",
                   help="drop unusable lines to dropped.jsonl with their reason instead of stopping")
    p.add_argument("--ppl-model", default=None,
                   help="reference causal LM (name or path) for the C2 perplexity cut; without it C2 skips it")
    p.add_argument("--ppl-drop-percent", type=float, default=None,
                   help="per language, drop this percentage with the highest perplexity (default: 10)")
    p.add_argument("--dedup-threshold", type=float, default=None,
                   help="near-duplicate Jaccard threshold (default: 0.8)")
    p.add_argument("--min-lang-confidence", type=float, default=None,
                   help="language ID confidence below which a record is dropped (default 0.25)")
    p.add_argument("--langid-backend", default=None, choices=["auto", "lingua", "langid", "fasttext"],
                   help="language-ID backend (default auto: lingua when it covers every language, else fasttext)")
    p.add_argument("--langid-uncovered", default=None, choices=["refuse", "skip"],
                   help="a language the backend does not cover: refuse the pool (default) or skip language ID "
                        "for it alone")
    p.add_argument("--skip", default="", help="comma-separated steps to leave out of their stage: langid, pii, "
                   "dedup (evaluation leakage is still removed), decontam, quality, perplexity")
    p.add_argument("--pii-action", default=None, choices=["redact", "drop"],
                   help="personal data (C1 and C2): redact with typed placeholders (default) or drop the record")
    p.add_argument("--pii-types", default=None,
                   help="entity types the PII step finds, comma-separated (default all: EMAIL, PHONE, IP_ADDRESS, "
                        "CREDIT_CARD, IBAN, URL_CREDENTIALS)")
    p.add_argument("--batch-size", type=int, default=BATCH, help="records per streamed batch")
    p.add_argument("--no-progress", action="store_true", help="no progress bars")
    p.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    if not args.task and not (args.input and args.langs):
        raise ValueError("give --input and --langs (or a task file with --task)")
    config = CurationConfig(skip_invalid=args.skip_invalid,
                            skip=tuple(x.strip() for x in args.skip.split(",") if x.strip()))
    if args.ppl_drop_percent is not None:
        config.perplexity.drop_top_percent = args.ppl_drop_percent
        config.perplexity.__post_init__()
    if args.dedup_threshold is not None:
        config.dedup.threshold = args.dedup_threshold
        config.dedup.__post_init__()
    if args.min_lang_confidence is not None:
        config.langid.min_confidence = args.min_lang_confidence
        config.langid.__post_init__()
    if args.langid_backend:
        config.langid.backend = args.langid_backend
    if args.pii_action or args.pii_types:
        from govtune.governance.pii_config import PiiConfig  # the curation package loads lingua: when asked

        config.pii = PiiConfig(types=args.pii_types, action=args.pii_action or "redact")
    if args.langid_uncovered:
        config.langid.uncovered = args.langid_uncovered
    # Language codes are checked against the backend that will identify them; with --skip langid any code is
    # a language (one lingua does not know, a dialect or a code of the user's own).
    langs = check_languages(args.langs, config.language_check) if args.langs else None
    if args.shots is not None and args.shots < 1:
        raise ValueError(f"--shots {args.shots}: give a positive number of examples per language")
    if args.task:
        return curate_task_cli(args, config)  # the pool read through the task's columns

    columns = parse_columns(args.columns)
    labels = check_labels(args.labels if args.labels is not None else "any" if "label" in columns else XNLI_LABELS)
    protected = None
    if args.protected:
        protected, _ = read_jsonl(args.protected, None, skip_invalid=False, labels=labels, columns=columns,
                                  langid=config.language_check)
    eval_sets = read_eval_sets(args.eval_set) if args.eval_set else None
    out = Path(args.out)
    if args.ppl_model and args.stage == "c2":
        report = _curate_in_memory(args, langs, config, protected, labels, columns, out, eval_sets)
    else:
        rows = iter_pool(args.input, langs, labels=labels, columns=columns, skip_invalid=args.skip_invalid,
                         split=args.split, langid=config.language_check)
        report = curate_to_files(rows, langs, args.stage, out, protected=protected, config=config, labels=labels,
                                 batch_size=args.batch_size, progress=not args.no_progress, eval_sets=eval_sets)
    write_json(out / "report.json", report)
    write_text(out / "report.md", report_markdown(report))
    print(f"{report['input']} records: kept {report['kept']}, dropped {report['dropped']} "
          f"({', '.join(f'{k} {v}' for k, v in report['by_reason'].items()) or 'none'}) -> {out}")
    for note in report["notes"]:
        print(f"note: {note}")
    if args.shots:
        shots = sample_kshot_file(out / "kept.jsonl", langs, args.shots, args.seed, report=report)
        write_jsonl(out / "shots.jsonl", shots)
        print(f"{len(shots)} shots ({args.shots} per language, seed {args.seed}) -> {out / 'shots.jsonl'}")
    return 0


def read_eval_sets(specs: list[str]) -> dict[str, list]:
    """--eval-set NAME=FILE options as {name: rows}; each line of FILE is JSON (a record, string or list)."""
    import json

    sets: dict[str, list] = {}
    for spec in specs:
        name, sep, path = spec.partition("=")
        if not sep or not name.strip() or not path.strip():
            raise ValueError(f"--eval-set {spec!r}: give NAME=FILE, e.g. --eval-set xnli=eval.jsonl")
        if name in sets:
            raise ValueError(f"--eval-set: the name {name!r} is given twice: name each evaluation set once")
        if not Path(path).is_file():
            raise FileNotFoundError(f"--eval-set {name}: no file {path}")
        with open(path, encoding="utf-8") as f:
            try:
                sets[name] = [json.loads(line) for line in f if line.strip()]
            except json.JSONDecodeError as e:
                raise ValueError(f"--eval-set {name}: {path} is not JSON lines ({e})") from None
    return sets


def _curate_in_memory(args, langs, config, protected, labels, columns, out: Path, eval_sets=None) -> dict:
    """The whole pool in memory: the perplexity cut is a percentile over each language."""
    from govtune.models import load_model  # torch and transformers: only for the perplexity model

    records, rejected = load_pool(args.input, langs, args.skip_invalid, args.split, labels=labels, columns=columns,
                                  langid=config.language_check)
    model, tokenizer = load_model(args.ppl_model)
    result = curate(records, langs, args.stage, reference_model=model, reference_tokenizer=tokenizer,
                    protected=protected, config=config, progress=not args.no_progress, invalid=rejected,
                    labels=labels, eval_sets=eval_sets)
    write_jsonl(out / "kept.jsonl", result.kept)
    write_jsonl(out / "dropped.jsonl", result.dropped)
    return result.report
