"""The batched scorers against direct one-example-at-a-time computations."""

import numpy as np
import pytest
import torch
from transformers import BertConfig, BertForSequenceClassification, ByT5Tokenizer

from govtune.evaluation.scoring import StopOnNewline, classify_pairs, generate_lines, loglikelihoods
from govtune.evaluation.xnli_eval import _fit_prompt, score_examples
from govtune.models import TINY_BLOOM, TINY_LLAMA, tiny_model
from govtune.tasks import LABELS, load_flores, load_xnli, xnli_prompt
from govtune.text.encoding import encode_pair
from govtune.text.prompts import flores_prompt, xnli_continuations


def _examples(n=4):
    # Byte-level tokens make real premises long; varied cuts keep the test fast and the padding uneven.
    exs = [e for lang in ("en", "zh", "hi") for e in load_xnli(lang, rows=range(1245, 1245 + n))]
    return [dict(e, premise=e["premise"][: 20 + 13 * i], hypothesis=e["hypothesis"][: 15 + 7 * i])
            for i, e in enumerate(exs)]


@torch.inference_mode()
def _direct_probs(model, tok, ex):
    """Unbatched, unpadded: one forward pass per label, log-probs of the label's characters summed."""
    prompt = xnli_prompt(ex["premise"], ex["hypothesis"], ex["lang"])
    ctx = tok.encode(prompt, add_special_tokens=False)
    scores = []
    for cont in xnli_continuations(ex["lang"]):
        full = tok.encode(prompt + cont, add_special_tokens=False)
        assert full[:len(ctx)] == ctx
        logp = torch.log_softmax(model(torch.tensor([full])).logits[0].double(), -1)
        scores.append(sum(logp[p - 1, full[p]].item() for p in range(len(ctx), len(full))))
    return np.exp(scores) / np.exp(scores).sum()


@pytest.mark.parametrize("kind", [TINY_LLAMA, TINY_BLOOM])
def test_batched_scores_equal_direct(kind):
    model, tok = tiny_model(kind)
    if kind == TINY_LLAMA:
        model.config.max_position_embeddings = 4096  # no truncation: compare on the full prompts
    exs = _examples()
    ref = np.stack([_direct_probs(model, tok, e) for e in exs])
    assert np.allclose(ref.sum(1), 1) and ref.std() > 1e-3  # a real, non-uniform reference
    for side in ("left", "right"):
        for bs in (4, 7):
            probs, truncated = score_examples(model, tok, exs, batch_size=bs, padding_side=side)
            assert not any(truncated)
            np.testing.assert_allclose(probs, ref, atol=1e-4, err_msg=f"{kind} {side} padding, batch {bs}")


def test_shared_context_single_token_rows_equal_direct(tiny_llama):
    """One-token continuations of one context share a row; multi-token ones get their own."""
    model, tok = tiny_llama
    reqs = [encode_pair(tok, c, k) for c in ("The answer is", "Premise: rain\nAnswer") for k in (" a", "b", "c d")]
    lls = loglikelihoods(model, reqs, batch_size=3, padding_side="left")
    for (ctx, cont), ll in zip(reqs, lls):
        with torch.inference_mode():
            logp = torch.log_softmax(model(torch.tensor([ctx + cont])).logits[0].double(), -1)
        want = sum(logp[len(ctx) + i - 1, t].item() for i, t in enumerate(cont))
        assert ll == pytest.approx(want, abs=1e-4)


def test_premise_truncated_to_fit_context(tiny_llama):
    model, tok = tiny_llama  # 512 positions, one per byte: Hindi premises overflow
    exs = load_xnli("hi", rows=range(1245, 1255))
    probs, truncated = score_examples(model, tok, exs, batch_size=4)
    assert sum(truncated) > 0 and np.allclose(probs.sum(1), 1)
    for ex in exs:
        reqs, cut = _fit_prompt(ex, tok, [], 512)
        assert max(len(c) + len(k) - 1 for c, k in reqs) <= 512
    model.config.max_position_embeddings = 40
    with pytest.raises(ValueError, match="longer than the model's context of 40 tokens"):
        score_examples(model, tok, exs[:1])


def test_classifier_head_probabilities():
    tok = ByT5Tokenizer()
    torch.manual_seed(0)
    cfg = BertConfig(vocab_size=len(tok), hidden_size=32, num_hidden_layers=2, num_attention_heads=2,
                     intermediate_size=64, max_position_embeddings=1024, num_labels=3, pad_token_id=tok.pad_token_id,
                     id2label={0: "contradiction", 1: "entailment", 2: "neutral"},
                     label2id={"contradiction": 0, "entailment": 1, "neutral": 2})
    model = BertForSequenceClassification(cfg).eval()
    exs = _examples(3)
    probs, truncated = score_examples(model, tok, exs, batch_size=4)
    assert not any(truncated)
    with torch.inference_mode():
        for ex, p in zip(exs, probs):
            enc = tok(ex["premise"], ex["hypothesis"], return_tensors="pt")
            head = torch.softmax(model(**enc).logits[0].double(), -1)
            want = [head[1], head[2], head[0]]  # reordered to entailment, neutral, contradiction
            np.testing.assert_allclose(p, want, atol=1e-4)
    assert LABELS == ("entailment", "neutral", "contradiction")
    direct = classify_pairs(model, tok, [exs[0]["premise"]], [exs[0]["hypothesis"]])
    np.testing.assert_allclose(direct[0].numpy(), probs[0], atol=1e-6)


@pytest.mark.parametrize("kind", [TINY_LLAMA, TINY_BLOOM])
def test_generation_batched_equals_single(kind):
    model, tok = tiny_model(kind)
    prompts = [tok.encode(flores_prompt(e["src"][: 30 + 17 * i], "en", "zh"), add_special_tokens=False)
               for i, e in enumerate(load_flores("en", "zh", limit=5))]
    single = [generate_lines(model, tok, [p], max_new_tokens=12, batch_size=1)[0] for p in prompts]
    assert generate_lines(model, tok, prompts, max_new_tokens=12, batch_size=3) == single
    assert any(single)


def test_generation_stops_at_newline(tiny_llama):
    model, tok = tiny_llama
    newline = tok.encode("\n", add_special_tokens=False)[0]
    assert StopOnNewline(tok)(torch.tensor([[5, 6, newline], [newline, 6, 7]]), None).tolist() == [True, False]
    calls = []

    def force_newline(module, args, out):  # makes "\n" the greedy choice at every step
        calls.append(1)
        out[..., newline] += 1e4
        return out

    model.lm_head.register_forward_hook(force_newline)
    prompt = tok.encode("English: Hello\nChinese:", add_special_tokens=False)
    assert generate_lines(model, tok, [prompt, prompt[:-3]], max_new_tokens=20, batch_size=2) == ["", ""]
    assert len(calls) == 1  # stopped after the first token, not after 20


def test_api_bad_input(tiny_llama):
    from govtune.evaluation import evaluate_flores, evaluate_xnli

    model, tok = tiny_llama
    with pytest.raises(ValueError, match="no tokenizer for tiny-llama"):
        evaluate_xnli(model, None, {"en": _examples(1)[:1]}, progress=False)
    with pytest.raises(ValueError, match="empty XNLI test set for 'zh'"):
        evaluate_xnli(model, tok, {"en": _examples(1)[:1], "zh": []}, progress=False)
    with pytest.raises(ValueError, match="no FLORES languages"):
        evaluate_flores(model, tok, {}, progress=False)
    with pytest.raises(ValueError, match="leaves no room"):
        evaluate_flores(model, tok, {"en-zh": load_flores("en", "zh", limit=1)}, max_new_tokens=510,
                        progress=False)


def test_scores_without_kv_cache_equal_cached(tiny_bloom, without_kv_cache):
    """Models that return no transformers Cache fall back to full rows, with the same numbers."""
    model, tok = tiny_bloom
    exs = _examples(2)
    cached, _ = score_examples(model, tok, exs, batch_size=3)
    without_kv_cache(model)
    uncached, _ = score_examples(model, tok, exs, batch_size=3)
    np.testing.assert_allclose(uncached, cached, atol=1e-5)


def test_a_frozen_head_gets_contiguous_kept_rows_and_the_same_scores():
    """A frozen head (every adapted model) given transformers' strided `logits_to_keep` view runs a broadcast
    batched product, 5x slower on a CPU: the scorer hands it a contiguous copy, the numbers unchanged."""
    model, tok = tiny_model(TINY_LLAMA)
    exs = _examples(2)
    trainable, _ = score_examples(model, tok, exs, batch_size=4)
    model.requires_grad_(False)
    seen = []
    hook = model.get_output_embeddings().register_forward_hook(
        lambda m, args, out: seen.append(args[0].is_contiguous()))
    frozen, _ = score_examples(model, tok, exs, batch_size=4)
    hook.remove()
    assert seen and all(seen)
    np.testing.assert_allclose(frozen, trainable, atol=1e-6)
