"""Result files of an evaluation run, each written atomically: metrics.json, predictions.jsonl, report.md
and the figures it shows."""

from __future__ import annotations

import math
from pathlib import Path

from govtune.data import papers


def _f(x) -> str:
    return "-" if x is None or (isinstance(x, float) and not math.isfinite(x)) else f"{x:.1f}"


def xnli_markdown(metrics: dict, figure: str | None) -> str:
    langs = metrics["languages"]
    lines = ["## XNLI", "", "| language | n | accuracy (%) | ECE (%) | truncated |", "|---|---|---|---|---|"]
    lines += [f"| {lang} | {v['n']} | {_f(v['accuracy'])} | {_f(v['ece'])} | {v['truncated']} |"
              for lang, v in langs.items()]
    lines += ["", f"Macro **{_f(metrics['macro'])}**, parity gap Δ **{_f(metrics['parity_gap'])}**, "
                  f"Avg-ECE **{_f(metrics['avg_ece'])}** (percent; ECE: 15 equal-width bins, top-label, L1)."]
    if "avg_ece_ts" in metrics:
        lines += ["", "### Temperature scaling", "",
                  f"One temperature per language, fit by NLL on validation rows disjoint from the test rows "
                  f"(`{metrics.get('run', {}).get('calibrate_on', 'validation examples')}`), applied to the test "
                  f"probabilities; accuracy is unchanged. Avg-ECE {_f(metrics['avg_ece'])} -> "
                  f"**{_f(metrics['avg_ece_ts'])}**.", "",
                  "| language | validation n | T | ECE before (%) | ECE after (%) |", "|---|---|---|---|---|"]
        lines += [f"| {lang} | {v['calibration_n']} | {v['temperature']:.3f} | {_f(v['ece'])} | {_f(v['ece_ts'])} |"
                  for lang, v in langs.items()]
    rob = metrics.get("robustness")
    if rob:
        lines += ["", "### Orthographic robustness", "",
                  f"Macro accuracy clean {_f(rob['macro_clean'])} -> perturbed {_f(rob['macro_perturbed'])}: "
                  f"drop **{_f(rob['macro_drop'])}** points (seed {rob['seed']}; {rob['unchanged']} examples no "
                  f"operation changes stay clean).", "",
                  "| operation | n | clean acc. | perturbed acc. | drop |", "|---|---|---|---|---|"]
        lines += [f"| {op} | {v['n']} | {_f(v['clean_accuracy'])} | {_f(v['perturbed_accuracy'])} | {_f(v['drop'])} |"
                  for op, v in rob["by_operation"].items()]
    if figure:
        lines += ["", f"![reliability diagram]({figure})"]
    return "\n".join(lines)


def flores_markdown(metrics: dict, figure: str | None) -> str:
    lines = ["## FLORES", "", "| direction | n | BLEU | chrF++ | truncated | sacreBLEU signature |",
             "|---|---|---|---|---|---|"]
    lines += [f"| {p} | {v['n']} | {_f(v['bleu'])} | {_f(v['chrf'])} | {v['truncated']} | `{v['signature']}` |"
              for p, v in metrics["pairs"].items()]
    lines += ["", f"Average BLEU **{_f(metrics['average_bleu'])}**, direction gap Δ "
                  f"**{_f(metrics['direction_gap'])}**, average chrF++ {_f(metrics['average_chrf'])}."]
    if figure:
        lines += ["", f"![BLEU and chrF++ per direction]({figure})"]
    return "\n".join(lines)


def report_markdown(metrics: dict, figure: str | None = None) -> str:
    run = metrics.get("run", {})
    t = metrics.get("timing", {})
    head = ["# govtune evaluation", "",
            f"Model `{run.get('model')}`" + (f" with adapter `{run['adapter']}`" if run.get("adapter") else "")
            + f", data `{run.get('data')}` split `{run.get('split')}`.", "",
            f"Throughput: {_f(t.get('examples_per_second'))} examples/s over {t.get('examples')} examples "
            f"(batch size {t.get('batch_size')}, {run.get('threads')} CPU threads / device {run.get('device')}).",
            "", ""]
    body = xnli_markdown(metrics, figure) if papers.classifies(metrics["task"]) else flores_markdown(metrics, figure)
    return "\n".join(head) + body + "\n"


def flores_figure(metrics: dict, path) -> Path:
    from govtune.evaluation.plots import plt, save_figure  # matplotlib: slow to import, needed for figures only

    pairs = list(metrics["pairs"])
    fig, ax = plt.subplots(figsize=(1.6 + 1.2 * len(pairs), 3.2))
    x = range(len(pairs))
    ax.bar([i - 0.2 for i in x], [metrics["pairs"][p]["bleu"] for p in pairs], width=0.4, label="BLEU")
    ax.bar([i + 0.2 for i in x], [metrics["pairs"][p]["chrf"] for p in pairs], width=0.4, label="chrF++")
    ax.set_xticks(list(x), pairs)
    ax.set_ylabel("score")
    ax.legend(fontsize=8)
    return save_figure(fig, path)
