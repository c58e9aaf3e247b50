"""Build the labelled PII evaluation set `pii_set.jsonl` (see README.md beside it).

Real sentences (XNLI premises, SIB-200/FLORES-200 text) in 17 languages and 9 scripts, with personal data
planted at a word boundary (between spaces; in Chinese, Japanese and Thai after a random character, with a
space either side): e-mails (ASCII, accented and native-script local parts, IDN domains), phone numbers
(libphonenumber-valid numbers of the language's countries in international, national and E.164 formats,
some written in the script's own digits), IPv4/IPv6, Luhn-valid payment cards, mod-97-valid IBANs and URLs
with credentials. Rows with decoys carry number-like text that is NOT personal data (dates, times, prices,
ISBNs, order numbers, years, versions, percentages, measurements, checksum-invalid card and IBAN
lookalikes) in `decoys`, never in `spans`. The draw is seeded: rerunning the script rewrites the same file.

    python tests/governance/data/build_pii_set.py
"""

from __future__ import annotations

import json
import random
from pathlib import Path

import phonenumbers
from stdnum import iban, luhn

SHARED = Path("/work/shared/data")
OUT = Path(__file__).with_name("pii_set.jsonl")

# language -> (source file, field, phone regions, digits of its script or None, script name)
LANGS = {
    "en": ("xnli/en.dev.jsonl", "premise", ("US", "GB"), None, "Latin"),
    "de": ("xnli/de.dev.jsonl", "premise", ("DE",), None, "Latin"),
    "fr": ("xnli/fr.dev.jsonl", "premise", ("FR",), None, "Latin"),
    "tr": ("xnli/tr.dev.jsonl", "premise", ("TR",), None, "Latin"),
    "vi": ("xnli/vi.dev.jsonl", "premise", ("VN",), None, "Latin"),
    "ru": ("xnli/ru.dev.jsonl", "premise", ("RU",), None, "Cyrillic"),
    "bg": ("xnli/bg.dev.jsonl", "premise", ("BG",), None, "Cyrillic"),
    "el": ("xnli/el.dev.jsonl", "premise", ("GR",), None, "Greek"),
    "ar": ("xnli/ar.dev.jsonl", "premise", ("EG", "SA"), "٠١٢٣٤٥٦٧٨٩", "Arabic"),
    "ur": ("xnli/ur.dev.jsonl", "premise", ("PK",), "۰۱۲۳۴۵۶۷۸۹", "Arabic"),
    "fa": ("sib200/pes_Arab.dev.jsonl", "text", ("IR",), "۰۱۲۳۴۵۶۷۸۹", "Arabic"),
    "hi": ("xnli/hi.dev.jsonl", "premise", ("IN",), "०१२३४५६७८९", "Devanagari"),
    "bn": ("sib200/ben_Beng.dev.jsonl", "text", ("BD",), "০১২৩৪৫৬৭৮৯", "Bengali"),
    "zh": ("xnli/zh.dev.jsonl", "premise", ("CN",), "０１２３４５６７８９", "Han"),
    "ja": ("sib200/jpn_Jpan.dev.jsonl", "text", ("JP",), "０１２３４５６７８９", "Han"),
    "ko": ("sib200/kor_Hang.dev.jsonl", "text", ("KR",), None, "Hangul"),
    "th": ("xnli/th.dev.jsonl", "premise", ("TH",), "๐๑๒๓๔๕๖๗๘๙", "Thai"),
}
NO_SPACES = {"zh", "ja", "th"}

# Local parts in each language's own script (or with its accents) and IDN domains.
LOCAL = {"en": "zoë.o'brien", "de": "jürgen.müller", "fr": "françois.lefèvre", "tr": "şükrü.öztürk",
         "vi": "nguyễn.văn.an", "ru": "иван.петров", "bg": "мария.иванова", "el": "γιώργος.παπαδόπουλος",
         "ar": "محمد.علي", "ur": "علی.رضا", "fa": "رضا.محمدی", "hi": "राम.शर्मा", "bn": "রহিম.উদ্দিন",
         "zh": "张伟", "ja": "たなか.ひろし", "ko": "김민수", "th": "สมชาย.ใจดี"}
IDN = {"en": "example.com", "de": "münchen-beispiel.de", "fr": "société-exemple.fr", "tr": "örnek.com.tr",
       "vi": "ví-dụ.vn", "ru": "пример.рф", "bg": "пример.бг", "el": "παράδειγμα.ελ", "ar": "مثال.مصر",
       "ur": "مثال.پاکستان", "fa": "نمونه.ایران", "hi": "उदाहरण.भारत", "bn": "উদাহরণ.বাংলা", "zh": "例子.中国",
       "ja": "例え.日本", "ko": "예시.한국", "th": "ตัวอย่าง.ไทย"}
FIRST = ["anna", "li.wei", "omar", "priya", "sven", "maria", "kenji", "fatima", "lucas", "olga", "ahmet", "thu"]
LAST = ["schmidt", "khan", "nguyen", "rossi", "ivanova", "tanaka", "silva", "kaya", "dubois", "patel"]
HOSTS = ["mail.example.org", "post.example.net", "corp.example.com", "uni-example.edu", "example.co.uk"]
IBAN_COUNTRIES = ["DE", "FR", "GB", "ES", "NL", "IT", "SA", "TR", "CH", "BG", "GR", "PL"]
IBAN_BBAN = {"DE": "18n", "FR": "10n11c2n", "GB": "4a14n", "ES": "20n", "NL": "4a10n", "IT": "1a10n12c",
             "SA": "2n18c", "TR": "6n16c", "CH": "5n12c", "BG": "4a6n8c", "GR": "7n16c", "PL": "24n"}


def native(text: str, digits: str | None) -> str:
    return text if digits is None else "".join(digits[int(c)] if c.isascii() and c.isdigit() else c for c in text)


def sentences(rng: random.Random, lang: str, n: int) -> list[str]:
    path, field, *_ = LANGS[lang]
    rows = [json.loads(line)[field] for line in (SHARED / path).read_text(encoding="utf-8").splitlines()]
    rows = [r for r in dict.fromkeys(rows) if 40 <= len(r) <= 220]
    return rng.sample(rows, n)


def insert(rng: random.Random, lang: str, sentence: str, items: list[str]) -> tuple[str, list[tuple[int, int]]]:
    """The sentence with each item planted at a word boundary; the items' (start, end) in the result."""
    text, spans = sentence, []
    for item in items:
        if lang in NO_SPACES:
            cuts = [i for i in range(4, len(text) - 4) if not any(s <= i < e for s, e in spans)
                    and not text[i - 1].isspace() and not text[i].isspace()]
            pos = rng.choice(cuts)
            pre, post = " ", " "
        else:
            cuts = [i for i, c in enumerate(text) if c == " " and i > 0 and not any(s <= i <= e for s, e in spans)]
            pos = rng.choice(cuts) + 1
            pre, post = "", " "
        start = pos + len(pre)
        text = text[:pos] + pre + item + post + text[pos:]
        shift = len(pre) + len(item) + len(post)
        spans = [(s + shift, e + shift) if s >= pos else (s, e) for s, e in spans] + [(start, start + len(item))]
    return text, spans


def phone(rng: random.Random, region: str, style: str) -> str:
    kind = rng.choice([phonenumbers.PhoneNumberType.MOBILE, phonenumbers.PhoneNumberType.FIXED_LINE])
    base = phonenumbers.example_number_for_type(region, kind) or phonenumbers.example_number(region)
    while True:
        digits = str(base.national_number)
        number = phonenumbers.parse(f"+{base.country_code}{digits[:-4]}{rng.randrange(10000):04d}")
        if phonenumbers.is_valid_number(number):
            break
    fmt = {"intl": phonenumbers.PhoneNumberFormat.INTERNATIONAL, "national": phonenumbers.PhoneNumberFormat.NATIONAL,
           "e164": phonenumbers.PhoneNumberFormat.E164}[style]
    return phonenumbers.format_number(number, fmt)


def card(rng: random.Random, valid: bool = True) -> str:
    prefix, length = rng.choice([("4", 16), ("51", 16), ("55", 16), ("34", 15), ("37", 15), ("6011", 16), ("4", 13)])
    body = prefix + "".join(str(rng.randrange(10)) for _ in range(length - len(prefix) - 1))
    check = int(luhn.calc_check_digit(body))
    number = body + str(check if valid else (check + rng.randrange(1, 10)) % 10)
    sep = rng.choice([" ", "-", ""])
    groups = [number[:4], number[4:10], number[10:]] if length == 15 else [number[i:i + 4] for i in range(0, length, 4)]
    return sep.join(groups)


def iban_number(rng: random.Random, valid: bool = True) -> str:
    cc = rng.choice(IBAN_COUNTRIES)
    while True:  # some countries check their own account number too (ES, FR, ...): draw until it passes
        bban = ""
        for count, kind in ((int(x[:-1]), x[-1]) for x in _parts(IBAN_BBAN[cc])):
            pool = {"n": "0123456789", "a": "ABCDEFGHIJKLMNOPQRSTUVWXYZ", "c": "0123456789ABCDEFGHIJKLMNOPQRSTUVWXYZ"}[kind]
            bban += "".join(rng.choice(pool) for _ in range(count))
        check = iban.calc_check_digits(cc + "00" + bban)
        if iban.is_valid(cc + check + bban):
            break
    if not valid:  # another pair of check digits: the mod-97 test fails
        check = f"{(int(check) - 2 + rng.randrange(1, 97)) % 97 + 2:02d}"
    number = cc + check + bban
    assert iban.is_valid(number) == valid, number
    return iban.format(number) if rng.random() < 0.7 else number


def _parts(spec: str) -> list[str]:
    out, num = [], ""
    for c in spec:
        if c.isdigit():
            num += c
        else:
            out.append(num + c)
            num = ""
    return out


def ip(rng: random.Random, v6: bool) -> str:
    if v6:
        groups = [f"{rng.randrange(65536):x}" for _ in range(8)]
        return rng.choice([":".join(["2001", "db8"] + groups[2:]), f"2a02:{groups[1]}:{groups[2]}::{groups[7]}",
                           f"fe80::{groups[5]}:{groups[6]}:{groups[7]}"])
    return f"{rng.choice([31, 62, 84, 91, 151, 185, 203])}.{rng.randrange(256)}.{rng.randrange(256)}.{rng.randrange(1, 255)}"


def email(rng: random.Random, lang: str, unicode: bool) -> str:
    if unicode:
        host = IDN[lang] if rng.random() < 0.6 else rng.choice(HOSTS)
        return f"{LOCAL[lang]}@{host}"
    local = f"{rng.choice(FIRST)}.{rng.choice(LAST)}" + rng.choice(["", "", "+news", "42", "_1990"])
    return f"{local}@{rng.choice(HOSTS)}"


def url_credentials(rng: random.Random) -> tuple[str, int, int]:
    """A URL with `user:password@`; the credentials' offsets in it."""
    user, password = rng.choice(["admin", "deploy", "root", "svc_backup", "ivan"]), rng.choice(
        ["hunter2", "S3cr3t!x", "p4ss-w0rd", "Qw9_zz7", "letmein2024"])
    scheme, host = rng.choice(["https", "http", "ftp", "postgres"]), rng.choice(HOSTS)
    url = f"{scheme}://{user}:{password}@{host}/" + rng.choice(["", "data/export.csv", "db", "login?next=/home"])
    start = len(scheme) + 3
    return url, start, start + len(user) + 1 + len(password)


def decoy(rng: random.Random, kind: str, digits: str | None) -> str:
    n = rng.randrange
    if kind == "date":
        return native(rng.choice([f"20{n(10, 25)}-{n(1, 13):02d}-{n(1, 29):02d}", f"{n(1, 29):02d}.{n(1, 13):02d}.19{n(50, 100)}",
                                  f"{n(1, 29)}/{n(1, 13)}/20{n(10, 25)}"]), digits)
    if kind == "time":
        return native(f"{n(0, 24):02d}:{n(0, 60):02d}" + rng.choice(["", f":{n(0, 60):02d}"]), digits)
    if kind == "price":
        return rng.choice([f"${n(1, 99)},{n(100, 999)}.{n(10, 99)}", f"€{n(5, 500)}", f"₹ {n(1, 9)},{n(10, 99)},000",
                           f"{n(1, 9)}.{n(100, 999)},{n(10, 99)} €", native(f"{n(100, 9999)}", digits) + " ฿"])
    if kind == "isbn":
        body = f"978{n(0, 2)}{n(10, 99)}{n(100000, 999999)}"
        total = sum(int(c) * (1 if i % 2 == 0 else 3) for i, c in enumerate(body))
        full = body + str((10 - total % 10) % 10)
        return rng.choice([f"ISBN {full[:3]}-{full[3]}-{full[4:6]}-{full[6:12]}-{full[12]}", f"ISBN {full}"])
    if kind == "order":
        return rng.choice([f"#{n(100000, 999999)}", f"No. {n(1000, 9999)}-{n(100, 999)}", f"A-{n(2015, 2025)}-{n(1000, 99999):05d}",
                           f"REF{n(10000000, 99999999)}"])
    if kind == "year":
        return native(str(n(1890, 2030)), digits)
    if kind == "version":
        return rng.choice([f"v{n(1, 9)}.{n(0, 20)}.{n(0, 99)}", f"{n(1, 4)}.{n(0, 12)}.{n(0, 30)}", f"10.0.{n(19000, 22999)}.{n(1000, 4000)}"])
    if kind == "percent":
        return native(f"{n(1, 99)}.{n(0, 9)}%", digits)
    if kind == "measure":
        return native(rng.choice([f"{n(1, 3)}.{n(10, 99)} m", f"{n(20, 300)} km/h", f"{n(100, 9999)} mm", f"{n(1, 50)} kg"]), digits)
    if kind == "card_invalid":
        return card(rng, valid=False)
    if kind == "iban_invalid":
        return iban_number(rng, valid=False)
    raise ValueError(kind)


DECOYS = ["date", "time", "price", "isbn", "order", "year", "version", "percent", "measure"]


def rows_for(rng: random.Random, lang: str) -> list[dict]:
    _, _, regions, digits, script = LANGS[lang]
    plan: list[list[tuple[str, str, int, int]]] = []  # per row: (type, text, start, end in text)

    def item(kind: str, text: str, start: int = 0, end: int | None = None):
        return (kind, text, start, len(text) if end is None else end)

    plan.append([item("EMAIL", email(rng, lang, False))])
    plan.append([item("EMAIL", email(rng, lang, True))])
    plan.append([item("PHONE", phone(rng, rng.choice(regions), "intl"))])
    national = phone(rng, regions[0], "national")
    plan.append([item("PHONE", native(national, digits) if digits else national)])
    plan.append([item("PHONE", phone(rng, rng.choice(regions), rng.choice(["e164", "national"])))])
    plan.append([item("IP_ADDRESS", ip(rng, v6=rng.random() < 0.5))])
    number = card(rng)
    plan.append([item("CREDIT_CARD", native(number, digits) if lang in ("zh", "ja") else number)])
    plan.append([item("IBAN", iban_number(rng))])
    url, s, e = url_credentials(rng)
    plan.append([item("URL_CREDENTIALS", url, s, e)])
    plan.append([item("EMAIL", email(rng, lang, rng.random() < 0.5)),
                 item("PHONE", native(phone(rng, regions[0], "intl"), digits if rng.random() < 0.5 else None))])
    n_pii = len(plan)
    decoys = ["card_invalid", "iban_invalid"] + rng.sample(DECOYS, 5)
    for kind in decoys:
        plan.append([item(f"decoy:{kind}", decoy(rng, kind, digits if rng.random() < 0.5 else None))])
    plan.append([])  # the sentence as it is
    out = []
    for i, (items, sentence) in enumerate(zip(plan, sentences(rng, lang, len(plan)))):
        text, where = insert(rng, lang, sentence, [x[1] for x in items])
        spans, decoy_spans = [], []
        for (kind, _, s, e), (start, _) in zip(items, where):
            target = decoy_spans if kind.startswith("decoy:") else spans
            target.append({"start": start + s, "end": start + e, "type": kind.removeprefix("decoy:")})
        out.append({"id": f"{lang}-{i:02d}", "lang": lang, "script": script, "text": text, "spans": spans,
                    "decoys": decoy_spans, "kind": "pii" if i < n_pii else "decoy" if items else "clean"})
    return out


def main() -> None:
    rng = random.Random(20261207)
    rows = [row for lang in LANGS for row in rows_for(rng, lang)]
    with OUT.open("w", encoding="utf-8") as f:
        for row in rows:
            f.write(json.dumps(row, ensure_ascii=False) + "\n")
    print(f"{len(rows)} rows -> {OUT}")


if __name__ == "__main__":
    main()
