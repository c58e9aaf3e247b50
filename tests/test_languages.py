"""govtune.languages: every FLORES-200 language of SIB-200 has one internal form, reached from its FLORES-200,
ISO 639-1 and ISO 639-3 codes; ambiguous and unknown codes are refused naming the choices or close matches."""

import os
import unicodedata

import pytest

from govtune.languages import (LANGUAGES, XNLI_LANGUAGES, UnknownLanguage, flores_code, iso639_1, iso639_3,
                               iso_code, language_name, normalize, normalize_or_keep, resource_level, script, table)

SIB200 = "/work/shared/data/sib200"
SHARED_FLORES = ("eng_Latn", "zho_Hans", "spa_Latn", "hin_Deva")  # the FLORES-200 files in shared data


def test_the_table_is_the_205_sib200_languages_each_reached_from_its_flores_code():
    codes = [lang.flores for lang in table().values()]
    assert len(codes) == len(set(codes)) == 205 and set(SHARED_FLORES) <= set(codes)
    if os.path.isdir(SIB200):  # the table against the data's own file names, where the data is here
        assert set(codes) == {name.split(".")[0] for name in os.listdir(SIB200)}
    for code in codes:
        internal = normalize(code)
        assert flores_code(internal) == code and normalize(internal) == internal  # a round trip, idempotent
        assert script(code) == code[4:] and iso639_3(code) == code[:3]
    assert len({normalize(c) for c in codes}) == 205  # no two languages share an internal form


def test_internal_form_is_iso639_1_where_it_names_one_language_else_the_flores_code():
    assert [normalize(c) for c in ("eng_Latn", "zho_Hans", "hin_Deva", "swh_Latn", "arb_Arab")] == \
        ["en", "zh", "hi", "sw", "ar"]
    assert [normalize(c) for c in ("zho_Hant", "arb_Latn", "ace_Arab", "prs_Arab", "kas_Deva", "azb_Arab")] == \
        ["zho_Hant", "arb_Latn", "ace_Arab", "prs_Arab", "kas_Deva", "azb_Arab"]
    for code, lang in table().items():  # the rule itself, over the whole table
        sharing = [other for other in table().values() if lang.iso639_1 and other.iso639_1 == lang.iso639_1]
        assert code == (lang.iso639_1 if len(sharing) == 1 or code == lang.iso639_1 else lang.flores)
    # the existing studies' keys (the former 29-language table) keep their meaning
    old = {"ar": "arb_Arab", "bg": "bul_Cyrl", "de": "deu_Latn", "en": "eng_Latn", "fa": "pes_Arab", "ne": "npi_Deva",
           "sw": "swh_Latn", "zh": "zho_Hans", "ja": "jpn_Jpan", "he": "heb_Hebr", "id": "ind_Latn", "ur": "urd_Arab"}
    assert {k: flores_code(k) for k in old} == old and all(normalize(x) == x for x in XNLI_LANGUAGES)
    assert language_name("zh") == "Chinese" and language_name("fa") == "Persian" and language_name("sw") == "Swahili"


def test_iso639_3_and_other_spellings_map_to_the_internal_form():
    assert [normalize(c) for c in ("swh", "eng", "ENG_latn", "EN", "swa", "zho", "cmn", "arb", "fas", "zh-Hant",
                                   "zh_Hant", "prs")] == \
        ["sw", "en", "en", "en", "sw", "zh", "zh", "ar", "fa", "zho_Hant", "zho_Hant", "prs_Arab"]
    assert iso_code("eng_Latn") == "en" and LANGUAGES["sw"] == ("swh_Latn", "Swahili")
    assert iso639_1("prs_Arab") == "fa" and iso639_1("ace_Latn") is None and iso639_1("zho_Hant") == "zh"


@pytest.mark.parametrize("code, choices", [("kas", {"kas_Arab", "kas_Deva"}), ("ks", {"kas_Arab", "kas_Deva"}),
                                           ("no", {"nb", "nn"}), ("knc", {"knc_Arab", "knc_Latn"})])
def test_an_ambiguous_code_is_refused_with_the_choices(code, choices):
    with pytest.raises(UnknownLanguage, match=rf"{code!r} is ambiguous") as err:
        normalize(code)
    assert set(err.value.choices) == choices and all(c in str(err.value) for c in choices)


def test_an_unknown_code_names_close_matches():
    with pytest.raises(ValueError, match=r"unknown language 'swahili' \(did you mean sw"):
        normalize("swahili")
    with pytest.raises(ValueError, match=r"unknown language 'xx'"):
        flores_code("xx")
    with pytest.raises(ValueError, match=r"unknown language 'xxx_Latn'"):
        flores_code("xxx_Latn")
    assert normalize_or_keep("tok") == "tok" and normalize_or_keep("eng") == "en"


def test_every_name_is_filled_and_scripts_are_iso15924():
    for lang in table().values():
        assert lang.name.strip() and lang.script[0].isupper() and len(lang.script) == 4
        assert unicodedata.normalize("NFC", lang.name) == lang.name


def test_resource_levels_are_joshi_classes_or_unknown():
    levels = {code: resource_level(code) for code in table()}
    assert set(levels.values()) <= {None, 0, 1, 2, 3, 4, 5}
    # the paper's class 5 ("winners") and examples of its Table 1
    assert {c for c, v in levels.items() if v == 5} == {"en", "es", "de", "ja", "fr", "ar", "zh", "zho_Hant"}
    assert (levels["ru"], levels["ko"], levels["id"], levels["he"], levels["zu"], levels["mt"], levels["fj"]) == \
        (4, 4, 3, 3, 2, 2, 1)
    assert all(resource_level(x) is not None for x in XNLI_LANGUAGES)
    assert levels["arb_Latn"] is None  # a second script: not named on its own in the list
    assert levels["azb_Arab"] is None and levels["gn"] is None  # named twice there, in two classes
    assert (levels["nb"], levels["gu"], levels["si"]) == (1, 1, 1)  # the list's "scraping-bys" by name
