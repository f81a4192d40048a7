# ruff: noqa: RUF001
"""What the detector reads: text normalised, and every hidden reading of it decoded.

``normalise`` undoes the disguises that keep the words of an attack from matching while a model
still reads them: HTML entities, ``\\u`` and %-escapes, Unicode compatibility forms (NFKC:
fullwidth, ligatures, mathematical letters), invisible and bidi characters, Unicode tag
characters (decoded: they carry ASCII nobody sees), Cyrillic and Greek look-alikes inside Latin
words, accents and stacked combining marks ("zalgo"), Turkish dotted and dotless i, leetspeak
digits inside words ("1gn0r3"), and letters spaced or punctuated apart ("i g n o r e",
"i.g.n.o.r.e", "\\I\\ \\h\\a\\v\\e"). The result is lower case, accent-free, single-spaced.

``views`` adds what the text hides: base64 / base64url / base32 / hex / binary / Morse / Braille
blobs decoded, and the ROT13, Atbash and reversed readings of a text that reads as English only
once transformed. Each view is checked like the text itself.
"""

from __future__ import annotations

import base64
import binascii
import html
import re
import unicodedata
from collections.abc import Callable
from urllib.parse import unquote

_INVISIBLE = re.compile(
    "[\u00ad\u034f\u061c\u115f\u1160\u17b4\u17b5\u180e\u200b-\u200f\u202a-\u202e\u2060-\u206f"
    "\ufe00-\ufe0f\ufeff\U000e0000-\U000e001f\U000e007f-\U000e01ef]"
)
_TAGS = re.compile("[\U000e0020-\U000e007e]+")
_UNICODE_ESCAPE = re.compile(r"\\u([0-9a-fA-F]{4})")
# Cyrillic and Greek letters that look like Latin ones (Unicode's confusables for these
# scripts, lower case after casefold), folded only inside words that also hold Latin letters:
# a Russian or Greek word stays itself.
_CONFUSABLE = str.maketrans(
    {
        "а": "a", "в": "b", "е": "e", "ё": "e", "к": "k", "м": "m", "н": "h", "о": "o",
        "р": "p", "с": "c", "т": "t", "у": "y", "х": "x", "і": "i", "ї": "i", "ј": "j",
        "ѕ": "s", "ԁ": "d", "ԛ": "q", "ԝ": "w", "ɡ": "g", "ո": "n", "ս": "u",
        "α": "a", "β": "b", "ε": "e", "η": "n", "ι": "i", "κ": "k", "ν": "v", "ο": "o",
        "π": "n", "ρ": "p", "τ": "t", "υ": "u", "χ": "x", "ω": "w", "γ": "y", "δ": "d",
        "μ": "u", "σ": "o", "ς": "c", "λ": "l", "ı": "i", "ł": "l", "ø": "o", "đ": "d",
        "ð": "d", "þ": "p", "ß": "ss", "æ": "ae", "œ": "oe",
    }
)  # fmt: skip
_LATIN = re.compile(r"[a-z]")
_NON_LATIN_LETTER = re.compile(r"[^\W\da-z_]")
_MIXED_WORD = re.compile(r"\w*[^\W\da-z_]\w*")
# Digits that stand for letters, inside a word that also holds letters ("f0rg3t", "1gn0r3").
_LEET = str.maketrans(
    {"0": "o", "1": "i", "3": "e", "4": "a", "5": "s", "7": "t", "@": "a", "$": "s"}
)
_LEET_WORD = re.compile(r"(?<![\w@$])(?=[\w@$]*[a-z])(?=[\w@$]*[0-9@$])[\w@$]{3,}")
# Single letters kept apart by one repeated separator: "i g n o r e", "i.g.n.o.r.e", "i-g-n".
_SPACED = re.compile(r"(?<!\w)(\w)([ .\-_*/|\\~+])(?:\w\2){2,}\w(?!\w)")
_SPACES = re.compile(r"[ \t\r\f\v]+")


def _fold_mixed(match: re.Match[str]) -> str:
    word = match.group(0)
    if not _LATIN.search(word):
        return word
    return word.translate(_CONFUSABLE)


def _unspace(match: re.Match[str]) -> str:
    return match.group(0).replace(match.group(2), "")


def _strip_marks(text: str) -> str:
    decomposed = unicodedata.normalize("NFKD", text)
    return "".join(ch for ch in decomposed if not unicodedata.combining(ch))


def normalise(text: str, *, decode: bool = True) -> str:
    """The form the rules and the classifier read (see the module docstring)."""
    if decode:
        text = html.unescape(text)
        text = _UNICODE_ESCAPE.sub(lambda m: chr(int(m.group(1), 16)), text)
        if "%" in text:
            text = unquote(text)
    text = _TAGS.sub(lambda m: "".join(chr(ord(c) - 0xE0000) for c in m.group(0)), text)
    text = _INVISIBLE.sub("", text)
    text = unicodedata.normalize("NFKC", text).casefold()
    text = _strip_marks(text)
    if _NON_LATIN_LETTER.search(text):
        text = _MIXED_WORD.sub(_fold_mixed, text)
    text = text.replace("\\", " ") if text.count("\\") > 8 else text
    text = _SPACED.sub(_unspace, text)
    if any(ch.isdigit() or ch in "@$" for ch in text):
        text = _LEET_WORD.sub(lambda m: m.group(0).translate(_LEET), text)
    return _SPACES.sub(" ", text).strip()


# -- hidden readings -----------------------------------------------------------------------------

_BASE64 = re.compile(r"(?<![A-Za-z0-9+/=])[A-Za-z0-9+/]{16,}={0,2}(?![A-Za-z0-9+/=])")
_BASE64URL = re.compile(r"(?<![A-Za-z0-9_\-=])[A-Za-z0-9_\-]{16,}={0,2}(?![A-Za-z0-9_\-=])")
_BASE32 = re.compile(r"(?<![A-Z2-7=])[A-Z2-7]{16,}={0,6}(?![A-Z2-7=])")
_HEX = re.compile(r"\b(?:[0-9a-fA-F]{2}[\s:]?){8,}\b")
_BINARY = re.compile(r"(?:[01]{8}\s?){4,}")
_MORSE = re.compile(r"(?:[.\-]{1,6}(?: / | |/)){5,}[.\-]{1,6}")
_BRAILLE_RUN = re.compile(r"[\u2800-\u28ff][\u2800-\u28ff ]{4,}")
_MAX_BLOBS = 20
_MORSE_CODE = dict(
    zip(
        [
            ".-",
            "-...",
            "-.-.",
            "-..",
            ".",
            "..-.",
            "--.",
            "....",
            "..",
            ".---",
            "-.-",
            ".-..",
            "--",
            "-.",
            "---",
            ".--.",
            "--.-",
            ".-.",
            "...",
            "-",
            "..-",
            "...-",
            ".--",
            "-..-",
            "-.--",
            "--..",
            "-----",
            ".----",
            "..---",
            "...--",
            "....-",
            ".....",
            "-....",
            "--...",
            "---..",
            "----.",
        ],
        "abcdefghijklmnopqrstuvwxyz0123456789",
        strict=True,
    )
)
_BRAILLE = dict(zip("⠁⠃⠉⠙⠑⠋⠛⠓⠊⠚⠅⠇⠍⠝⠕⠏⠟⠗⠎⠞⠥⠧⠺⠭⠽⠵", "abcdefghijklmnopqrstuvwxyz", strict=True))
_ROT13 = str.maketrans(
    "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz",
    "NOPQRSTUVWXYZABCDEFGHIJKLMnopqrstuvwxyzabcdefghijklm",
)
_ATBASH = str.maketrans(
    "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz",
    "ZYXWVUTSRQPONMLKJIHGFEDCBAzyxwvutsrqponmlkjihgfedcba",
)
# The commonest English words: a reading that holds many more of them than the text is the one
# a model would act on.
_COMMON = frozenset(
    [
        "the",
        "a",
        "an",
        "and",
        "or",
        "to",
        "of",
        "in",
        "on",
        "for",
        "with",
        "is",
        "are",
        "was",
        "be",
        "you",
        "your",
        "my",
        "me",
        "i",
        "it",
        "this",
        "that",
        "what",
        "all",
        "any",
        "from",
        "now",
        "not",
        "do",
        "as",
        "at",
        "by",
        "if",
        "no",
        "so",
        "just",
        "tell",
        "give",
        "show",
        "print",
        "say",
        "say",
        "system",
        "prompt",
        "instructions",
        "ignore",
        "previous",
        "above",
        "rules",
        "write",
        "reveal",
    ]
)
_ASCII_WORD = re.compile(r"[a-z]+")


def _printable(raw: bytes) -> str | None:
    try:
        text = raw.decode("utf-8")
    except UnicodeDecodeError:
        return None
    if len(text) < 8:
        return None
    readable = sum(ch.isprintable() or ch.isspace() for ch in text)
    letters = sum(ch.isalpha() for ch in text)
    if readable / len(text) < 0.95 or letters / len(text) < 0.5 or " " not in text:
        return None
    return text


def _b64(blob: str) -> bytes:
    return base64.b64decode(blob + "=" * (-len(blob) % 4), validate=True)


def _b64url(blob: str) -> bytes:
    return base64.urlsafe_b64decode(blob + "=" * (-len(blob) % 4))


def _b32(blob: str) -> bytes:
    return base64.b32decode(blob + "=" * (-len(blob) % 8))


def _hex(blob: str) -> bytes:
    return bytes.fromhex(re.sub(r"[\s:]", "", blob))


def _binary(blob: str) -> bytes:
    bits = re.sub(r"\s", "", blob)
    return bytes(int(bits[i : i + 8], 2) for i in range(0, len(bits) - 7, 8))


_BLOBS: tuple[tuple[re.Pattern[str], Callable[[str], bytes]], ...] = (
    (_BASE64, _b64),
    (_BASE64URL, _b64url),
    (_BASE32, _b32),
    (_HEX, _hex),
    (_BINARY, _binary),
)


def decoded_blobs(text: str) -> list[str]:
    """Readable text hidden in base64 / base64url / base32 / hex / binary / Morse / Braille runs
    of ``text``."""
    found: list[str] = []
    for pattern, decode in _BLOBS:
        for match in list(pattern.finditer(text))[:_MAX_BLOBS]:
            try:
                plain = _printable(decode(match.group(0).strip()))
            except (binascii.Error, ValueError):
                continue
            if plain and plain not in found:
                found.append(plain)
    if "." in text and "-" in text:
        for match in list(_MORSE.finditer(text))[:_MAX_BLOBS]:
            words = re.split(r"\s*/\s*", match.group(0).strip())
            plain = " ".join("".join(_MORSE_CODE.get(c, "") for c in w.split()) for w in words)
            if len(plain) >= 8 and plain not in found:
                found.append(plain)
    for match in list(_BRAILLE_RUN.finditer(text))[:_MAX_BLOBS]:
        plain = "".join(_BRAILLE.get(c, c) for c in match.group(0))
        if len(plain) >= 8 and plain not in found:
            found.append(plain)
    return found


def _known_words(text: str, known: frozenset[str]) -> int:
    return sum(w in known for w in _ASCII_WORD.findall(text.lower()) if len(w) > 1 or w in "ai")


# A line, or the part of one after a question mark or a colon: where a payload sits beside the
# words that ask to decode it ("What does this mean? Bhgchg ...", "Encoded: ...").
_SEGMENT = re.compile(r"[^\n?:]*[?:]?")


def transformed(text: str, known: frozenset[str] = _COMMON) -> list[str]:
    """The ROT13, Atbash and reversed readings of ``text``, or of one of its segments, that read
    as English far better than the text does (none for ordinary text, in English or not).
    ``known``: the English words to count (the classifier's vocabulary, see ``views``)."""
    found: list[str] = []
    segments = [text] + [m.group(0).strip() for m in _SEGMENT.finditer(text) if m.group(0).strip()]
    for segment in dict.fromkeys(segments):
        if sum(ch.isascii() and ch.isalpha() for ch in segment) < 12:
            continue
        base = _known_words(segment, known)
        words = len(_ASCII_WORD.findall(segment.lower()))
        for reading in (segment.translate(_ROT13), segment.translate(_ATBASH), segment[::-1]):
            gained = _known_words(reading, known)
            # Most of its words, and far more than the text itself has.
            if gained >= max(3, words / 2, 2 * base + 2) and reading not in found:
                found.append(reading)
        if len(found) >= _MAX_BLOBS:
            break
    return found


def views(text: str, depth: int = 2, known: frozenset[str] = _COMMON) -> list[tuple[str, bool]]:
    """``text`` and every hidden reading of it, each with whether it had to be decoded; blobs
    inside decoded text are decoded again, ``depth`` levels deep. ``known``: see
    ``transformed``."""
    found: list[tuple[str, bool]] = [(text, False)]
    pending = [text]
    for _ in range(depth):
        decoded = []
        for item in pending:
            decoded += decoded_blobs(item) + transformed(item, known)
        decoded = [d for d in decoded if all(d != seen for seen, _ in found)]
        found += [(d, True) for d in decoded]
        pending = decoded
        if not pending:
            break
    return found
