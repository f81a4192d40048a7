"""The bounded orchestration pieces: the revise loop and the multi-part fan-out."""

from __future__ import annotations

from app.chat.workflows import Generation, fan_out, revise, subquestions
from retrieval.index import Passage

SOURCES = ["Hotels in Paris cost up to 180 euros per night.", "Trains: first class after 4 hours."]


class ScriptedModel:
    """Answers from a script, counting calls (the model is the edge of the world here)."""

    def __init__(self, *answers: str) -> None:
        self.answers = list(answers)
        self.calls: list[list[dict[str, str]]] = []

    async def __call__(self, messages: list[dict[str, str]], *, model: str) -> Generation:
        self.calls.append(messages)
        return Generation(self.answers.pop(0), 100, 20, 30, model, "fake", "test")


def first(text: str) -> Generation:
    return Generation(text, 100, 20, 30, "small", "fake", "test")


async def test_a_grounded_answer_needs_no_revision() -> None:
    model = ScriptedModel()
    _, grounding, revisions = await revise(
        [],
        first("Hotels in Paris cost up to 180 euros per night [1]."),
        SOURCES,
        model,
        model="small",
        threshold=0.8,
    )
    assert (revisions, grounding.score, model.calls) == (0, 1.0, [])


async def test_an_ungrounded_answer_is_revised_with_a_critique_and_paid_for() -> None:
    model = ScriptedModel("Hotels in Paris cost up to 180 euros per night [1].")
    answer, grounding, revisions = await revise(
        [{"role": "user", "content": "hotel?"}],
        first("Hotels in Paris are free. Taxis are always reimbursed."),
        SOURCES,
        model,
        model="small",
        threshold=0.8,
    )
    assert revisions == 1 and grounding.score == 1.0
    assert "Without a citation" in model.calls[0][-1]["content"]
    assert (answer.input_tokens, answer.output_tokens, answer.cost_microdollars) == (200, 40, 60)


async def test_the_loop_stops_when_revising_does_not_help_and_never_exceeds_two() -> None:
    stuck = ScriptedModel("Still wrong.", "Still wrong.", "Still wrong.")
    _, _, revisions = await revise(
        [], first("Wrong."), SOURCES, stuck, model="small", threshold=0.8
    )
    assert revisions == 1  # no improvement: stop without a second call
    improving = ScriptedModel(
        "Hotels in Paris cost 180 euros [1]. Taxis are free.",
        "Hotels in Paris cost 180 euros [1]. Trains: first class after 4 hours [2]. Cars? No.",
        "never asked",
    )
    _, _, revisions = await revise(
        [], first("Wrong. Also wrong."), SOURCES, improving, model="small", threshold=1.0
    )
    assert revisions == 2 and len(improving.answers) == 1


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
