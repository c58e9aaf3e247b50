"""How often each interval excludes its own point estimate: the percentile interval of every bootstrapped
XNLI metric against the method the metric registry gives it, on synthetic test sets (per language n
examples; logits N(0, spread) with `skill` added to the gold label's: 0 is chance).

    python bench/interval_containment.py --trials 40      # ~2 min on 2 cores; writes bench/results/interval_containment.md
"""

from __future__ import annotations

import argparse
import json
from collections import Counter
from pathlib import Path

import numpy as np

from govtune.data.xnli import LABELS
from govtune.evaluation import bootstrap as bs
from govtune.evaluation import metric_registry as registry

SETTINGS = [(40, 0.0, 0.05), (40, 0.0, 1.0), (40, 1.5, 1.0), (40, 3.0, 1.0)]  # (n per language, skill, spread)


def records(n: int, skill: float, spread: float, rng) -> list[dict]:
    out = []
    for lang in ("en", "zh", "hi"):
        for i in range(n):
            gold = int(rng.integers(3))
            logits = rng.normal(0.0, spread, 3)
            logits[gold] += skill
            p = np.exp(logits - logits.max())
            p /= p.sum()
            out.append({"language": lang, "id": f"{lang}{i}", "gold": LABELS[gold], "perturbation": None,
                        "prediction": LABELS[int(np.argmax(p))], "probs": dict(zip(LABELS, p.tolist()))})
    return out


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--trials", type=int, default=40)
    args = ap.parse_args()
    rng = np.random.default_rng(0)
    rows = []
    for n, skill, spread in SETTINGS:
        old, new = Counter(), Counter()
        for _ in range(args.trials):
            units = bs.xnli_units(records(n, skill, spread, rng))
            point, reps = bs.xnli_replicates(units, bs.identity(units)), bs.xnli_replicates(units)
            for key in reps:
                name = registry.metric("xnli", key).key
                estimate = point[key][0]
                lo, hi = bs.percentile_interval(reps[key])
                old[name] += not lo <= estimate <= hi
                lo, hi = bs.metric_interval("xnli", key, point, reps)
                new[name] += not lo - 1e-9 <= estimate <= hi + 1e-9
        for name in sorted(set(old) | set(new)):
            rows.append({"n": n, "skill": skill, "spread": spread, "metric": name,
                         "method": registry.metric("xnli", name.replace("{lang}", "en")).method,
                         "percentile_excludes": old[name], "registry_method_excludes": new[name],
                         "intervals": args.trials * (3 if "{lang}" in name else 1)})
    out = Path(__file__).parent / "results"
    (out / "interval_containment.json").write_text(json.dumps(rows, indent=1))
    lines = [f"# Intervals that exclude their own estimate ({args.trials} synthetic test sets per setting)", "",
             "| n | skill | spread | metric | registry method | percentile excludes | registry method excludes |",
             "|---|---|---|---|---|---|---|"]
    lines += [f"| {r['n']} | {r['skill']} | {r['spread']} | `{r['metric']}` | {r['method']} | "
              f"{r['percentile_excludes']} / {r['intervals']} | {r['registry_method_excludes']} / {r['intervals']} |"
              for r in rows if r["percentile_excludes"] or r["registry_method_excludes"]]
    (out / "interval_containment.md").write_text("\n".join(lines) + "\n")
    print("\n".join(lines))


if __name__ == "__main__":
    main()
