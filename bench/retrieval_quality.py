"""Retrieval quality per labelled set: dense alone, sparse alone and their fusions, with and
without contextual indexing, printed as one JSON document.

Sets (each a corpus with titles and questions whose relevant chunks are known):

- ``public``: a public IR set nobody here wrote (``bench/data/retrieval_public``, see its
  NOTICE.md): a hit is a chunk of a document judged relevant;
- ``squad``: the public SQuAD v1.1 paragraphs and answerable questions of ``bench/data/answers``:
  a hit is a chunk of the question's document that holds a gold answer;
- ``constitution``: Bulwark's own questions over the US Constitution and the Declaration
  (``bench/retrieval.py``): a hit is a chunk holding the answer phrase.

Every document goes through the production parser and chunker; its chunks are embedded with the
production MiniLM and given sparse vectors by each sparse analyser compared, under two index
texts (``Chunk.index_text``): ``plain`` (heading path and text, before contextual indexing) and
``contextual`` (title, heading path and text). Each variant is loaded into its own Qdrant Edge
shard and queried with the production ``EdgeVectorStore.search`` (tenant + ACL filter inside the
query), ``limit`` 10, varying only the ``Fusion``. Reported per set and variant: recall@10 and
MRR@10, and the figures of the fusion in use (``retrieval.vectorstore.FUSION``).

    python -m bench.retrieval_quality [--sets public squad constitution] [--queries 400]
"""

from __future__ import annotations

import argparse
import asyncio
import gzip
import json
import random
import statistics
import tempfile
import time
import unicodedata
import uuid
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import qdrant_edge as qe

from bench._server import bench_member
from kernel.tenancy import TenantRoute
from retrieval import sparse
from retrieval.acl import DocumentAcl
from retrieval.adapters.minilm import MiniLMTokenCounter, OnnxMiniLMEmbedder
from retrieval.chunking import Chunk, chunk_blocks
from retrieval.parsing import parse_document
from retrieval.sparse import ANALYSER, SparseAnalyser
from retrieval.vectorstore import FUSION, ChunkPoint, Fusion, SparseVector
from retrieval.vectorstore.adapters.edge import EdgeVectorStore

DATA = Path(__file__).parent / "data"
LIMIT = 10


@dataclass(frozen=True, slots=True)
class Question:
    text: str
    hit: Callable[[str, str], bool]  # (document id, chunk text) -> relevant


@dataclass(frozen=True, slots=True)
class LabelledSet:
    name: str
    source: str
    documents: list[tuple[str, str, str]]  # (id, title, text)
    questions: list[Question]


def _normal(text: str) -> str:
    return " ".join(unicodedata.normalize("NFKC", text).casefold().split())


def _in(relevant: Sequence[str]) -> Callable[[str, str], bool]:
    wanted = frozenset(relevant)
    return lambda doc, _text: doc in wanted


def public_sets() -> list[LabelledSet]:
    found = []
    folder = DATA / "retrieval_public"
    for path in sorted(folder.glob("*.json.gz")) + sorted(folder.glob("*.jsonl.gz")):
        data = json.loads(gzip.decompress(path.read_bytes()))
        found.append(
            LabelledSet(
                name=path.name.split(".")[0],
                source=data.get("source", path.name),
                documents=[(d["id"], d.get("title", ""), d["text"]) for d in data["documents"]],
                questions=[Question(q["text"], _in(q["relevant"])) for q in data["queries"]],
            )
        )
    return found


def squad_set() -> LabelledSet:
    data = json.loads(gzip.decompress((DATA / "answers" / "qa.json.gz").read_bytes()))

    def holds(document: str, answers: Sequence[str]) -> Callable[[str, str], bool]:
        wanted = [_normal(a) for a in answers]
        return lambda doc, text: doc == document and any(a in _normal(text) for a in wanted)

    return LabelledSet(
        name="squad",
        source="SQuAD v1.1 dev (CC BY-SA 4.0), bench/data/answers",
        documents=[(d["id"], d["title"], d["text"]) for d in data["documents"]],
        questions=[
            Question(q["question"], holds(q["document_id"], q["answers"]))
            for q in data["questions"]
            if q["answerable"]
        ],
    )


def _holds_phrase(answer: str) -> Callable[[str, str], bool]:
    wanted = _normal(answer)
    return lambda _doc, text: wanted in _normal(text)


def constitution_set() -> LabelledSet:
    from bench.retrieval import corpus, labelled

    documents = [(f"own-{n}", title, text) for n, (title, text) in enumerate(corpus())]
    return LabelledSet(
        name="constitution",
        source="Bulwark's own questions (bench/data/constitution-questions.json)",
        documents=documents,
        questions=[Question(q, _holds_phrase(answer)) for q, answer in labelled()],
    )


class SnowballBm25:
    """Qdrant's own BM25 analyser (``qdrant_edge.Bm25``, the same as the Qdrant server's
    inference-side BM25): Unicode word tokens, ASCII folding, the English stop-word list and
    the Snowball English stemmer; document weights are BM25's term-frequency part, query
    weights 1.0, IDF left to the store as above."""

    name = "snowball-bm25"

    def __init__(self) -> None:
        config = qe.Bm25Config(
            k=sparse.K1,
            b=sparse.B,
            avg_len=sparse.DEFAULT_AVG_DOC_LENGTH,
            language="english",
            ascii_folding=True,
        )
        self._model = qe.Bm25(config)

    @staticmethod
    def _sorted(vector: qe.SparseVector) -> SparseVector:
        pairs = sorted(zip(vector.indices, vector.values, strict=True))
        return SparseVector([i for i, _ in pairs], [v for _, v in pairs])

    def document(self, text: str) -> SparseVector:
        return self._sorted(self._model.embed_document(text))

    def query(self, text: str) -> SparseVector:
        return self._sorted(self._model.embed_query(text))


# The sparse analysers compared: the one in use, and Qdrant's own.
ANALYSERS: dict[str, SparseAnalyser] = {a.name: a for a in (ANALYSER, SnowballBm25())}


# The fusions compared (the one in use is added to them).
FUSIONS = {
    "rrf": Fusion(),
    "rrf_depth100": Fusion(depth=100),
    "rrf_dense1.5": Fusion(dense_weight=1.5),
    "rrf_dense2": Fusion(dense_weight=2.0),
    "rrf_dense3": Fusion(dense_weight=3.0),
    "rrf_dense2_depth100": Fusion(dense_weight=2.0, depth=100),
    "dbsf": Fusion(method="dbsf"),
    "dbsf_depth100": Fusion(method="dbsf", depth=100),
}


def chunks_of(labelled: LabelledSet, counter: Any) -> list[tuple[str, str, Chunk]]:
    """(document id, title, chunk) of every chunk, through the production parser and chunker."""
    out = []
    for doc_id, title, text in labelled.documents:
        for chunk in chunk_blocks(parse_document(text.encode(), "text/markdown"), counter):
            out.append((doc_id, title, chunk))
    return out


def _score(ranked: list[tuple[str, str]], question: Question) -> tuple[int, float]:
    for rank, (doc, text) in enumerate(ranked[:LIMIT], start=1):
        if question.hit(doc, text):
            return 1, 1.0 / rank
    return 0, 0.0


async def _variant(
    chunks: list[tuple[str, str, Chunk]],
    dense: Any,
    analyser: SparseAnalyser,
    contextual: bool,
    questions: list[Question],
    question_vectors: Any,
) -> dict[str, Any]:
    route = TenantRoute(uuid.uuid4(), "bench", "eu", "active")
    reader = bench_member(route)
    texts = {f"c{i}": (doc, chunk.text) for i, (doc, _, chunk) in enumerate(chunks)}
    acl = DocumentAcl(visibility="tenant")
    with tempfile.TemporaryDirectory(prefix="bulwark-quality-") as root:
        store = EdgeVectorStore("eu", root)
        await store.ensure()
        points = []
        for i, ((doc, title, chunk), vector) in enumerate(zip(chunks, dense, strict=True)):
            terms = analyser.document(chunk.index_text(title if contextual else ""))
            points.append(ChunkPoint(f"c{i}", doc, chunk.ordinal, vector.tolist(), terms, acl))
        for start in range(0, len(points), 1000):
            await store.upsert(reader, points[start : start + 1000])
        await store.optimize()
        report: dict[str, Any] = {}

        async def measure(name: str, use_dense: bool, use_sparse: bool, fusion: Fusion) -> None:
            found, reciprocal, times = 0, 0.0, []
            for question, vector in zip(questions, question_vectors, strict=True):
                terms = analyser.query(question.text)
                sparse = terms if use_sparse and terms.indices else None
                if not use_dense and sparse is None:
                    continue  # no term the analyser keeps: sparse alone finds nothing
                began = time.perf_counter()
                hits = await store.search(
                    reader, vector.tolist() if use_dense else None, sparse, LIMIT, fusion=fusion
                )
                times.append(time.perf_counter() - began)
                hit, rr = _score([texts[h.chunk_id] for h in hits], question)
                found, reciprocal = found + hit, reciprocal + rr
            report[name] = {
                "recall_at_10": round(found / len(questions), 3),
                "mrr_at_10": round(reciprocal / len(questions), 3),
                "engine_p50_ms": round(statistics.median(times) * 1000, 2) if times else None,
            }

        await measure("dense", True, False, FUSION)
        await measure("sparse", False, True, FUSION)
        for name, fusion in FUSIONS.items():
            await measure(f"hybrid_{name}", True, True, fusion)
        await measure("hybrid_in_use", True, True, FUSION)
        await store.close()
    return report


async def evaluate(labelled: LabelledSet, embedder: Any, queries: int) -> dict[str, Any]:
    questions = labelled.questions
    if len(questions) > queries:
        questions = random.Random(7).sample(questions, queries)
    chunks = chunks_of(labelled, MiniLMTokenCounter())
    began = time.perf_counter()
    vectors = {
        contextual: await embedder.embed_async(
            [c.index_text(title if contextual else "") for _, title, c in chunks]
        )
        for contextual in (False, True)
    }
    question_vectors = await embedder.embed_async([q.text for q in questions])
    embed_s = time.perf_counter() - began
    variants: dict[str, Any] = {}
    for contextual in (False, True):
        for analyser in ANALYSERS.values():
            name = f"{'contextual' if contextual else 'plain'}:{analyser.name}"
            variants[name] = await _variant(
                chunks, vectors[contextual], analyser, contextual, questions, question_vectors
            )
    return {
        "source": labelled.source,
        "documents": len(labelled.documents),
        "titled": sum(bool(title) for _, title, _ in labelled.documents),
        "chunks": len(chunks),
        "questions": len(questions),
        "embed_seconds": round(embed_s, 1),
        "variants": variants,
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--sets", nargs="*", default=["public", "squad", "constitution"])
    parser.add_argument("--queries", type=int, default=400)
    args = parser.parse_args()
    embedder = OnnxMiniLMEmbedder()
    embedder.load()
    sets: list[LabelledSet] = []
    if "public" in args.sets:
        sets += public_sets()
    if "squad" in args.sets:
        sets.append(squad_set())
    if "constitution" in args.sets:
        sets.append(constitution_set())
    results = {s.name: asyncio.run(evaluate(s, embedder, args.queries)) for s in sets}
    print(
        json.dumps(
            {
                "benchmark": "retrieval_quality",
                "fusion_in_use": {
                    "method": FUSION.method,
                    "dense_weight": FUSION.dense_weight,
                    "sparse_weight": FUSION.sparse_weight,
                    "depth": FUSION.depth,
                    "k": FUSION.k,
                },
                "sets": results,
            },
            indent=2,
        )
    )


if __name__ == "__main__":
    main()
