"""A long prefix shared by a batch's contexts (in-context demonstrations) is run once: the same numbers as
full rows, today's batches and numbers when nothing long is shared, one prefix group per batch."""

import numpy as np
import pytest
import torch

from govtune.data import XNLI_EVAL_ROWS
from govtune.evaluation import scoring, shared_prefix
from govtune.evaluation.scoring import greedy_tokens, loglikelihoods
from govtune.evaluation.shared_prefix import SHARED_PREFIX_MIN, prefix_batches, shared_prefix_length
from govtune.evaluation.xnli_eval import score_examples
from govtune.models import TINY_BLOOM, TINY_LLAMA, tiny_model
from govtune.tasks import load_xnli
from govtune.tasks.incontext import with_context
from govtune.text.encoding import encode_pair

DEMO = "Premise: it rained all day.\nAnswer: Yes\n\n"  # 41 bytes: 40 tokens shared after the BOS-less start


@pytest.fixture
def no_sharing(monkeypatch):
    """Today's path: full contexts, longest-first batches, no prefix run apart."""
    def off():
        monkeypatch.setattr(scoring, "SHARED_PREFIX_MIN", 10 ** 9)
        monkeypatch.setattr(shared_prefix, "SHARED_PREFIX_MIN", 10 ** 9)
    return off


@pytest.fixture
def forwards(monkeypatch):
    """Shapes of the input ids of every forward pass the scorers make."""
    shapes = []
    real = scoring._forward

    def spy(model, ids, *args, **kwargs):
        shapes.append(tuple(ids.shape))
        return real(model, ids, *args, **kwargs)

    monkeypatch.setattr(scoring, "_forward", spy)
    return shapes


def _shared_requests(tok):
    """Six contexts of different lengths after the same 40 tokens, three continuations each (1-3 tokens)."""
    prefix = tok.encode(DEMO[:40], add_special_tokens=False)
    assert len(prefix) == 40
    reqs = []
    for i, q in enumerate(["Is it wet?", "Q", "Did the sun shine all afternoon?", "Cold?", "Was the road dry", "x y"]):
        for k in (" Yes", " No", " Maybe not"[: 2 + i % 3]):
            ctx, cont = encode_pair(tok, DEMO[:40] + q, k, prefix=[])
            reqs.append((ctx, cont))
    assert all(c[:40] == prefix for c, _ in reqs) and len({len(c) for c, _ in reqs}) == 6
    assert max(len(k) for _, k in reqs) > 1
    return reqs


@torch.inference_mode()
def _direct(model, ctx, cont):
    logp = torch.log_softmax(model(torch.tensor([ctx + cont])).logits[0].double(), -1)
    return sum(logp[len(ctx) + i - 1, t].item() for i, t in enumerate(cont))


@pytest.mark.parametrize("kind", [TINY_LLAMA, TINY_BLOOM])
def test_shared_prefix_scores_equal_full_rows(kind, no_sharing, forwards):
    model, tok = tiny_model(kind)
    reqs = _shared_requests(tok)
    shared = loglikelihoods(model, reqs, batch_size=4)
    assert forwards.count((1, 40)) == 2  # the prefix ran once per batch (4 + 2 contexts), not per row
    assert max(w for _, w in forwards) < max(len(c) for c, _ in reqs)  # no row read in full
    no_sharing()
    forwards.clear()
    today = loglikelihoods(model, reqs, batch_size=4)
    assert (1, 40) not in forwards
    np.testing.assert_allclose(shared, today, atol=1e-4)
    np.testing.assert_allclose(shared, [_direct(model, c, k) for c, k in reqs], atol=1e-4)
    assert np.std(today) > 0.5  # different continuations get really different scores


def test_shared_prefix_without_a_kv_cache_reads_full_rows(tiny_bloom, without_kv_cache, forwards):
    model, tok = tiny_bloom
    reqs = _shared_requests(tok)
    cached = loglikelihoods(model, reqs, batch_size=6)
    without_kv_cache(model)
    forwards.clear()
    uncached = loglikelihoods(model, reqs, batch_size=6)
    assert forwards[1] == (6, max(len(c) for c, _ in reqs))  # after the prefix pass: the full rows
    np.testing.assert_allclose(uncached, cached, atol=1e-5)


@pytest.mark.parametrize("kind", [TINY_LLAMA, TINY_BLOOM])
def test_base_xnli_prompts_keep_todays_batches_and_numbers(kind, no_sharing, forwards):
    """XNLI repeats each premise for three hypotheses: such small groups are not batches of their own, and
    no batch shares a long prefix, so the numbers are today's bit for bit."""
    model, tok = tiny_model(kind)
    # English and Chinese: a byte-level vocabulary spells the Hindi field label in 30 tokens, and every
    # Devanagari character starts with the same 2 bytes, which reach SHARED_PREFIX_MIN (a subword one: 4).
    exs = [dict(e, premise=e["premise"][:60]) for lang in ("en", "zh")
           for e in load_xnli(lang, rows=XNLI_EVAL_ROWS, limit=6)]
    assert len({e["premise"] for e in exs}) < len(exs)  # premises do repeat
    probs, _ = score_examples(model, tok, exs, batch_size=4)
    assert all(b > 1 for b, _ in forwards)  # no prefix run on its own
    no_sharing()
    today, _ = score_examples(model, tok, exs, batch_size=4)
    assert np.array_equal(probs, today)


def test_prefix_batches_split_groups_and_keep_plain_batches():
    a = [[1] * SHARED_PREFIX_MIN + [2] * n for n in (9, 7, 5, 3, 1)]
    b = [[3] * SHARED_PREFIX_MIN + [4] * n for n in (8, 6, 4, 2)]
    short = [[1] * 10, [5] * 3]  # too short to share anything
    items = sorted(a + b + short, key=len, reverse=True)
    batches = prefix_batches(items, lambda s: s, 3)
    assert batches == [a[0:3], a[3:5], b[0:3], b[3:4], short]  # one group per batch, longest first in each
    assert all(shared_prefix_length(bt) >= SHARED_PREFIX_MIN for bt in (batches[0], batches[1], batches[2]))
    # no group fills a batch, none saves a batch of rows: the plain longest-first cut
    assert prefix_batches(items, lambda s: s, 6) == [items[0:6], items[6:11]]
    # a small group under a long prefix (demonstrations) is kept apart: 3 x 80 tokens saved >= 6 x 32
    demos = [[7] * 80 + [8] * n for n in (4, 3, 2, 1)]
    mixed = sorted(demos + short, key=len, reverse=True)
    assert prefix_batches(mixed, lambda s: s, 6) == [demos, short]
    assert shared_prefix_length([[1, 2, 3], [1, 2, 3]]) == 2 and shared_prefix_length([[1, 2]]) == 0
    assert shared_prefix_length([[1, 2, 3, 4], [1, 2, 5], [1, 9]]) == 1


def test_incontext_batches_hold_one_language(tiny_bloom, no_sharing, forwards):
    """In-context XNLI: one batch per language's demonstrations, scores equal to full rows."""
    model, tok = tiny_bloom
    tests = {lang: [dict(e, premise=e["premise"][:50]) for e in load_xnli(lang, rows=XNLI_EVAL_ROWS, limit=3)]
             for lang in ("en", "zh")}
    pool = {lang: [dict(e, premise=e["premise"][:60]) for e in load_xnli(lang, rows=range(0, 30))]
            for lang in ("en", "zh")}
    exs = [e for lang, rows in with_context(tests, pool, k=1, seed=0, task="xnli").items() for e in rows]
    probs, _ = score_examples(model, tok, exs, batch_size=3)
    prefix_runs = [w for b, w in forwards if b == 1]
    assert len(prefix_runs) == 2 and min(prefix_runs) > 60  # one per language, the whole demonstration
    no_sharing()
    today, _ = score_examples(model, tok, exs, batch_size=3)
    np.testing.assert_allclose(probs, today, atol=1e-5)


@pytest.mark.parametrize("kind", [TINY_LLAMA, TINY_BLOOM])
def test_generation_with_a_shared_prefix_equals_per_row(kind, forwards):
    model, tok = tiny_model(kind)
    with torch.no_grad():  # larger random weights, so that each prompt gets its own output
        for w in model.parameters():
            if w.ndim == 2:
                w.normal_(0, 0.3)
    prompts = [tok.encode(DEMO + q + "\nAnswer:", add_special_tokens=False)
               for q in ("Is it wet?", "Q", "Did the sun shine all afternoon?", "Cold?")]
    budgets = [20, 3, 12, 25]
    never = lambda row, new: False  # noqa: E731 - rows end at their budget or EOS
    single = [greedy_tokens(model, [p], [b], never, pad_id=tok.pad_token_id, eos_ids=[tok.eos_token_id])[0]
              for p, b in zip(prompts, budgets)]
    forwards.clear()
    batched = greedy_tokens(model, prompts, budgets, never, pad_id=tok.pad_token_id, eos_ids=[tok.eos_token_id])
    assert forwards[0] == (1, shared_prefix_length(prompts)) and forwards[0][1] >= len(DEMO)
    assert batched == single
    assert len({tuple(t[:4]) for t in single}) >= 3 and max(map(len, single)) > 10
