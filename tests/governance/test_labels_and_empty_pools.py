"""Labels must be XNLI classes (names, or 0/1/2 read as names) and a pool must hold records: through the
command line, `curate`, the `datasets` paths and the k-shot sampler."""

import json
from collections import Counter

import numpy as np
import pytest

from govtune.cli import main
from govtune.data.xnli import LABELS, label_name
from govtune.governance import CurationConfig, curate, curate_dataset, sample_kshot
from govtune.governance.io import load_pool, read_jsonl

PREMISES = ["The committee met on Tuesday to discuss the budget for next year.",
            "A small boat drifted slowly along the river towards the old mill.",
            "The museum will stay open until nine in the evening during the summer.",
            "Several farmers complained that the rain had ruined most of the harvest.",
            "She finished the report before lunch and sent it to her manager.",
            "The new bridge shortened the trip between the two villages by an hour."]


def _records(labels):
    return [{"premise": p, "hypothesis": f"Sentence number {i} is about something.", "label": lab,
             "lang": "en", "id": f"r{i}"} for i, (p, lab) in enumerate(zip(PREMISES, labels))]


def _write(path, records):
    path.write_text("".join(json.dumps(r) + "\n" for r in records), encoding="utf-8")
    return path


def _jsonl(path):
    return [json.loads(x) for x in path.read_text(encoding="utf-8").splitlines()]


@pytest.mark.parametrize("value,name", [("entailment", "entailment"), ("Neutral ", "neutral"), (0, "entailment"),
                                        (1, "neutral"), (2, "contradiction"), ("2", "contradiction"),
                                        (np.int64(1), "neutral")])
def test_label_name_accepts_names_and_hub_integers(value, name):
    assert label_name(value) == name


@pytest.mark.parametrize("value", ["maybe", 3, -1, True, 1.0, "", None, "²", "-1"])
def test_label_name_rejects_everything_else(value):
    with pytest.raises(ValueError, match="is not an XNLI class"):
        label_name(value)


def test_curate_keeps_integer_labels_as_names_and_samples_three_classes():
    records = _records([0, 1, 2, "entailment", "neutral", "contradiction"])
    result = curate(records, ["en"], "c0", progress=False)
    assert [r["label"] for r in result.kept] == list(LABELS) * 2
    assert [r["id"] for r in result.kept] == [r["id"] for r in records]  # order and ids unchanged
    shots = sample_kshot(result, ["en"], 6, seed=0)
    assert Counter(r["label"] for r in shots) == {lab: 2 for lab in LABELS}


def test_curate_rejects_a_label_that_is_not_a_class():
    records = _records(["entailment", "maybe", "neutral"])
    with pytest.raises(ValueError, match=r"record 1 \(id=r1\): label 'maybe' is not an XNLI class.*skip_invalid"):
        curate(records, ["en"], "c0", progress=False)
    result = curate(records, ["en"], "c0", config=CurationConfig(skip_invalid=True), progress=False)
    assert [r["id"] for r in result.kept] == ["r0", "r2"]
    assert [(r["id"], r["label"], r["reason"], r["stage"]) for r in result.dropped] == [
        ("r1", "maybe", "invalid_label", "c0")]
    assert result.report["stages"]["c0"]["dropped_by_language"] == {"en": {"invalid_label": 1}}
    # The fourth class never reaches the sampler: only the two valid labels are there to balance.
    assert {r["label"] for r in sample_kshot(result, ["en"], 2, seed=0)} == {"entailment", "neutral"}


def test_curate_rejects_an_empty_pool():
    with pytest.raises(ValueError, match="the pool is empty"):
        curate([], ["en"], "c1", progress=False)


def test_cli_invalid_label_names_the_line(tmp_path, capsys):
    src = _write(tmp_path / "pool.jsonl", _records(["entailment", "neutral", "maybe"]))
    code = main(["curate", "--input", str(src), "--langs", "en", "--stage", "c0", "--out", str(tmp_path / "o")])
    err = capsys.readouterr().err
    assert code == 2
    assert f"{src}, line 3: label 'maybe' is not an XNLI class" in err and "--skip-invalid" in err
    assert not (tmp_path / "o").exists()


def test_cli_skip_invalid_drops_bad_labels_and_names_integer_ones(tmp_path, capsys):
    records = _records([0, "maybe", 2, 7, "Contradiction", -1])
    src = _write(tmp_path / "pool.jsonl", records)
    out = tmp_path / "out"
    assert main(["curate", "--input", str(src), "--langs", "en", "--stage", "c0", "--out", str(out),
                 "--skip-invalid", "--no-progress", "--shots", "3"]) == 0
    kept, dropped = _jsonl(out / "kept.jsonl"), _jsonl(out / "dropped.jsonl")
    assert [(r["id"], r["label"]) for r in kept] == [("r0", "entailment"), ("r2", "contradiction"),
                                                     ("r4", "contradiction")]
    assert [(r["id"], r["label"], r["reason"]) for r in dropped] == [
        ("r1", "maybe", "invalid_label"), ("r3", 7, "invalid_label"), ("r5", -1, "invalid_label")]
    assert json.loads((out / "report.json").read_text())["by_reason"] == {"invalid_label": 3}
    assert {r["label"] for r in _jsonl(out / "shots.jsonl")} == {"entailment", "contradiction"}
    assert "kept 3, dropped 3 (invalid_label 3)" in capsys.readouterr().out


@pytest.mark.parametrize("content", ["", "\n\n  \n"])
def test_cli_empty_pool_file_is_an_error_naming_it(tmp_path, capsys, content):
    src = tmp_path / "pool.jsonl"
    src.write_text(content)
    code = main(["curate", "--input", str(src), "--langs", "en", "--out", str(tmp_path / "o")])
    err = capsys.readouterr().err
    assert code == 2 and f"{src} holds no records" in err
    assert not (tmp_path / "o").exists()
    with pytest.raises(ValueError, match="holds no records"):
        read_jsonl(src)


def test_cli_empty_protected_file_is_an_error(tmp_path, capsys):
    src = _write(tmp_path / "pool.jsonl", _records(LABELS))
    (tmp_path / "eval.jsonl").write_text("")
    code = main(["curate", "--input", str(src), "--langs", "en", "--stage", "c1", "--out", str(tmp_path / "o"),
                 "--protected", str(tmp_path / "eval.jsonl")])
    assert code == 2 and "eval.jsonl holds no records" in capsys.readouterr().err


def test_dataset_class_labels_are_read_by_their_own_names(tmp_path):
    """A ClassLabel column whose classes are in another order than XNLI's: 0 means its first name."""
    import datasets

    names = ["contradiction", "entailment", "neutral"]
    features = datasets.Features({"premise": datasets.Value("string"), "hypothesis": datasets.Value("string"),
                                  "label": datasets.ClassLabel(names=names), "lang": datasets.Value("string"),
                                  "id": datasets.Value("string")})
    rows = _records([0, 1, 2, 0])
    datasets.Dataset.from_list(rows, features=features).save_to_disk(str(tmp_path / "ds"))
    records, rejected = load_pool(tmp_path / "ds", ["en"])
    assert [r["label"] for r in records] == ["contradiction", "entailment", "neutral", "contradiction"]
    assert rejected == []
    ds = datasets.Dataset.from_list(rows, features=features)
    result = curate_dataset(ds, ["en"], "c0", progress=False)
    assert result.kept["label"] == [0, 1, 2, 0] and result.kept.features["label"].names == names


def test_dataset_labels_outside_the_classes_are_invalid(tmp_path):
    import datasets

    ds = datasets.Dataset.from_list(_records([0, 5, 2, -1]))
    with pytest.raises(ValueError, match="label 5 is not an XNLI class"):
        curate_dataset(ds, ["en"], "c0", progress=False)
    result = curate_dataset(ds, ["en"], "c0", config=CurationConfig(skip_invalid=True), progress=False)
    assert result.kept["id"] == ["r0", "r2"]
    assert dict(zip(result.dropped["id"], result.dropped["reason"])) == {"r1": "invalid_label",
                                                                         "r3": "invalid_label"}
    ds.save_to_disk(str(tmp_path / "ds"))
    with pytest.raises(ValueError, match=r"row 1: label 5 is not an XNLI class"):
        load_pool(tmp_path / "ds", ["en"])
    records, rejected = load_pool(tmp_path / "ds", ["en"], skip_invalid=True)
    assert [r["label"] for r in records] == ["entailment", "contradiction"]
    assert [(r["id"], r["reason"]) for r in rejected] == [("r1", "invalid_label"), ("r3", "invalid_label")]


def test_empty_datasets_are_errors(tmp_path, monkeypatch):
    import datasets

    empty = datasets.Dataset.from_list(_records(LABELS)).select([])
    with pytest.raises(ValueError, match="the dataset has no rows"):
        curate_dataset(empty, ["en"], "c1", progress=False)
    # datasets cannot load an empty dataset it saved (IndexError in concat_tables): hand one to load_pool.
    (tmp_path / "ds").mkdir()
    monkeypatch.setattr(datasets, "load_from_disk", lambda path: datasets.DatasetDict(train=empty))
    with pytest.raises(ValueError, match=r"ds \(split 'train'\) has no rows"):
        load_pool(tmp_path / "ds", ["en"])
