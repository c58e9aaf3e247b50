"""`govtune eval` end to end on the tiny random models."""

import json

import numpy as np
import orjson
import pytest
import torch
from sacrebleu.metrics import BLEU
from torchmetrics.classification import MulticlassCalibrationError

from govtune import adapters
from govtune.cli import main
from govtune.data.xnli import LABELS
from govtune.evaluation import bootstrap as bs
from govtune.tasks import load_flores


def _run(capsys, *argv):
    code = main(["eval", "--no-progress", *argv])
    return code, capsys.readouterr()


def test_eval_xnli_writes_three_files(tmp_path, capsys):
    out = tmp_path / "xnli"
    code, _ = _run(capsys, "--model", "tiny-llama", "--task", "xnli", "--langs", "en,zh,hi", "--limit", "4",
                   "--out", str(out), "--batch-size", "5", "--seed", "3")
    assert code == 0
    m = json.loads((out / "metrics.json").read_text())
    assert m["task"] == "xnli" and list(m["languages"]) == ["en", "zh", "hi"]
    preds = [orjson.loads(line) for line in (out / "predictions.jsonl").read_bytes().splitlines()]
    clean = [p for p in preds if p["perturbation"] is None]
    for lang, v in m["languages"].items():
        rows = [p for p in clean if p["language"] == lang]
        assert v["n"] == len(rows) == 4
        # Accuracy and ECE recomputed from the predictions file (torchmetrics as the ECE reference).
        assert v["accuracy"] == pytest.approx(100 * sum(p["prediction"] == p["gold"] for p in rows) / 4)
        probs = torch.tensor([[p["probs"][lab] for lab in LABELS] for p in rows], dtype=torch.float64)
        gold = torch.tensor([LABELS.index(p["gold"]) for p in rows])
        ece = MulticlassCalibrationError(num_classes=3, n_bins=15, norm="l1")(probs.float(), gold)
        assert v["ece"] == pytest.approx(100 * float(ece), abs=1e-4)
    accs = [v["accuracy"] for v in m["languages"].values()]
    assert m["macro"] == pytest.approx(sum(accs) / 3) and m["parity_gap"] == pytest.approx(max(accs) - min(accs))
    assert m["avg_ece"] == pytest.approx(sum(v["ece"] for v in m["languages"].values()) / 3)
    assert set(m["ci95"]) == {"macro", "parity_gap", "avg_ece", "robustness.macro_drop",
                              *[f"languages.{lang}.{k}" for lang in ("en", "zh", "hi") for k in ("accuracy", "ece")],
                              *[f"robustness.by_language.{lang}.drop" for lang in ("en", "zh", "hi")]}
    # Accuracy and Macro intervals recomputed from the predictions file: each language's examples resampled
    # with the bootstrap's fixed indices, then the 2.5% and 97.5% percentiles (of their mean for Macro).
    resampled = {}
    for lang in m["languages"]:
        correct = np.array([p["prediction"] == p["gold"] for p in clean if p["language"] == lang], dtype=float)
        resampled[lang] = 100 * correct[bs.unit_indices(lang, len(correct))].mean(axis=1)
        assert m["ci95"][f"languages.{lang}.accuracy"] == pytest.approx(np.percentile(resampled[lang], [2.5, 97.5]))
    macro_reps = np.mean(list(resampled.values()), axis=0)
    assert m["ci95"]["macro"] == pytest.approx(np.percentile(macro_reps, [2.5, 97.5]))
    rob = m["robustness"]
    assert rob["seed"] == 3 and rob["macro_drop"] == pytest.approx(rob["macro_clean"] - rob["macro_perturbed"])
    assert sum(v["n"] for v in rob["by_operation"].values()) == 12
    assert m["truncated"] == sum(v["truncated"] for v in m["languages"].values()) > 0  # Hindi bytes > 512
    assert m["run"]["rows"] == "evaluation rows"
    assert len(clean) == 12 and len(preds) - 12 == 12 - rob["unchanged"]
    assert {p["index"] for p in clean} == {1245, 1246, 1247, 1248}  # evaluation rows, not the few-shot pool
    for p in preds:
        assert set(p["probs"]) == set(LABELS) and sum(p["probs"].values()) == pytest.approx(1)
        assert p["prediction"] == max(p["probs"], key=p["probs"].get) and p["gold"] in LABELS
    report = (out / "report.md").read_text()
    assert "Macro" in report and "reliability.png" in report and (out / "reliability.png").stat().st_size > 1000
    assert not list(out.glob(".*"))  # no temporary files left behind


def test_eval_flores_writes_three_files(tmp_path, capsys):
    out = tmp_path / "flores"
    code, _ = _run(capsys, "--model", "tiny-bloom", "--task", "flores", "--pairs", "en-zh,en-es", "--limit", "3",
                   "--max-new-tokens", "6", "--out", str(out))
    assert code == 0
    m = json.loads((out / "metrics.json").read_text())
    assert m["task"] == "flores" and set(m["pairs"]) == {"en-zh", "en-es"}
    assert "tok:zh" in m["pairs"]["en-zh"]["signature"] and "tok:13a" in m["pairs"]["en-es"]["signature"]
    b = [v["bleu"] for v in m["pairs"].values()]
    assert m["average_bleu"] == pytest.approx(sum(b) / 2) and m["direction_gap"] == pytest.approx(max(b) - min(b))
    assert set(m["ci95"]) == {"average_bleu", "average_chrf", "direction_gap",
                              *[f"pairs.{p}.{k}" for p in ("en-zh", "en-es") for k in ("bleu", "chrf")]}
    preds = [orjson.loads(line) for line in (out / "predictions.jsonl").read_bytes().splitlines()]
    assert len(preds) == 6 and {p["index"] for p in preds} == {500, 501, 502}
    _check_bleu_from_predictions(m, preds)
    assert all("\n" not in p["hypothesis"] and p["reference"] for p in preds)
    assert (out / "report.md").exists() and (out / "flores.png").exists()


def _check_bleu_from_predictions(metrics: dict, preds: list[dict]) -> list[float]:
    """Each direction's BLEU equals sacreBLEU's on the written predictions (tokenize zh for Chinese, 13a
    otherwise); the average and the gap are those of the two."""
    scores = []
    for pair, tokenize in (("en-zh", "zh"), ("en-es", "13a")):
        rows = [p for p in preds if p["pair"] == pair]
        ref = BLEU(tokenize=tokenize).corpus_score([p["hypothesis"] for p in rows], [[p["reference"] for p in rows]])
        assert metrics["pairs"][pair]["bleu"] == pytest.approx(ref.score, abs=1e-9)
        scores.append(ref.score)
    assert metrics["average_bleu"] == pytest.approx(sum(scores) / 2, abs=1e-9)
    assert metrics["direction_gap"] == pytest.approx(abs(scores[0] - scores[1]), abs=1e-9)
    return scores


def test_eval_flores_bleu_of_known_translations(tmp_path, capsys, monkeypatch):
    """A random model's BLEU is 0 in both directions, which an average of anything would match: here the
    "model" returns known translations (the reference of every line, one word dropped in every other
    Spanish line, a wrong line for one Chinese line), so the two directions score differently and high."""
    refs = {pair: [ex["ref"] for ex in load_flores("en", pair[3:], lines=[500, 501, 502])]
            for pair in ("en-zh", "en-es")}
    zh = [refs["en-zh"][0], refs["en-zh"][1], refs["en-zh"][0]]  # the third line gets the first's translation
    es = [" ".join(r.split()[:-2] + r.split()[-1:]) if i % 2 == 0 else r for i, r in enumerate(refs["en-es"])]

    def translations(model, tokenizer, prompts, **kwargs):
        assert len(prompts) == 6  # en-zh lines 500-502, then en-es lines 500-502
        return zh + es

    monkeypatch.setattr("govtune.evaluation.flores_eval.generate_lines", translations)
    out = tmp_path / "flores"
    code, _ = _run(capsys, "--model", "tiny-bloom", "--task", "flores", "--pairs", "en-zh,en-es", "--limit", "3",
                   "--out", str(out))
    assert code == 0
    m = json.loads((out / "metrics.json").read_text())
    preds = [orjson.loads(line) for line in (out / "predictions.jsonl").read_bytes().splitlines()]
    assert [p["hypothesis"] for p in preds] == zh + es
    scores = _check_bleu_from_predictions(m, preds)
    assert 40 < min(scores) < max(scores) < 100 and m["direction_gap"] > 1


def test_eval_bad_input_messages(tmp_path, capsys):
    code, err = _run(capsys, "--model", "tiny-llama", "--task", "xnli", "--langs", "en,ja", "--out", str(tmp_path))
    assert code == 2 and "XNLI has no language 'ja'" in err.err
    code, err = _run(capsys, "--model", "tiny-llama", "--task", "xnli", "--limit", "0", "--out", str(tmp_path))
    assert code == 2 and "limit must be >= 1" in err.err
    code, err = _run(capsys, "--model", "tiny-llama", "--task", "xnli", "--threads", "0", "--out", str(tmp_path))
    assert code == 2 and "--threads must be >= 1" in err.err
    code, err = _run(capsys, "--model", "tiny-llama", "--task", "flores", "--pairs", "en-fr", "--out", str(tmp_path))
    assert code == 2 and "no FLORES file" in err.err and "fra_Latn.dev" in err.err
    # An empty test set.
    (tmp_path / "data" / "xnli").mkdir(parents=True)
    (tmp_path / "data" / "xnli" / "en.dev.jsonl").write_text("")
    code, err = _run(capsys, "--model", "tiny-llama", "--task", "xnli", "--langs", "en", "--data",
                     str(tmp_path / "data"), "--all-rows", "--out", str(tmp_path / "o"))
    assert code == 2 and "empty XNLI test set for 'en'" in err.err
    # A small file and the default evaluation rows.
    (tmp_path / "data" / "xnli" / "en.dev.jsonl").write_text(
        '{"premise": "a", "hypothesis": "b", "label": "neutral"}\n')
    code, err = _run(capsys, "--model", "tiny-llama", "--task", "xnli", "--langs", "en", "--data",
                     str(tmp_path / "data"), "--out", str(tmp_path / "o"))
    assert code == 2 and "--all-rows" in err.err
    # A model directory without tokenizer files.
    from govtune.models import tiny_model

    model, _ = tiny_model("tiny-llama")
    model.save_pretrained(tmp_path / "notok")
    code, err = _run(capsys, "--model", str(tmp_path / "notok"), "--task", "xnli", "--limit", "1",
                     "--out", str(tmp_path / "o"))
    assert code == 2 and "has no tokenizer files" in err.err
    assert not (tmp_path / "o").exists()


def _save_trained_looking_lora(model, path) -> None:
    """Inject a LoRA adapter with random B (B = 0 at init would change nothing) and save it to `path`."""
    adapters.inject(model, adapters.AdapterConfig(method="lora", r=4, alpha=8))
    with torch.no_grad():
        for name, p in model.named_parameters():
            if "lora_B" in name:
                p.normal_(0, 0.5)
    adapters.save_adapter(model, path)


def test_eval_with_adapter_matches_in_memory_model(tmp_path, capsys):
    from govtune.evaluation import evaluate_xnli
    from govtune.models import tiny_model
    from govtune.tasks import load_xnli

    model, tok = tiny_model("tiny-llama")
    _save_trained_looking_lora(model, tmp_path / "adapter")
    data = {"en": load_xnli("en", rows=range(1245, 1248))}
    want, _ = evaluate_xnli(model, tok, data, robustness=False, progress=False)
    base, _ = evaluate_xnli(*tiny_model("tiny-llama"), data, robustness=False, progress=False)
    code, _ = _run(capsys, "--model", "tiny-llama", "--adapter", str(tmp_path / "adapter"), "--task", "xnli",
                   "--langs", "en", "--limit", "3", "--no-robustness", "--out", str(tmp_path / "out"))
    assert code == 0
    got = json.loads((tmp_path / "out" / "metrics.json").read_text())
    assert got["run"]["adapter"] == str(tmp_path / "adapter")
    assert got["languages"]["en"]["ece"] == pytest.approx(want["languages"]["en"]["ece"], abs=1e-6)
    assert got["languages"]["en"]["ece"] != pytest.approx(base["languages"]["en"]["ece"], abs=1e-6)


def test_eval_quantize_scores_the_adapter_over_the_quantized_base(tmp_path, capsys):
    from govtune.evaluation import evaluate_xnli
    from govtune.models import load_model
    from govtune.tasks import load_xnli

    model, tok = load_model("tiny-llama", quantize="int8")
    _save_trained_looking_lora(model, tmp_path / "adapter")
    data = {"en": load_xnli("en", rows=range(1245, 1248))}
    want, _ = evaluate_xnli(model, tok, data, robustness=False, progress=False)
    code, _ = _run(capsys, "--model", "tiny-llama", "--adapter", str(tmp_path / "adapter"), "--quantize", "int8",
                   "--task", "xnli", "--langs", "en", "--limit", "3", "--no-robustness", "--out", str(tmp_path / "o"))
    assert code == 0
    got = json.loads((tmp_path / "o" / "metrics.json").read_text())
    assert got["run"]["quantize"] == "int8"
    assert got["languages"]["en"]["ece"] == pytest.approx(want["languages"]["en"]["ece"], abs=1e-6)
    code, out = _run(capsys, "--model", "tiny-llama", "--quantize", "int4", "--task", "xnli", "--langs", "en",
                     "--limit", "3", "--out", str(tmp_path / "o4"))
    if not torch.cuda.is_available():
        assert code != 0 and "int4" in out.err and "'int8' or 'nf4'" in out.err


def test_eval_calibrate_on_pool_rows_writes_temperatures(tmp_path, capsys):
    import torch
    from torchmetrics.classification import MulticlassCalibrationError

    out = tmp_path / "xnli"
    code, io = _run(capsys, "--model", "tiny-llama", "--task", "xnli", "--langs", "en,zh", "--limit", "4",
                    "--calibrate-on", "dev:0-6", "--out", str(out))
    assert code == 0 and "after temperature scaling" in io.out
    m = json.loads((out / "metrics.json").read_text())
    preds = [orjson.loads(line) for line in (out / "predictions.jsonl").read_bytes().splitlines()]
    assert m["run"]["calibrate_on"] == "dev:0-6"
    for lang, v in m["languages"].items():
        assert v["calibration_n"] == 6 and 0.01 <= v["temperature"] <= 100
        clean = [p for p in preds if p["language"] == lang and p["perturbation"] is None]
        ts = torch.tensor([[p["probs_ts"][lab] for lab in LABELS] for p in clean], dtype=torch.float64)
        gold = torch.tensor([LABELS.index(p["gold"]) for p in clean])
        ref = MulticlassCalibrationError(num_classes=3, n_bins=15, norm="l1")(ts, gold).item()
        assert v["ece_ts"] == pytest.approx(100 * ref, abs=1e-4)
        raw = np.array([[p["probs"][lab] for lab in LABELS] for p in clean])
        assert np.allclose(ts.numpy(), torch.softmax(torch.log(torch.from_numpy(raw)) / v["temperature"], -1),
                           atol=1e-6)
    assert m["avg_ece_ts"] == pytest.approx(sum(v["ece_ts"] for v in m["languages"].values()) / 2)
    report = (out / "report.md").read_text()
    assert "Temperature scaling" in report and "| en | 6 |" in report


def test_eval_calibrate_on_refuses_test_rows_and_bad_specs(tmp_path, capsys):
    base = ["--model", "tiny-llama", "--task", "xnli", "--langs", "en", "--limit", "4", "--out", str(tmp_path / "o")]
    code, err = _run(capsys, *base, "--calibrate-on", "dev:1240-1250")
    assert code == 2 and "also test examples" in err.err and "xnli-en-dev-1245" in err.err
    code, err = _run(capsys, *base, "--all-rows", "--calibrate-on", "dev")  # the pool rows are test rows here
    assert code == 2 and "also test examples" in err.err
    code, err = _run(capsys, *base, "--calibrate-on", "dev:200-100")
    assert code == 2 and "START < END" in err.err
    code, err = _run(capsys, "--model", "tiny-bloom", "--task", "flores", "--calibrate-on", "dev:0-5",
                     "--out", str(tmp_path / "o"))
    assert code == 2 and "applies to XNLI" in err.err
    assert not (tmp_path / "o").exists()
