"""A completion or chat task's `generation_kwargs` (lm-eval's `until`, `max_gen_toks`): the stop strings
replace the one-line rule, so a multi-line answer is scored whole; without them nothing changes."""

import pytest
import yaml

from govtune.evaluation.scoring import cut_until
from govtune.models import tiny_model
from govtune.tasks.registry import load_task
from govtune.tasks.spec import spec_from_dict

from task_helpers import write_task

UNTIL = {"until": ["\n\n", "###"], "max_gen_toks": 48}


def recipe_rows(lang: str = "tok") -> list[dict]:
    """Two-line answers (a language outside govtune's tables: its BLEU takes the default tokenizer)."""
    return [{"q": f"How is dish {i} made?", "a": f"Boil water {i}.\nAdd {i} cups of rice.", "locale": lang,
             "qid": f"r{i}"} for i in range(8)]


def _task(tmp_path, settings, name="recipes", **extra):
    path = write_task(tmp_path, recipe_rows(), filename=f"{name}.yaml", type="completion", name=name,
                      columns={"prompt": "q", "completion": "a", "lang": "locale", "id": "qid"}, test_size=3,
                      doc_to_text="Q: {{prompt}}\nA:", **extra)
    return load_task(str(path)).prepare(settings, tmp_path)


def test_cut_until_keeps_lines_and_cuts_at_the_earliest_stop():
    text = " Boil water.\nAdd rice.\n\nQ: next ### more"
    assert cut_until(text, ["\n\n"]) == "Boil water.\nAdd rice."
    assert cut_until(text, ["###", "\n\n"]) == "Boil water.\nAdd rice."  # the earliest, whatever the order
    assert cut_until("a ### b\n\nc", ["\n\n", "###"]) == "a"
    assert cut_until(text, []) == text.strip()  # no stop string: all of it
    assert cut_until("no stop here", ["\n\n"]) == "no stop here"


def test_cut_until_is_lm_evals_cut():
    lm_utils = pytest.importorskip("lm_eval.models.utils")
    for text in (" Boil water.\nAdd rice.\n\nQ: next ### more", "a ### b\n\nc", "x\n\n", "###", "plain"):
        for until in (["\n\n"], ["###", "\n\n"], ["\n\n", "###"], []):
            ref = lm_utils.postprocess_generated_text(text, until, None)
            assert cut_until(text, until) == ref.strip()


@pytest.mark.parametrize("bad, message", [
    ({"until": "\n\n"}, r"`generation_kwargs.until: '\\n\\n'` must be a list of non-empty stop strings"),
    ({"until": ["\n\n", ""]}, r"must be a list of non-empty stop strings"),
    ({"until": [3]}, r"must be a list of non-empty stop strings"),
    ({"max_gen_toks": 0}, r"`generation_kwargs.max_gen_toks: 0` must be a positive number of tokens"),
    ({"max_gen_toks": True}, r"max_gen_toks: True` must be a positive"),
    ({"max_gen_tokens": 64}, r"`generation_kwargs.max_gen_tokens` is not a generation setting \(did you mean "
                             r"'max_gen_toks'\?\)"),
    ({"untill": ["\n"]}, r"`generation_kwargs.untill` is not a generation setting \(did you mean 'until'\?\)"),
    (["\n\n"], r"`generation_kwargs` must be a mapping"),
])
def test_bad_generation_kwargs_are_refused(tmp_path, bad, message):
    raw = {"type": "completion", "data_files": "x.jsonl", "test_size": 2, "generation_kwargs": bad}
    with pytest.raises(ValueError, match=message):
        spec_from_dict(raw, tmp_path / "t.yaml")
    with pytest.raises(ValueError, match=r"`generation_kwargs` belong to completion and chat tasks"):
        spec_from_dict({**raw, "type": "classification", "labels": ["a", "b"], "generation_kwargs": UNTIL},
                       tmp_path / "t.yaml")


def _scripted_generation(monkeypatch, tok, answers: dict[str, str]):
    """Stands in for the model's greedy choice: the row whose prompt ends with a key spells its answer token
    by token, stopping where generate_lines's `done` or the budget says. Returns each call's budgets."""
    budgets_seen = []

    def greedy(model, prompts, budgets, done, *, pad_id, eos_ids=()):
        budgets_seen.append(list(budgets))
        out = []
        for r, (p, budget) in enumerate(zip(prompts, budgets)):
            prompt = tok.decode(p, skip_special_tokens=True)
            ids = tok.encode(next(a for q, a in answers.items() if prompt.endswith(q)), add_special_tokens=False)
            new = []
            for t in ids:
                new.append(t)
                if len(new) >= budget or done(r, new):
                    break
            out.append(new)
        return out

    monkeypatch.setattr("govtune.evaluation.scoring.greedy_tokens", greedy)
    return budgets_seen


def test_until_keeps_the_second_line_and_the_default_cuts_it(tmp_path, settings, monkeypatch):
    model, tok = tiny_model()
    answers = {f"Q: How is dish {i} made?\nA:": f" Boil water {i}.\nAdd {i} cups of rice.\n\nQ: and then ###"
               for i in range(8)}
    budgets = _scripted_generation(monkeypatch, tok, answers)
    task = _task(tmp_path, settings, generation_kwargs=UNTIL)
    metrics, preds = task.evaluate(model, tok, task.test_sets(), seed=0, progress=False)
    assert [p["hypothesis"] for p in preds] == [p["reference"] for p in preds]  # both lines, nothing after
    assert all("\n" in p["hypothesis"] for p in preds)
    assert metrics["languages"]["tok"]["exact_match"] == 100.0 and budgets[-1] == [48, 48, 48]
    assert metrics["languages"]["tok"]["signature"].split("|")[3] == "tok:13a"
    assert task.training_pair(task.splits["train"][0])[1].endswith("cups of rice.\n\n")  # taught to stop

    settings.max_new_tokens = 40  # the study's budget, which max_gen_toks replaced above
    default = _task(tmp_path, settings, name="recipes_default")  # no generation_kwargs: the first line only
    metrics, preds = default.evaluate(model, tok, default.test_sets(), seed=0, progress=False)
    assert [p["hypothesis"] for p in preds] == [p["reference"].split("\n")[0] for p in preds]
    assert metrics["languages"]["tok"]["exact_match"] == 0.0 and budgets[-1] == [40] * 3
    assert default.training_pair(default.splits["train"][0])[1].endswith("cups of rice.\n")


def test_empty_until_runs_to_the_budget(tmp_path, settings, monkeypatch):
    model, tok = tiny_model()
    answers = {f"Q: How is dish {i} made?\nA:": " Boil.\n\nAdd rice." for i in range(8)}
    _scripted_generation(monkeypatch, tok, answers)
    task = _task(tmp_path, settings, generation_kwargs={"until": [], "max_gen_toks": 9})
    _, preds = task.evaluate(model, tok, task.test_sets(), seed=0, progress=False)
    assert {p["hypothesis"] for p in preds} == {"Boil.\n\nA"}  # 9 byte tokens (" Boil.\n\nA"), no stop string
    assert task.training_pair(task.splits["train"][0])[1].endswith("cups of rice.")


def test_chat_targets_end_with_the_first_stop_string(tmp_path, settings):
    rows = [{"messages": [{"role": "user", "content": f"Steps for {i}?"},
                          {"role": "assistant", "content": f"First {i}.\nThen {i}."}], "lang": "en", "id": f"c{i}"}
            for i in range(6)]
    path = write_task(tmp_path, rows, type="chat", name="steps", test_size=2, generation_kwargs={"until": ["###"]})
    task = load_task(str(path)).prepare(settings, tmp_path)
    row = task.splits["train"][0]
    assert task.training_pair(row)[1] == " " + row["messages"][1]["content"] + "\n###"  # `role: content` lines


def test_export_carries_the_generation_kwargs(tmp_path, settings):
    from govtune.tasks.export import export_task

    cfg = yaml.safe_load(export_task(_task(tmp_path, settings, generation_kwargs=UNTIL), tmp_path / "a").read_text())
    assert cfg["generation_kwargs"] == {"until": ["\n\n", "###"], "do_sample": False, "max_gen_toks": 48}
    cfg = yaml.safe_load(export_task(_task(tmp_path, settings, name="plain"), tmp_path / "b").read_text())
    assert cfg["generation_kwargs"] == {"until": ["\n"], "do_sample": False}  # the default, as before
