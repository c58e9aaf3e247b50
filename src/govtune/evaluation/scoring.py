"""Model scoring primitives: log-likelihoods of continuations, sequence-classification probabilities,
and greedy generation, all batched.

Requests are token ids encoded by `govtune.text.encoding` (prompt and continuation tokenised jointly, as
lm-evaluation-harness does, and as training encodes them), padded there with explicit attention masks and
position ids, left or right (left padding lets us keep only the last logits, the memory-light default)."""

from __future__ import annotations

import inspect
from collections.abc import Sequence
from functools import lru_cache

import torch
import torch.nn.functional as F

from govtune.data.xnli import LABELS
from govtune.evaluation.shared_prefix import SHARED_PREFIX_MIN, prefix_batches, shared_prefix_length
from govtune.evaluation.sharding import map_batches
from govtune.text.class_encoding import (ClassCollator, HeadForward, base_model, encode_class_pair, head_pad_id,
                                         is_classifier)
from govtune.text.encoding import pad_batch, pad_token_id
from govtune.text.target_loss import output_head
from govtune.text.sentences import cut_sentence, cut_until
from govtune.text.sentences import stopped as _stopped
from govtune.text.sentences import translation_done as _translation_done


def require_tokenizer(tokenizer, model=None) -> None:
    if tokenizer is None or not callable(getattr(tokenizer, "encode", None)):
        name = getattr(getattr(model, "config", None), "name_or_path", "the model")
        raise ValueError(f"no tokenizer for {name}: pass the tokenizer saved with the model (a directory with "
                         f"tokenizer files, or AutoTokenizer.from_pretrained(<same name>))")


def accepts(model, name: str) -> bool:
    return name in inspect.signature(base_model(model).forward).parameters


def _forward(model, ids, mask, pos, keep: int = 0, past=None):
    kwargs = {"input_ids": ids.to(model.device), "attention_mask": mask.to(model.device)}
    if accepts(model, "position_ids"):
        kwargs["position_ids"] = pos.to(model.device)
    if keep and accepts(model, "logits_to_keep"):
        kwargs["logits_to_keep"] = keep
    if past is not None:  # transformers 5 renamed past_key_values to cache (the old name goes in 5.40)
        kwargs["cache" if accepts(model, "cache") else "past_key_values"] = past
    head = output_head(base_model(model)) if keep else None
    handle = head.register_forward_pre_hook(_contiguous_input) if head is not None else None
    try:
        return model(**kwargs, use_cache=True)
    finally:
        if handle is not None:
            handle.remove()


def _contiguous_input(module, args):
    """The head's input as a contiguous tensor. For `logits_to_keep` transformers hands the head a strided view
    of the hidden states (hidden[:, -k:, :]); given a strided 3-D input and a weight that does not require
    grad (a frozen head: every model with an adapter), torch's matmul does not fold the input into one matrix
    product but broadcasts the weight into a batched one, 5x slower on a CPU (32 rows through Gemma 3's
    262,144-row head: 0.92 s against 0.17 s). The copy is k rows per sequence."""
    x = args[0] if args else None
    if torch.is_tensor(x) and not x.is_contiguous():
        return (x.contiguous(), *args[1:])
    return None


def _cache(res):
    cache = getattr(res, "cache", None)
    return res.past_key_values if cache is None else cache


def _left_padded_pass(model, seqs: list[list[int]], pad_id: int):
    """(output, attention mask, position ids) of the left-padded batch `seqs`, last logits only.

    When the rows share a prefix of at least SHARED_PREFIX_MIN tokens (in-context demonstrations), the
    prefix is run once with batch size 1, its KV cache repeated to every row, and only each row's suffix
    is run, left-padded after the prefix: the mask is ones over the prefix, the suffix's pads, then ones;
    positions continue from the prefix over real tokens (BLOOM's ALiBi derives them from that mask). A model
    whose cache is not a transformers Cache gets the full rows."""
    n = shared_prefix_length(seqs)
    if n >= SHARED_PREFIX_MIN:
        head = _forward(model, torch.tensor([seqs[0][:n]]), torch.ones((1, n), dtype=torch.long),
                        torch.arange(n)[None], keep=1)
        cache = _cache(head)
        if hasattr(cache, "batch_repeat_interleave"):
            cache.batch_repeat_interleave(len(seqs))
            ids, smask, spos = pad_batch([s[n:] for s in seqs], pad_id, "left")
            mask = torch.cat([torch.ones((len(seqs), n), dtype=smask.dtype), smask], 1)
            pos = spos + n
            return _forward(model, ids, mask, pos, keep=1, past=cache), mask, pos
    ids, mask, pos = pad_batch(seqs, pad_id, "left")
    return _forward(model, ids, mask, pos, keep=1), mask, pos


@torch.inference_mode()
def loglikelihoods(model, requests: list[tuple[list[int], list[int]]], *, batch_size: int = 8,
                   padding_side: str = "left", pad_id: int = 0, progress: bool = False,
                   desc: str = "scoring") -> list[float]:
    """Sum of log p(continuation token | everything before) for each (context ids, continuation ids).

    Requests that share a context (the three labels of an XNLI example) are scored together: one forward
    pass over the context fills the KV cache and gives every continuation's first token; a second, short
    pass over the continuations (cache rows repeated per continuation) gives the rest. The prompt is thus
    read once, not three times. Longest contexts go first so padding stays small. Contexts that begin with
    the same long prefix (in-context demonstrations, one block per language) are batched together and,
    with left padding, that prefix is read once per batch, not once per row (`shared_prefix`). Under
    `accelerate launch` the batches are shared among the processes (`govtune.evaluation.sharding`)."""
    if batch_size < 1:
        raise ValueError(f"batch size must be >= 1, got {batch_size}")
    groups: dict[tuple, list[tuple[int, list[int]]]] = {}
    for r, (ctx, cont) in enumerate(requests):
        if not cont or not ctx:
            raise ValueError(f"request {r} has an empty context or continuation: both need tokens")
        groups.setdefault(tuple(ctx), []).append((r, list(cont)))
    order = sorted(groups, key=len, reverse=True)
    batches = prefix_batches(order, lambda ctx: ctx, batch_size)
    out = [0.0] * len(requests)
    for scores in map_batches(lambda ctxs: _score_contexts(model, ctxs, groups, padding_side, pad_id), batches,
                              progress=progress, desc=desc):
        for r, score in scores.items():
            out[r] = score
    return out


def _score_contexts(model, ctxs: list[tuple], groups: dict, padding_side: str, pad_id: int) -> dict[int, float]:
    """Log-likelihood of every request of one batch of contexts, by request index."""
    out: dict[int, float] = {}
    if padding_side == "left":
        res, mask, pos = _left_padded_pass(model, [list(c) for c in ctxs], pad_id)
        last = torch.full((len(ctxs),), res.logits.shape[1] - 1)
    else:
        ids, mask, pos = pad_batch([list(c) for c in ctxs], pad_id, padding_side)
        res = _forward(model, ids, mask, pos)
        last = mask.sum(1) - 1 if res.logits.shape[1] > 1 else torch.zeros(len(ctxs), dtype=torch.long)
    first = F.log_softmax(res.logits[torch.arange(len(ctxs)), last].float(), dim=-1)  # (B, V)
    rest = []  # (batch row, request, continuation) whose tokens after the first need the second pass
    for i, c in enumerate(ctxs):
        for r, cont in groups[c]:
            out[r] = float(first[i, cont[0]])
            if len(cont) > 1:
                rest.append((i, r, cont))
    if not rest:
        return out
    rows = torch.tensor([i for i, _, _ in rest])
    cache = _cache(res)
    if not hasattr(cache, "batch_select_indices"):  # a model without a transformers Cache
        _score_tails_uncached(model, ctxs, rest, out, pad_id)
        return out
    cache.batch_select_indices(rows)  # one cache row per continuation (rows repeat)
    # Continuation inputs are right-padded after the context: real tokens sit at the same positions
    # whatever the padding, and the logits read below never touch a pad.
    cids, cmask, _ = pad_batch([cont[:-1] for _, _, cont in rest], pad_id, "right")
    cpos = (pos[rows, -1:] if padding_side == "left" else last[rows, None]) + 1 + torch.arange(cids.shape[1])
    logits = _forward(model, cids, torch.cat([mask[rows], cmask], 1), cpos, past=cache).logits
    logp = F.log_softmax(logits.float(), dim=-1)
    for k, (_, r, cont) in enumerate(rest):
        tail = torch.tensor(cont[1:])
        out[r] += float(logp[k, torch.arange(len(tail)), tail].sum())
    return out


def _score_tails_uncached(model, ctxs, rest, out, pad_id) -> None:
    """Continuation tokens after the first, one full right-padded row per continuation (no KV cache)."""
    seqs = [list(ctxs[i]) + cont[:-1] for i, _, cont in rest]
    ids, mask, pos = pad_batch(seqs, pad_id, "right")
    logp = F.log_softmax(_forward(model, ids, mask, pos).logits.float(), dim=-1)
    for k, (i, r, cont) in enumerate(rest):
        start = len(ctxs[i])  # logit at position p predicts token p + 1: cont[1] is predicted at len(ctx)
        tail = torch.tensor(cont[1:])
        out[r] += float(logp[k, torch.arange(start, start + len(tail)), tail].sum())


def _class_order(model) -> list[int]:
    """Column of each of LABELS (entailment, neutral, contradiction) in the head's output."""
    id2label = {int(k): str(v).lower() for k, v in (getattr(model.config, "id2label", None) or {}).items()}
    if len(id2label) != 3:
        raise ValueError(f"the classification head has {len(id2label)} labels: an XNLI head needs 3 "
                         f"(entailment, neutral, contradiction)")
    cols = []
    for name in LABELS:
        hits = [i for i, lab in id2label.items() if lab.startswith(name[:6])]
        cols.append(hits[0] if len(hits) == 1 else None)
    if None in cols:
        return [0, 1, 2]  # generic LABEL_0..2 names: the XNLI order (hub ClassLabel) is assumed
    return cols


@torch.inference_mode()
def classify_pairs(model, tokenizer, premises: list[str], hypotheses: list[str], *, batch_size: int = 8,
                   max_length: int | None = None, progress: bool = False) -> torch.Tensor:
    """(N, 3) softmax probabilities of a sequence-classification head, in LABELS order. Rows are encoded and
    padded as a head is trained on them (`govtune.text.class_encoding`)."""
    cols = _class_order(model)
    encoded = [encode_class_pair(tokenizer, p, h, max_length) for p, h in zip(premises, hypotheses)]
    order = sorted(range(len(encoded)), key=lambda i: -len(encoded[i].input_ids))
    collate, forward = ClassCollator(head_pad_id(model, tokenizer)), HeadForward(model)

    def classify(idx: list[int]) -> torch.Tensor:
        batch = {k: v.to(model.device) for k, v in collate([encoded[i] for i in idx]).items() if k != "labels"}
        return torch.softmax(forward(model, batch).float(), dim=-1)[:, cols].cpu()

    out = map_batches(classify, [order[b:b + batch_size] for b in range(0, len(order), batch_size)],
                      progress=progress, desc="classifying")
    probs = torch.cat(out) if out else torch.zeros((0, 3))
    restored = torch.empty_like(probs)
    restored[torch.tensor(order, dtype=torch.long)] = probs
    return restored


def context_length(model, tokenizer) -> int | None:
    """Longest input the model takes, or None when it has no fixed limit (ALiBi models such as BLOOM)."""
    cfg = base_model(model).config
    for attr in ("max_position_embeddings", "n_positions", "max_sequence_length", "seq_length"):
        v = getattr(cfg, attr, None)
        if isinstance(v, int) and v > 0:
            return v
    v = getattr(tokenizer, "model_max_length", None)
    return v if isinstance(v, int) and v < 1_000_000 else None


@lru_cache(maxsize=8)
def _newline_ids(tokenizer) -> frozenset[int]:
    # Byte-level vocabularies spell newline differently ("Ċ", "<0x0A>", a raw byte): decoding each id
    # once is the only tokenizer-independent way to know which tokens end a line.
    return frozenset(i for i in range(len(tokenizer)) if "\n" in tokenizer.decode([i]))


class StopOnNewline:
    """Stopping criterion: a row is done once it has generated a token containing a newline."""

    def __init__(self, tokenizer):
        self.ids = torch.tensor(sorted(_newline_ids(tokenizer)), dtype=torch.long)

    def __call__(self, input_ids: torch.Tensor, scores, **kwargs) -> torch.BoolTensor:
        return torch.isin(input_ids[:, -1], self.ids.to(input_ids.device))


def decode_complete(tokenizer, ids: Sequence[int]) -> str:
    """`ids` decoded without an incomplete character at the end.

    A budget can stop generation inside a multi-byte character (a Chinese character is three UTF-8 bytes,
    each its own token in byte-fallback vocabularies such as Llama's "<0xE4>", or split across byte-level
    BPE tokens); such tokenizers decode the dangling bytes as U+FFFD. The longest decode of `ids` minus at
    most 3 trailing tokens (a UTF-8 character has at most 3 bytes after its first) that does not end in
    U+FFFD keeps only whole characters; when there is none, the text stays as decoded."""
    ids = list(ids)
    text = tokenizer.decode(ids, skip_special_tokens=True)
    for k in range(1, min(3, len(ids)) + 1):
        if not text.endswith("\ufffd"):
            break
        shorter = tokenizer.decode(ids[:-k], skip_special_tokens=True)
        if not shorter.endswith("\ufffd"):
            return shorter
    return text


def _select_rows(cache, keep: torch.Tensor):
    """The KV cache restricted to the batch rows `keep`."""
    if hasattr(cache, "batch_select_indices"):  # transformers Cache objects (every model in transformers 5)
        cache.batch_select_indices(keep)
        return cache
    return tuple(tuple(t[keep] for t in layer) for layer in cache)  # the legacy tuple-of-tuples layout


@torch.inference_mode()
def greedy_tokens(model, prompts: list[list[int]], budgets: Sequence[int], done, *, pad_id: int,
                  eos_ids: Sequence[int] = ()) -> list[list[int]]:
    """Greedy new tokens of each prompt (EOS excluded), left-padded in one batch; a row leaves the batch as
    soon as it emits EOS, reaches its budget, or `done(row, new_tokens)` says it is finished.

    Written by hand, not with `model.generate`: `generate` keeps finished rows in the batch (it only
    overwrites their tokens with padding) until the last row stops, so one row that never ends its
    sentence makes every other row run to the budget; and its continuous-batching API (`generate_batch`)
    takes one budget for all rows, stops at EOS only, and needs a paged-attention implementation BLOOM's
    ALiBi lacks. Here finished rows are dropped from the input, the mask and the KV cache at each step,
    so the work of a step is proportional to the rows still running. The arithmetic of each row is that
    of `generate`'s greedy search (argmax of the last logits, positions counted over real tokens), so a
    row's tokens do not depend on which rows share its batch. A long prefix shared by all prompts
    (in-context demonstrations) is read once (`_left_padded_pass`)."""
    n = len(prompts)
    new: list[list[int]] = [[] for _ in range(n)]
    res, mask, pos = _left_padded_pass(model, [list(p) for p in prompts], pad_id)
    live = list(range(n))  # prompt index of each batch row still running
    pos = pos[:, -1:]
    eos = set(eos_ids)
    while True:
        nxt = res.logits[:, -1].float().argmax(-1).tolist()
        keep = []
        for k, (r, t) in enumerate(zip(live, nxt)):
            if t in eos:
                continue
            new[r].append(t)
            if len(new[r]) < budgets[r] and not done(r, new[r]):
                keep.append(k)
        if not keep:
            return new
        cache = _cache(res)
        if len(keep) < len(live):
            rows = torch.tensor(keep)
            cache, mask, pos = _select_rows(cache, rows.to(model.device)), mask[rows], pos[rows]
            live = [live[k] for k in keep]
        step = torch.tensor([[new[r][-1]] for r in live], dtype=torch.long)
        mask = torch.cat([mask, torch.ones((len(live), 1), dtype=mask.dtype)], 1)
        pos = pos + 1
        res = _forward(model, step, mask, pos, past=cache)


def _eos_ids(model, tokenizer) -> list[int]:
    """The tokenizer's EOS and the model's generation_config EOS ids (chat models may end a turn with a
    token other than the tokenizer's EOS, e.g. Llama 3's <|eot_id|>), as `generate` would stop at both."""
    ids = {tokenizer.eos_token_id}
    config = getattr(base_model(model), "generation_config", None)
    more = getattr(config, "eos_token_id", None)
    ids.update(more if isinstance(more, (list, tuple)) else [more])
    return sorted(int(i) for i in ids if i is not None)


@torch.inference_mode()
def generate_lines(model, tokenizer, prompts: list[list[int]], *, max_new_tokens: int = 128,
                   batch_size: int = 8, budgets: Sequence[int] | None = None,
                   scripts: Sequence[str] | None = None, sentences: Sequence[int] | None = None,
                   until: Sequence[str] | None = None, progress: bool = False, desc: str = "generating") -> list[str]:
    """Greedy continuation of each prompt (token ids), left-padded in batches, cut where the translation ends:
    after `sentences[i]` sentence ends, or at the newline that ends the answer line, whichever comes first.

    budgets: new tokens each prompt may generate (at most max_new_tokens); scripts: ISO 15924 script of
    each expected output, which picks its sentence-final marks (default Latin); sentences: sentence ends
    each output may hold (default 1; FLORES passes the source's count); until: stop strings that replace
    that rule (lm-eval's generate_until): a row ends once its text holds one and is cut before the earliest
    (`cut_until`); [] = no stop string, only EOS and the budget. A row leaves its batch as soon as
    its translation is complete, it emits EOS, or it reaches its budget; a text cut by the budget inside
    a character loses that character. Under `accelerate launch` the batches are shared among the processes."""
    if is_classifier(model):
        raise ValueError(f"{type(base_model(model)).__name__} has a sequence-classification head and no language-model "
                         f"head to generate with: evaluate translation and completion tasks with the causal LM "
                         f"(without the head's adapter, or from a head: lm run)")
    n = len(prompts)
    for name, per_row in (("budgets", budgets), ("scripts", scripts), ("sentences", sentences)):
        if per_row is not None and len(per_row) != n:
            raise ValueError(f"{name} needs one entry per prompt ({n}), got {len(per_row)}")
    if budgets is not None and min(budgets, default=1) < 1:
        raise ValueError(f"every generation budget must be >= 1, got {min(budgets)}")
    if sentences is not None and min(sentences, default=1) < 1:
        raise ValueError(f"every row must allow >= 1 sentence, got {min(sentences)}")
    if batch_size < 1 or max_new_tokens < 1:
        raise ValueError(f"batch size and max_new_tokens must be >= 1, got {batch_size} and {max_new_tokens}")
    scripts = list(scripts) if scripts is not None else ["Latn"] * n
    sentences = list(sentences) if sentences is not None else [1] * n
    steps = [min(max_new_tokens, budgets[i]) if budgets is not None else max_new_tokens for i in range(n)]
    pad = pad_token_id(tokenizer)
    eos = _eos_ids(model, tokenizer)

    def run(idx: list[int]) -> list[str]:
        def done(row: int, new: list[int]) -> bool:
            i, text = idx[row], tokenizer.decode(new, skip_special_tokens=True)
            return _stopped(text, until) if until is not None else _translation_done(text, scripts[i], sentences[i])

        toks = greedy_tokens(model, [prompts[i] for i in idx], [steps[i] for i in idx], done, pad_id=pad,
                             eos_ids=eos)
        if until is not None:
            return [cut_until(decode_complete(tokenizer, t), until) for t in toks]
        return [cut_sentence(decode_complete(tokenizer, t), scripts[i], sentences[i]) for i, t in zip(idx, toks)]

    order = sorted(range(n), key=lambda i: -len(prompts[i]))
    batches = prefix_batches(order, lambda i: prompts[i], batch_size)  # demonstrations of a direction together
    out: list[str] = [""] * n
    for idx, texts in zip(batches, map_batches(run, batches, progress=progress, desc=desc)):
        for i, text in zip(idx, texts):
            out[i] = text
    return out
