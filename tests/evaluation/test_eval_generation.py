"""Greedy FLORES generation: cut after as many sentence ends of the target script as the source has (or at
the newline), stopped per row (finished rows leave the batch), capped in length relative to the source."""

import math

import pytest
import torch

from govtune.data import DATA_DIR, FLORES_EVAL_LINES
from govtune.evaluation import evaluate_flores
from govtune.evaluation.scoring import decode_complete, generate_lines, greedy_tokens
from govtune.text.sentences import count_sentences, cut_sentence, sentence_end
from govtune.languages import flores_code, script
from govtune.models import TINY_BLOOM, TINY_LLAMA, tiny_model
from govtune.tasks import load_flores
from govtune.text.prompts import flores_prompt


def test_cut_latin():
    assert cut_sentence(" Hola mundo. Adiós. ") == "Hola mundo."
    assert cut_sentence("El 3.5 por ciento subió! Luego") == "El 3.5 por ciento subió!"
    assert cut_sentence("... y luego? Nada") == "... y luego?"  # a mark before any content is not an end
    assert cut_sentence('Dijo "hola." Luego') == 'Dijo "hola."'  # the closing quote stays
    assert cut_sentence("Sin final\nOtra. línea") == "Sin final"
    assert cut_sentence("Sin final") == "Sin final"
    assert sentence_end("Hola.") == 5 and sentence_end("Hola.5") is None


def test_cut_han_and_devanagari():
    assert cut_sentence("你好。再见。", "Hans") == "你好。"
    assert cut_sentence("价格是3.5元！然后", "Hans") == "价格是3.5元！"
    assert cut_sentence("你好！”他说。", "Hans") == "你好！”"
    assert cut_sentence("。你好？好", "Hans") == "。你好？"
    assert cut_sentence("नमस्ते। फिर मिलेंगे।", "Deva") == "नमस्ते।"
    assert cut_sentence("राम ने कहा॥ आगे", "Deva") == "राम ने कहा॥"
    assert cut_sentence("क्या आप आएंगे? हाँ", "Deva") == "क्या आप आएंगे?"
    # a danda means nothing in Latin text, a full stop without a following space nothing anywhere
    assert cut_sentence("a।b", "Latn") == "a।b" and cut_sentence("你好.再见", "Hans") == "你好.再见"


def _force(model, tok, texts: dict[int, str]):
    """Makes the row whose prompt is L tokens long greedily spell texts[L] token by token (then "z").

    Rows leave the batch as they finish, so a row is known by its prompt length, read off its attention
    mask: the prompt batch is left-padded to width W, and a row keeps its W - L zeros at every step
    (leading, or after a prefix shared by all prompts and run once). Returns the batch size of every
    forward call."""
    seqs = {n: tok.encode(t, add_special_tokens=False) for n, t in texts.items()}
    filler = tok.encode("z", add_special_tokens=False)[0]
    calls, state = [], {}

    def read_mask(module, args, kwargs):
        if kwargs["input_ids"].shape[1] > 1:  # the prompt pass
            state["width"] = kwargs["attention_mask"].shape[1]
        state["mask"] = kwargs["attention_mask"]

    def hook(module, args, out):
        calls.append(out.shape[0])
        for i, row in enumerate(state["mask"].tolist()):
            zeros = row.count(0)
            s = seqs.get(state["width"] - zeros, [])
            step = len(row) - state["width"]  # tokens this row has generated so far
            out[i, -1, s[step] if step < len(s) else filler] += 1e4
        return out

    model.register_forward_pre_hook(read_mask, with_kwargs=True)
    model.lm_head.register_forward_hook(hook)
    return calls


def _prompts(tok, *lengths):
    """Prompts of the given token lengths (ByT5: one token per ASCII character)."""
    return [tok.encode(("English: Hello\nTarget:" * 20)[-n:], add_special_tokens=False) for n in lengths]


def test_rows_stop_at_their_sentence_end():
    model, tok = tiny_model(TINY_LLAMA)  # a fresh model: the forcing hook stays on it
    prompts = _prompts(tok, 40, 80, 120)
    calls = _force(model, tok, {40: "Hi. More text", 80: "Good day. Again", 120: "你好。x再见"})
    out = generate_lines(model, tok, prompts, max_new_tokens=40, batch_size=3, scripts=["Latn", "Latn", "Hans"])
    assert out == ["Hi.", "Good day.", "你好。"]
    # "Hi. " is confirmed after 4 tokens and leaves the batch; "Good day. " and "你好。x" (10 bytes; a
    # partial UTF-8 byte decodes to nothing, so a whole next character confirms "。") need 10
    assert calls == [3, 3, 3, 3, 2, 2, 2, 2, 2, 2]


def test_length_cap():
    model, tok = tiny_model(TINY_LLAMA)  # a fresh model: the forcing hook stays on it
    prompt = tok.encode("English: Hello\nTarget:", add_special_tokens=False)
    calls = _force(model, tok, {})  # "z" forever: no row ever ends its sentence
    assert generate_lines(model, tok, [prompt, prompt], budgets=[5, 3], batch_size=2) == ["zzzzz", "zzz"]
    assert calls == [2, 2, 2, 1, 1]  # each row stops at its own budget and leaves the batch
    calls.clear()
    assert generate_lines(model, tok, [prompt], budgets=[50], max_new_tokens=7) == ["z" * 7]
    with pytest.raises(ValueError, match="budgets needs one entry per prompt"):
        generate_lines(model, tok, [prompt], budgets=[1, 2])
    with pytest.raises(ValueError, match="sentences must be >= 1"):
        sentence_end("a. b.", sentences=0)


def test_flores_budget_follows_source_length(tiny_llama):
    model, tok = tiny_llama
    exs = load_flores("en", "es", limit=3)
    exs = [dict(e, src=e["src"][: 10 + 7 * i]) for i, e in enumerate(exs)]
    m, preds = evaluate_flores(model, tok, {"en-es": exs}, batch_size=2, max_new_tokens=40, length_ratio=1.5,
                               progress=False)
    want = [min(40, math.ceil(1.5 * len(tok.encode(e["src"], add_special_tokens=False))) + 8) for e in exs]
    assert m["timing"]["mean_budget"] == pytest.approx(sum(want) / 3)
    assert all(len(tok.encode(p["hypothesis"], add_special_tokens=False)) <= max(want) for p in preds)
    with pytest.raises(ValueError, match="length_ratio must be > 0"):
        evaluate_flores(model, tok, {"en-es": exs}, length_ratio=0, progress=False)


@pytest.mark.parametrize("kind", [TINY_LLAMA, TINY_BLOOM])
def test_batched_equals_single_with_scripts_and_budgets(kind):
    model, tok = tiny_model(kind)
    exs = load_flores("en", "zh", limit=5)
    prompts = [tok.encode(flores_prompt(e["src"][: 30 + 17 * i], "en", "zh"), add_special_tokens=False)
               for i, e in enumerate(exs)]
    scripts, budgets = ["Hans", "Latn", "Deva", "Hans", "Latn"], [6, 12, 9, 12, 4]
    single = [generate_lines(model, tok, [p], max_new_tokens=12, budgets=[b], scripts=[s])[0]
              for p, b, s in zip(prompts, budgets, scripts)]
    # every row stops at its own budget, whatever the others in its batch
    batched = generate_lines(model, tok, prompts, max_new_tokens=12, batch_size=3, budgets=budgets, scripts=scripts)
    assert batched == single and any(single)
    full = generate_lines(model, tok, prompts, max_new_tokens=12, batch_size=3, scripts=scripts)
    assert full == generate_lines(model, tok, prompts, max_new_tokens=12, batch_size=1, scripts=scripts)


def test_cut_after_as_many_sentences_as_the_source():
    assert count_sentences("Hola. Adiós.") == 2 and count_sentences("El 3.5 por ciento") == 0
    assert count_sentences("你好。再见！", "Hans") == 2 and count_sentences("नमस्ते। फिर मिलेंगे।", "Deva") == 2
    assert count_sentences("Yes! ! Ok.") == 2  # a mark with no letter since the previous end is no sentence
    assert cut_sentence(" Hola. Adiós. Luego", sentences=2) == "Hola. Adiós."
    assert cut_sentence("Hola.\nAdiós. Luego", sentences=2) == "Hola."  # the answer line ended first
    assert cut_sentence("你好。再见。然后", "Hans", 2) == "你好。再见。"
    assert cut_sentence("Hola. Adiós", sentences=3) == "Hola. Adiós"
    assert sentence_end("A. B.", sentences=2) == 5 and sentence_end("A. B", sentences=2) is None


def _eval_lines(lang: str) -> list[str]:
    lines = (DATA_DIR / "flores" / f"{flores_code(lang)}.dev").read_text(encoding="utf-8").split("\n")
    return [lines[i] for i in FLORES_EVAL_LINES]


@pytest.mark.parametrize("tgt", ["es", "zh", "hi"])
def test_real_multi_sentence_references_are_kept_whole(tgt):
    """Every shipped evaluation line whose reference has as many sentence ends as its English source, and
    more than one: the streaming stop waits until the whole reference is written, and the cut keeps it."""
    n_src = [count_sentences(s, "Latn") for s in _eval_lines("en")]
    refs = [ref.strip() for ref in _eval_lines(tgt)]
    lines = [(n, ref) for n, ref in zip(n_src, refs) if n > 1 and count_sentences(ref, script(tgt)) == n]
    assert len(lines) >= 30
    sc = script(tgt)
    for n, ref in lines:
        assert cut_sentence(ref + " Otra frase más. Y otra\nmás", sc, n) == ref
        assert cut_sentence(ref + "\n" + ref, sc, n) == ref
        assert cut_sentence(ref, sc, 1) != ref  # what the first-sentence rule used to keep
        # while the reference is being written the row is never finished ...
        assert not any(_done(ref[:j], sc, n) for j in range(1, len(ref) + 1))
        assert _done(ref + " ", sc, n) and _done(ref + "\n", sc, n)  # ... and it is once it is complete


def _done(text, sc, n):
    end = sentence_end(text, sc, n)
    return end is not None and end < len(text)


def test_flores_translation_keeps_every_sentence_of_a_two_sentence_source():
    model, tok = tiny_model(TINY_LLAMA)  # a fresh model: the forcing hook stays on it
    en, zh = _eval_lines("en"), _eval_lines("zh")
    two = en.index("Water is another example. The compound water is made up of two hydrogen atoms and one "
                   "oxygen atom.")
    one = next(i for i, s in enumerate(en) if count_sentences(s) == 1 and count_sentences(zh[i], "Hans") == 1
               and len(s) != len(en[two]))
    exs = [dict(src=en[i], ref=zh[i], src_lang="en", tgt_lang="zh", line=500 + i, id=i) for i in (two, one)]
    length = {len(tok.encode(flores_prompt(e["src"], "en", "zh"), add_special_tokens=False)): e for e in exs}
    # the model writes the reference and goes on: with another sentence, or on a new line of its own
    _force(model, tok, {n: " " + e["ref"] + ("然后是另一句。再一句。" if e is exs[0] else "\nEnglish: x")
                        for n, e in length.items()})
    m, preds = evaluate_flores(model, tok, {"en-zh": exs}, batch_size=2, max_new_tokens=300, length_ratio=4,
                               progress=False)
    assert [p["hypothesis"] for p in preds] == [e["ref"] for e in exs]
    assert preds[0]["hypothesis"] == "另一个例子是水。化合物水是由两个氢原子和一个氧原子组成的。"  # not just "另一个例子是水。"
    assert m["pairs"]["en-zh"]["bleu"] == pytest.approx(100.0)


def _byte_fallback_tokenizer():
    """A Llama-style byte-fallback tokenizer: printable ASCII characters are tokens, any other character is
    spelt as its UTF-8 byte tokens <0xHH>, and bytes that form no character decode to U+FFFD."""
    from tokenizers import Tokenizer, decoders, models
    from transformers import PreTrainedTokenizerFast

    vocab = {"<unk>": 0, "</s>": 1, "<pad>": 2, **{f"<0x{b:02X}>": 3 + b for b in range(256)},
             **{chr(c): 259 + c - 32 for c in range(32, 127)}}
    core = Tokenizer(models.BPE(vocab=vocab, merges=[], unk_token="<unk>", byte_fallback=True))
    core.decoder = decoders.Sequence([decoders.ByteFallback(), decoders.Fuse()])
    return PreTrainedTokenizerFast(tokenizer_object=core, unk_token="<unk>", eos_token="</s>", pad_token="<pad>")


def test_budget_cut_inside_a_character_drops_it():
    tok = _byte_fallback_tokenizer()
    ids = tok.encode("a你好", add_special_tokens=False)
    assert len(ids) == 7 and tok.decode(ids[:3]) == "a\ufffd\ufffd"  # what a cut row used to end with
    assert [decode_complete(tok, ids[:k]) for k in range(8)] == ["", "a", "a", "a", "a你", "a你", "a你", "a你好"]
    assert decode_complete(tok, []) == ""
    model, _ = tiny_model(TINY_LLAMA)  # its 384-token vocabulary covers the 354 ids
    prompt = tok.encode("English: Hello\nChinese:", add_special_tokens=False)
    _force(model, tok, {len(prompt): "你好。"})
    assert generate_lines(model, tok, [prompt], budgets=[5], scripts=["Hans"]) == ["你"]
    assert generate_lines(model, tok, [prompt], budgets=[9], scripts=["Hans"]) == ["你好。"]


@pytest.mark.parametrize("kind", [TINY_LLAMA, TINY_BLOOM])
def test_rows_of_very_different_lengths_batched_equal_per_row(kind):
    model, tok = tiny_model(kind)
    with torch.no_grad():  # larger random weights, so that each prompt gets its own output (at init,
        for w in model.parameters():  # every prompt continues with the same few tokens)
            if w.ndim == 2:
                w.normal_(0, 0.3)
    exs = load_flores("en", "zh", limit=6)
    prompts = [tok.encode(flores_prompt(e["src"][: 20 + 37 * i], "en", "zh"), add_special_tokens=False)
               for i, e in enumerate(exs)]
    budgets = [60, 1, 33, 4, 48, 9]
    never = lambda row, new: False  # noqa: E731 - no sentence stop: rows end only at their budget or EOS
    single = [greedy_tokens(model, [p], [b], never, pad_id=tok.pad_token_id, eos_ids=[tok.eos_token_id])[0]
              for p, b in zip(prompts, budgets)]
    batched = greedy_tokens(model, prompts, budgets, never, pad_id=tok.pad_token_id, eos_ids=[tok.eos_token_id])
    assert batched == single
    assert len({tuple(t[:4]) for t in single}) >= 4  # rows differ: a mix-up of rows would show
    assert max(len(t) for t in single) > 30  # one row runs long after the others have left
    # the reference: transformers' own greedy search, one row at a time
    for p, b, mine in zip(prompts, budgets, single):
        ref = model.generate(torch.tensor([p]), attention_mask=torch.ones(1, len(p), dtype=torch.long),
                             max_new_tokens=b, do_sample=False, num_beams=1, pad_token_id=tok.pad_token_id,
                             eos_token_id=tok.eos_token_id, temperature=None, top_p=None, top_k=None)[0, len(p):]
        ref = ref.tolist()
        assert mine == (ref[:ref.index(tok.eos_token_id)] if tok.eos_token_id in ref else ref)
    scripts = ["Hans", "Latn", "Deva", "Hans", "Latn", "Hans"]
    lines = generate_lines(model, tok, prompts, max_new_tokens=64, batch_size=6, budgets=budgets, scripts=scripts,
                           sentences=[1, 2, 1, 3, 2, 1])
    assert lines == [generate_lines(model, tok, [p], max_new_tokens=64, budgets=[b], scripts=[s], sentences=[n])[0]
                     for p, b, s, n in zip(prompts, budgets, scripts, [1, 2, 1, 3, 2, 1])]


def test_rows_stop_at_the_model_end_of_turn_token():
    model, tok = tiny_model(TINY_LLAMA)  # a fresh model: the forcing hook stays on it
    prompt = tok.encode("English: Hello\nTarget:", add_special_tokens=False)
    end_of_turn = tok.encode("Q", add_special_tokens=False)[0]
    model.generation_config.eos_token_id = [tok.eos_token_id, end_of_turn]  # as chat models list theirs
    calls = _force(model, tok, {len(prompt): "abQcd"})
    assert generate_lines(model, tok, [prompt], max_new_tokens=20) == ["ab"] and len(calls) == 3


def test_stop_strings_replace_the_line_rule():
    model, tok = tiny_model(TINY_LLAMA)  # a fresh model: the forcing hook stays on it
    prompts = _prompts(tok, 40, 80)
    calls = _force(model, tok, {40: "One.\nTwo.\n\nThree", 80: "A ### B\n\nC"})
    out = generate_lines(model, tok, prompts, max_new_tokens=30, batch_size=2, until=["\n\n", "###"])
    assert out == ["One.\nTwo.", "A"]  # the second line kept; cut before the earliest stop string
    # "A ###" holds a stop string after 5 tokens and leaves the batch; "One.\nTwo.\n\n" needs 11
    assert calls == [2] * 5 + [1] * 6
    calls.clear()
    assert generate_lines(model, tok, prompts[:1], max_new_tokens=14, until=[]) == ["One.\nTwo.\n\nThr"]
    assert len(calls) == 14  # no stop string: the budget ends it
    assert generate_lines(model, tok, prompts[:1], max_new_tokens=14) == ["One."]  # the default rule
