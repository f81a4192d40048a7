"""The answer-side checks: no substantial verbatim part of the system prompt, and links and
images only to allow-listed hosts (an image loads by itself: a zero-click channel out)."""

from __future__ import annotations

import re
from collections.abc import Sequence
from dataclasses import dataclass
from urllib.parse import urlsplit

from dlp.injection._normalise import normalise
from dlp.policies import host_allowed

SYSTEM_PROMPT_DISCLOSURE = "system_prompt_disclosure"
UNLISTED_LINK = "unlisted_link"

_MD_IMAGE = re.compile(r"!\[[^\]]{0,200}\]\(\s*<?(https?://[^)\s>]+)>?(?:\s+\"[^\"]*\")?\s*\)")
_MD_LINK = re.compile(
    r"(?<!!)\[([^\]]{0,200})\]\(\s*<?(https?://[^)\s>]+)>?(?:\s+\"[^\"]*\")?\s*\)"
)
_HTML_IMG = re.compile(r"<img\b[^>]*\bsrc\s*=\s*[\"']?(https?://[^\"'\s>]+)[^>]*>", re.IGNORECASE)
_BARE_URL = re.compile(r"(?<![(<\"'=])\bhttps?://[^\s<>()\"']+")


def _links(text: str) -> list[tuple[str, str]]:
    """(kind, url) of every image, link and bare URL."""
    links = [("image", m.group(1)) for m in _MD_IMAGE.finditer(text)]
    links += [("image", m.group(1)) for m in _HTML_IMG.finditer(text)]
    links += [("link", m.group(2)) for m in _MD_LINK.finditer(text)]
    links += [("link", m.group(0)) for m in _BARE_URL.finditer(text)]
    return links


def _host(url: str) -> str:
    try:
        return (urlsplit(url).hostname or "").lower()
    except ValueError:
        return ""


def link_exfiltration(text: str, allowed_hosts: Sequence[str]) -> bool:
    """An image from an unlisted host (it loads by itself), or a link to one that carries data
    in its query string (it needs a click)."""
    for kind, url in _links(text):
        if host_allowed(_host(url), allowed_hosts):
            continue
        if kind == "image" or re.search(r"[?&][^=&]{1,30}=[^&]{24,}", url):
            return True
    return False


_WORDS = re.compile(r"[a-z0-9']+")
DISCLOSURE_RUN = 12  # this many consecutive words of the system prompt in an answer...
DISCLOSURE_COVERAGE = 0.3  # ...or this share of its 6-word shingles, is a disclosure
_SHINGLE = 6


@dataclass(frozen=True, slots=True)
class OutputCheck:
    text: str
    kinds: tuple[str, ...]


def discloses(answer: str, system_prompt: str) -> bool:
    """Does ``answer`` repeat a substantial verbatim part of ``system_prompt``?"""
    prompt = _WORDS.findall(normalise(system_prompt))
    said = _WORDS.findall(normalise(answer))
    if len(prompt) < _SHINGLE or len(said) < _SHINGLE:
        return False
    said_shingles = {tuple(said[i : i + _SHINGLE]) for i in range(len(said) - _SHINGLE + 1)}
    flags = [
        tuple(prompt[i : i + _SHINGLE]) in said_shingles for i in range(len(prompt) - _SHINGLE + 1)
    ]
    if sum(flags) / len(flags) >= DISCLOSURE_COVERAGE:
        return True
    # consecutive shingle hits = a verbatim run of (hits + SHINGLE - 1) words
    run = best = 0
    for hit in flags:
        run = run + 1 if hit else 0
        best = max(best, run)
    return best > 0 and best + _SHINGLE - 1 >= DISCLOSURE_RUN


def check_output(
    answer: str, *, system_prompt: str | None, allowed_hosts: Sequence[str]
) -> OutputCheck:
    """An answer made safe to return: links and images to unlisted hosts removed; a system-prompt
    disclosure replaced by a refusal."""
    kinds: set[str] = set()
    if system_prompt and discloses(answer, system_prompt):
        return OutputCheck("I can't share my instructions.", (SYSTEM_PROMPT_DISCLOSURE,))

    def image(match: re.Match[str]) -> str:
        if host_allowed(_host(match.group(1)), allowed_hosts):
            return match.group(0)
        kinds.add(UNLISTED_LINK)
        return "[image removed]"

    def link(match: re.Match[str]) -> str:
        if host_allowed(_host(match.group(2)), allowed_hosts):
            return match.group(0)
        kinds.add(UNLISTED_LINK)
        return f"{match.group(1)} [link removed]"

    def bare(match: re.Match[str]) -> str:
        if host_allowed(_host(match.group(0)), allowed_hosts):
            return match.group(0)
        kinds.add(UNLISTED_LINK)
        return "[link removed]"

    text = _MD_IMAGE.sub(image, answer)
    text = _HTML_IMG.sub(image, text)
    text = _MD_LINK.sub(link, text)
    text = _BARE_URL.sub(bare, text)
    return OutputCheck(text, tuple(sorted(kinds)))
