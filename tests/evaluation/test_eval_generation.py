"""Greedy FLORES generation: cut at the first sentence end of the target script, stopped per row, capped
in length relative to the source."""

import math

import pytest

from govtune.evaluation import evaluate_flores
from govtune.evaluation.scoring import cut_sentence, generate_lines, sentence_end
from govtune.models import TINY_BLOOM, TINY_LLAMA, tiny_model
from govtune.tasks import load_flores
from govtune.tasks.prompts import flores_prompt


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


def _force(model, tok, texts):
    """Makes row i greedily spell texts[i] byte by byte (then "z"); returns the list of forward calls."""
    seqs = [tok.encode(t, add_special_tokens=False) for t in texts]
    filler = tok.encode("z", add_special_tokens=False)[0]
    calls = []

    def hook(module, args, out):
        step = len(calls)
        calls.append(1)
        for i in range(out.shape[0]):
            s = seqs[i] if i < len(seqs) else []
            out[i, -1, s[step] if step < len(s) else filler] += 1e4
        return out

    model.lm_head.register_forward_hook(hook)
    return calls


def test_rows_stop_at_their_sentence_end():
    model, tok = tiny_model(TINY_LLAMA)  # a fresh model: the forcing hook stays on it
    prompt = tok.encode("English: Hello\nTarget:", add_special_tokens=False)
    calls = _force(model, tok, ["Hi. More text", "Good day. Again", "你好。x再见"])
    out = generate_lines(model, tok, [prompt] * 3, max_new_tokens=40, batch_size=3,
                         scripts=["Latn", "Latn", "Hans"])
    assert out == ["Hi.", "Good day.", "你好。"]
    # the batch ends once its last row is confirmed ("Good day. " = 10 bytes; "你好。x" = 10; a partial
    # UTF-8 byte decodes to nothing, so a whole next character is what confirms "。")
    assert len(calls) == 10


def test_length_cap():
    model, tok = tiny_model(TINY_LLAMA)  # a fresh model: the forcing hook stays on it
    prompt = tok.encode("English: Hello\nTarget:", add_special_tokens=False)
    calls = _force(model, tok, [])  # "z" forever: no row ever ends its sentence
    assert generate_lines(model, tok, [prompt, prompt], budgets=[5, 3], batch_size=2) == ["zzzzz"] * 2
    assert len(calls) == 5  # the batch runs to its largest budget, not to max_new_tokens
    calls.clear()
    assert generate_lines(model, tok, [prompt], budgets=[50], max_new_tokens=7) == ["z" * 7]
    with pytest.raises(ValueError, match="one entry per prompt"):
        generate_lines(model, tok, [prompt], budgets=[1, 2])


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
    # batched rows run to the batch's largest budget; cutting each row at its own budget must agree
    batched = generate_lines(model, tok, prompts, max_new_tokens=12, batch_size=1, budgets=budgets, scripts=scripts)
    assert batched == single and any(single)
    full = generate_lines(model, tok, prompts, max_new_tokens=12, batch_size=3, scripts=scripts)
    assert full == generate_lines(model, tok, prompts, max_new_tokens=12, batch_size=1, scripts=scripts)
