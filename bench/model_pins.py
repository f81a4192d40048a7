"""What checking the model files against their pinned SHA-256 values costs (issue 23).

Each model file is hashed once per process, on its first use (``kernel.supply_chain``): this times
that first check for the MiniLM ONNX encoder, the spaCy NER model (every file of its data
directory) and the SmolLM2 GGUF, with the process cache cleared before each repeat. The files
are read from the page cache after the first repeat, as they are when a warm machine restarts.

    python -m bench.model_pins [--repeats 5]
"""

from __future__ import annotations

import argparse
import json
import statistics
import time
from collections.abc import Callable
from pathlib import Path

from dlp.adapters.presidio import SPACY_MODEL_FILES, model_dir
from gateway.adapters.llamacpp import SMOLLM2_SHA256, default_model_path
from kernel import supply_chain
from retrieval.adapters.minilm import MODEL_SHA256, model_path


def measure(check: Callable[[], object], repeats: int) -> list[float]:
    timings = []
    for _ in range(repeats):
        supply_chain._digests.clear()  # a fresh process: nothing verified yet
        start = time.perf_counter()
        check()
        timings.append((time.perf_counter() - start) * 1000)
    return timings


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--repeats", type=int, default=5)
    args = parser.parse_args()
    gguf = Path(default_model_path())
    spacy_dir = model_dir()
    models: dict[str, tuple[int, Callable[[], object]]] = {
        "minilm_onnx": (
            model_path().stat().st_size,
            lambda: supply_chain.verify_file(model_path(), MODEL_SHA256, what="MiniLM"),
        ),
        "spacy_ner_model": (
            sum((spacy_dir / name).stat().st_size for name in SPACY_MODEL_FILES),
            lambda: supply_chain.verify_tree(spacy_dir, SPACY_MODEL_FILES, what="spaCy"),
        ),
        "smollm2_gguf": (
            gguf.stat().st_size,
            lambda: supply_chain.verify_file(gguf, SMOLLM2_SHA256, what="SmolLM2"),
        ),
    }
    results = {}
    for name, (size, check) in models.items():
        timings = measure(check, args.repeats)
        median = statistics.median(timings)
        results[name] = {
            "bytes": size,
            "first_check_ms_median": round(median, 1),
            "first_check_ms_max": round(max(timings), 1),
            "mb_per_s": round(size / 1e6 / (median / 1000), 1),
        }
    print(json.dumps({"repeats": args.repeats, "models": results}, indent=2))


if __name__ == "__main__":
    main()
