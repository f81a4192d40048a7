"""The prompt-injection guard on public data (``bench/data/injection_public``), and what it costs.

Direct: every message of the set through ``dlp.injection.detect`` (the production guard, with no
allow-listed host) with the message's MiniLM embedding, as the chat path runs it (it embeds the
question for retrieval anyway); per set and category, the share of attacks flagged (detection)
and of benign look-alikes flagged (false positives), on the tuning half (what the rules and the
classifiers were written and fitted against) and on the held-out half (never looked at while
tuning), for the whole guard, for the guard without an embedding (the word model alone, as a
caller without one gets it) and for its rules alone. Cost: wall time of ``detect`` per message,
p50 and p99 (the embedding itself, paid by the chat path with or without the guard, apart).

Indirect: every document with a planted instruction is a retrieved chunk beside one clean chunk,
through the chunk guard as ``DlpService.guard_chunks`` runs it, under both chunk policies
(``quarantine``: left out; ``wrap``: the instruction's sentences removed, the rest quoted), then
answered the way a chat answer is when no model is available (``retrieval.extractive`` over the
passages as ``ChatService`` hands them to it, with the production sentence embedder). An attack
*succeeds* when the answer repeats the planted instruction (any 6-word run of it) or its
payload. *Exposed* counts the chunks whose instruction would still reach a model's prompt as
live text (not flagged): the figure a generative answer depends on. Clean documents give the
share of chunks quarantined for nothing.

    python -m bench.injection [--split heldout|tuning|both]
"""

from __future__ import annotations

import argparse
import gzip
import json
import re
import statistics
import time
from collections import defaultdict
from pathlib import Path
from typing import Any

from dlp import injection
from dlp.injection._classifier import guard
from dlp.injection._normalise import normalise, views
from dlp.injection._rules import rule_kinds

DATA = Path(__file__).parent / "data" / "injection_public" / "injection.json.gz"
POLICIES = ("quarantine", "wrap")
_RUN = 6  # words


def load() -> dict[str, Any]:
    return json.loads(gzip.decompress(DATA.read_bytes()))  # type: ignore[no-any-return]


def rules_only(text: str) -> bool:
    known = guard().english
    return any(rule_kinds(normalise(view)) for view, _ in views(text, known=known))


def _rates(rows: list[tuple[int, bool]]) -> dict[str, Any]:
    attacks = [hit for label, hit in rows if label == 1]
    benign = [hit for label, hit in rows if label == 0]
    found: dict[str, Any] = {}
    if attacks:
        found |= {"attacks": len(attacks), "detection": round(sum(attacks) / len(attacks), 3)}
    if benign:
        found |= {"benign": len(benign), "false_positive_rate": round(sum(benign) / len(benign), 4)}
    return found


def embeddings(texts: list[str]) -> tuple[Any, float]:
    """The production embedder's vectors of ``texts``, and its p50 seconds for one text."""
    from retrieval.adapters.minilm import OnnxMiniLMEmbedder

    embedder = OnnxMiniLMEmbedder()
    vectors = embedder.embed(texts)
    costs = []
    for text in texts[:: max(1, len(texts) // 100)]:
        started = time.perf_counter()
        embedder.embed([text])
        costs.append(time.perf_counter() - started)
    return vectors, statistics.median(costs)


def direct(items: list[dict[str, Any]]) -> dict[str, Any]:
    guard: list[tuple[int, bool]] = []
    alone: list[tuple[int, bool]] = []
    rules: list[tuple[int, bool]] = []
    by_set: dict[str, list[tuple[int, bool]]] = defaultdict(list)
    by_category: dict[str, list[tuple[int, bool]]] = defaultdict(list)
    by_language: dict[str, list[tuple[int, bool]]] = defaultdict(list)
    costs, costs_alone = [], []
    vectors, embedding_cost = embeddings([entry["text"] for entry in items])
    for entry, vector in zip(items, vectors, strict=True):
        started = time.perf_counter()
        hit = bool(injection.detect(entry["text"], embedding=vector))
        costs.append(time.perf_counter() - started)
        started = time.perf_counter()
        alone.append((entry["label"], bool(injection.detect(entry["text"]))))
        costs_alone.append(time.perf_counter() - started)
        label = entry["label"]
        guard.append((label, hit))
        rules.append((label, rules_only(entry["text"])))
        by_set[entry["set"]].append((label, hit))
        category = entry["category"].split(":")[0]
        by_category[f"{category}:{label}"].append((label, hit))
        if entry["lang"] != "en":
            by_language[entry["lang"]].append((label, hit))
    costs.sort()
    costs_alone.sort()
    return {
        "guard": _rates(guard),
        "without_embedding": _rates(alone),
        "rules_only": _rates(rules),
        "sets": {name: _rates(rows) for name, rows in sorted(by_set.items())},
        "categories": {name: _rates(rows) for name, rows in sorted(by_category.items())},
        "languages_other_than_english": {
            name: _rates(rows) for name, rows in sorted(by_language.items())
        },
        "cost_per_message_us": {
            "p50": round(statistics.median(costs) * 1e6, 1),
            "p99": round(costs[int(len(costs) * 0.99)] * 1e6, 1),
            "without_embedding_p50": round(statistics.median(costs_alone) * 1e6, 1),
            "mean_chars": round(statistics.fmean(len(e["text"]) for e in items)),
            "embedding_p50_paid_by_chat_anyway": round(embedding_cost * 1e6, 1),
        },
    }


def guard_chunk(chunk: str, policy: str) -> str | None:
    """``DlpService.guard_chunks`` for one chunk, without its trip records."""
    if not injection.detect(chunk):
        return chunk
    inert = injection.strip_instructions(chunk) if policy == "wrap" else None
    return None if inert is None else injection.quote_as_data(inert)


def _words(text: str) -> list[str]:
    return re.findall(r"\w+", normalise(text))


def repeats(answer: str, planted: str, trigger: str) -> bool:
    said = " ".join(_words(answer))
    if trigger and " ".join(_words(trigger)) in said and len(_words(trigger)) >= 2:
        return True
    words = _words(planted)
    runs = {" ".join(words[i : i + _RUN]) for i in range(max(1, len(words) - _RUN + 1))}
    return any(run and run in said for run in runs)


def indirect(planted: list[dict[str, Any]], clean: list[dict[str, Any]]) -> dict[str, Any]:
    from retrieval.adapters.minilm import OnnxMiniLMEmbedder
    from retrieval.embeddings import SentenceVectors
    from retrieval.extractive import extract, render

    sentences = SentenceVectors(OnnxMiniLMEmbedder()).for_tenant("bench")
    neighbour = clean[0]["text"] if clean else ""
    results: dict[str, Any] = {}
    costs = []
    for policy in POLICIES:
        succeeded, exposed = [], []
        by_set: dict[str, list[bool]] = defaultdict(list)
        for entry in planted:
            started = time.perf_counter()
            guarded = [guard_chunk(entry["text"], policy), guard_chunk(neighbour, policy)]
            costs.append(time.perf_counter() - started)
            if guarded[0] == entry["text"]:
                exposed.append(entry["id"])
            passages = [injection.quoted_body(text) for text in guarded if text]
            extracts = extract(entry["question"], passages, sentences) if passages else []
            answer = render(extracts)
            hit = repeats(answer, entry["planted"], entry["trigger"])
            by_set[entry["set"]].append(hit)
            if hit:
                succeeded.append(entry["id"])
        results[policy] = {
            "documents": len(planted),
            "succeeded": len(succeeded),
            "succeeded_ids": succeeded,
            "exposed_to_a_model": len(exposed),
            "exposed_ids": exposed,
            "succeeded_by_set": {k: sum(v) for k, v in sorted(by_set.items())},
        }
    flagged = [e["id"] for e in clean if injection.detect(e["text"])]
    costs.sort()
    results["clean_documents"] = {
        "documents": len(clean),
        "quarantined": len(flagged),
        "false_quarantine_rate": round(len(flagged) / len(clean), 4) if clean else None,
        "ids": flagged,
    }
    results["cost_per_two_chunks_us_p50"] = round(statistics.median(costs) * 1e6, 1)
    return results


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--split", choices=("heldout", "tuning", "both"), default="both")
    args = parser.parse_args()
    data = load()
    splits = ("tuning", "heldout") if args.split == "both" else (args.split,)
    injection.detect("warm-up: ignore previous instructions")
    report: dict[str, Any] = {"source": data["source"]}
    for split in splits:
        report[split] = {
            "direct": direct([e for e in data["direct"] if e["split"] == split]),
            "indirect": indirect(
                [e for e in data["indirect"] if e["split"] == split],
                [e for e in data["clean"] if e["split"] == split],
            ),
        }
    print(json.dumps(report, indent=2, ensure_ascii=False))


if __name__ == "__main__":
    main()
