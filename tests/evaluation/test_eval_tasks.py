import datasets
import pytest

from govtune.data import DATA_DIR, XNLI_EVAL_ROWS
from govtune.languages import XNLI_LANGUAGES, flores_code
from govtune.tasks import (LABELS, XNLI_LABEL_WORDS, flores_prompt, flores_training_pair, load_flores, load_xnli,
                           xnli_prompt, xnli_training_pair)
from govtune.text.prompts import XNLI_STRINGS, xnli_continuations


def test_load_xnli_local_rows_and_alignment():
    en = load_xnli("en", rows=XNLI_EVAL_ROWS, limit=5)
    hi = load_xnli("hi", rows=XNLI_EVAL_ROWS, limit=5)
    assert [e["row"] for e in en] == list(range(1245, 1250))
    assert [e["label"] for e in en] == [e["label"] for e in hi]  # rows aligned across languages
    assert all(e["label"] in LABELS and e["lang"] == "en" and e["premise"] and e["hypothesis"] for e in en)
    assert en[0]["id"] == "xnli-en-dev-1245"
    assert len(load_xnli("zh")) == 2490
    assert load_xnli("eng_Latn", limit=1)[0]["lang"] == "en"


def test_load_xnli_hub_path_returns_same_dicts(monkeypatch):
    local = load_xnli("zh", rows=[3, 7, 9])
    # The hub's XNLI stores labels as integers; a stand-in load_dataset serves the same rows that way.
    rows = load_xnli("zh")
    table = datasets.Dataset.from_list([{"premise": r["premise"], "hypothesis": r["hypothesis"],
                                         "label": LABELS.index(r["label"])} for r in rows])
    calls = []

    def fake_load_dataset(name, config, split):
        calls.append((name, config, split))
        return table

    monkeypatch.setattr(datasets, "load_dataset", fake_load_dataset)
    hub = load_xnli("zh", data_dir="facebook/xnli", rows=[3, 7, 9])
    assert calls == [("facebook/xnli", "zh", "validation")]
    assert hub == local


def test_load_flores_local_and_codes():
    ex = load_flores("en", "zh", lines=range(500, 503))
    assert [e["line"] for e in ex] == [500, 501, 502]
    assert ex[0]["src_lang"] == "en" and ex[0]["tgt_lang"] == "zh" and ex[0]["ref"] and ex[0]["src"]
    lines = (DATA_DIR / "flores" / "eng_Latn.dev").read_text(encoding="utf-8").split("\n")
    assert load_flores("eng_Latn", "spa_Latn", limit=2)[1]["src"] == lines[1]
    assert ex[0]["src"] == lines[500]
    for iso, code in {"en": "eng_Latn", "zh": "zho_Hans", "es": "spa_Latn", "hi": "hin_Deva", "fr": "fra_Latn",
                      "de": "deu_Latn", "ar": "arb_Arab", "ru": "rus_Cyrl"}.items():
        assert flores_code(iso) == code
    assert all(flores_code(lang) for lang in XNLI_LANGUAGES)


def test_bad_input_messages(tmp_path):
    with pytest.raises(ValueError, match="XNLI has no language 'ja'"):
        load_xnli("ja")
    with pytest.raises(ValueError, match="unknown language 'xx'"):
        load_xnli("xx")
    with pytest.raises(FileNotFoundError, match="split 'test' is not in"):
        load_xnli("en", split="test")
    with pytest.raises(FileNotFoundError, match="no FLORES file .*fra_Latn.dev"):
        load_flores("en", "fr")
    with pytest.raises(ValueError, match="rows within range"):
        load_xnli("en", rows=[5000])
    with pytest.raises(ValueError, match="limit must be >= 1"):
        load_xnli("en", limit=0)
    with pytest.raises(FileNotFoundError, match="does not exist"):
        load_xnli("en", data_dir=tmp_path / "missing")
    with pytest.raises(ValueError, match="both 'en'"):
        load_flores("en", "eng_Latn")


@pytest.mark.parametrize("lang", XNLI_LANGUAGES)
def test_xnli_prompt_every_language(lang):
    words = XNLI_LABEL_WORDS[lang]
    assert list(words) == list(LABELS)
    assert len({w[0] for w in words.values()}) == 3  # the continuations part at the first character
    p = xnli_prompt(" P. ", "H.", lang)
    assert p.startswith(XNLI_STRINGS[lang].premise_label) and "P." in p and "H." in p
    assert all(w in p for w in words.values())  # options listed in the question
    assert not p.endswith(" ")  # the separator belongs to the continuation
    conts = xnli_continuations(lang)
    ex = {"premise": "P.", "hypothesis": "H.", "label": "neutral", "lang": lang}
    prompt, target = xnli_training_pair(ex)
    assert prompt == xnli_prompt("P.", "H.", lang) and target == conts[1]
    assert target.strip() == words["neutral"]


def test_prompt_strings_differ_only_per_language():
    en = xnli_prompt("P", "H", "en")
    assert en == "Premise: P\nHypothesis: H\nDoes the premise imply the hypothesis? (Yes / Maybe / No)\nAnswer:"
    assert xnli_continuations("en") == (" Yes", " Maybe", " No")
    assert xnli_prompt("P", "H", "zh").endswith("答案：") and xnli_continuations("zh") == ("是", "可能", "否")


def test_flores_prompt_and_training_pair():
    ex = load_flores("en", "es", limit=1)[0]
    prompt, target = flores_training_pair(ex)
    assert prompt == flores_prompt(ex["src"], "en", "es")
    assert prompt.startswith("Translate the following sentence from English to Spanish.\nEnglish: ")
    assert prompt.endswith("\nSpanish:") and target == " " + ex["ref"] + "\n"
