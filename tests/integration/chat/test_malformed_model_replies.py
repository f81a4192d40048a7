"""Chat when the model's replies are not its protocol (a body cut short, an empty 200, a proxy's
page, a stream that ends mid-answer): the question is still answered from the sources, cited
(the extractive mode), and the session stores that answer; a stream that breaks off tells the
client so instead of passing a truncated answer off as whole. Never a 500."""

from __future__ import annotations

import pytest

from tests.peers.llm_peer import LlmPeer, Reply
from tests.support.chat import QUESTION, ask, sse_events, travel_tenant
from tests.support.documents import member
from tests.support.gateway import BROKEN as GATEWAY_BROKEN
from tests.support.tenants import Api

ANSWER = "Employees may book hotels up to 180 euros per night in Paris [1]."
# The gateway's malformed completions (tests/integration/gateway/test_malformed_replies.py).
BROKEN = {case: GATEWAY_BROKEN[case] for case in ("truncated", "empty", "html", "no_content")}


@pytest.mark.parametrize("broken", BROKEN)
async def test_malformed_model_replies_leave_a_cited_extractive_answer_in_the_session(
    chat: Api, peer: LlmPeer, broken: str
) -> None:
    tenant, doc = await travel_tenant(chat)
    _, key = await member(chat, tenant)
    peer.then(*[BROKEN[broken]] * 10)
    body = await ask(chat, key, QUESTION)
    assert body["mode"] == "extractive" and body["mode_reason"] == "model_unavailable"
    assert "180 euros" in body["answer"] and body["answer"].endswith("[1]")
    assert body["citations"][0]["document_id"] == doc["document_id"]
    assert peer.requests, "the model was asked"
    transcript = await chat.client.get(f"/v1/chat/sessions/{body['session_id']}", headers=key)
    assert [(m["role"], m["content"]) for m in transcript.json()["messages"]] == [
        ("user", QUESTION),
        ("assistant", body["answer"]),
    ]

    # The model answers properly again: so does chat, in the same session.
    peer.script.clear()
    peer.text = ANSWER
    again = await ask(chat, key, QUESTION, session_id=body["session_id"], cache=False)
    assert again["mode"] == "generative" and again["answer"] == ANSWER


async def test_a_model_stream_that_ends_mid_answer_is_an_error_event_not_an_answer(
    chat: Api, peer: LlmPeer
) -> None:
    tenant, _ = await travel_tenant(chat)
    _, key = await member(chat, tenant)
    peer.text = ANSWER + " Elsewhere hotels may cost up to 140 euros per night [1]."
    # Twelve words, then the body ends between two events: no finish, no [DONE].
    peer.then(Reply(cut_after=12, cut_mid_event=False))
    response = await chat.client.post(
        "/v1/chat", json={"message": QUESTION}, headers={**key, "Accept": "text/event-stream"}
    )
    assert response.status_code == 200
    events = sse_events(response.text)
    kinds = [kind for kind, _ in events]
    assert kinds[0] == "meta" and kinds[-1] == "error" and "done" not in kinds
    assert events[-1][1]["code"] == "model_stream_bad_response"
