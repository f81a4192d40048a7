"""Bulwark's own Presidio recognizers, where Presidio's missed what a public evaluation set holds
(``bench/data/pii_public``, from presidio-evaluator's templates):

* ``CardRecognizer``: every card length in use (12 to 19 digits) and every issuer range,
  2-series Mastercard, Mir, UnionPay and Maestro included; Presidio's pattern stops at the
  16-digit shapes of the 3-6 series. Luhn-checked, as Presidio's.
* ``WindowedPhoneRecognizer``: python-phonenumbers over digit windows only, trying the regions
  one after another until one validates the whole window (extensions such as ``x6404``
  included); an international number written with its trunk ``(0)`` (``+41 (0)29 464 83 43``);
  and, where no region validates, a number that says it is one: written with its ``+``/``00``
  country prefix, or next to a word such as ``Fax:`` or ``Mobile``.
* ``StreetAddressRecognizer``: the common shapes of a street address (number, street, street
  type, unit, then city, state and ZIP), the European order (street type or ``-strasse``
  compound, then number), post-office boxes and military addresses.
* ``DateTimeRecognizer``: Presidio's date patterns, plus date-times with a space and
  fractions of a second, times of day, dates with month names and weekday names. Bare years
  are left to NER, which sees the words around them.

Pure pattern code: the engine decides which of them run (only those of the requested types).
"""

from __future__ import annotations

import re
from typing import Any

from presidio_analyzer import Pattern, PatternRecognizer, RecognizerResult
from presidio_analyzer.predefined_recognizers import (
    CreditCardRecognizer,
    DateRecognizer,
    PhoneRecognizer,
)

# -- cards ----------------------------------------------------------------------------------------

# (first digits low, high, lengths): issuer identification ranges of the networks in use.
_IIN_RANGES: tuple[tuple[str, str, range], ...] = (
    ("4", "4", range(13, 20)),  # Visa (13, 16, 19), Visa Electron
    ("51", "55", range(16, 17)),  # Mastercard
    ("2221", "2720", range(16, 17)),  # Mastercard 2-series
    ("34", "34", range(15, 16)),  # American Express
    ("37", "37", range(15, 16)),
    ("300", "305", range(14, 20)),  # Diners Club
    ("3095", "3095", range(14, 20)),
    ("36", "36", range(14, 20)),
    ("38", "39", range(14, 20)),
    ("3528", "3589", range(16, 20)),  # JCB
    ("1800", "1800", range(15, 16)),  # JCB (15 digits)
    ("2131", "2131", range(15, 16)),
    ("6011", "6011", range(16, 20)),  # Discover
    ("644", "649", range(16, 20)),
    ("65", "65", range(16, 20)),
    ("62", "62", range(16, 20)),  # UnionPay
    ("81", "82", range(16, 20)),  # UnionPay (81), RuPay (82)
    ("2200", "2204", range(16, 20)),  # Mir
    ("50", "50", range(12, 20)),  # Maestro and the other 5/6 debit ranges
    ("56", "69", range(12, 20)),
    ("0604", "0604", range(12, 20)),  # Maestro, as listed by older IIN tables (and Faker)
    ("1", "1", range(15, 16)),  # UATP
)


def card_issuer_known(digits: str) -> bool:
    """Whether ``digits`` has the length that some issuer range it falls in uses."""
    for low, high, lengths in _IIN_RANGES:
        if len(digits) in lengths and low <= digits[: len(low)] <= high:
            return True
    return False


def luhn_valid(digits: str) -> bool:
    total = 0
    for index, char in enumerate(reversed(digits)):
        value = int(char) * (2 if index % 2 else 1)
        total += value - 9 if value > 9 else value
    return total % 10 == 0


class CardRecognizer(CreditCardRecognizer):
    """12 to 19 digits, optionally grouped by spaces or dashes, in a known issuer range and
    Luhn-valid (1.0; anything else is dropped)."""

    PATTERNS = [
        Pattern(
            "card number (12-19 digits)", r"(?<![\w+.\-])[0-9](?:[ \-]?[0-9]){11,18}(?![\w\-])", 0.3
        )
    ]

    def __init__(self) -> None:
        super().__init__(patterns=self.PATTERNS)

    def validate_result(self, pattern_text: str) -> bool:
        digits = re.sub(r"[ \-]", "", pattern_text)
        return card_issuer_known(digits) and luhn_valid(digits)


# -- phone numbers --------------------------------------------------------------------------------

# Candidate phone numbers: digit runs with the separators phone numbers use, and an extension.
_PHONE_WINDOW = re.compile(
    r"(?<![\w+])[+(]?[0-9][0-9 ().\-/]{4,24}[0-9]"
    r"(?:\s*(?:x|ext\.?|extension)\s*[0-9]{1,6})?(?![\w])",
    re.IGNORECASE,
)
_EXTENSION = re.compile(r"\s*(?:x|ext\.?|extension)\s*[0-9]{1,6}$", re.IGNORECASE)
# Presidio's default regions (a number it finds, this finds), tried in turn; a number written
# in a national format (trunk 0) is also tried in these other countries.
PHONE_REGIONS = ("US", "GB", "DE", "FR", "IL", "IN", "CA", "BR")
NATIONAL_REGIONS = ("AU", "CH", "IT", "ES", "NL", "SE", "AT", "BE", "PL", "PT", "IE", "ZA")
# E.164 numbers have at most 15 digits: longer runs (cards, accounts) are not parsed.
MAX_PHONE_DIGITS = 15
# "+41 (0)29 ...": the trunk zero in brackets, which no parser takes with the country code.
_TRUNK = re.compile(r"(?<=[0-9])\s?\(0\)\s?")
_INTERNATIONAL = re.compile(r"^(?:\+|00)[1-9]")
# Words that say the number next to them is a phone number.
_PHONE_CUES = re.compile(
    r"\b(?:phone|tel|telephone|fax|mobile|mob|cell|cellphone|call|desk|office|whatsapp|sms|"
    r"landline|hotline|reach|dial|ring|text)\b",
    re.IGNORECASE,
)
PHONE_FALLBACK_SCORE = 0.4
MIN_PHONE_DIGITS = 7
_SSN_SHAPE = re.compile(r"^[0-9]{3}-[0-9]{2}-[0-9]{4}$")


class WindowedPhoneRecognizer(PhoneRecognizer):
    """python-phonenumbers over digit windows only (Presidio's runs its matcher over the whole
    text once per region), same matcher and leniency; see the module docstring."""

    def __init__(self) -> None:
        super().__init__(supported_regions=PHONE_REGIONS + NATIONAL_REGIONS)

    def analyze(self, text: str, entities: Any, nlp_artifacts: Any = None) -> Any:
        import phonenumbers

        results = []
        for window in _PHONE_WINDOW.finditer(text):
            start, end = window.span()
            number = _EXTENSION.sub("", window.group(0))
            digits = sum(c.isdigit() for c in number)
            if not MIN_PHONE_DIGITS <= digits <= MAX_PHONE_DIGITS:
                continue
            bare = re.sub(r"[^0-9]", "", number)
            if _SSN_SHAPE.match(number) or (card_issuer_known(bare) and luhn_valid(bare)):
                continue  # an SSN's or a card's shape: theirs, not a phone number's
            national = number.lstrip("(").startswith("0")
            # The trunk "(0)" becomes spaces: same offsets, a number the parser accepts.
            chunk_start = max(start - 1, 0)
            chunk = _TRUNK.sub(lambda m: " " * len(m.group(0)), text[chunk_start : end + 1])
            best: list[Any] = []
            best_region = ""
            for region in PHONE_REGIONS + (NATIONAL_REGIONS if national else ()):
                matches = list(
                    phonenumbers.PhoneNumberMatcher(chunk, region, leniency=self.leniency or 1)
                )
                if matches:
                    covered = sum(len(m.raw_string) for m in matches)
                    if not best or covered > sum(len(m.raw_string) for m in best):
                        best, best_region = matches, region
                    if covered >= end - start:
                        break
            for match in best:
                match.start += chunk_start
                match.end += chunk_start
                results.append(
                    self._get_recognizer_result(  # type: ignore[no-untyped-call]
                        match, text, best_region, nlp_artifacts
                    )
                )
            if not best and self._says_it_is_a_phone(text, start, end):
                results.append(self._fallback(start, end))
        return self.remove_duplicates(results)

    @staticmethod
    def _says_it_is_a_phone(text: str, start: int, end: int) -> bool:
        if _INTERNATIONAL.match(text[start:end]):
            return True
        before = text[max(start - 24, 0) : start]
        after = text[end : end + 12]
        return bool(_PHONE_CUES.search(before) or _PHONE_CUES.search(after))

    def _fallback(self, start: int, end: int) -> RecognizerResult:
        return RecognizerResult(
            entity_type="PHONE_NUMBER",
            start=start,
            end=end,
            score=PHONE_FALLBACK_SCORE,
            recognition_metadata={
                RecognizerResult.RECOGNIZER_NAME_KEY: type(self).__name__,
                RecognizerResult.RECOGNIZER_IDENTIFIER_KEY: self.id,
                # The cue was the context: Presidio's enhancer must not count it twice.
                RecognizerResult.IS_SCORE_ENHANCED_BY_CONTEXT_KEY: True,
            },
        )


# -- street addresses -----------------------------------------------------------------------------

# Street types (USPS Publication 28's common suffixes and their abbreviations, as Faker's en_US
# streets use them) and the words that start a street in European languages.
_STREET_TYPES = """
    alley annex arcade avenue ave av bayou beach bend bluffs? bottom boulevard blvd branch bridge
    brooks? burgs? bypass camp canyon cape causeway centers? center centre circles? cir cliffs?
    club common corners? course courts? ct coves? creek crescent cres crest crossing crossroad
    curve dale dam divide drives? dr estates? expressway expy extensions? falls? ferry fields?
    flats? fords? forest forges? forks? fort freeway fwy gardens? gateway glens? greens? groves?
    harbors? haven heights hts highway hwy hills? hollow inlet islands? isle junctions? keys?
    knolls? lakes? land landing lane ln lights? loaf locks? lodge loop mall manors? meadows? mews
    mills? mission motorway mount mountains? neck orchard oval overpass parks? parkways? pkwy pass
    passage path pike pines? place pl plains? plaza points? ports? prairie radial ramp ranch
    rapids? rest ridges? river roads? rd route row rue run shoals? shores? skyway springs? spurs?
    squares? sq station stravenue stream streets? st str summit terrace ter throughway trace
    track trafficway trail trl trailer tunnel turnpike underpass unions? valleys? via viaduct
    views? villages? ville vista walks? wall ways? wells? close
"""
_STREET_TYPE = "(?:" + "|".join(_STREET_TYPES.split()) + r")\.?"
_STREET_FIRST = (
    r"(?:via|viale|vicolo|piazza|corso|avenida|avda\.|av\.|rua|travessa|calle|carrer|paseo|"
    r"plaza|rue|boulevard|bd|chemin|route|place|quai|all[ée]e|impasse|ul\.|ulica|al\.|"
    r"aleja|str\.|strada|avenue|street|road|lane|drive)"
)
_COMPOUND = (
    r"\p{Lu}\p{Ll}+(?:stra(?:ss|ß)e|str\.|gasse|weg|allee|platz|damm|veien|vegen|vej|gade|"
    r"gatan|gata|v[äa]gen|straat|laan|gracht|kade|utca|katu|kuja)"
)
# A capitalised word (Presidio matches with the ``regex`` module: \p{Lu} is any capital).
_WORD = r"\p{Lu}[\w'\u2019.\-]*"
_NAME_WORDS = rf"{_WORD}(?:[ \t]+{_WORD}){{0,3}}"
_UNIT = (
    r"(?:apt|apartment|suite|ste|unit|floor|fl|room|rm|building|bldg|#)\.?[ \t]*#?"
    r"[0-9A-Za-z\-]{1,6}"
)
_STATE = r"[A-Z]{2}"
# US/European, Canadian and British postcodes.
_ZIP = (
    r"(?:[0-9]{4,5}(?:-[0-9]{3,4})?|[A-Z][0-9][A-Z][ ]?[0-9][A-Z][0-9]|"
    r"[A-Z]{1,2}[0-9][A-Z0-9]?[ ]?[0-9][A-Z]{2})"
)
# The lines after a street line, each a unit ("Apt. 5"), or a place: capitalised words, a state
# abbreviation and a postcode, in any combination ("Springfield, OR 97403", "Estonia 21627").
_NEXT = r"(?:[ \t]*[,\n][ \t]*|[ \t]+)"
_PLACE = rf"(?:{_NAME_WORDS}(?:[ \t]*,?[ \t]*{_STATE}\b)?(?:[ \t]+{_ZIP}\b)?|{_ZIP}\b)"
_TAIL = rf"(?:{_NEXT}(?i:{_UNIT}))*(?:{_NEXT}{_PLACE}){{0,3}}"
ADDRESS_SCORE = 0.6


class StreetAddressRecognizer(PatternRecognizer):
    """Common street-address shapes (see the module docstring); case matters for the street
    and city names, not for street types."""

    PATTERNS = (
        # 742 Evergreen Terrace Apt. 5, Springfield, OR 97403
        Pattern(
            "number, street, type",
            rf"\b[0-9]{{1,6}}[A-Za-z]?(?:[ \t]+[0-9]{{1,5}})?[ \t]+{_NAME_WORDS}[ \t]+"
            rf"(?i:{_STREET_TYPE})(?![\w])(?:[ \t]+[0-9]{{1,5}}\b)?{_TAIL}",
            ADDRESS_SCORE,
        ),
        # Via Pisanelli 104, 96 rue de Penthièvre, ul. Elbląska 97
        Pattern(
            "street type first, number",
            rf"(?:\b[0-9]{{1,6}}[ \t]+)?(?<![\w])(?i:{_STREET_FIRST})[ \t]+(?:{_NAME_WORDS}[ \t]+)?"
            rf"[0-9]{{1,5}}[A-Za-z]?\b\.?{_TAIL}",
            ADDRESS_SCORE,
        ),
        # Mattenstrasse 108, Glynitveien 218
        Pattern(
            "compound street, number",
            rf"(?:\b[0-9]{{1,6}}[ \t]+)?\b{_COMPOUND}[ \t]+[0-9]{{1,5}}[A-Za-z]?\b{_TAIL}",
            ADDRESS_SCORE,
        ),
        # P.O. Box 255; PSC 1241, Box 5868 / APO AP 25384; USNS Wheeler / FPO AE 12345
        Pattern(
            "post-office box",
            r"\b(?i:p\.?[ \t]?o\.?[ \t]?box|post[ \t]office[ \t]box)[ \t]+[0-9]{1,6}\b",
            ADDRESS_SCORE,
        ),
        Pattern(
            "military address",
            rf"\b(?:(?:PSC|Unit|CMR)[ \t]+[0-9]{{1,5}},?[ \t]+Box[ \t]+[0-9]{{1,5}}|"
            rf"(?:USNS|USNV|USS|USCGC)[ \t]+{_WORD})[ \t]*[,\n]?[ \t]*"
            rf"(?:APO|FPO|DPO)[ \t]+(?:AA|AE|AP)[ \t]+[0-9]{{5}}\b",
            ADDRESS_SCORE,
        ),
    )
    CONTEXT = ["address", "street", "lives", "live", "located", "ship", "deliver", "mail"]

    def __init__(self) -> None:
        super().__init__(
            supported_entity="STREET_ADDRESS",
            name="StreetAddressRecognizer",
            patterns=list(self.PATTERNS),
            context=self.CONTEXT,
            global_regex_flags=re.MULTILINE,
        )


# -- dates and times ------------------------------------------------------------------------------

_MONTH = (
    r"(?:jan(?:uary)?|feb(?:ruary)?|mar(?:ch)?|apr(?:il)?|may|june?|july?|aug(?:ust)?|"
    r"sep(?:t(?:ember)?)?|oct(?:ober)?|nov(?:ember)?|dec(?:ember)?)\.?"
)
_WEEKDAY = r"(?:monday|tuesday|wednesday|thursday|friday|saturday|sunday)"
_TIME = r"(?:[01]?[0-9]|2[0-3]):[0-5][0-9](?::[0-5][0-9](?:\.[0-9]{1,9})?)?(?:[ \t]?[ap]\.?m\.?)?"
DATE_SCORE = 0.6


class DateTimeRecognizer(DateRecognizer):
    """Presidio's date patterns and the shapes they miss (see the module docstring)."""

    EXTRA = [
        Pattern(
            "date and time",
            rf"\b[0-9]{{4}}-[0-9]{{2}}-[0-9]{{2}}[ T]{_TIME}(?:Z|[+\-][0-9]{{2}}:?[0-9]{{2}})?",
            DATE_SCORE,
        ),
        Pattern("time of day", rf"\b{_TIME}(?![\w:])", 0.5),
        Pattern("hour", r"\b(?:[1-9]|1[0-2])[ \t]?[ap]\.?m\.?(?!\w)", 0.5),
        Pattern(
            "day month year",
            rf"\b(?:[0-2]?[0-9]|3[01])(?:st|nd|rd|th)?[ \t]+(?:of[ \t]+)?{_MONTH},?[ \t]+"
            r"[0-9]{4}\b",
            DATE_SCORE,
        ),
        Pattern(
            "month day year",
            rf"\b{_MONTH}[ \t]+(?:[0-2]?[0-9]|3[01])(?:st|nd|rd|th)?(?:,?[ \t]+[0-9]{{4}})?\b",
            DATE_SCORE,
        ),
        Pattern("month year", rf"\b{_MONTH}[ \t]+[0-9]{{4}}\b", DATE_SCORE),
        Pattern("weekday", rf"\b{_WEEKDAY}\b", 0.5),
    ]

    def __init__(self) -> None:
        super().__init__(patterns=[*self.PATTERNS, *self.EXTRA])
