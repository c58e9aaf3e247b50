"""Language codes are normalised once where a user names them: the study's `languages`, a task file's
`lang`/`languages`/per-language keys and its rows' `lang`; codes govtune.languages does not know stay as
written where any code is allowed (a task without language ID)."""

import pytest

from govtune.study.loading import build_config
from govtune.tasks.spec import spec_from_dict


def test_study_languages_are_normalised_and_keep_their_keys():
    assert build_config({"languages": ["eng", "zho_Hans", "hin_Deva"]}, []).languages == ["en", "zh", "hi"]
    assert build_config({"languages": ["en", "zh", "hi"]}, []).languages == ["en", "zh", "hi"]
    with pytest.raises(ValueError, match="unknown XNLI language 'ja'"):
        build_config({"languages": ["jpn"]}, [])  # known, normalised, and then not an XNLI language


def test_task_file_codes_are_normalised():
    spec = spec_from_dict({"type": "classification", "name": "t", "data_files": "x.jsonl", "test_size": 2,
                           "labels": ["a", "b"], "lang": "swh", "languages": ["eng_Latn", "swh", "tok"],
                           "label_words": {"eng": {"a": "yes", "b": "no"}}})
    assert spec.lang == "sw" and spec.languages == ["en", "sw", "tok"] and list(spec.label_words) == ["en"]


def test_per_script_settings_follow_the_language_table():
    from govtune.governance.config import DedupConfig, QualityConfig

    dedup, quality = DedupConfig(), QualityConfig()
    assert [dedup.ngram_for(x) for x in ("zh", "zho_Hant", "yue_Hant", "ja", "ko", "en", "tok")] == [3, 3, 3, 3, 3, 5, 5]
    assert [quality.min_for(x) for x in ("hi", "ne", "mai_Deva", "zho_Hant", "sw")] == [8, 8, 8, 4, 10]
