"""Embedding and chunking throughput on this machine.

Prints one JSON document:
- ``embedder``: sentences per second of the int8 MiniLM ONNX embedder at batch 32 (short, FAQ-like
  sentences and ~200-token chunks), with the thread count used;
- ``chunker``: parsed-Markdown-to-chunks throughput (MB/s and chunks/s) with the default budget.

    python -m bench.embedding [--threads 2] [--seconds 3]
"""

from __future__ import annotations

import argparse
import json
import os
import random
import time
from collections.abc import Callable
from typing import Any

from retrieval.adapters.minilm import MiniLMTokenCounter, OnnxMiniLMEmbedder
from retrieval.chunking import Chunker
from retrieval.parsing import MARKDOWN, parse_document

_VOCABULARY = """
    tenant region policy retention encryption key backup audit log compliance officer request
    document access group clearance classification answer source citation model gateway budget
    the a of to and in for is on with that by
"""
WORDS = _VOCABULARY.split()


def sentence(rng: random.Random, words: int) -> str:
    return " ".join(rng.choice(WORDS) for _ in range(words)).capitalize() + "."


def rate(fn: Callable[[], int], seconds: float) -> float:
    fn()  # warm up
    count, started = 0, time.perf_counter()
    while time.perf_counter() - started < seconds:
        count += fn()
    return count / (time.perf_counter() - started)


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--seconds", type=float, default=3.0)
    args = parser.parse_args()
    rng = random.Random(7)
    embedder = OnnxMiniLMEmbedder(threads=args.threads, batch_size=32)
    embedder.load()
    short = [sentence(rng, rng.randint(8, 20)) for _ in range(32)]
    chunks = [" ".join(sentence(rng, 15) for _ in range(10)) for _ in range(32)]

    markdown = "\n\n".join(
        f"## Section {i}\n\n" + "\n\n".join(sentence(rng, 40) for _ in range(6)) + "\n\n- a\n- b"
        for i in range(200)
    ).encode()
    counter = MiniLMTokenCounter()
    produced: list[int] = []

    def chunk_once() -> int:
        chunker = Chunker(counter)  # a fresh cache each time: the pessimistic case
        produced.append(len(chunker.chunk(parse_document(markdown, MARKDOWN))))
        return 1

    docs_per_s = rate(chunk_once, args.seconds)
    result: dict[str, Any] = {
        "machine": {"cpus": os.cpu_count()},
        "embedder": {
            "model": embedder.model_id,
            "threads": args.threads,
            "batch_size": 32,
            "short_sentences_per_s": round(rate(lambda: len(embedder.embed(short)), args.seconds)),
            "chunk_200_tokens_per_s": round(
                rate(lambda: len(embedder.embed(chunks)), args.seconds), 1
            ),
        },
        "chunker": {
            "document_bytes": len(markdown),
            "chunks_per_document": produced[-1],
            "mb_per_s": round(docs_per_s * len(markdown) / 1e6, 2),
            "chunks_per_s": round(docs_per_s * produced[-1]),
        },
    }
    print(json.dumps(result, indent=2))


if __name__ == "__main__":
    main()
