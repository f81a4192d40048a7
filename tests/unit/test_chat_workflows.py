"""The bounded orchestration pieces: the multi-part fan-out."""

from __future__ import annotations

from chat.workflows import fan_out, subquestions
from retrieval.index import Passage


def test_multi_part_questions_split_and_single_ones_do_not() -> None:
    assert subquestions("What is the hotel limit? Who approves trains?") == [
        "What is the hotel limit?",
        "Who approves trains?",
    ]
    assert subquestions("What is the hotel limit in Paris and Rome?") == [
        "What is the hotel limit in Paris and Rome?"
    ]


async def test_fan_out_fuses_the_rankings_of_every_part() -> None:
    def passage(chunk: str) -> Passage:
        return Passage(chunk, "d", 0.0, [], chunk)

    results = {"a": [passage("x"), passage("y")], "b": [passage("y"), passage("z")]}

    async def retrieve(part: str) -> list[Passage]:
        return results[part]

    fused = await fan_out(["a", "b"], retrieve, top_k=3)
    assert [p.chunk_id for p in fused] == ["y", "x", "z"]
