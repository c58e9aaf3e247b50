"""The metric registry: concrete keys find their entry and title, directions turn differences into words,
and every combined metric names a registered per-unit metric."""

import pytest

from govtune.evaluation import metric_registry as registry


@pytest.mark.parametrize("task, key, title", [
    ("xnli", "languages.en.accuracy", "EN"),
    ("xnli", "languages.fr.accuracy", "fr"),  # a language without a label keeps its code
    ("xnli", "languages.zh.ece", "ZH ECE"),
    ("xnli", "parity_gap", "Δ (parity gap)"),
    ("xnli", "robustness.by_operation.whitespace.drop", "whitespace"),
    ("flores", "pairs.en-zh.bleu", "EN→ZH BLEU"),
    ("flores", "average_chrf", "chrF++ (avg)"),
    ("footprint", "step_time_s", "Step time (s)"),
    ("lm_eval", "tasks.govtune-xnli.en.acc_norm", "govtune-xnli.en acc_norm"),  # the metric after the last dot
])
def test_a_concrete_key_finds_its_entry_and_title(task, key, title):
    assert registry.name(task, key) == title
    assert registry.metric(task, key).task in registry.kinds(task)


def test_an_unregistered_key_is_refused_with_where_to_add_it():
    with pytest.raises(KeyError, match="'languages.en.f1' of task 'xnli'.*add its entry"):
        registry.metric("xnli", "languages.en.f1")
    with pytest.raises(KeyError):
        registry.metric("flores", "macro")  # an XNLI metric is not a FLORES one


def test_directions_turn_a_difference_into_better_or_worse():
    macro, ece = registry.metric("xnli", "macro"), registry.metric("xnli", "avg_ece")
    assert (macro.verdict(2.0), macro.verdict(-2.0)) == ("better", "worse")
    assert (ece.verdict(-2.0), ece.verdict(2.0)) == ("better", "worse")  # lower calibration error is better
    assert registry.metric("xnli", "parity_gap").better == "lower is better"
    assert registry.metric("xnli", "languages.en.temperature").verdict(1.0) == ""  # no direction
    assert macro.verdict(0.0) == ""


def test_combined_metrics_name_a_registered_unit_metric_of_their_task():
    for task in registry.KINDS:
        for m in registry.combined(task):
            unit = registry.metric(task, registry.unit_key(m, "en"))
            assert unit.aggregation == registry.UNIT and unit.interval == m.interval
            # a gap between languages is better lower, whatever its languages' metric
            assert unit.higher_is_better == m.higher_is_better or m.aggregation in (registry.RANGE, registry.DECILE)
    assert [m.key for m in registry.combined(registry.TRANSLATION)] == ["average_bleu", "direction_gap", "average_chrf"]
    assert registry.kinds("xnli") == (registry.CLASSIFICATION,) and registry.kinds("flores") == (registry.TRANSLATION,)


def test_a_task_files_task_has_the_entries_of_its_kind():
    assert registry.metric("intents", "macro") == registry.metric("classification", "macro")
    assert registry.name("intents", "languages.hi.macro_f1") == "HI F1"
    assert registry.metric("capitals", "average_exact_match").higher_is_better is True
    assert registry.name("capitals", "languages.es.chrf") == "ES chrF++"
    with pytest.raises(KeyError):
        registry.metric("intents", "pairs.en-zh.bleu")  # a FLORES metric is no task file's
