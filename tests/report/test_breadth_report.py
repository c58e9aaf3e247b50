"""The report of a classification task over 54 languages (a store written here, with known accuracies per
language): its languages are rows sorted by the focus method's accuracy within groups of script and tuning
set, the worst decile and the group means carry intervals, the decile gap equals its hand computation, the
report leads with its findings and states the interval method once, and the per-language figure exists."""

import re

import numpy as np
import pytest

from govtune.data import sib200 as sib
from govtune.languages import normalize_or_keep, script
from govtune.report.document import write_report
from govtune.results.store import record_curation, record_run, record_study, write_results_json

from synthetic_runs import TASK, classification_run

N = 10
LANGS = [normalize_or_keep(c) for c in sorted(sib.languages())[::3][:54]]
UNTUNED = set(LANGS[::5])  # their pools kept nothing: not in the tuning set


def _right(lang: str, method: str) -> int:
    """Examples of N right: spread over 0..N by language, the hybrid one more where it can."""
    base = (LANGS.index(lang) * 7) % (N + 1)
    return min(N, base + 1) if method == "hybrid" else base


def _run(method: str):
    return classification_run(f"{method}-k4-c0-s0", method, 0, 4, "c0", LANGS, N,
                              lambda lang, i: i < _right(lang, method))


@pytest.fixture(scope="module")
def report(tmp_path_factory):
    out = tmp_path_factory.mktemp("breadth")
    record_study(out, "breadth", "tiny-llama", "0" * 16, {"epochs": 1})
    runs = [_run("lora"), _run("hybrid")]
    for result, preds in runs:
        record_run(out, result, {}, preds)
    write_results_json(out, [r for r, _ in runs])
    record_curation(out, {"curations": [(f"{TASK}:c0", "c0", "[]", 100, 90, 10, "")],
                          "curation_counts": [(f"{TASK}:c0", "c0", lang, "kept", "", 0 if lang in UNTUNED else 5)
                                              for lang in LANGS]})
    write_report(out)
    return out, (out / "report.md").read_text(), runs


def _section(md: str, title: str) -> str:
    return md.split(title)[1].split("\n####")[0].split("\n###")[0]


def test_decile_gap_in_the_store_equals_a_hand_computation(report):
    _, md, runs = report
    acc = sorted(runs[1][0]["metrics"][TASK]["languages"][lang]["accuracy"] for lang in LANGS)
    hand = np.mean(acc[-6:]) - np.mean(acc[:6])  # 54 languages: a decile of 6
    assert runs[1][0]["metrics"][TASK]["decile_gap"] == pytest.approx(hand)
    low, high = runs[1][0]["ci95"][TASK]["decile_gap"]
    assert low <= hand <= high
    assert f"Hybrid {hand:.1f} [{low:.1f}, {high:.1f}]" in md  # the report reads the run's own


def test_languages_are_rows_sorted_within_groups_of_script_and_tuning_set(report):
    _, md, runs = report
    table = _section(md, "#### Accuracy per language (54 languages)")
    rows = [line for line in table.splitlines() if line.startswith("| ")][1:]
    assert len([r for r in rows if not r.startswith("| **")]) == 54  # every language, once
    header = table.splitlines()[[i for i, line in enumerate(table.splitlines()) if line.startswith("| ")][0]]
    assert header.count("|") == 7  # Language, Code, Script, Class, LoRA, Hybrid: not a column per language
    hybrid = runs[1][0]["metrics"][TASK]["languages"]
    groups, current = {}, None
    for row in rows:
        cells = [c.strip() for c in row.strip("|").split("|")]
        if cells[0].startswith("**"):
            current = cells[0]
            groups[current] = []
        else:
            groups[current].append(cells[1].strip("`"))
    seen_untuned = False
    for name, codes in groups.items():
        tuned = "not tuned on" not in name
        seen_untuned |= not tuned
        assert not (tuned and seen_untuned)  # the tuning set's groups first
        if name.startswith("**other scripts"):  # each of its scripts has fewer than 3 such languages
            assert all(sum(script(d) == script(c) and (d in UNTUNED) != tuned for d in LANGS) < 3 for c in codes)
        else:
            assert {script(c) for c in codes} == {re.match(r"\*\*(\w+)", name).group(1)}
        assert all((c in UNTUNED) != tuned for c in codes)
        accs = [hybrid[c]["accuracy"] for c in codes]
        assert accs == sorted(accs, reverse=True)  # by the focus method (the hybrid), best first
    assert sum(len(c) for c in groups.values()) == 54


def test_trailing_decile_and_group_means_have_intervals(report):
    _, md, runs = report
    hybrid = runs[1][0]["metrics"][TASK]["languages"]
    worst = sorted(hybrid, key=lambda c: hybrid[c]["accuracy"])[:6]
    trailing = _section(md, "#### The languages that trail most")
    codes = re.findall(r"\| `([^`]+)` \|", trailing)
    assert len(codes) == 6 and sorted(hybrid[c]["accuracy"] for c in codes) == [hybrid[c]["accuracy"] for c in worst]
    assert all(re.search(r"\d \[\d", line) for line in trailing.splitlines() if "| `" in line)
    groups = _section(md, "#### Accuracy per resource class and per script")
    latin = [c for c in LANGS if script(c) == "Latn"]
    row = next(line for line in groups.splitlines() if line.startswith("| Script | Latn |"))
    assert f"| {len(latin)} | " in row
    assert f"{np.mean([hybrid[c]['accuracy'] for c in latin]):.1f} [" in row
    assert "Joshi et al." in md


def test_the_report_leads_with_its_findings_and_states_the_interval_method_once(report):
    out, md, _ = report
    assert md.index("## What the study found") < md.index("### Task `topics`")
    lead = md.split("## What the study found")[1].split("###")[0]
    assert "Trailing most" in lead and "Caveat:" in lead and "Hybrid − LoRA" in lead
    assert md.count("95% bootstrap interval over the test examples (1,000 resamples") == 1
    figure = out / "figures" / f"languages_{TASK}.png"
    assert figure.exists() and figure.stat().st_size > 10_000
    assert f"figures/languages_{TASK}.png" in md
