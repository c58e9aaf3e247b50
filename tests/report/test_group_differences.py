"""Paired method differences per language group in the report at breadth (a store written here: a classification
task over 54 languages, the base model, LoRA and the hybrid over two seeds, the hybrid right more often on the
low-resource languages): each group's difference equals its hand computation from the stored per-language
accuracies, its interval the percentile interval recomputed here from the replicates of `Intervals.group`,
the low- vs high-resource contrast is the difference of the two sides' estimates, every interval contains its
estimate, tuning-status rows appear only when the tuning set is known, and groups without languages are left out."""

import re

import numpy as np
import pytest

from govtune.data import sib200 as sib
from govtune.languages import normalize_or_keep, resource_level
from govtune.report import group_differences as gd
from govtune.report.document import write_report
from govtune.report.reading import Study
from govtune.results.store import record_curation, record_run, record_study, write_results_json

from synthetic_runs import TASK, classification_run

N = 20
LANGS = [normalize_or_keep(c) for c in sorted(sib.languages())[::3][:54]]
UNTUNED = set(LANGS[::5])  # their pools kept nothing: not in the tuning set


def _level(code):
    try:
        return resource_level(code)
    except (KeyError, ValueError):
        return None


LOW = [c for c in LANGS if _level(c) in (0, 1, 2)]
HIGH = [c for c in LANGS if _level(c) in (4, 5)]


def _p_right(method: str, lang: str) -> float:
    """The base model near chance, LoRA at 0.5, the hybrid far better on low-resource languages only."""
    return {"base": 0.35, "lora": 0.5}.get(method, 0.85 if lang in LOW else 0.5)


def _run(method: str, seed: int, langs: list[str]):
    rng = np.random.default_rng([seed, ["base", "lora", "hybrid"].index(method)])
    shots, stage = (0, "none") if method == "base" else (4, "c0")
    return classification_run(f"{method}-k{shots}-{stage}-s{seed}", method, seed, shots, stage, langs, N,
                              lambda lang, i: rng.random() < _p_right(method, lang))


def _store(out, runs, langs, tuning_known: bool):
    record_study(out, "breadth", "tiny-llama", "0" * 16, {"epochs": 1})
    for result, preds in runs:
        record_run(out, result, {}, preds)
    write_results_json(out, [r for r, _ in runs])
    if tuning_known:
        record_curation(out, {"curations": [(f"{TASK}:c0", "c0", "[]", 100, 90, 10, "")],
                              "curation_counts": [(f"{TASK}:c0", "c0", lang, "kept", "", 0 if lang in UNTUNED else 5)
                                                  for lang in langs]})
    write_report(out)
    return out, (out / "report.md").read_text()


@pytest.fixture(scope="module")
def report(tmp_path_factory):
    runs = [_run("base", 0, LANGS)] + [_run(m, seed, LANGS) for m in ("lora", "hybrid") for seed in (0, 1)]
    out, md = _store(tmp_path_factory.mktemp("groups"), runs, LANGS, tuning_known=True)
    return Study(out), md, runs  # one Study: its replicates are computed once for every test


@pytest.fixture(scope="module")
def untracked(tmp_path_factory):
    """No curation counts, and only languages of classes 3-5 and unknown: no tuning rows, no low-resource ones."""
    langs = [c for c in LANGS if _level(c) not in (0, 1, 2)][:12]
    runs = [_run(m, 0, langs) for m in ("lora", "hybrid")]
    out, md = _store(tmp_path_factory.mktemp("untracked"), runs, langs, tuning_known=False)
    return out, md, langs


def _section(md: str, title: str) -> str:
    return md.split(title)[1].split("\n####")[0].split("\n###")[0]


def _rows(section: str) -> dict[str, list[str]]:
    lines = [line for line in section.splitlines() if line.startswith("| ")][1:]
    return {cells[0]: cells[1:] for cells in ([c.strip() for c in line.strip("|").split("|")] for line in lines)}


def _parse(cell: str) -> tuple[float, float, float, bool]:
    est, low, high = (float(x) for x in re.match(r"([+-][\d.]+) \[([+-][\d.]+), ([+-][\d.]+)\]", cell).groups())
    return est, low, high, cell.endswith(gd.MARK)


def _stored(runs, method, lang):
    return np.mean([r["metrics"][TASK]["languages"][lang]["accuracy"] for r, _ in runs if r["method"] == method])


def _hand(s, runs, method, ref, codes):
    """The estimate from the stored accuracies; the replicates from Intervals.group, paired by resample."""
    estimate = np.mean([_stored(runs, method, c) - _stored(runs, ref, c) for c in codes])
    ga, gb = s.intervals.group(s.cell(method), TASK), s.intervals.group(s.cell(ref), TASK)
    reps = np.mean([ga[2][f"languages.{c}.accuracy"] - gb[2][f"languages.{c}.accuracy"] for c in codes], axis=0)
    return estimate, reps


def test_group_differences_equal_their_hand_computation(report):
    s, md, runs = report
    table = _rows(_section(md, "#### Paired differences per language group"))
    header = [line for line in _section(md, "#### Paired differences per language group").splitlines()
              if line.startswith("| ")][0]
    assert [c.strip() for c in header.strip("|").split("|")][2:] == [
        "LoRA − Base (no tuning)", "Hybrid − Base (no tuning)", "Hybrid − LoRA"]  # significance.comparisons
    groups = {"all languages": LANGS, "in the tuning set": [c for c in LANGS if c not in UNTUNED],
              "not tuned on": sorted(UNTUNED), "class 1": [c for c in LANGS if _level(c) == 1],
              "class 4": [c for c in LANGS if _level(c) == 4], "class ?": [c for c in LANGS if _level(c) is None]}
    for name, codes in groups.items():
        assert table[name][0] == str(len(codes))
        for column, (method, ref) in enumerate((("lora", "base"), ("hybrid", "base"), ("hybrid", "lora")), 1):
            estimate, reps = _hand(s, runs, method, ref, codes)
            low, high = np.percentile(reps, [2.5, 97.5])
            assert _parse(table[name][column])[:3] == pytest.approx((estimate, low, high), abs=0.051)
            assert low <= estimate <= high  # a percentile interval of a mean of paired differences holds its estimate
    # all languages: the difference in Macro, as the report's differences section has it
    macro_diff = np.mean([r["metrics"][TASK]["macro"] for r, _ in runs if r["method"] == "hybrid"]) - \
        np.mean([r["metrics"][TASK]["macro"] for r, _ in runs if r["method"] == "lora"])
    assert _parse(table["all languages"][3])[0] == pytest.approx(macro_diff, abs=0.051)


def test_every_interval_contains_its_estimate_and_the_mark_means_it_excludes_zero(report):
    s, md, _ = report
    cells = 0
    for method, ref in gd.comparisons(s):
        p = gd.paired(s, method, ref, TASK)
        for g in gd.groups(s, TASK):
            d = gd.interval(p.difference(g.codes))
            assert d.low <= d.estimate <= d.high, (method, ref, g.name)
            cells += 1
        for _, a, b in gd.contrasts(s, TASK):
            d = gd.interval(gd.contrast(p, a, b))
            assert d.low <= d.estimate <= d.high
    assert cells == 3 * len(gd.groups(s, TASK))
    for cells in _rows(_section(md, "#### Paired differences per language group")).values():
        for cell in cells[1:]:
            est, low, high, marked = _parse(cell)
            assert low <= est <= high and marked == (low > 0 or high < 0)


def test_low_minus_high_resource_is_the_difference_of_the_two_sides(report):
    s, md, runs = report
    contrasts = _rows(_section(md, "#### Who gains where: differences of paired differences"))
    assert set(contrasts) == {"low − high resource (classes 0-2 − classes 4-5)", "not tuned on − in the tuning set"}
    (cell,) = contrasts["low − high resource (classes 0-2 − classes 4-5)"]  # Hybrid − LoRA only: base is no LoRA
    low_est, low_reps = _hand(s, runs, "hybrid", "lora", LOW)
    high_est, high_reps = _hand(s, runs, "hybrid", "lora", HIGH)
    est, low, high, marked = _parse(cell)
    assert est == pytest.approx(low_est - high_est, abs=0.051)
    assert (low, high) == pytest.approx(tuple(np.percentile(low_reps - high_reps, [2.5, 97.5])), abs=0.051)
    assert marked and low > 0  # the hybrid was built to gain where resources are low
    p = gd.paired(s, "hybrid", "lora", TASK)
    by = {g.name: g for g in gd.groups(s, TASK)}
    d = gd.interval(gd.contrast(p, by["not tuned on"], by["in the tuning set"]))
    assert d.estimate == pytest.approx(gd.interval(p.difference(by["not tuned on"].codes)).estimate
                                       - gd.interval(p.difference(by["in the tuning set"].codes)).estimate)
    assert "classes 0-2" in md and "classes 4-5" in md


def test_the_lead_names_the_significant_group_differences(report):
    _, md, _ = report
    lead = md.split("## What the study found")[1].split("###")[0]
    line = next(x for x in lead.splitlines() if "Hybrid − LoRA by language group" in x)
    assert "low − high resource (classes 0-2 − classes 4-5) +" in line and "class 1 +" in line
    assert "all languages" not in line  # that is the Macro difference, named above it


def test_without_a_known_tuning_set_no_tuning_rows_and_empty_groups_left_out(untracked):
    out, md, langs = untracked
    table = _rows(_section(md, "#### Paired differences per language group"))
    assert "in the tuning set" not in table and "not tuned on" not in table
    assert "Which languages were tuned on is not recorded here" in md
    levels = {_level(c) for c in langs}
    assert set(table) == {"all languages", *(f"class {'?' if x is None else x}" for x in levels)}
    assert not {"class 0", "class 1", "class 2"} & set(table)
    assert "#### Who gains where" not in md  # no low-resource language: no contrast to draw
