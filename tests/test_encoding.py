"""govtune.text.encoding: the token ids and padded batches that training and evaluation share."""

from types import SimpleNamespace

import pytest
import torch

from govtune.evaluation.scoring import generate_lines
from govtune.models import TINY_BLOOM, TINY_LLAMA, tiny_model
from govtune.text.encoding import (PairCollator, encode_pair, encode_training_pair, encode_training_pairs,
                                    pad_batch, pad_token_id, special_prefix)
from govtune.text.prompts import xnli_training_pair
from govtune.training import TrainConfig, train

PAIRS = [("Short prompt:", " yes"), ("A much longer prompt than the first one:", " a longer target"),
         ("Mid prompt here:", " no"), ("Another prompt of some length:", " maybe")]


def test_special_prefix_drops_trailing_eos(tiny_llama):
    _, tok = tiny_llama
    assert tok.encode("a") == tok.encode("a", add_special_tokens=False) + [tok.eos_token_id]
    assert special_prefix(tok) == []
    ctx, cont = encode_pair(tok, "Answer:", " Yes")
    assert tok.decode(cont) == " Yes" and tok.eos_token_id not in ctx + cont


def test_training_labels_cover_the_target_only_and_match_the_scored_pair(tiny_llama):
    _, tok = tiny_llama
    prompt, target = xnli_training_pair({"premise": "A man sleeps.", "hypothesis": "A man is awake.",
                                         "label": "contradiction", "lang": "en"})
    enc = encode_training_pair(tok, prompt, target, max_length=512)
    ctx, cont = encode_pair(tok, prompt, target)
    assert enc.input_ids == ctx + cont  # trained on exactly the sequence the evaluator scores
    assert enc.labels == [-100] * len(ctx) + cont
    assert tok.eos_token_id not in enc.input_ids  # no EOS between prompt and answer


def test_truncation_keeps_the_target_and_the_end_of_the_prompt(tiny_llama):
    _, tok = tiny_llama
    enc = encode_training_pair(tok, "x" * 300 + " question?", " answer", max_length=64)
    assert len(enc.input_ids) == 64
    target = tok.encode(" answer", add_special_tokens=False)
    assert enc.input_ids[-len(target):] == target
    assert tok.decode(enc.input_ids[: -len(target)]).endswith("question?")


def test_pad_id_falls_back_to_eos_then_0():
    assert pad_token_id(SimpleNamespace(pad_token_id=3, eos_token_id=1)) == 3
    assert pad_token_id(SimpleNamespace(pad_token_id=None, eos_token_id=1)) == 1
    assert pad_token_id(SimpleNamespace(pad_token_id=None, eos_token_id=None)) == 0


def test_collator_pads_labels_with_ignore_index_and_counts_positions_over_real_tokens(tiny_llama):
    _, tok = tiny_llama
    enc = encode_training_pairs(tok, PAIRS, 128)
    for side in ("left", "right"):
        batch = PairCollator(7, side)(enc)
        for row, e in zip(range(len(enc)), enc):
            n, width = len(e.input_ids), batch["input_ids"].shape[1]
            real = slice(width - n, width) if side == "left" else slice(0, n)
            assert batch["input_ids"][row, real].tolist() == e.input_ids
            assert batch["labels"][row, real].tolist() == e.labels
            assert batch["position_ids"][row, real].tolist() == list(range(n))
            assert int(batch["attention_mask"][row].sum()) == n
            pads = batch["attention_mask"][row] == 0
            assert (batch["input_ids"][row][pads] == 7).all() and (batch["labels"][row][pads] == -100).all()
    with pytest.raises(ValueError, match="padding side"):
        pad_batch([[1]], 0, "middle")


def _first_inputs(model, run) -> dict[str, torch.Tensor]:
    """input_ids, attention_mask and position_ids of the first forward pass `run()` makes on `model`."""
    seen = []

    def hook(_, args, kwargs):
        if not seen:
            seen.append({k: kwargs[k].detach().cpu().clone() for k in ("input_ids", "attention_mask", "position_ids")
                         if k in kwargs})  # BLOOM (ALiBi) takes no position ids

    handle = model.register_forward_pre_hook(hook, with_kwargs=True)
    try:
        run()
    finally:
        handle.remove()
    return seen[0]


def _rows(inputs: dict[str, torch.Tensor]) -> list[tuple]:
    """The batch as a sorted list of rows (the trainer shuffles its batches; the evaluator sorts by length)."""
    return sorted(tuple(tuple(inputs[k][i].tolist()) for k in sorted(inputs)) for i in range(len(inputs["input_ids"])))


@pytest.mark.parametrize("kind", [TINY_LLAMA, TINY_BLOOM])
@pytest.mark.parametrize("pad", ["pad token", "no pad token"])
def test_training_and_evaluation_pad_a_batch_identically(kind, pad):
    """The trainer's first batch and the evaluator's first forward pass over the same token sequences
    feed the model the same ids (pad id included), mask and positions."""
    model, tok = tiny_model(kind)
    if pad == "no pad token":
        tok.pad_token = None  # both sides fall back to EOS
    seqs = [e.input_ids for e in encode_training_pairs(tok, PAIRS, 128)]
    assert len({len(s) for s in seqs}) > 1  # uneven lengths: there is padding to compare
    trained = _first_inputs(model, lambda: train(model, tok, PAIRS, config=TrainConfig(
        epochs=1, batch_size=len(PAIRS), progress=False, checkpoints=False)))
    model.eval()
    evaluated = _first_inputs(model, lambda: generate_lines(model, tok, seqs, max_new_tokens=1,
                                                            batch_size=len(seqs)))
    assert _rows(trained) == _rows(evaluated)
    assert (trained["input_ids"][trained["attention_mask"] == 0] == pad_token_id(tok)).all()
    assert int((trained["attention_mask"] == 0).sum()) > 0
