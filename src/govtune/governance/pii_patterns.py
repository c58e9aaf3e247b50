"""Pattern detectors of personal data, in text of any script: e-mail, phone, IP address, payment card, IBAN and
URL credentials.

Matching runs on a normalised copy of the text: digits of every script (Devanagari, Arabic-Indic, Thai,
full-width, ...) become ASCII digits and full-width ASCII becomes ASCII (NFKC), character by character, with
a map from each normalised character back to the original one, so that a span found in the copy covers
exactly the original characters (`normalise`, `Span`). Checksums decide what regular expressions only
propose: Luhn and an issuer prefix for cards, mod-97 and each country's length and format for IBANs
(python-stdnum), `ipaddress` for IPs, libphonenumber's validity rules for phones.
"""

from __future__ import annotations

import ipaddress
import unicodedata
from dataclasses import dataclass

import phonenumbers
import regex
from stdnum import iban, luhn

EMAIL, PHONE, IP_ADDRESS, CREDIT_CARD, IBAN, URL_CREDENTIALS = (
    "EMAIL", "PHONE", "IP_ADDRESS", "CREDIT_CARD", "IBAN", "URL_CREDENTIALS")
# In this order a detection wins over an overlapping one found by a later type (the password of a URL ends in
# something e-mail-like; a card number or an IP can pass as a phone number somewhere).
PATTERN_TYPES = (URL_CREDENTIALS, EMAIL, IBAN, CREDIT_CARD, IP_ADDRESS, PHONE)

# Where a record's language suggests its phone numbers' countries: national formats (no +country code) are
# read under these regions; numbers with a + country code are found under any. A language not listed is
# read for international numbers only. The first region of each entry is the language's largest market.
LANGUAGE_REGIONS: dict[str, tuple[str, ...]] = {
    "en": ("US", "GB", "IN", "AU", "CA"), "de": ("DE", "AT", "CH"), "fr": ("FR", "BE", "CH", "CA"),
    "es": ("ES", "MX", "AR", "CO"), "pt": ("PT", "BR"), "it": ("IT",), "nl": ("NL", "BE"), "pl": ("PL",),
    "tr": ("TR",), "vi": ("VN",), "id": ("ID",), "ms": ("MY",), "sw": ("KE", "TZ"), "ru": ("RU", "KZ"),
    "uk": ("UA",), "bg": ("BG",), "el": ("GR", "CY"), "ar": ("EG", "SA", "AE", "MA"), "ur": ("PK", "IN"),
    "fa": ("IR",), "he": ("IL",), "hi": ("IN",), "mr": ("IN",), "bn": ("BD", "IN"), "ta": ("IN", "LK"),
    "zh": ("CN", "TW", "HK"), "ja": ("JP",), "ko": ("KR",), "th": ("TH",),
}
INTERNATIONAL_ONLY = "ZZ"  # libphonenumber's unknown region: only numbers written with a + country code
# Regions whose national numbers are looked for in text of any language, but only when grouped exactly as the
# country writes them (libphonenumber's EXACT_GROUPING: "(702) 369-1540", "020 7946 0958"): the most common
# national formats of web text, quoted as they are in translations (XNLI's premises keep a Las Vegas number
# in all 15 languages).
FALLBACK_REGIONS = ("US", "GB", "IN")

_WORD = r"\p{L}\p{M}\p{N}"
# An e-mail: local part and domain in any script (IDN), a top-level domain of letters; not the user name of a
# URL (`http://user@host`).
_EMAIL = regex.compile(
    rf"(?<![{_WORD}._%+'-])(?<!//)[{_WORD}_](?:[{_WORD}!#$%&'*+/=?^_`{{|}}~-]|\.(?!\.))*(?<!\.)"
    rf"@(?:[{_WORD}](?:[{_WORD}-]{{0,61}}[{_WORD}])?\.)+\p{{L}}[\p{{L}}\p{{M}}]{{1,62}}(?![{_WORD}@-])")
_URL_CREDENTIALS = regex.compile(r"(?i)(?<![\w.+-])[a-z][a-z0-9+.-]{1,15}://([^\s/?#@:]+):([^\s/?#@]+)@[^\s/?#@]")
_IPV4 = regex.compile(r"(?<![\w.])(?:\d{1,3}\.){3}\d{1,3}(?!\d|\.\d)")
_IPV6 = regex.compile(r"(?<![\w:.])(?:[0-9A-Fa-f]{0,4}:){2,7}(?:[0-9A-Fa-f]{1,4}|\d{1,3}(?:\.\d{1,3}){3})?(?![\w:])")
# Digit groups separated by single spaces or dashes: a card number as people write it.
_DIGIT_RUN = regex.compile(r"(?<![\w.,])\d+(?:[ -]\d+)*(?![\w]|[.,]\d)")
_IBAN = regex.compile(r"(?<![\w])[A-Z]{2}\d{2}(?: ?[A-Z0-9]){11,32}")
# Issuer prefixes (IIN ranges) and lengths of the card networks: Luhn alone passes one random number in ten
# (an ISBN-13 included); no card starts with 978/979 or 0.
_CARD_BRANDS = (
    (regex.compile(r"4"), (13, 16, 19)),  # Visa
    (regex.compile(r"5[1-5]|2(?:2[2-9][1-9]|2[3-9]\d|[3-6]\d\d|7[01]\d|720)"), (16,)),  # Mastercard
    (regex.compile(r"3[47]"), (15,)),  # American Express
    (regex.compile(r"6(?:011|5\d\d|4[4-9]\d)"), (16, 17, 18, 19)),  # Discover
    (regex.compile(r"35(?:2[89]|[3-8]\d)"), (16, 17, 18, 19)),  # JCB
    (regex.compile(r"3(?:0[0-5]|[68]\d)"), (14, 16, 17, 18, 19)),  # Diners Club
    (regex.compile(r"62"), (16, 17, 18, 19)),  # UnionPay
    (regex.compile(r"(?:5[06-9]|6\d)"), (16, 17, 18, 19)),  # Maestro (its rare 12-15 digit numbers left out)
)
_PHONE_SEPARATORS = frozenset(" -.()/\u00a0")
_NON_ASCII_DIGIT = regex.compile(r"[\d--[0-9]]", regex.V1)  # Devanagari, Arabic-Indic, Thai, full-width...
_SIX_DIGITS = regex.compile(r"\d(?:\D*\d){5}")


@dataclass(frozen=True, order=True)
class Span:
    start: int
    end: int
    type: str


def normalise(text: str) -> tuple[str, list[int] | None]:
    """(text for matching, map from each of its characters to the original's position, plus one entry for
    the end), or (text, None) when nothing changes (ASCII text). unicodedata.decimal rather than .digit: the
    decimal digits of every script (category Nd) but not superscripts or circled numbers, which are not
    parts of numbers people write."""
    if text.isascii() or (unicodedata.is_normalized("NFKC", text) and not _NON_ASCII_DIGIT.search(text)):
        return text, None  # the usual case, in C: nothing to change, no per-character pass
    out: list[str] = []
    origin: list[int] = []
    for i, ch in enumerate(text):
        if ch.isascii():
            out.append(ch)
            origin.append(i)
            continue
        value = unicodedata.decimal(ch, None)
        rep = str(value) if value is not None else unicodedata.normalize("NFKC", ch)
        out.extend(rep)
        origin.extend([i] * len(rep))
    origin.append(len(text))
    return "".join(out), origin


def to_original(spans: list[Span], origin: list[int] | None) -> list[Span]:
    if origin is None:
        return spans
    return [Span(origin[s.start], origin[s.end - 1] + 1, s.type) for s in spans]


def find_emails(text: str) -> list[Span]:
    return [Span(m.start(), m.end(), EMAIL) for m in _EMAIL.finditer(text)]


def find_url_credentials(text: str) -> list[Span]:
    """The `user:password` of a URL (the rest of the URL is not personal)."""
    return [Span(m.start(1), m.end(2), URL_CREDENTIALS) for m in _URL_CREDENTIALS.finditer(text)]


def find_ips(text: str) -> list[Span]:
    spans = []
    for pattern, kind in ((_IPV4, ipaddress.IPv4Address), (_IPV6, ipaddress.IPv6Address)):
        for m in pattern.finditer(text):
            candidate = m.group()
            if kind is ipaddress.IPv6Address and sum(c in "0123456789abcdefABCDEF" for c in candidate) < 3:
                continue  # "::1"-like fragments and clock times are not worth a placeholder
            try:
                kind(candidate)
            except ValueError:
                continue
            spans.append(Span(m.start(), m.end(), IP_ADDRESS))
    return spans


def is_card_number(digits: str) -> bool:
    return (any(prefix.match(digits) and len(digits) in lengths for prefix, lengths in _CARD_BRANDS)
            and luhn.is_valid(digits))


def card_grouping(groups: list[str]) -> bool:
    """Whether digit groups are laid out as card numbers are printed: one run, groups of four (the last may
    be shorter), or Amex's and Diners' 4-6-5 / 4-6-4."""
    sizes = [len(g) for g in groups]
    return (len(sizes) == 1 or (all(n == 4 for n in sizes[:-1]) and 1 <= sizes[-1] <= 4)
            or sizes in ([4, 6, 5], [4, 6, 4]))


def find_cards(text: str) -> list[Span]:
    """Card numbers: a run of digit groups, or whole consecutive groups within it laid out as a card (a card
    number written next to another number); the longest valid window wins."""
    found = []
    for m in _DIGIT_RUN.finditer(text):
        groups = [(g.start(), g.end()) for g in regex.finditer(r"\d+", m.group())]
        for i in range(len(groups)):
            window: list[str] = []
            for j in range(i, len(groups)):  # windows of at most 19 digits: linear in a long run of numbers
                window.append(m.group()[groups[j][0]:groups[j][1]])
                digits = "".join(window)
                if len(digits) > 19:
                    break
                if len(digits) >= 12 and card_grouping(window) and is_card_number(digits):
                    found.append(Span(m.start() + groups[i][0], m.start() + groups[j][1], CREDIT_CARD))
    return resolve_overlaps(found, (CREDIT_CARD,))


def find_ibans(text: str) -> list[Span]:
    """IBANs, compact or in groups: the candidate is cut at every length, and python-stdnum accepts only
    the one of the country's length and format whose mod-97 checksum holds."""
    spans = []
    for m in _IBAN.finditer(text):
        positions = [m.start() + i for i, c in enumerate(m.group()) if c != " "]
        compact = m.group().replace(" ", "")
        for n in range(min(len(compact), 34), 14, -1):
            end = positions[n - 1] + 1
            if end < len(text) and text[end].isalnum():
                continue  # the number goes on: not a whole IBAN
            if iban.is_valid(compact[:n]):
                spans.append(Span(m.start(), end, IBAN))
                break
    return spans


def find_phones(text: str, regions: tuple[str, ...], fallback: tuple[str, ...] = FALLBACK_REGIONS) -> list[Span]:
    """libphonenumber's matcher under each of the language's `regions` (leniency VALID: a number its metadata
    calls valid for its country) and each `fallback` region not among them (leniency EXACT_GROUPING); a
    national number (no +, no 00) counts only when written with a separator or a trunk prefix 0, since a
    bare run of 8-10 digits is far more often an order or customer number."""
    if not _SIX_DIGITS.search(text):  # no phone number has fewer digits
        return []
    spans = set()
    runs = [(r, phonenumbers.Leniency.VALID) for r in regions or (INTERNATIONAL_ONLY,)]
    runs += [(r, phonenumbers.Leniency.EXACT_GROUPING) for r in fallback if r not in regions]
    for region, leniency in runs:
        for match in phonenumbers.PhoneNumberMatcher(text, region, leniency=leniency):
            raw = match.raw_string
            if not raw.startswith(("+", "00")) and not (raw.startswith("0") or _PHONE_SEPARATORS & set(raw)):
                continue
            # "(702/369-1540)": the matcher takes the opening bracket of a number in brackets, not the closing one
            start = match.start + (raw.startswith("(") and ")" not in raw)
            spans.add(Span(start, match.end, PHONE))
    return resolve_overlaps(list(spans), (PHONE,))


def resolve_overlaps(spans: list[Span], priority: tuple[str, ...]) -> list[Span]:
    """Non-overlapping spans: by type priority, then the longer span, then the earlier."""
    rank = {t: i for i, t in enumerate(priority)}
    chosen: list[Span] = []
    for span in sorted(spans, key=lambda s: (rank.get(s.type, len(rank)), s.start - s.end, s.start)):
        if all(span.end <= c.start or span.start >= c.end for c in chosen):
            chosen.append(span)
    return sorted(chosen)
