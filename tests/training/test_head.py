"""A sequence-classification head on the causal LM's backbone (govtune.heads), trained with an adapter on
ClassExample rows: the model, what trains, the loss, the shared encoding, checkpoints and saved adapters."""

import pytest
import torch

from govtune.adapters import AdapterConfig, adapter_layers, export_peft, inject, load_adapter, save_adapter
from govtune.data.xnli import LABELS
from govtune.evaluation.scoring import classify_pairs
from govtune.heads import unfreeze_head, with_classifier_head
from govtune.models import tiny_model
from govtune.text.class_encoding import ClassCollator, ClassExample, encode_class_examples, head_pad_id
from govtune.text.encoding import IGNORE_INDEX
from govtune.training import TrainConfig, load_checkpoint, train
from govtune.training.loop import ClassLoss
from govtune.training.optim import param_groups

WORDS = ["yes", "maybe", "no"]
# The class is the repeated word of the hypothesis: separable from the tiny model's pooled states.
ROWS = [ClassExample(f"Item {i}: a plain sentence.", " ".join([WORDS[i % 3]] * 6), i % 3) for i in range(24)]
PAIRS = [("A man is walking his dog.", "Someone is outside."), ("Short.", "A much longer hypothesis here."),
         ("Le chat dort sur le canapé depuis ce matin.", "Le chat dort.")]


def _head_model(method="lora", seed=0):
    causal, tok = tiny_model()
    model = with_classifier_head(causal, tok, LABELS, seed=seed)
    torch.manual_seed(seed)
    inject(model, AdapterConfig(method=method, r=4, alpha=8))
    return unfreeze_head(model), tok


def test_head_shares_the_backbone_and_pools_the_last_real_token(tiny_llama):
    causal, tok = tiny_llama
    rng = torch.get_rng_state()
    model = with_classifier_head(causal, tok, LABELS, seed=3)
    assert torch.equal(torch.get_rng_state(), rng)  # its own generator: the adapter init that follows is unchanged
    assert model.model is causal.model and type(model).__name__ == "LlamaForSequenceClassification"
    assert model.config.id2label == {0: "entailment", 1: "neutral", 2: "contradiction"}
    assert model.config.pad_token_id == tok.pad_token_id and model.score.weight.shape == (3, 64)
    # N(0, initializer_range^2), the same for the same seed, another for another seed
    assert model.score.weight.std().item() == pytest.approx(causal.config.initializer_range, rel=0.25)
    again = with_classifier_head(tiny_model()[0], tok, LABELS, seed=3)
    assert torch.equal(again.score.weight, model.score.weight)
    assert not torch.equal(with_classifier_head(tiny_model()[0], tok, LABELS, seed=4).score.weight,
                           model.score.weight)

    enc = encode_class_examples(tok, [ClassExample(p, h, 0) for p, h in PAIRS], None)
    batch = ClassCollator(head_pad_id(model, tok))(enc)
    mask = batch["attention_mask"]
    assert (mask[:, 0] == 1).all() and (mask.sum(1) < mask.shape[1]).any()  # right padding, rows of other lengths
    with torch.no_grad():
        logits = model(input_ids=batch["input_ids"], attention_mask=mask).logits
        hidden = causal(input_ids=batch["input_ids"], attention_mask=mask, output_hidden_states=True).hidden_states[-1]
        last = mask.sum(1) - 1
        want = hidden[torch.arange(len(enc)), last] @ model.score.weight.T
        torch.testing.assert_close(logits, want, atol=1e-5, rtol=1e-5)
        for i, e in enumerate(enc):  # each padded row scores as the row alone
            alone = model(input_ids=torch.tensor([e.input_ids])).logits[0]
            torch.testing.assert_close(logits[i], alone, atol=1e-5, rtol=1e-5)


def test_exactly_the_adapter_and_the_head_train_in_their_own_groups():
    model, _ = _head_model()
    trainable = {n for n, p in model.named_parameters() if p.requires_grad}
    adapter = {f"{name}.{n}" for name, layer in adapter_layers(model).items()
               for n, p in layer.named_parameters() if p.requires_grad}
    assert adapter and trainable == adapter | {"score.weight"}
    groups = {g["name"]: g for g in param_groups(model, lr=1e-3, weight_decay=0.1)}
    assert [p is model.score.weight for p in groups["head"]["params"]] == [True]
    assert groups["head"]["lr"] == 1e-3 and groups["head"]["weight_decay"] == 0.1
    assert not any(p is model.score.weight for g in groups.values() if g["name"] != "head" for p in g["params"])
    with pytest.raises(ValueError, match="no `score` head to train"):
        unfreeze_head(tiny_model()[0])
    causal, tok = tiny_model()
    inject(causal, AdapterConfig(method="lora"))
    with pytest.raises(ValueError, match="build the head first"):
        with_classifier_head(causal, tok, LABELS)


def test_training_lowers_the_head_cross_entropy():
    model, tok = _head_model()
    result = train(model, tok, ROWS, ROWS[:6], TrainConfig(epochs=6, lr=1e-2, batch_size=8, progress=False))
    ep = result.history.epochs
    # the loss is the mean cross-entropy per row: ln 3 for a head near chance
    assert result.history.initial_val_loss == pytest.approx(1.0986, abs=0.1)
    assert ep[-1].val_loss < 0.5 * result.history.initial_val_loss and ep[-1].train_loss < 0.5 * ep[0].train_loss
    probs = classify_pairs(model.eval(), tok, [r.premise for r in ROWS], [r.hypothesis for r in ROWS])
    assert (probs.argmax(1) == torch.tensor([r.label for r in ROWS])).float().mean() >= 0.9
    batch = ClassCollator(head_pad_id(model, tok))(encode_class_examples(tok, ROWS[:6], 256))
    with torch.no_grad():
        mean, n = ClassLoss(model)(model, batch)
    assert n == 6 and float(mean) == pytest.approx(ep[-1].val_loss, rel=1e-5)


def test_the_loss_is_the_mean_over_rows():
    model, tok = _head_model()
    loss = ClassLoss(model)
    collate = ClassCollator(head_pad_id(model, tok))
    a, b = encode_class_examples(tok, [ROWS[0], ClassExample(*PAIRS[1], 2)], 256)
    with torch.no_grad():
        one, n1 = loss(model, collate([a]))
        two, n2 = loss(model, collate([a, a]))
        mixed, _ = loss(model, collate([a, b]))
        other, _ = loss(model, collate([b]))
        none, n0 = loss.summed(model, {**collate([a]), "labels": torch.tensor([IGNORE_INDEX])})
    assert (n1, n2) == (1, 2) and float(two) == pytest.approx(float(one), rel=1e-6)
    assert float(mixed) == pytest.approx((float(one) + float(other)) / 2, rel=1e-5)
    assert float(none) == 0 and n0 == 0  # a process without rows adds nothing
    # trained on each row twice or once, the run takes the same steps
    runs = []
    for rows, batch_size in (([ROWS[0], ROWS[1]], 2), ([ROWS[0], ROWS[0], ROWS[1], ROWS[1]], 4)):
        model, tok = _head_model()
        result = train(model, tok, rows, config=TrainConfig(epochs=2, lr=1e-2, batch_size=batch_size,
                                                             progress=False, warmup_ratio=0.0))
        runs.append(([s.loss for s in result.history.steps], model.score.weight.detach().clone()))
    assert runs[0][0] == pytest.approx(runs[1][0], rel=1e-5)
    torch.testing.assert_close(runs[0][1], runs[1][1], atol=1e-6, rtol=1e-5)


def test_training_encodes_rows_as_classify_pairs_scores_them():
    model, tok = _head_model()
    seen = []
    model.register_forward_pre_hook(lambda m, args, kwargs: seen.append(kwargs), with_kwargs=True)
    premises, hypotheses = [p for p, _ in PAIRS], [h for _, h in PAIRS]
    for max_length in (None, 40):
        seen.clear()
        classify_pairs(model, tok, premises, hypotheses, batch_size=2, max_length=max_length)
        scored = sorted(tuple(ids[m.bool()].tolist()) for kw in seen
                        for ids, m in zip(kw["input_ids"], kw["attention_mask"]))
        trained = encode_class_examples(tok, [ClassExample(p, h, 0) for p, h in PAIRS], max_length)
        assert scored == sorted(tuple(e.input_ids) for e in trained)
    for e, (p, h) in zip(trained, PAIRS):  # too long, the premise loses its end, the hypothesis stays whole
        full = tok(p, h)["input_ids"]
        assert len(e.input_ids) == min(len(full), 40)
        tail = tok.encode(h)
        assert e.input_ids[-len(tail):] == tail


def test_checkpoint_and_saved_adapter_keep_the_head(tmp_path):
    model, tok = _head_model()
    train(model, tok, ROWS, config=TrainConfig(epochs=2, lr=1e-2, batch_size=8, progress=False),
          out_dir=tmp_path / "ckpt")
    fresh, _ = _head_model()
    assert not torch.equal(fresh.score.weight, model.score.weight)
    state = load_checkpoint(tmp_path / "ckpt", fresh)
    assert state["run"]["param_groups"][-1] == "head"
    for (n, a), (_, b) in zip(model.named_parameters(), fresh.named_parameters()):
        assert torch.equal(a, b), n

    save_adapter(model, tmp_path / "adapter")
    causal, _ = tiny_model()
    with pytest.raises(ValueError, match=r"with_classifier_head\(model, tokenizer, \['entailment'"):
        load_adapter(causal, tmp_path / "adapter")
    reloaded = load_adapter(with_classifier_head(causal, tok, LABELS, seed=9), tmp_path / "adapter").eval()
    premises, hypotheses = [p for p, _ in PAIRS], [h for _, h in PAIRS]
    torch.testing.assert_close(classify_pairs(reloaded, tok, premises, hypotheses),
                               classify_pairs(model.eval(), tok, premises, hypotheses), atol=0, rtol=0)
    with pytest.raises(ValueError, match=r"besides its adapter \(\['score.weight'\]"):
        export_peft(model, tmp_path / "peft")


def test_class_rows_need_a_head_and_never_mix_with_pairs():
    causal, tok = tiny_model()
    inject(causal, AdapterConfig(method="lora", r=4))
    with pytest.raises(ValueError, match="has no sequence-classification head: build it with"):
        train(causal, tok, ROWS, config=TrainConfig(progress=False))
    model, tok = _head_model()
    with pytest.raises(ValueError, match="mix ClassExample rows and"):
        train(model, tok, ROWS, [("prompt", " target")], config=TrainConfig(progress=False))


def test_a_head_model_refuses_to_generate():
    from govtune.evaluation.scoring import generate_lines

    model, tok = _head_model()
    with pytest.raises(ValueError, match="no language-model head to generate with"):
        generate_lines(model, tok, [tok.encode("Hello", add_special_tokens=False)])
