"""The data shipped in govtune.data: every XNLI and SIB-200 language reads with its full row count, aligned
across languages, from the compressed files; the files stay within the package's size budget; a local
directory (plain or compressed files) and the hub (datasets mocked) go through the same loaders."""

import collections
import json
import lzma

import datasets
import pytest

from govtune.data import DATA_DIR
from govtune.data import sib200 as sib
from govtune.data.jsonl import find, read_jsonl
from govtune.languages import XNLI_LANGUAGES
from govtune.data.xnli import LABELS, load_xnli

# The wheel must stay under 20 MB and the installed package under 50 MB; code, docs and the YAML files take
# about 1 MB, so the data files (stored, not re-compressed, by the wheel) get 16 MB.
DATA_BUDGET_MB = 16


def test_every_xnli_language_reads_2490_aligned_rows():
    rows = {lang: load_xnli(lang) for lang in XNLI_LANGUAGES}
    assert len(rows) == 15 and {len(r) for r in rows.values()} == {2490}
    labels = [r["label"] for r in rows["en"]]
    assert collections.Counter(labels) == {lab: 830 for lab in LABELS}
    for lang, mine in rows.items():
        assert [r["label"] for r in mine] == labels, lang  # row i is the same pair in every language
        assert [r["row"] for r in mine] == list(range(2490)) and all(r["premise"] and r["hypothesis"] for r in mine)
    assert rows["de"][0]["premise"] != rows["en"][0]["premise"]  # translations, not copies


def test_every_sib200_language_reads_373_plus_47_aligned_rows():
    codes = sib.languages()
    assert len(codes) == 205 and {"eng_Latn", "yor_Latn", "zho_Hant", "kas_Deva"} <= set(codes)
    ref = {s: [(r["index_id"], r["category"]) for r in sib.load_sib200("eng_Latn", s)] for s in sib.SPLITS}
    assert {s: len(v) for s, v in ref.items()} == sib.ROWS == {"train": 373, "dev": 47}
    ids = [i for s in sib.SPLITS for i, _ in ref[s]]
    assert len(set(ids)) == 420 and all(0 <= i < sib.FLORES_DEV_LINES for i in ids)
    for code in codes:
        for split in sib.SPLITS:
            rows = sib.load_sib200(code, split)
            assert [(r["index_id"], r["category"]) for r in rows] == ref[split], (code, split)
            assert all(r["text"].strip() for r in rows)
    assert {c for _, c in ref["train"]} == set(sib.LABELS)


def test_sib200_sentences_are_flores_dev_lines():
    """index_id < 997 is FLORES-200 dev line index_id: the shipped FLORES files hold the same sentences."""
    flores = (DATA_DIR / "flores" / "eng_Latn.dev").read_text(encoding="utf-8").splitlines()
    rows = sib.load_sib200("en", "train") + sib.load_sib200("en", "dev")
    assert all(r["text"] == flores[sib.flores_dev_line(r["index_id"])] for r in rows)
    assert sib.flores_dev_line(997) is None


def test_shipped_data_is_compressed_and_within_budget():
    files = [p for p in DATA_DIR.rglob("*") if p.is_file() and p.suffix not in (".py", ".pyc")]
    total = sum(p.stat().st_size for p in files)
    assert total < DATA_BUDGET_MB * 1e6, f"shipped data {total / 1e6:.1f} MB exceeds {DATA_BUDGET_MB} MB"
    assert not list(DATA_DIR.rglob("*.jsonl")), "ship JSON lines compressed (scripts/pack_data.py)"
    assert len(list((DATA_DIR / "sib200").glob("*.jsonl.xz"))) == 410
    assert len(list((DATA_DIR / "xnli").glob("*.jsonl.xz"))) == 15


def test_local_directory_plain_or_compressed(tmp_path):
    (tmp_path / "sib200").mkdir()
    (tmp_path / "xnli").mkdir()
    train = read_jsonl(find(DATA_DIR / "sib200" / "yor_Latn.train.jsonl"))[:5]
    (tmp_path / "sib200" / "yor_Latn.train.jsonl").write_text("".join(json.dumps(r) + "\n" for r in train))
    xnli = read_jsonl(find(DATA_DIR / "xnli" / "sw.dev.jsonl"))[:4]
    with lzma.open(tmp_path / "xnli" / "sw.dev.jsonl.xz", "wt", encoding="utf-8") as f:
        f.writelines(json.dumps(r) + "\n" for r in xnli)
    assert sib.load_sib200("yor_Latn", "train", tmp_path) == sib.load_sib200("yor_Latn", "train")[:5]
    assert [r["premise"] for r in load_xnli("sw", data_dir=tmp_path)] == [r["premise"] for r in xnli]
    assert sib.languages(tmp_path) == ["yor_Latn"]
    with pytest.raises(FileNotFoundError, match=r"language 'hau_Latn' split 'train' is not in .* \(1 languages "
                                                r"there: yor_Latn\)"):
        sib.load_sib200("hau_Latn", "train", tmp_path)


@pytest.fixture
def hub(monkeypatch):
    """`datasets.load_dataset` answering from the shipped files as the hub copies are laid out: Davlan/sib200
    with splits train / validation / test (also devtest sentences, index_id >= 997) and a ClassLabel topic;
    facebook/xnli with integer labels and a `validation` split. Records the calls."""
    calls = []

    def load_dataset(name, config, split):
        calls.append((name, config, split))
        if name == sib.HUB_NAME:
            ours = {"train": "train", "validation": "dev"}.get(split)
            if ours is None:
                raise ValueError(f"Unknown split {split!r}")
            rows = sib.load_sib200(config, ours) + [{"index_id": 1500, "category": "travel", "text": "devtest"}]
            feature = datasets.Features({"index_id": datasets.Value("int64"), "text": datasets.Value("string"),
                                         "category": datasets.ClassLabel(names=list(sib.LABELS))})
            return datasets.Dataset.from_list([{**r, "category": sib.LABELS.index(r["category"])} for r in rows],
                                              features=feature)
        if split != "validation":
            raise ValueError(f"Unknown split {split!r}")
        rows = load_xnli(config, rows=range(6))
        return datasets.Dataset.from_list([{"premise": r["premise"], "hypothesis": r["hypothesis"],
                                            "label": LABELS.index(r["label"])} for r in rows])

    monkeypatch.setattr(datasets, "load_dataset", load_dataset)
    return calls


def test_hub_loading_reads_the_canonical_copies(hub):
    assert sib.load_sib200("yor_Latn", "dev", sib.HUB_NAME) == sib.load_sib200("yor_Latn", "dev")
    assert sib.load_sib200("sw", "train", sib.HUB_NAME) == sib.load_sib200("swh_Latn", "train")  # devtest row left out
    xnli = load_xnli("ur", data_dir="facebook/xnli")
    assert [r["label"] for r in xnli] == [r["label"] for r in load_xnli("ur", rows=range(6))]
    assert hub == [("Davlan/sib200", "yor_Latn", "validation"), ("Davlan/sib200", "swh_Latn", "train"),
                   ("facebook/xnli", "ur", "validation")]
