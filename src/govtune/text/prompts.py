"""Prompts for XNLI and FLORES, one shared template per task with per-language strings only
(the lm-evaluation-harness way), used identically for evaluation and for training pairs.

XNLI: the model reads premise, hypothesis and a question in the example's language, and the class is
scored as the continuation `sep + label word` (`" Yes"`, or `"是"` after a full-width colon). Label words
are common answer words of each language whose first characters differ, so the three continuations part at
their first token for character- and word-level tokenizers (byte-level BPE may share a leading byte token on
non-Latin scripts; scoring uses the whole continuation, so this costs nothing).

FLORES: an English instruction naming both languages (as in most instruction-tuned MT prompts), the source
line, then the target language's name; the translation is the continuation, ended by a newline."""

from __future__ import annotations

from dataclasses import dataclass

from govtune.data.xnli import LABELS
from govtune.languages import iso_code, language_name

XNLI_TEMPLATE = ("{premise_label}{colon}{premise}\n{hypothesis_label}{colon}{hypothesis}\n"
                 "{question} ({options})\n{answer_label}{answer_colon}")


@dataclass(frozen=True)
class XNLIStrings:
    """What one language changes in the shared template."""
    premise_label: str
    hypothesis_label: str
    question: str
    answer_label: str
    words: tuple[str, str, str]  # entailment, neutral, contradiction
    colon: str = ": "  # after the field labels; "：" (no space) for Chinese

    def __post_init__(self):
        firsts = {w[0] for w in self.words}
        if len(firsts) != 3:
            raise ValueError(f"label words {self.words} must start with three different characters so the "
                             f"continuations differ from their first token: choose other words")

    @property
    def sep(self) -> str:
        """Between the answer colon and the label word: a space unless the colon is full-width."""
        return " " if self.colon.endswith(" ") else ""


XNLI_STRINGS: dict[str, XNLIStrings] = {
    "en": XNLIStrings("Premise", "Hypothesis", "Does the premise imply the hypothesis?", "Answer",
                      ("Yes", "Maybe", "No")),
    "zh": XNLIStrings("前提", "假设", "前提是否蕴含假设？", "答案", ("是", "可能", "否"), colon="："),
    "hi": XNLIStrings("आधार वाक्य", "परिकल्पना", "क्या आधार वाक्य से परिकल्पना निकलती है?", "उत्तर",
                      ("हाँ", "शायद", "नहीं")),
    "es": XNLIStrings("Premisa", "Hipótesis", "¿La premisa implica la hipótesis?", "Respuesta",
                      ("Sí", "Quizás", "No")),
    "fr": XNLIStrings("Prémisse", "Hypothèse", "La prémisse implique-t-elle l'hypothèse ?", "Réponse",
                      ("Oui", "Peut-être", "Non")),
    "de": XNLIStrings("Prämisse", "Hypothese", "Folgt die Hypothese aus der Prämisse?", "Antwort",
                      ("Ja", "Vielleicht", "Nein")),
    "ar": XNLIStrings("المقدمة", "الفرضية", "هل تستلزم المقدمة الفرضية؟", "الإجابة", ("نعم", "ربما", "لا")),
    "bg": XNLIStrings("Предпоставка", "Хипотеза", "Следва ли хипотезата от предпоставката?", "Отговор",
                      ("Да", "Може би", "Не")),
    "el": XNLIStrings("Προκείμενη", "Υπόθεση", "Συνεπάγεται η προκείμενη την υπόθεση;", "Απάντηση",
                      ("Ναι", "Ίσως", "Όχι")),
    "ru": XNLIStrings("Посылка", "Гипотеза", "Следует ли гипотеза из посылки?", "Ответ",
                      ("Да", "Возможно", "Нет")),
    "sw": XNLIStrings("Msingi", "Dhana", "Je, msingi unathibitisha dhana?", "Jibu", ("Ndiyo", "Labda", "Hapana")),
    "th": XNLIStrings("ข้อตั้ง", "สมมติฐาน", "ข้อตั้งบ่งชี้สมมติฐานหรือไม่", "คำตอบ", ("ใช่", "อาจจะ", "ไม่ใช่")),
    "tr": XNLIStrings("Öncül", "Hipotez", "Öncül hipotezi gerektirir mi?", "Cevap", ("Evet", "Belki", "Hayır")),
    "ur": XNLIStrings("مقدمہ", "مفروضہ", "کیا مقدمے سے مفروضہ نکلتا ہے؟", "جواب", ("ہاں", "شاید", "نہیں")),
    "vi": XNLIStrings("Tiền đề", "Giả thuyết", "Tiền đề có suy ra giả thuyết không?", "Trả lời",
                      ("Đúng", "Có thể", "Sai")),
}

XNLI_LABEL_WORDS: dict[str, dict[str, str]] = {
    lang: dict(zip(LABELS, s.words)) for lang, s in XNLI_STRINGS.items()}


def _strings(lang: str) -> XNLIStrings:
    key = lang if lang in XNLI_STRINGS else iso_code(lang)
    if key not in XNLI_STRINGS:
        raise ValueError(f"no XNLI prompt for language {lang!r}: choose among {', '.join(XNLI_STRINGS)} or add "
                         f"an XNLIStrings entry to govtune.text.prompts.XNLI_STRINGS")
    return XNLI_STRINGS[key]


def xnli_prompt(premise: str, hypothesis: str, lang: str) -> str:
    """The context the label words continue; ends with the answer colon (no trailing space)."""
    s = _strings(lang)
    return XNLI_TEMPLATE.format(premise_label=s.premise_label, hypothesis_label=s.hypothesis_label,
                                colon=s.colon, premise=premise.strip(), hypothesis=hypothesis.strip(),
                                question=s.question, options=" / ".join(s.words), answer_label=s.answer_label,
                                answer_colon=s.colon.rstrip())


def xnli_continuations(lang: str) -> tuple[str, str, str]:
    """The three scored continuations in LABELS order, separator included (`" Yes"`, `"是"`)."""
    s = _strings(lang)
    return tuple(s.sep + w for w in s.words)


def xnli_training_pair(example: dict) -> tuple[str, str]:
    """(prompt, target) for supervised tuning: target is the gold label's continuation."""
    lang = example["lang"]
    cont = dict(zip(LABELS, xnli_continuations(lang)))
    if example["label"] not in cont:
        raise ValueError(f"XNLI example {example.get('id')} has label {example['label']!r}: expected one of {LABELS}")
    return xnli_prompt(example["premise"], example["hypothesis"], lang), cont[example["label"]]


FLORES_TEMPLATE = "Translate the following sentence from {src_name} to {tgt_name}.\n{src_name}: {src}\n{tgt_name}:"


def flores_prompt(src_text: str, src_lang: str, tgt_lang: str) -> str:
    """The translation context; the model continues with `" " + translation + "\\n"`."""
    return FLORES_TEMPLATE.format(src_name=language_name(src_lang), tgt_name=language_name(tgt_lang),
                                  src=src_text.strip())


def flores_training_pair(example: dict) -> tuple[str, str]:
    """(prompt, target): the target ends with the newline at which evaluation stops generating."""
    return (flores_prompt(example["src"], example["src_lang"], example["tgt_lang"]),
            " " + example["ref"].strip() + "\n")
