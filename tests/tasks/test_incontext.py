from collections import Counter

import pytest

from govtune.data import FLORES_EVAL_LINES, FLORES_POOL_LINES, XNLI_EVAL_ROWS
from govtune.data.flores import load_flores
from govtune.data.xnli import load_xnli
from govtune.tasks.incontext import DEMO_SEPARATOR, with_context
from govtune.evaluation.xnli_eval import _fit_prompt
from govtune.text.prompts import flores_prompt, xnli_prompt


@pytest.fixture(scope="module")
def xnli():
    tests = {lang: load_xnli(lang, rows=XNLI_EVAL_ROWS, limit=5) for lang in ("en", "hi")}
    pool = {lang: load_xnli(lang, rows=range(0, 60)) for lang in ("en", "hi")}
    return tests, pool


def test_xnli_demonstrations_are_balanced_seeded_and_from_the_pool(xnli):
    tests, pool = xnli
    a = with_context(tests, pool, k=6, seed=1, task="xnli")
    b = with_context(tests, pool, k=6, seed=1, task="xnli")
    c = with_context(tests, pool, k=6, seed=2, task="xnli")
    for lang in tests:
        ctx = a[lang][0]["context"]
        assert all(e["context"] == ctx for e in a[lang])            # one block per language
        assert ctx == b[lang][0]["context"] and ctx != c[lang][0]["context"]
        assert ctx.count(DEMO_SEPARATOR) == 6
        shown = [ex for ex in pool[lang] if xnli_prompt(ex["premise"], ex["hypothesis"], lang) in ctx]
        assert len(shown) == 6 and Counter(ex["label"] for ex in shown) == Counter(
            {"entailment": 2, "neutral": 2, "contradiction": 2})
        assert not {ex["row"] for ex in shown} & set(XNLI_EVAL_ROWS)
        assert all(xnli_prompt(t["premise"], t["hypothesis"], lang) not in ctx for t in tests[lang])
        # the test examples themselves are unchanged apart from their context
        assert [{k: v for k, v in e.items() if k != "context"} for e in a[lang]] == tests[lang]


def test_pool_overlapping_test_rows_is_refused_in_any_language(xnli):
    tests, _ = xnli
    # Row r of Hindi is the translation of row r of English: a pool holding test rows leaks in any language.
    leaky = {lang: load_xnli(lang, rows=range(XNLI_EVAL_ROWS.start, XNLI_EVAL_ROWS.start + 30))
             for lang in ("en", "hi")}
    with pytest.raises(ValueError, match="also test rows"):
        with_context(tests, leaky, k=3, seed=0, task="xnli")


def test_flores_demonstrations_precede_the_prompt_in_the_encoded_request(tiny_llama):
    _, tok = tiny_llama
    tests = {"en-zh": load_flores("en", "zh", lines=FLORES_EVAL_LINES, limit=2)}
    pool = {"en-zh": load_flores("en", "zh", lines=range(0, 40))}
    out = with_context(tests, pool, k=3, seed=0, task="flores")
    ctx = out["en-zh"][0]["context"]
    assert ctx.count(DEMO_SEPARATOR) == 3
    assert sum(flores_prompt(e["src"], "en", "zh") in ctx and e["ref"] in ctx for e in pool["en-zh"]) == 3
    with pytest.raises(ValueError, match="also test rows"):
        with_context(tests, {"en-zh": tests["en-zh"]}, k=1, seed=0, task="flores")
    assert set(FLORES_POOL_LINES).isdisjoint(FLORES_EVAL_LINES)


def test_xnli_request_is_context_then_prompt(xnli, tiny_llama):
    _, tok = tiny_llama
    tests, pool = xnli
    ex = with_context(tests, pool, k=3, seed=0, task="xnli")["en"][0]
    reqs, _ = _fit_prompt(ex, tok, [], None)
    plain, _ = _fit_prompt(tests["en"][0], tok, [], None)
    ctx_ids = tok.encode(ex["context"], add_special_tokens=False)
    assert reqs[0][0][:len(ctx_ids)] == ctx_ids          # byte-level: the context encodes on its own
    assert reqs[0][0][len(ctx_ids):] == plain[0][0] and [r[1] for r in reqs] == [r[1] for r in plain]


def test_zero_shots_is_the_plain_prompt_and_negative_is_an_error(xnli):
    tests, pool = xnli
    assert with_context(tests, pool, k=0, seed=0, task="xnli") == tests
    with pytest.raises(ValueError, match=">= 0"):
        with_context(tests, pool, k=-1, seed=0, task="xnli")
    with pytest.raises(ValueError, match="no in-context pool"):
        with_context(tests, {"en": pool["en"]}, k=1, seed=0, task="xnli")
