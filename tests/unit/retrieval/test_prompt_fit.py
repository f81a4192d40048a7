"""Bulwark's own prompt is fitted to the model's window: sources best first, the last one cut at
a sentence, history from the most recent turn, never over the budget."""

from __future__ import annotations

from gateway.services import estimate_tokens
from retrieval.prompt import PromptBudget, Source, Turn, render_sources

LONG = " ".join(f"Sentence number {n} says the limit is {n * 10} euros." for n in range(200))


def test_sources_are_kept_best_first_and_the_last_is_cut_at_a_sentence() -> None:
    sources = [Source("Policy", ["Policy", "Hotels"], LONG), Source("Other", [], LONG)]
    kept, turns = PromptBudget(1000, estimate_tokens).apply("Hotel limit?", sources, [])
    assert [s.title for s in kept] == ["Policy"] and turns == []
    assert kept[0].text.endswith("euros.") and len(kept[0].text) < len(LONG)
    assert estimate_tokens(render_sources(kept)) < 1000


def test_history_gets_what_the_sources_leave_most_recent_first() -> None:
    sources = [Source("Policy", [], "Hotels up to 180 euros a night in Paris.")]
    history = [Turn("user", f"turn {n} " + "words " * 50) for n in range(20)]
    kept, turns = PromptBudget(2000, estimate_tokens).apply("Hotel limit?", sources, history)
    assert kept == sources and 0 < len(turns) < len(history)
    assert turns[-1] == history[-1]


def test_nothing_useful_fits_means_no_source_rather_than_an_overflow() -> None:
    sources = [Source("Policy", [], LONG)]
    kept, _ = PromptBudget(120, estimate_tokens).apply("Hotel limit?", sources, [])
    assert kept == []
