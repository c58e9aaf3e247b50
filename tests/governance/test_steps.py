"""Unit properties of the steps: MinHash against datasketch, normalisation, perplexity against a direct
computation and its per-language percentile cut, the k-shot sampler, config validation."""

import math
from collections import Counter

import numpy as np
import pytest
import torch
from datasketch import MinHash

from govtune.governance import CurationConfig, DedupConfig, QualityConfig, curate, sample_kshot
from govtune.governance.dedup import MinHasher, normalise, shingle_hashes
from govtune.governance.perplexity import PerplexityStep, perplexities


@pytest.mark.parametrize("text,n", [("Hello, World! This is a test of shingles.", 5),
                                    ("他说，妈妈，我回来了。", 3), ("सोमवार को, स्टैनफ़ोर्ड यूनिवर्सिटी", 5), ("ab", 5)])
def test_signature_matches_datasketch(text, n):
    norm = normalise(text)
    hv, owner = shingle_hashes([norm], n)
    assert len(hv) == max(1, len(norm) - n + 1) and (owner == 0).all()
    ref = MinHash(num_perm=64, seed=3, scheme="affine32", hashfunc=lambda x: x)
    ref.update_batch(hv.tolist())
    ours = MinHasher(64, 3).signatures(["filler text before", norm, "and after"], n)[1]
    np.testing.assert_array_equal(ours, ref.hashvalues)


def test_shingles_do_not_cross_records():
    a, b = "abcdefgh", "ijklmnop"
    hv_joint, owner = shingle_hashes([a, b], 4)
    hv_a, _ = shingle_hashes([a], 4)
    hv_b, _ = shingle_hashes([b], 4)
    np.testing.assert_array_equal(hv_joint, np.concatenate([hv_a, hv_b]))
    assert Counter(owner.tolist()) == {0: 5, 1: 5}


def test_normalise_case_punctuation_space():
    assert normalise("Hello,   WORLD!!") == normalise("hello world") == "hello world"
    assert normalise("他说，妈妈。") == "他说 妈妈"


def _jaccard(a: str, b: str, n: int) -> float:
    """Exact Jaccard similarity of the normalised character n-gram sets (what MinHash estimates)."""
    grams = [{t[i:i + n] for i in range(len(t) - n + 1)} for t in (normalise(a), normalise(b))]
    return len(grams[0] & grams[1]) / len(grams[0] | grams[1])


@pytest.mark.parametrize("lang,old,new,n", [("en", "journalist", "writer", 5), ("zh", "记者", "作家", 3),
                                            ("hi", "पत्रकार", "लेखक", 5)])
def test_near_duplicates_of_real_xnli_premises(lang, old, new, n):
    """One word changed in a long premise, punctuation changed in a short one: both are flagged; another
    premise of the same language is not."""
    from govtune.governance.dedup import DeduplicationStep
    from govtune.tasks import load_xnli

    long_premise, short_premise, other = (load_xnli(lang, rows=[row])[0]["premise"] for row in (639, 24, 501))
    assert long_premise.count(old) == 1
    one_word = long_premise.replace(old, new)  # journalist -> writer
    marks = {",": ";", "，": "、", "。": "！", ".": "!", "।": "!"}
    punctuation = "".join(marks.get(c, c) for c in short_premise)
    assert punctuation != short_premise
    # What the cases are, by the exact measure: the edits stay above the 0.8 threshold, the other premise
    # shares almost nothing.
    assert _jaccard(long_premise, one_word, n) > 0.89 and _jaccard(short_premise, punctuation, n) == 1.0
    assert _jaccard(long_premise, other, n) < 0.05 and _jaccard(short_premise, other, n) < 0.05
    records = [{"text": t, "lang": lang, "id": i}
               for i, t in enumerate([long_premise, short_premise, one_word, punctuation, other])]
    verdicts = DeduplicationStep(CurationConfig().dedup).judge(records)
    assert verdicts == [None, None, "near_duplicate", "near_duplicate", None]


def _direct_perplexity(model, tok, text):
    ids = torch.tensor([tok(text)["input_ids"]])
    with torch.no_grad():
        return math.exp(model(input_ids=ids, labels=ids).loss.item())


def test_perplexity_batched_equals_direct(tiny_llama):
    model, tok = tiny_llama
    texts = ["short", "a somewhat longer sentence with more bytes", "中文句子", "हिन्दी"]
    batched = perplexities(model, tok, texts, batch_size=3, progress=False)
    for text, value in zip(texts, batched):
        assert value == pytest.approx(_direct_perplexity(model, tok, text), rel=1e-4)


def test_perplexity_percentile_cut_per_language(tiny_llama, pool):
    model, tok = tiny_llama
    records = [r for r in pool if r["kind"] == "clean" and "text" in r][:90]
    cfg = CurationConfig()
    cfg.perplexity.drop_top_percent = 20.0
    cfg.perplexity.max_length = 64
    step = PerplexityStep(model, tok, cfg.perplexity, progress=False)
    verdicts = step.judge(records)
    for lang in ("en", "zh", "hi"):
        idx = [i for i, r in enumerate(records) if r["lang"] == lang]
        dropped = [i for i in idx if verdicts[i] == "high_perplexity"]
        assert len(dropped) == math.floor(len(idx) * 0.2)
        kept = [i for i in idx if verdicts[i] is None]
        assert min(step.scores[dropped]) >= max(step.scores[kept])  # the cut is within the language
    # through curate: the perplexity step runs in C2 and the report names it
    result = curate(records, ["en", "zh", "hi"], "c2", reference_model=model, reference_tokenizer=tok,
                    config=cfg, progress=False)
    assert result.report["by_reason"].get("high_perplexity", 0) >= 3 * 5
    assert any(s["name"] == "perplexity" for s in result.report["steps"])
    assert not result.report["notes"]
    assert curate(records[:5], ["en", "zh", "hi"], "c2", progress=False).report["notes"]  # says it was skipped


def test_sample_kshot_balanced_seeded(curated):
    shots = sample_kshot(curated, ["en", "zh", "hi"], 32, seed=0)
    assert len(shots) == 96
    assert shots == sample_kshot(curated, ["en", "zh", "hi"], 32, seed=0)
    assert shots != sample_kshot(curated, ["en", "zh", "hi"], 32, seed=1)
    assert len({r["id"] for r in shots}) == 96
    kept = {r["id"] for r in curated.kept}
    assert all(r["id"] in kept for r in shots)
    for lang in ("en", "zh", "hi"):
        labels = Counter(r.get("label") for r in shots if r["lang"] == lang)
        assert sum(labels.values()) == 32
        assert max(labels.values()) - min(labels.values()) <= 1  # 3 NLI labels + unlabeled FLORES: 8 each


def test_sample_kshot_errors_name_language_count_and_stages(curated):
    with pytest.raises(ValueError, match=r"'hi' has \d+ records after curation, fewer than k=100000.*C1 removed"):
        sample_kshot(curated, ["hi"], 100000)
    empty = curate([{"text": "Hola, ¿cómo estás? Muy bien, gracias por preguntar.", "lang": "en", "id": 1}],
                   ["en"], "c1", progress=False)
    assert "'en' has no records left" in empty.report["notes"][0]
    with pytest.raises(ValueError, match=r"'en' has no records left.*C1 removed 1 \(wrong_language 1\)"):
        sample_kshot(empty, ["en"], 4)


def test_config_validation_messages():
    with pytest.raises(ValueError, match="threshold"):
        DedupConfig(threshold=1.5)
    with pytest.raises(ValueError, match="max_symbol_ratio"):
        QualityConfig(max_symbol_ratio=0)
    with pytest.raises(ValueError, match="stage"):
        curate([], ["en"], "c3")
    with pytest.raises(ValueError, match="ISO 639-1"):
        curate([], ["english"], "c1")


def test_text_without_letters_has_no_language_in_any_process():
    # lingua scores such text 0.0 for every language, in an order that changes with the process's hash
    # seed; the verdict must not. Several fresh interpreters, one verdict each.
    import subprocess
    import sys

    code = ("from govtune.governance.langid import LanguageIdStep;"
            "print(LanguageIdStep(['en','zh','hi']).judge("
            "[{'text': '$$$ 555-0199 ### 2024-01-01 12:00 *** 99.99% ***', 'lang': l} for l in ('en','zh','hi')]))")
    outs = {subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout
            for _ in range(4)}
    assert outs == {str(["wrong_language"] * 3) + "\n"}
