"""The semantic cache's near-miss verification over the labelled pair set in bench/data."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from retrieval.cache.guard import canonical, same_question

PAIRS = json.loads((Path(__file__).parents[3] / "bench" / "data" / "cache-pairs.json").read_text())[
    "pairs"
]


@pytest.mark.parametrize(
    "pair", [p for p in PAIRS if not p["same"]], ids=lambda p: f"{p['kind']}:{p['b']}"
)
def test_every_near_miss_is_rejected(pair: dict[str, str]) -> None:
    # Embedding cosine scores many of these above 0.95: the guard must catch each one.
    assert not same_question(pair["a"], pair["b"])
    assert not same_question(pair["b"], pair["a"])


def test_spelling_and_phrasing_variants_still_match() -> None:
    same = [p for p in PAIRS if p["same"]]
    passed = [p for p in same if same_question(p["a"], p["b"])]
    # Measured 27/29: only synonym substitutions (apply/request, permitted/allowed) are refused.
    assert len(passed) >= 27, [p["b"] for p in same if p not in passed]


def test_the_exact_key_ignores_case_space_and_final_punctuation() -> None:
    assert canonical("  What is the Hotel   limit?") == canonical("what is the hotel limit")
    assert canonical("Limit for 2 nights?") != canonical("Limit for 3 nights?")
