import pytest

from govtune.evaluation.robustness import apply, family, operations_for, perturb
from govtune.tasks import load_xnli


@pytest.mark.parametrize("lang,op,text,expected", [
    # Latin
    ("en", "punctuation", "“Hi” — he said… ‘ok’ !", '"Hi" - he said... \'ok\'!'),
    ("fr", "punctuation", "Vraiment ? « Oui » ; bien : non !", 'Vraiment? "Oui"; bien: non!'),
    ("es", "diacritics", "¿Qué pasó, señor? Él está aquí.", "¿Que paso, senor? El esta aqui."),
    ("de", "diacritics", "Über Straße", "Uber Straße"),  # ß is a letter, not a mark
    ("en", "whitespace", "He  said,  Mama, I'm   home. Then\tleft.", "He said,Mama,I'm home.Then left."),
    ("en", "whitespace", "It costs 3.50 dollars.", "It costs 3.50 dollars."),
    # Han
    ("zh", "punctuation", "他说，妈妈，我回来了。「好！」（是吗？）", '他说,妈妈,我回来了."好!"(是吗?)'),
    ("zh", "whitespace", "当地时间 上午 9:30 左右 (UTC 0230)， 他 来了", "当地时间上午9:30左右(UTC 0230)，他来了"),
    # Devanagari
    ("hi", "punctuation", "वह घर आया । “ठीक” ॥", 'वह घर आया. "ठीक".'),
    ("hi", "diacritics", "माँ ने ज़रूर फ़ोन किया", "मां ने जरूर फोन किया"),
    ("hi", "diacritics", "\u095b\u0930\u0942\u0930", "\u091c\u0930\u0942\u0930"),  # precomposed ज़ (U+095B)
    ("hi", "whitespace", "हाँ,  मैं घर आया हूं ।", "हाँ,मैं घर आया हूं।"),
    # Cyrillic, Greek, Arabic
    ("ru", "diacritics", "Ещё мой за\u0301", "Еще мой за"),
    ("el", "diacritics", "Ναι, ίσως όχι", "Ναι, ισως οχι"),
    ("ar", "diacritics", "كَتَبَ الوَلَدُ", "كتب الولد"),
    ("ar", "punctuation", "نعم ، ربما ؟", "نعم, ربما?"),
])
def test_operation_per_script(lang, op, text, expected):
    assert apply(op, text, lang) == expected


def test_devanagari_vowel_signs_and_virama_untouched():
    # Every matra (U+093E-U+094C), the virama and the anusvara survive diacritics removal.
    words = "कि की कु कू कृ के कै को कौ का क्ष मं"
    assert apply("diacritics", words, "hi") == words
    assert apply("diacritics", "हिन्दी भाषा", "hi") == "हिन्दी भाषा"


def test_not_applicable_operations():
    assert "diacritics" not in operations_for("zh") and family("zh") == "han"
    assert set(operations_for("hi")) == {"punctuation", "diacritics", "whitespace"}
    with pytest.raises(ValueError, match="not applicable to 'zh'"):
        apply("diacritics", "你好", "zh")
    assert "diacritics" not in operations_for("th")


def test_perturb_one_operation_seeded_and_effective():
    exs = [e for lang in ("en", "zh", "hi") for e in load_xnli(lang, rows=range(1245, 1345))]
    first = [perturb(e, seed=0) for e in exs]
    assert first == [perturb(e, seed=0) for e in exs]  # reproducible
    assert [op for _, op in first] != [op for _, op in (perturb(e, seed=1) for e in exs)]
    for ex, (new, op) in zip(exs, first):
        if op is None:  # nothing applicable changes it: every operation is a no-op here
            assert all(apply(o, ex[f], ex["lang"]) == ex[f] for o in operations_for(ex["lang"])
                       for f in ("premise", "hypothesis"))
        else:  # exactly one operation, and it changed the example
            assert (new["premise"], new["hypothesis"]) == (apply(op, ex["premise"], ex["lang"]),
                                                           apply(op, ex["hypothesis"], ex["lang"]))
            assert new != ex and new["label"] == ex["label"]
    ops = {op for _, op in first}
    assert {"punctuation", "whitespace", "diacritics"} <= ops
